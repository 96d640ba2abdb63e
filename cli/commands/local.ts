import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseBackendChoice, selectBackend } from '../../shared/runtime/backend.js';
import { UsageError } from '../../shared/runtime/errors.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { exitOf, freePort, spawnCli, terminateAll } from '../child-processes.js';
import { addJobOptions, jobFromOptions, positiveInteger } from '../job-options.js';

// Time the coordinator gets to finish its step and checkpoint after Ctrl-C or a lost worker.
const COORDINATOR_GRACE_MS = 60_000;
const WORKER_GRACE_MS = 10_000;
// Each worker is a process with a full model replica. The cap, the same as bench allreduce has, catches typos.
const MAX_LOCAL_WORKERS = 64;

/** Adds `cbn-train local`. */
export function register(program: Command): void {
  const command = program
    .command('local')
    .description(
      'Train on this machine: start a coordinator and N worker processes on loopback, and stop them all at the end',
    )
    .option('--workers <n>', 'number of worker processes', '2')
    .option('--backend <name>', 'worker backend: auto, tensorflow-gpu, tensorflow, wasm or cpu', 'auto');
  addJobOptions(command).action(async (options: Record<string, unknown>) => {
    const workers = positiveInteger('--workers', options.workers);
    if (workers > MAX_LOCAL_WORKERS) {
      throw new UsageError(
        `--workers must be at most ${MAX_LOCAL_WORKERS} for a local cluster, got ${workers}`,
      );
    }
    const backend = parseBackendChoice(String(options.backend));
    // Check an explicit backend here, so a missing package exits 2 once instead of failing every worker.
    if (backend !== 'auto') await selectBackend(backend);
    const config = jobFromOptions(options);
    const log = createLogger('local');

    const dir = mkdtempSync(join(tmpdir(), 'cbn-local-'));
    const configPath = join(dir, 'job.json');
    writeFileSync(configPath, JSON.stringify(config));
    const address = `127.0.0.1:${await freePort()}`;
    log.info({ workers, address, out: config.out }, 'starting local cluster');

    const coordinator = spawnCli([
      'coordinator',
      '--listen',
      address,
      '--workers',
      String(workers),
      '--backend',
      backend,
      '--config',
      configPath,
    ]);
    const workerEnv = { CBN_LOG_LEVEL: process.env.CBN_LOG_LEVEL ?? 'warn' };
    const children = Array.from({ length: workers }, (_, i) =>
      spawnCli(
        [
          'worker',
          '--coordinator',
          address,
          '--listen',
          '127.0.0.1:0',
          '--backend',
          backend,
          '--worker-id',
          `worker-${i}`,
        ],
        workerEnv,
      ),
    );

    let interrupted = false;
    const onSignal = (signal: NodeJS.Signals) => {
      interrupted = true;
      log.info({ signal }, 'stopping the local cluster');
      coordinator.kill('SIGINT');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const workerDied = Promise.race(
      children.map(async (child, i) => ({ worker: i, code: await exitOf(child) })),
    );
    const first = await Promise.race([
      exitOf(coordinator).then((code) => ({ coordinator: code })),
      workerDied,
    ]);

    let code: number;
    if ('coordinator' in first) {
      code = first.coordinator;
    } else {
      log.error(
        { worker: first.worker, exitCode: first.code },
        `worker-${first.worker} exited with code ${first.code}; stopping the cluster`,
      );
      await terminateAll([coordinator], COORDINATOR_GRACE_MS);
      code = 1;
    }
    await terminateAll(children, WORKER_GRACE_MS);
    await terminateAll([coordinator], COORDINATOR_GRACE_MS);
    rmSync(dir, { recursive: true, force: true });
    log.info({ exitCode: code, interrupted }, 'local cluster stopped');
    process.exitCode = code;
  });
}
