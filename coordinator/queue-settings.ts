import { UsageError } from '../shared/runtime/errors.js';

/** Lock and stall settings of the coordinator's BullMQ worker. */
export interface QueueSettings {
  /** How long a job's lock lasts without renewal; BullMQ renews it every half of this. */
  lockDurationMs: number;
  /** How often the coordinator looks for jobs whose lock expired (a coordinator that died) and requeues them. */
  stalledIntervalMs: number;
  /** How many times one job may be requeued after its coordinator died before it fails. */
  maxStalledCount: number;
}

/**
 * Reads the settings from hidden environment variables, for tests that need short locks:
 * `CBN_QUEUE_LOCK_DURATION_MS` (default 30 000, BullMQ's default), `CBN_QUEUE_STALLED_INTERVAL_MS`
 * (default 30 000) and `CBN_QUEUE_MAX_STALLED_COUNT` (default 2).
 */
export function queueSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): QueueSettings {
  return {
    lockDurationMs: positiveFromEnv(env, 'CBN_QUEUE_LOCK_DURATION_MS', 30_000),
    stalledIntervalMs: positiveFromEnv(env, 'CBN_QUEUE_STALLED_INTERVAL_MS', 30_000),
    maxStalledCount: positiveFromEnv(env, 'CBN_QUEUE_MAX_STALLED_COUNT', 2),
  };
}

function positiveFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}
