import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { UsageError } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';

/** Redis of a local install; `REDIS_URL` overrides it. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

// Reconnect delays grow as 500 ms, 1 s, 2 s, … up to this cap, and retries never stop.
const FIRST_RETRY_DELAY_MS = 500;
const MAX_RETRY_DELAY_MS = 10_000;

/** Returns the Redis URL of `--redis`, else `REDIS_URL`, else redis://127.0.0.1:6379. */
export function redisUrlFrom(option: unknown): string {
  const fromOption = typeof option === 'string' && option !== '';
  const url = fromOption ? option : process.env.REDIS_URL || DEFAULT_REDIS_URL;
  checkRedisUrl(url, fromOption ? '--redis' : 'REDIS_URL');
  return url;
}

/** Rejects a value that is not a redis:// or rediss:// URL, naming where it came from. */
function checkRedisUrl(url: string, source: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === 'redis:' || protocol === 'rediss:') return;
  throw new UsageError(
    `${source} must be a redis:// or rediss:// URL such as ${DEFAULT_REDIS_URL}, got ${JSON.stringify(url)}`,
  );
}

/** Returns the URL with its password replaced by `***`, for logs and messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid Redis URL)';
  }
}

/** Delay before reconnect attempt `attempt` (1-based): exponential backoff from 500 ms, capped at 10 s. */
export function retryDelayMs(attempt: number): number {
  return Math.min(FIRST_RETRY_DELAY_MS * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
}

/**
 * Connection options for BullMQ queues and workers of a long-running process. They never give up on a
 * command (`maxRetriesPerRequest: null`, which BullMQ workers need) and reconnect forever with backoff,
 * logging every attempt with the connection's `name`.
 */
export function persistentConnection(url: string, name: string, log: Logger): RedisOptions {
  return {
    url,
    maxRetriesPerRequest: null,
    retryStrategy: (attempt: number) => {
      const delayMs = retryDelayMs(attempt);
      log.warn(
        { redis: redactedUrl(url), connection: name, attempt, delayMs },
        'Redis unreachable; reconnecting',
      );
      return delayMs;
    },
  };
}

/**
 * Connection options for a short-lived command (`submit`, `status`, `cancel`): three quick reconnect
 * attempts, then commands fail with the connection error instead of waiting for Redis forever.
 */
export function shortLivedConnection(url: string): RedisOptions {
  return {
    url,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt: number) => (attempt > 3 ? null : 200 * attempt),
  };
}

/** Redis could not be reached. The message names the URL and what to do. */
export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

/**
 * Opens a client with `options` and resolves once it is ready. With persistent options it waits through
 * any number of retries; with short-lived ones it rejects with RedisUnavailableError once they are spent.
 * When `signal` aborts first, it closes the client and rejects with the signal's reason.
 */
export async function connectRedis(options: RedisOptions, signal?: AbortSignal): Promise<Redis> {
  const { url, ...rest } = options;
  const client = new Redis(String(url), rest);
  let lastError: Error | undefined;
  client.on('error', (error: Error) => {
    lastError = error;
  });
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      client.disconnect();
      reject(signal!.reason);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('ready', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    client.once('end', () => {
      const cause = lastError?.message ?? 'connection closed';
      reject(
        new RedisUnavailableError(
          `cannot reach Redis at ${redactedUrl(String(url))}: ${cause}; start Redis, or point --redis or REDIS_URL at a running one`,
        ),
      );
    });
  });
  return client;
}
