import { describe, expect, it } from 'vitest';
import { QueueProgressReporter } from '../coordinator/queue-progress.js';
import { queueSettingsFromEnv } from '../coordinator/queue-settings.js';
import { parseCancelRequest } from '../shared/queue/cancel-requests.js';
import { redactedUrl, redisUrlFrom, retryDelayMs } from '../shared/queue/connection.js';
import { newJobId } from '../shared/queue/job-queue.js';
import type { QueuedJobProgress } from '../shared/queue/job-types.js';
import { formatAge, formatJobTable, formatProgress } from '../shared/queue/job-view.js';
import { createLogger } from '../shared/runtime/logger.js';

// The parts of the queue that need no Redis: formatting, parsing, settings and progress throttling.

const progressAt = (step: number, totalSteps = 10) => ({
  step,
  totalSteps,
  lossD: 1,
  lossG: 2,
  samplesPerSec: 3,
  etaSec: 0,
});

describe('queue formatting', () => {
  it.each([
    [0, '0s'],
    [59_999, '59s'],
    [60_000, '1m'],
    [3_600_000, '1h'],
    [2 * 86_400_000, '2d'],
    [-5, '0s'],
  ])('formats an age of %i ms as %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });

  it('formats progress and its absence', () => {
    expect(formatProgress({ step: 3, totalSteps: 40 })).toBe('3/40 (7%)');
    expect(formatProgress(0)).toBe('-');
    expect(formatProgress(undefined)).toBe('-');
  });

  it('aligns the job table', () => {
    const table = formatJobTable([
      { id: 'a-long-id', name: 'n', state: 'active', progress: '1/2 (50%)', age: '3s' },
    ]);
    expect(table).toBe('ID         NAME  STATE   PROGRESS   AGE\na-long-id  n     active  1/2 (50%)  3s\n');
  });

  it('makes sortable job ids', () => {
    expect(newJobId(new Date('2026-12-04T20:15:30Z'))).toMatch(/^20261204-201530-[0-9a-f]{4}$/);
  });
});

describe('Redis connection helpers', () => {
  it('accepts redis URLs and rejects others', () => {
    expect(redisUrlFrom('redis://127.0.0.1:7000')).toBe('redis://127.0.0.1:7000');
    expect(redisUrlFrom('rediss://cache.internal:6380')).toBe('rediss://cache.internal:6380');
    expect(() => redisUrlFrom('notaurl')).toThrow(
      /--redis must be a redis:\/\/ or rediss:\/\/ URL .*got "notaurl"/,
    );
    expect(() => redisUrlFrom('http://127.0.0.1:6379')).toThrow(/--redis must be/);
  });

  it('doubles the retry delay up to 10 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelayMs)).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000,
    ]);
  });

  it('hides the password in logged URLs', () => {
    expect(redactedUrl('redis://:secret@redis:6379/0')).toBe('redis://:***@redis:6379/0');
    expect(redactedUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactedUrl('not a url')).toBe('(invalid Redis URL)');
  });
});

describe('cancel requests', () => {
  it('parses valid messages and drops others', () => {
    expect(parseCancelRequest('{"jobId":"j1","reason":"r"}')).toEqual({ jobId: 'j1', reason: 'r' });
    expect(parseCancelRequest('{"jobId":"j1"}')).toEqual({ jobId: 'j1', reason: 'no reason given' });
    expect(parseCancelRequest('{"jobId":""}')).toBeUndefined();
    expect(parseCancelRequest('not json')).toBeUndefined();
  });
});

describe('queueSettingsFromEnv', () => {
  it('uses BullMQ defaults and rejects invalid values', () => {
    expect(queueSettingsFromEnv({})).toEqual({
      lockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
      maxStalledCount: 2,
    });
    expect(queueSettingsFromEnv({ CBN_QUEUE_LOCK_DURATION_MS: '1500' }).lockDurationMs).toBe(1500);
    expect(() => queueSettingsFromEnv({ CBN_QUEUE_STALLED_INTERVAL_MS: '-1' })).toThrow(
      /CBN_QUEUE_STALLED_INTERVAL_MS must be a positive integer, got "-1"/,
    );
  });
});

describe('QueueProgressReporter', () => {
  it('writes one report at a time and always the last step', async () => {
    const sent: QueuedJobProgress[] = [];
    let release: () => void = () => {};
    const job = {
      updateProgress: (p: QueuedJobProgress) => {
        sent.push(p);
        return new Promise<void>((resolve) => (release = resolve));
      },
    };
    const reporter = new QueueProgressReporter(job, createLogger('test'));

    reporter.report(progressAt(1));
    reporter.report(progressAt(2));
    reporter.report(progressAt(10));
    expect(sent.map((p) => p.step)).toEqual([1]);

    release();
    const flushed = reporter.flush();
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await flushed;
    expect(sent.map((p) => p.step)).toEqual([1, 10]);
    expect(sent[1]).toEqual({ step: 10, totalSteps: 10, lossD: 1, lossG: 2, samplesPerSec: 3 });
  });

  it('keeps training going when a write fails', async () => {
    const job = { updateProgress: () => Promise.reject(new Error('Connection is closed')) };
    const reporter = new QueueProgressReporter(job, createLogger('test', {}));
    reporter.report(progressAt(10));
    await expect(reporter.flush()).resolves.toBeUndefined();
  });
});
