import type { Command } from 'commander';
import { parseBackendChoice } from '../../shared/runtime/backend.js';
import { UsageError } from '../../shared/runtime/errors.js';
import { runWorker } from '../../worker/run-worker.js';
import { positiveInteger } from '../job-options.js';

/** Adds `cbn-train worker`. */
export function register(program: Command): void {
  program
    .command('worker')
    .description('Run a training replica: serve the Worker gRPC service and register with a coordinator')
    .option('--coordinator <host:port>', 'address of the coordinator', process.env.CBN_COORDINATOR)
    .option(
      '--listen <host:port>',
      'address of this worker’s gRPC server; port 0 picks a free one',
      process.env.CBN_LISTEN ?? '127.0.0.1:0',
    )
    .option(
      '--advertise <host:port>',
      'address the coordinator dials [the listen host and bound port]',
      process.env.CBN_ADVERTISE,
    )
    .option(
      '--backend <name>',
      'auto, tensorflow-gpu, tensorflow, wasm or cpu',
      process.env.CBN_BACKEND ?? 'auto',
    )
    .option(
      '--worker-id <id>',
      'unique id of this worker; ranks follow the order of ids [hostname-pid]',
      process.env.CBN_WORKER_ID,
    )
    .option(
      '--register-timeout-ms <ms>',
      'give up when the coordinator has not answered within this time',
      '300000',
    )
    .option(
      '--health-listen <host:port>',
      'serve /healthz, /readyz and /metrics over HTTP on this address',
      process.env.CBN_HEALTH_LISTEN,
    )
    .action(async (options: Record<string, string | undefined>) => {
      if (!options.coordinator)
        throw new UsageError(
          '--coordinator is required (or set CBN_COORDINATOR), e.g. --coordinator 127.0.0.1:7070',
        );
      await runWorker({
        coordinator: options.coordinator,
        listen: options.listen!,
        backend: parseBackendChoice(options.backend!),
        registerTimeoutMs: positiveInteger('--register-timeout-ms', options.registerTimeoutMs),
        ...(options.advertise ? { advertise: options.advertise } : {}),
        ...(options.workerId ? { workerId: options.workerId } : {}),
        ...(options.healthListen ? { healthListen: options.healthListen } : {}),
      });
      // Registration retries may still hold timers after a stop; the worker has shut down, so exit now.
      process.exit(0);
    });
}
