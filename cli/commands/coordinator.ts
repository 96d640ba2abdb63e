import { basename } from 'node:path';
import type { Command } from 'commander';
import { runQueueConsumer } from '../../coordinator/queue-consumer.js';
import { queueSettingsFromEnv } from '../../coordinator/queue-settings.js';
import { startCoordinatorServices } from '../../coordinator/services.js';
import { runTraining } from '../../coordinator/training-run.js';
import { redisUrlFrom } from '../../shared/queue/connection.js';
import { queuePrefixFrom } from '../../shared/queue/queue-names.js';
import { parseBackendChoice, type BackendChoice } from '../../shared/runtime/backend.js';
import { UsageError } from '../../shared/runtime/errors.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { addJobOptions, flagOf, jobFromOptions, positiveInteger } from '../job-options.js';
import { progressReporter } from '../progress.js';
import { abortOnSignals } from '../signals.js';

/** Adds `cbn-train coordinator`. */
export function register(program: Command): void {
  const command = program
    .command('coordinator')
    .description('Serve workers over gRPC and drive a training job (or, with --queue, jobs from Redis)')
    .requiredOption(
      '--listen <host:port>',
      'address of the gRPC server; port 0 picks a free one',
      process.env.CBN_LISTEN,
    )
    .requiredOption('--workers <n>', 'number of workers to wait for', process.env.CBN_WORKERS)
    .option('--worker-timeout-ms <ms>', 'how long to wait for the workers to register', '300000')
    .option(
      '--backend <name>',
      'backend for rendering samples: auto, tensorflow-gpu, tensorflow, wasm, cpu',
      process.env.CBN_BACKEND ?? 'auto',
    )
    .option(
      '--metrics-listen <host:port>',
      'serve /healthz, /readyz and Prometheus /metrics over HTTP on this address',
      process.env.CBN_METRICS_LISTEN,
    )
    .option(
      '--queue',
      'take jobs from the Redis queue (see cbn-train submit) one at a time instead of running one job',
    )
    .option('--redis <url>', 'Redis of the job queue, with --queue [REDIS_URL or redis://127.0.0.1:6379]')
    .option(
      '--queue-prefix <prefix>',
      'key prefix of the job queue in Redis, with --queue [CBN_QUEUE_PREFIX or bull]',
    );
  addJobOptions(command).action(async (options: Record<string, unknown>) => {
    const workers = positiveInteger('--workers', options.workers);
    const workerTimeoutMs = positiveInteger('--worker-timeout-ms', options.workerTimeoutMs);
    const backend = parseBackendChoice(String(options.backend));
    if (options.queue === true) {
      await runQueueMode(options, workers, workerTimeoutMs, backend);
      return;
    }
    if (options.redis !== undefined || options.queuePrefix !== undefined) {
      throw new UsageError(
        '--redis and --queue-prefix need --queue; without it the coordinator runs the one job given by its job options',
      );
    }
    const config = jobFromOptions(options);

    const jobId = `${basename(config.out)}-${Date.now().toString(36)}`;
    const log = createLogger('coordinator');
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

// Options that only make sense for one job; in queue mode each job brings its own.
const SINGLE_JOB_OPTIONS = [
  'config',
  'preset',
  'steps',
  'batch',
  'lr',
  'beta1',
  'beta2',
  'bn',
  'seed',
  'out',
  'checkpointEvery',
  'sampleEvery',
  'resume',
  'checkParamsEvery',
  'dataDir',
  'stepDeadlineMs',
];

/**
 * `coordinator --queue`: serves workers and runs queued jobs one after another until SIGTERM or SIGINT,
 * which checkpoint the active job and return it to the queue. Exits 0 after such a shutdown.
 */
async function runQueueMode(
  options: Record<string, unknown>,
  workers: number,
  workerTimeoutMs: number,
  backend: BackendChoice,
): Promise<void> {
  const jobOptionsGiven = SINGLE_JOB_OPTIONS.filter((field) => options[field] !== undefined);
  if (jobOptionsGiven.length > 0) {
    throw new UsageError(
      `${jobOptionsGiven.map(flagOf).join(', ')} cannot be combined with --queue: queued jobs carry their own options; pass them to cbn-train submit`,
    );
  }
  const location = { redisUrl: redisUrlFrom(options.redis), prefix: queuePrefixFrom(options.queuePrefix) };
  const settings = queueSettingsFromEnv();
  const log = createLogger('coordinator', { mode: 'queue' });
  const services = await startCoordinatorServices({
    listen: String(options.listen),
    backend,
    log,
    ...(options.metricsListen ? { metricsListen: String(options.metricsListen) } : {}),
  });
  const controller = abortOnSignals(log);
  try {
    await runQueueConsumer({
      location,
      settings,
      services,
      workers,
      workerTimeoutMs,
      shutdown: controller.signal,
      log,
    });
  } finally {
    await services.stop();
  }
}
