import { randomBytes } from 'node:crypto';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import type { JobConfig } from '../config/job.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../runtime/logger.js';
import { connectRedis, persistentConnection, shortLivedConnection } from './connection.js';
import type { QueuedJobData, QueuedJobResult } from './job-types.js';
import { QUEUE_NAME, type QueueLocation } from './queue-names.js';

export type TrainingQueue = Queue<QueuedJobData, QueuedJobResult>;
export type TrainingJob = Job<QueuedJobData, QueuedJobResult>;

/** Retry settings of a submitted job. */
export interface SubmitOptions {
  /** Job name shown by `status` (default `train`). */
  name?: string;
  /** BullMQ priority: 1 is the highest, 0 (the default) means no priority and runs before prioritized jobs. */
  priority?: number;
  /** Attempts in total, counting the first (default 3). */
  attempts?: number;
  /** First retry delay; the n-th retry waits `backoffMs · 2^(n−1)` (default 10 000 ms). */
  backoffMs?: number;
}

export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_BACKOFF_MS = 10_000;
// Finished jobs kept in Redis for `status`, newest first; older ones are removed as new ones finish.
const KEPT_FINISHED_JOBS = 1000;

/** The queue as a short-lived command (`submit`, `status`, `watch`, `cancel`) uses it. */
export interface QueueClient {
  queue: TrainingQueue;
  /** The connection of `queue`, for commands BullMQ does not wrap (the cancel marker and channel). */
  redis: Redis;
  close(): Promise<void>;
}

/**
 * Connects to Redis and opens the queue. Rejects with RedisUnavailableError, which names the URL, when Redis
 * does not reply within a few quick retries. With `waitThroughOutages` (for `watch`, which runs as long as
 * a job), the queue's own connection then reconnects forever and its commands wait for Redis to return.
 */
export async function openQueue(
  location: QueueLocation,
  waitThroughOutages?: { log: Logger },
): Promise<QueueClient> {
  const redis = await connectRedis(shortLivedConnection(location.redisUrl));
  const connection = waitThroughOutages
    ? persistentConnection(location.redisUrl, 'queue', waitThroughOutages.log)
    : redis;
  const queue = new Queue<QueuedJobData, QueuedJobResult>(QUEUE_NAME, {
    connection,
    prefix: location.prefix,
  });
  // Without a listener, a connection error of the queue would be an unhandled 'error' event.
  queue.on('error', (error) => waitThroughOutages?.log.debug({ err: error }, 'queue connection error'));
  return {
    queue,
    redis,
    async close() {
      await queue.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * Returns a new job id: submit time in UTC and four random hex digits, e.g. `20261204-201530-9f3a`.
 * Ids sort by submit time and, unlike BullMQ's counters, stay unique across queue prefixes, so the default
 * output directory `runs/<jobId>` never collides.
 */
export function newJobId(now = new Date()): string {
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Adds a validated job to the queue under `jobId` and returns the BullMQ job. */
export async function enqueueJob(
  queue: TrainingQueue,
  jobId: string,
  config: JobConfig,
  options: SubmitOptions = {},
): Promise<TrainingJob> {
  const jobOptions: JobsOptions = {
    jobId,
    attempts: options.attempts ?? DEFAULT_ATTEMPTS,
    backoff: { type: 'exponential', delay: options.backoffMs ?? DEFAULT_BACKOFF_MS },
    removeOnComplete: { count: KEPT_FINISHED_JOBS },
    removeOnFail: { count: KEPT_FINISHED_JOBS },
    ...(options.priority ? { priority: options.priority } : {}),
  };
  return (await queue.add(options.name ?? 'train', { config }, jobOptions)) as TrainingJob;
}
