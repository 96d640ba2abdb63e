import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, startCli, tempDir, waitFor } from './support/cli.js';
import {
  startQueueCluster,
  startRedisServer,
  testQueue,
  uniquePrefix,
  waitForJobState,
  waitForStep,
  type QueueCluster,
  type TestRedisServer,
} from './support/redis.js';

// A Redis of this test alone (AOF on, in a temp dir), restarted while a job trains: the job must still
// finish, `watch` must follow it to the end, and the coordinator must still take new jobs afterwards.

const prefix = uniquePrefix('restart');
const scratch = tempDir('cbn-queue-restart-');
let redis: TestRedisServer;
let cluster: QueueCluster;

async function submit(out: string, steps: number): Promise<string> {
  const run = await runCli(
    [
      'submit',
      '--preset',
      'micro',
      '--steps',
      String(steps),
      '--batch',
      '4',
      '--checkpoint-every',
      '2',
      '--sample-every',
      '0',
      '--out',
      join(scratch.path, out),
    ],
    { CBN_QUEUE_PREFIX: prefix, REDIS_URL: redis.url },
  );
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

beforeAll(async () => {
  redis = await startRedisServer(scratch.path);
  cluster = await startQueueCluster({ prefix, redisUrl: redis.url });
});

afterAll(async () => {
  await cluster?.stop();
  await redis?.stop();
  scratch.remove();
});

describe('queue-mode coordinator', () => {
  it('finishes the job and takes the next one after a Redis restart', async () => {
    const queue = testQueue(prefix, redis.url);
    queue.on('error', () => {});
    const first = await submit('first', 30);
    await waitForStep(queue, first, 4, 60_000);
    const watch = startCli(['watch', first], { CBN_QUEUE_PREFIX: prefix, REDIS_URL: redis.url });
    await waitFor(() => /step \d+\/30/.test(watch.output()), 30_000, 'watch to print progress');

    await redis.stop();
    // Longer than the worker's blocking read (drainDelay 5 s plus 1 s): after such outages some BullMQ 6
    // releases before 6.3.3 never read from the queue again.
    await new Promise((resolve) => setTimeout(resolve, 7000));
    await redis.start();

    expect(await waitForJobState(queue, first, ['completed', 'failed'], 90_000)).toBe('completed');
    expect((await readCheckpoint(join(scratch.path, 'first', 'checkpoint'))).trainerState.step).toBe(30);
    const watched = await watch.done;
    expect(watched.code, watched.stderr.slice(-2000)).toBe(0);
    expect(watched.stdout).toMatch(new RegExp(`job ${first} completed: 30 steps`));
    // The run either went on through the outage (one attempt) or was retried from its checkpoint.
    const job = (await queue.getJob(first))!;
    expect(job.attemptsStarted).toBeLessThanOrEqual(2);

    const second = await submit('second', 3);
    expect(await waitForJobState(queue, second, ['completed', 'failed'], 60_000)).toBe('completed');
    expect(cluster.coordinator.output()).toMatch(/Redis unreachable; reconnecting/);
    await queue.close();
  });
});
