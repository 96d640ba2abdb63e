/** Name of the BullMQ queue of training jobs. */
export const QUEUE_NAME = 'cbn-train';

/** Key prefix of the queue when neither `--queue-prefix` nor `CBN_QUEUE_PREFIX` is set (BullMQ's own default). */
export const DEFAULT_QUEUE_PREFIX = 'bull';

/** Location of the queue: the Redis URL and the key prefix that isolates one set of queues. */
export interface QueueLocation {
  redisUrl: string;
  prefix: string;
}

/** Returns the prefix of `--queue-prefix`, else `CBN_QUEUE_PREFIX`, else `bull`. */
export function queuePrefixFrom(option: unknown): string {
  if (typeof option === 'string' && option !== '') return option;
  return process.env.CBN_QUEUE_PREFIX || DEFAULT_QUEUE_PREFIX;
}

/** Pub/sub channel on which `cbn-train cancel` announces a cancel request to every coordinator. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:${QUEUE_NAME}:cancel`;
}

/**
 * Key marking a job as cancelled. It outlives the pub/sub message, so a coordinator that takes the job
 * later (it was waiting, delayed for a retry, or Redis dropped the message) still finds the request.
 */
export function cancelKey(prefix: string, jobId: string): string {
  return `${prefix}:${QUEUE_NAME}:cancelled:${jobId}`;
}
