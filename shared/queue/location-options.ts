import type { Command } from 'commander';
import { RedisUnavailableError, redisUrlFrom } from './connection.js';
import type { Logger } from '../runtime/logger.js';
import { openQueue, type QueueClient } from './job-queue.js';
import { queuePrefixFrom, type QueueLocation } from './queue-names.js';

/** Adds `--redis` and `--queue-prefix` to a queue command. */
export function addQueueLocationOptions(command: Command): Command {
  return command
    .option('--redis <url>', 'Redis of the job queue [REDIS_URL or redis://127.0.0.1:6379]')
    .option('--queue-prefix <prefix>', 'key prefix of the job queue in Redis [CBN_QUEUE_PREFIX or bull]');
}

/** Reads the queue location from parsed `--redis` and `--queue-prefix` options and the environment. */
export function queueLocationFrom(options: Record<string, unknown>): QueueLocation {
  return { redisUrl: redisUrlFrom(options.redis), prefix: queuePrefixFrom(options.queuePrefix) };
}

/**
 * Opens the queue for a CLI command. When Redis cannot be reached it prints the reason (the URL and what to
 * do) without a stack trace and exits 1.
 */
export async function openQueueForCommand(
  location: QueueLocation,
  waitThroughOutages?: { log: Logger },
): Promise<QueueClient> {
  try {
    return await openQueue(location, waitThroughOutages);
  } catch (error) {
    if (!(error instanceof RedisUnavailableError)) throw error;
    process.stderr.write(`cbn-train: ${error.message}\n`);
    process.exit(1);
  }
}
