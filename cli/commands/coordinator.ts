import { basename } from 'node:path';
import type { Command } from 'commander';
import { startCoordinatorServices } from '../../coordinator/services.js';
import { runTraining } from '../../coordinator/training-run.js';
import { parseBackendChoice } from '../../shared/runtime/backend.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { addJobOptions, jobFromOptions, positiveInteger } from '../job-options.js';
import { progressReporter } from '../progress.js';
import { abortOnSignals } from '../signals.js';

/** Adds `cbn-train coordinator`. */
export function register(program: Command): void {
  const command = program
    .command('coordinator')
    .description('Serve workers over gRPC and drive a training job (or, with --queue, jobs from Redis)')
    .requiredOption('--listen <host:port>', 'address of the gRPC server; port 0 picks a free one', process.env.CBN_LISTEN)
    .requiredOption('--workers <n>', 'number of workers to wait for', process.env.CBN_WORKERS)
    .option('--worker-timeout-ms <ms>', 'how long to wait for the workers to register', '300000')
    .option('--backend <name>', 'backend for rendering samples: auto, tensorflow-gpu, tensorflow, wasm, cpu', process.env.CBN_BACKEND ?? 'auto')
    .option('--metrics-listen <host:port>', 'serve /healthz, /readyz and Prometheus /metrics over HTTP on this address', process.env.CBN_METRICS_LISTEN);
  addJobOptions(command).action(async (options: Record<string, unknown>) => {
    const workers = positiveInteger('--workers', options.workers);
    const workerTimeoutMs = positiveInteger('--worker-timeout-ms', options.workerTimeoutMs);
    const backend = parseBackendChoice(String(options.backend));
    const config = jobFromOptions(options);

    const jobId = `${basename(config.out)}-${Date.now().toString(36)}`;
    const log = createLogger('coordinator', { jobId });
    const services = await startCoordinatorServices({
      listen: String(options.listen),
      backend,
      log,
      ...(options.metricsListen ? { metricsListen: String(options.metricsListen) } : {}),
    });
    const controller = abortOnSignals(log);
    const progress = progressReporter(log);
    try {
      const ranked = await services.registry.waitForWorkers(workers, workerTimeoutMs);
      services.status.startJob(jobId);
      const result = await runTraining({
        jobId,
        config,
        workers: ranked,
        reductions: services.reductions,
        log,
        signal: controller.signal,
        onProgress: (p) => {
          services.status.progress = p;
          progress.update(p);
        },
      });
      progress.stop();
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } finally {
      progress.stop();
      await services.stop();
    }
  });
}
