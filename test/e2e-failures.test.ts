import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, startCli, startCoordinator, tempDir, waitFor } from './support/cli.js';

// Failures with real processes on loopback: usage errors, a rejected worker, a killed worker, a NaN gradient
// and a diverged replica. Each must end the job with an error that names the cause.

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  cleanups.push(dir.remove);
  return dir.path;
}

describe('cbn-train bad input', () => {
  it.each([
    [['--batch', '0'], /--batch: Too small/],
    [['--steps', '-1'], /--steps: Too small/],
    [['--preset', 'huge'], /--preset: Invalid option: expected one of "micro"\|"tiny"\|"base", got "huge"/],
    [['--lr', 'fast'], /--lr must be a number, got "fast"/],
    [['--steps', '2.5'], /--steps: must be an integer, got 2\.5/],
  ])('exits 2 for %s', async (args, message) => {
    const run = await runCli(['local', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('exits 2 when the coordinator address is in use', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const run = await runCli([
      'coordinator',
      '--listen',
      `127.0.0.1:${port}`,
      '--workers',
      '1',
      '--backend',
      'cpu',
    ]);
    server.close();
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
  });

  it('rejects a worker with another model hash on both sides', async () => {
    const out = join(scratch('cbn-e2e-hash-'), 'run');
    const { run: coordinator, address } = await startCoordinator([
      '--workers',
      '1',
      '--worker-timeout-ms',
      '8000',
      '--backend',
      'cpu',
      '--out',
      out,
    ]);

    const worker = await runCli(
      ['worker', '--coordinator', address, '--backend', 'cpu', '--worker-id', 'odd'],
      {
        CBN_MODEL_HASH_OVERRIDE: 'deadbeef',
      },
    );
    expect(worker.code).not.toBe(0);
    expect(worker.stderr).toMatch(/model hash/i);

    const result = await coordinator.done;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/odd.*model hash/i);
    expect(result.stderr).toMatch(/waiting for 1 workers: none joined/);
  });

  it('stops the job naming a worker killed mid-run, leaving the checkpoint readable', async () => {
    const out = join(scratch('cbn-e2e-kill-'), 'run');
    const { run: coordinator, address } = await startCoordinator([
      '--workers',
      '2',
      '--backend',
      'wasm',
      '--out',
      out,
      '--steps',
      '200',
      '--batch',
      '8',
      '--checkpoint-every',
      '2',
      '--sample-every',
      '0',
      '--step-deadline-ms',
      '20000',
    ]);
    const workers = ['w-a', 'w-b'].map((id) =>
      startCli(['worker', '--coordinator', address, '--backend', 'wasm', '--worker-id', id]),
    );
    cleanups.push(() => workers.forEach((w) => w.child.kill('SIGKILL')));

    await waitFor(
      () =>
        existsSync(join(out, 'metrics.jsonl')) &&
        readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').length > 4,
      60_000,
      'a few steps',
    );
    const killedAt = Date.now();
    workers[1]!.child.kill('SIGKILL');
    const result = await coordinator.done;

    if (process.env.DEBUG_E2E) console.log(result.stderr);
    expect(result.code).not.toBe(0);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    expect(result.stderr).toMatch(/w-b/);
    const checkpoint = await readCheckpoint(join(out, 'checkpoint'));
    expect(checkpoint.trainerState.step).toBeGreaterThanOrEqual(2);
  });

  it('fails the job naming the step and parameter of a NaN gradient', async () => {
    const out = join(scratch('cbn-e2e-nan-'), 'run');
    const run = await runCli(
      ['local', '--workers', '2', '--steps', '5', '--batch', '4', '--out', out, '--checkpoint-every', '0'],
      {
        CBN_TEST_NAN_GRAD_STEP: '2',
      },
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/non-finite gradient at step 2 in parameter G\/out_conv\/bias/);
  });

  it('fails the job when a replica diverges', async () => {
    const out = join(scratch('cbn-e2e-diverge-'), 'run');
    const { run: coordinator, address } = await startCoordinator([
      '--workers',
      '2',
      '--backend',
      'cpu',
      '--out',
      out,
      '--preset',
      'micro',
      '--steps',
      '20',
      '--batch',
      '4',
      '--check-params-every',
      '2',
    ]);
    const workers = [
      ['w-a', ''],
      ['w-b', '2'],
    ].map(([id, perturbStep]) =>
      startCli(['worker', '--coordinator', address, '--backend', 'wasm', '--worker-id', id!], {
        CBN_TEST_PERTURB_STEP: perturbStep,
      }),
    );
    cleanups.push(() => workers.forEach((w) => w.child.kill('SIGKILL')));

    const result = await coordinator.done;
    expect(result.code).not.toBe(0);
    // Checksums are compared after steps 2, 4, ...; worker w-b changes a parameter after step index 2.
    expect(result.stderr).toMatch(
      /replicas diverged after step 4: parameter checksum of rank 1 \(worker w-b\) differs/,
    );
  });
});
