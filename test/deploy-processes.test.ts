import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../cli/child-processes.js';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, tempDir, waitFor } from './support/cli.js';
import { SHARED_REDIS_URL, deletePrefix, testQueue, uniquePrefix, waitForJobState } from './support/redis.js';

// The compose deployment without containers: the coordinator and two workers run as plain processes
// through deploy/docker-entrypoint.sh, with the commands and environment of deploy/docker-compose.yml.
// Only container hostnames and ports are replaced by loopback ones.

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRYPOINT = join(REPO, 'deploy', 'docker-entrypoint.sh');

/* eslint-disable @typescript-eslint/no-explicit-any -- compose files are free-form YAML. */
const compose = parse(readFileSync(join(REPO, 'deploy', 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as any;

/** Expands `${NAME:-default}` and `${NAME}` as Compose does, from `variables`. */
function interpolate(value: string, variables: Record<string, string>): string {
  return value.replace(
    /\$\{(\w+)(?::-([^}]*))?\}/g,
    (_, name: string, fallback: string | undefined) => variables[name] ?? fallback ?? '',
  );
}

/** Returns a service's environment with variables expanded and `host:port` values mapped to loopback ones. */
function serviceEnv(
  service: any,
  variables: Record<string, string>,
  addresses: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, raw] of Object.entries(service.environment as Record<string, string>)) {
    const value = interpolate(String(raw), variables);
    env[name] = addresses[value] ?? value;
  }
  return env;
}

const children: ChildProcess[] = [];
const scratch = tempDir('cbn-deploy-processes-');
const prefix = uniquePrefix('deploy');

function startService(
  service: any,
  env: Record<string, string>,
): { child: ChildProcess; output: () => string } {
  const child = spawn(ENTRYPOINT, service.command as string[], {
    // Only what a container would have besides the compose variables, plus the test's queue prefix.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', CBN_QUEUE_PREFIX: prefix, ...env },
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  children.push(child);
  return { child, output: () => stderr };
}

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await deletePrefix(prefix);
  scratch.remove();
});

describe('deploy/docker-compose.yml as processes', () => {
  it('runs a submitted job to completion', async () => {
    const { coordinator, worker } = compose.services;
    const variables = { CBN_WORKERS: '2', CBN_LOG_LEVEL: 'info' };
    const grpcPort = await freePort();
    const metricsPort = await freePort();
    const coordinatorListen = coordinator.environment.CBN_LISTEN as string;

    const coordinatorEnv = serviceEnv(coordinator, variables, {
      [coordinatorListen]: `127.0.0.1:${grpcPort}`,
      [coordinator.environment.CBN_METRICS_LISTEN]: `127.0.0.1:${metricsPort}`,
      [coordinator.environment.REDIS_URL]: SHARED_REDIS_URL,
    });
    expect(coordinator.command).toEqual(['coordinator', '--queue']);
    expect(coordinatorEnv.CBN_WORKERS).toBe('2');
    const coordinatorProcess = startService(coordinator, coordinatorEnv);

    for (let i = 0; i < 2; i++) {
      const listenPort = await freePort();
      const env = serviceEnv(worker, variables, {
        [worker.environment.CBN_COORDINATOR]: `127.0.0.1:${grpcPort}`,
        [worker.environment.CBN_LISTEN]: `127.0.0.1:${listenPort}`,
        [worker.environment.CBN_HEALTH_LISTEN]: `127.0.0.1:${await freePort()}`,
      });
      // The entrypoint would advertise the container hostname; here it is the loopback address.
      startService(worker, { ...env, CBN_ADVERTISE: `127.0.0.1:${listenPort}` });
    }

    // The compose healthcheck of the coordinator: GET /healthz on the metrics port.
    await waitFor(
      () => /connected to Redis/.test(coordinatorProcess.output()),
      60_000,
      'the coordinator to reach Redis',
    );
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect(health.ok).toBe(true);

    const out = join(scratch.path, 'run');
    const submit = await runCli(
      ['submit', '--preset', 'micro', '--steps', '4', '--batch', '4', '--out', out],
      {
        REDIS_URL: SHARED_REDIS_URL,
        CBN_QUEUE_PREFIX: prefix,
      },
    );
    expect(submit.code, submit.stderr).toBe(0);
    const jobId = submit.stdout.trim();

    const queue = testQueue(prefix);
    const state = await waitForJobState(queue, jobId, ['completed', 'failed'], 90_000);
    const job = (await queue.getJob(jobId))!;
    await queue.close();
    expect(state, job.failedReason ?? coordinatorProcess.output().slice(-3000)).toBe('completed');
    expect(job.returnvalue.steps).toBe(4);
    expect((await readCheckpoint(join(out, 'checkpoint'))).trainerState.step).toBe(4);
  });
});
