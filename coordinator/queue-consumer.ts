import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { connectRedis, persistentConnection, redactedUrl } from '../shared/queue/connection.js';
import type { QueuedJobData, QueuedJobResult } from '../shared/queue/job-types.js';
import type { TrainingJob } from '../shared/queue/job-queue.js';
import { QUEUE_NAME, type QueueLocation } from '../shared/queue/queue-names.js';
import type { Logger } from '../shared/runtime/logger.js';
import { CancelListener } from './queue-cancel-listener.js';
import { runQueuedJob } from './queue-job-runner.js';
import type { QueueSettings } from './queue-settings.js';
import type { CoordinatorServices } from './services.js';

export interface QueueConsumerOptions {
  location: QueueLocation;
  settings: QueueSettings;
  services: CoordinatorServices;
  workers: number;
  workerTimeoutMs: number;
  /** Aborted on SIGTERM or SIGINT: the consumer takes no new job and returns the active one to the queue. */
  shutdown: AbortSignal;
  log: Logger;
}

type TrainingWorker = Worker<QueuedJobData, QueuedJobResult>;

/**
 * Consumes training jobs from the queue, one at a time, until `shutdown` aborts. Waits for Redis first,
 * logging each retry. Resolves once the active job (if any) has been checkpointed and returned to the
 * queue and the connections are closed.
 */
export async function runQueueConsumer(options: QueueConsumerOptions): Promise<void> {
  const { location, log } = options;
  log.info(
    { redis: redactedUrl(location.redisUrl), queue: QUEUE_NAME, prefix: location.prefix },
    'connecting to Redis',
  );
  let client: Redis;
  try {
    client = await connectRedis(persistentConnection(location.redisUrl, 'commands', log), options.shutdown);
  } catch (error) {
    if (!options.shutdown.aborted) throw error;
    log.info({ reason: String(options.shutdown.reason) }, 'stopped before Redis could be reached');
    return;
  }
  client.on('error', (error: Error) => log.debug({ err: error }, 'Redis command connection error'));
  log.info({ redis: redactedUrl(location.redisUrl) }, 'connected to Redis');

  // The listener starts first, so that no cancel request goes unheard once the worker takes a job.
  const started: { worker?: TrainingWorker } = {};
  const listener = await CancelListener.start(
    client,
    location.prefix,
    (request) => cancelActive(started.worker, request.jobId, request.reason, log),
    log,
  );
  const worker = createWorker(options, listener);
  started.worker = worker;
  const onShutdown = () => void worker.close();
  options.shutdown.addEventListener('abort', onShutdown, { once: true });
  if (options.shutdown.aborted) onShutdown();

  await waitUntilClosed(worker);
  await listener.close();
  await closeClient(client, log);
  log.info('queue consumer stopped');
}

function createWorker(options: QueueConsumerOptions, listener: CancelListener): TrainingWorker {
  const { location, settings, log } = options;
  const context = {
    services: options.services,
    workers: options.workers,
    workerTimeoutMs: options.workerTimeoutMs,
    shutdown: options.shutdown,
    cancelReasonOf: (jobId: string) => listener.reasonOf(jobId),
    log,
  };
  // NOTE: taking jobs again after a Redis restart relies on BullMQ itself: workers of BullMQ 6 releases before
  // 6.3.3 could stay idle after an outage longer than their blocking read. test/queue-redis-restart.test.ts
  // checks the installed release; there is no watchdog that recreates an idle worker.
  const worker: TrainingWorker = new Worker<QueuedJobData, QueuedJobResult>(
    QUEUE_NAME,
    // Three parameters: BullMQ passes an AbortSignal (aborted by worker.cancelJob) only to processors
    // that declare it.
    async (job, token, signal) => {
      listener.watch(job.id);
      try {
        return await runQueuedJob(job as TrainingJob, token, signal ?? new AbortController().signal, context);
      } finally {
        listener.watch(undefined);
      }
    },
    {
      connection: persistentConnection(location.redisUrl, 'worker', log),
      prefix: location.prefix,
      concurrency: 1,
      lockDuration: settings.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs,
      maxStalledCount: settings.maxStalledCount,
    },
  );
  logWorkerEvents(worker, log);
  return worker;
}

function cancelActive(worker: TrainingWorker | undefined, jobId: string, reason: string, log: Logger): void {
  // Every coordinator receives every request; only the one running the job finds it.
  if (worker?.cancelJob(jobId, reason))
    log.info({ jobId, reason }, 'cancel requested; stopping after the current step');
}

function logWorkerEvents(worker: TrainingWorker, log: Logger): void {
  let errors = 0;
  worker.on('error', (error) => {
    errors++;
    // A Redis outage raises an error per command and reconnect: log the first and then every 20th.
    if (errors === 1 || errors % 20 === 0) log.error({ err: error, errors }, 'queue worker error');
  });
  worker.on('ready', () => {
    if (errors > 0) log.info({ errorsSinceLastReady: errors }, 'queue worker connected to Redis again');
    errors = 0;
  });
  worker.on('completed', (job, result) =>
    log.info({ jobId: job.id, step: result.steps, outDir: result.outDir }, 'queued job completed'),
  );
  worker.on('failed', (job, error) => {
    // BullMQ sets finishedOn only when the job fails for good, not when it is retried.
    const willRetry = job !== undefined && !job.finishedOn;
    log.error(
      { jobId: job?.id, attemptsMade: job?.attemptsMade, willRetry, err: error },
      willRetry ? 'queued job attempt failed; it will be retried' : 'queued job failed',
    );
  });
  worker.on('stalled', (jobId) =>
    log.warn({ jobId }, 'job stalled (its coordinator stopped renewing the lock); moved back to waiting'),
  );
  worker.on('lockRenewalFailed', (jobIds) => log.warn({ jobIds }, 'job lock renewal failed'));
}

function waitUntilClosed(worker: TrainingWorker): Promise<void> {
  return new Promise((resolve) => worker.once('closed', () => resolve()));
}

async function closeClient(client: Redis, log: Logger): Promise<void> {
  try {
    await client.quit();
  } catch (error) {
    log.debug({ err: error }, 'Redis connection already closed');
  }
}
