import { UnrecoverableError, WaitingError } from 'bullmq';
import { parseJobConfig, type JobConfig } from '../shared/config/job.js';
import { CANCELLED_REASON, type QueuedJobResult } from '../shared/queue/job-types.js';
import type { TrainingJob } from '../shared/queue/job-queue.js';
import { UsageError } from '../shared/runtime/errors.js';
import type { Logger } from '../shared/runtime/logger.js';
import { QueueProgressReporter } from './queue-progress.js';
import type { RankedWorker } from './registry.js';
import type { CoordinatorServices } from './services.js';
import { runTraining, type TrainingResult } from './training-run.js';

/** Services and settings shared by every job of one coordinator. */
export interface QueueJobContext {
  services: CoordinatorServices;
  /** Workers each job waits for. */
  workers: number;
  workerTimeoutMs: number;
  /** Aborted on SIGTERM or SIGINT: the job stops after its step and goes back to the queue. */
  shutdown: AbortSignal;
  /** Returns the reason of a cancel request for the job, if one was made. */
  cancelReasonOf(jobId: string): Promise<string | undefined>;
  log: Logger;
}

/**
 * Runs one queued job: validates it with the job schema, waits for the workers and trains, always with
 * `resume`, so an attempt after a crash or a shutdown continues from the job's latest checkpoint.
 *
 * Outcomes: a completed run returns its summary. A cancel (`cancelled`, BullMQ's signal) throws an
 * UnrecoverableError whose message starts with `cancelled`, so the job fails without retries. A shutdown
 * moves the job back to waiting and throws WaitingError, so it is neither failed nor retried. Usage errors
 * (an invalid job, missing data files, a checkpoint that cannot be resumed) fail without retries. Any other
 * error is retried with the job's backoff.
 */
export async function runQueuedJob(
  job: TrainingJob,
  token: string | undefined,
  cancelled: AbortSignal,
  context: QueueJobContext,
): Promise<QueuedJobResult> {
  const jobId = job.id!;
  // One id per attempt on the workers and the reduction star, so that a reduction left over from an
  // attempt whose coordinator died can never join the next attempt's reductions.
  const runId = `${jobId}.${job.attemptsStarted}`;
  const log = context.log.child({ jobId: runId });
  const config = validatedConfig(job);
  const cancelReason = await context.cancelReasonOf(jobId);
  if (cancelReason !== undefined)
    throw new UnrecoverableError(`${CANCELLED_REASON} before it started: ${cancelReason}`);

  const signal = AbortSignal.any([cancelled, context.shutdown]);
  log.info({ name: job.name, attemptsMade: job.attemptsMade, out: config.out }, 'queued job started');
  const { status } = context.services;
  status.startJob(jobId);
  try {
    const workers = await waitForWorkers(context, signal);
    const result =
      workers === undefined ? undefined : await train(job, runId, config, workers, signal, context, log);
    if (result?.status === 'completed') {
      status.endJob('completed');
      return summary(result, status.progress?.samplesPerSec ?? Number.NaN);
    }
    status.endJob('stopped');
    return await stopped(job, token, cancelled, context, result, log);
  } catch (error) {
    if (
      !(error instanceof WaitingError) &&
      !(error instanceof UnrecoverableError && error.message.startsWith(CANCELLED_REASON))
    ) {
      status.endJob('failed');
    }
    throw asQueueError(error);
  }
}

function validatedConfig(job: TrainingJob): JobConfig {
  try {
    return parseJobConfig(job.data?.config, `queued job ${job.id}`);
  } catch (error) {
    throw new UnrecoverableError((error as Error).message);
  }
}

/** Waits for the workers; returns undefined when `signal` aborts first. */
async function waitForWorkers(
  context: QueueJobContext,
  signal: AbortSignal,
): Promise<RankedWorker[] | undefined> {
  if (signal.aborted) return undefined;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([
      context.services.registry.waitForWorkers(context.workers, context.workerTimeoutMs),
      aborted,
    ]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

async function train(
  job: TrainingJob,
  runId: string,
  config: JobConfig,
  workers: RankedWorker[],
  signal: AbortSignal,
  context: QueueJobContext,
  log: Logger,
): Promise<TrainingResult> {
  const progress = new QueueProgressReporter(job, log);
  const { services } = context;
  try {
    return await runTraining({
      jobId: runId,
      config: { ...config, resume: true },
      workers,
      reductions: services.reductions,
      log,
      signal,
      onProgress: (p) => {
        services.status.progress = p;
        progress.report(p);
      },
    });
  } finally {
    await progress.flush();
  }
}

function summary(result: TrainingResult, samplesPerSec: number): QueuedJobResult {
  return {
    outDir: result.outDir,
    checkpointDir: result.checkpointDir,
    steps: result.steps,
    lossD: result.lossD,
    lossG: result.lossG,
    samplesPerSec,
  };
}

/** Ends a run that stopped early: back to the queue on shutdown, failed on cancel. */
async function stopped(
  job: TrainingJob,
  token: string | undefined,
  cancelled: AbortSignal,
  context: QueueJobContext,
  result: TrainingResult | undefined,
  log: Logger,
): Promise<never> {
  const where =
    result === undefined
      ? 'before training started'
      : `after step ${result.steps}; checkpoint in ${result.checkpointDir}`;
  if (cancelled.aborted) {
    log.info({ step: result?.steps, reason: String(cancelled.reason) }, 'queued job cancelled');
    throw new UnrecoverableError(`${CANCELLED_REASON} ${where}: ${String(cancelled.reason)}`);
  }
  await job.moveToWait(token);
  log.info(
    { step: result?.steps, reason: String(context.shutdown.reason) },
    'queued job stopped by shutdown and moved back to waiting',
  );
  throw new WaitingError(`stopped ${where}: ${String(context.shutdown.reason)}`);
}

function asQueueError(error: unknown): unknown {
  if (error instanceof UsageError) return new UnrecoverableError(error.message);
  return error;
}
