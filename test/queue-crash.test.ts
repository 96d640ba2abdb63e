import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, tempDir, waitFor } from './support/cli.js';
import {
  deletePrefix,
  startQueueCluster,
  testQueue,
  uniquePrefix,
  waitForJobState,
  waitForStep,
  type QueueCluster,
} from './support/redis.js';
import { maxRelativeError } from './support/tensors.js';

// A queue-mode coordinator that dies or is stopped mid-job: the job goes back to the queue and a new
// coordinator resumes it from its checkpoint to the parameters of an uninterrupted run.

const prefix = uniquePrefix('crash');
const env = { CBN_QUEUE_PREFIX: prefix, REDIS_URL: 'redis://127.0.0.1:6379' };
const scratch = tempDir('cbn-queue-crash-');
const queue = testQueue(prefix);
let cluster: QueueCluster;

// Short locks, so that the restarted coordinator takes the killed one's job within about six seconds.
// With 2 s locks, a coordinator starved of CPU by the other test processes on two cores once lost the
// lock of the resumed attempt too.
const coordinatorEnv = { CBN_QUEUE_LOCK_DURATION_MS: '5000', CBN_QUEUE_STALLED_INTERVAL_MS: '1000' };
const STEPS = 16;

async function submit(out: string): Promise<string> {
  const run = await runCli(
    [
      'submit',
      '--preset',
      'micro',
      '--steps',
      String(STEPS),
      '--batch',
      '4',
      '--seed',
      '9',
      '--checkpoint-every',
      '2',
      '--sample-every',
      '0',
      '--out',
      join(scratch.path, out),
    ],
    env,
  );
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

async function expectSameCheckpoint(actualOut: string, expectedOut: string): Promise<void> {
  const actual = await readCheckpoint(join(scratch.path, actualOut, 'checkpoint'));
  const expected = await readCheckpoint(join(scratch.path, expectedOut, 'checkpoint'));
  expect(actual.trainerState.step).toBe(STEPS);
  const expectedByName = new Map(expected.tensors.map((t) => [t.name, t.data]));
  expect(actual.tensors.map((t) => t.name)).toEqual([...expectedByName.keys()]);
  for (const tensor of actual.tensors) {
    expect(maxRelativeError(tensor.data, expectedByName.get(tensor.name)!), tensor.name).toBeLessThanOrEqual(
      1e-6,
    );
  }
}

let referenceDone: Promise<unknown>;

beforeAll(async () => {
  cluster = await startQueueCluster({ prefix, coordinatorEnv });
  const reference = await submit('reference');
  referenceDone = waitForJobState(queue, reference, ['completed'], 90_000);
});

afterAll(async () => {
  await cluster?.stop();
  await queue.close();
  await deletePrefix(prefix);
  scratch.remove();
});

describe('queue-mode coordinator', () => {
  it('resumes from the checkpoint after SIGKILL to the uninterrupted result', async () => {
    await referenceDone;
    const jobId = await submit('killed');
    await waitForStep(queue, jobId, 7, 60_000);
    cluster.coordinator.child.kill('SIGKILL');
    await cluster.coordinator.done;

    const restarted = cluster.restartCoordinator();
    expect(await waitForJobState(queue, jobId, ['completed', 'failed'], 90_000)).toBe('completed');

    const job = (await queue.getJob(jobId))!;
    expect(job.attemptsStarted, restarted.output().slice(-4000)).toBe(2);
    expect(restarted.output()).toMatch(/"step":\d+,.*"msg":"resumed from checkpoint"/);
    const resumedAt = Number(
      /"step":(\d+),[^\n]*"msg":"resumed from checkpoint"/.exec(restarted.output())![1],
    );
    expect(resumedAt).toBeGreaterThanOrEqual(6);
    await expectSameCheckpoint('killed', 'reference');
  });

  it('checkpoints, requeues the job and exits 0 on SIGTERM', async () => {
    await referenceDone;
    await waitFor(
      () => /queue worker|connected to Redis/.test(cluster.coordinator.output()),
      30_000,
      'the coordinator',
    );
    const jobId = await submit('drained');
    await waitForStep(queue, jobId, 5, 60_000);
    cluster.coordinator.child.kill('SIGTERM');
    const stopped = await cluster.coordinator.done;

    expect(stopped.code, stopped.stderr.slice(-2000)).toBe(0);
    expect(stopped.stderr).toMatch(/queued job stopped by shutdown and moved back to waiting/);
    expect(await queue.getJobState(jobId)).toBe('waiting');
    const saved = await readCheckpoint(join(scratch.path, 'drained', 'checkpoint'));
    expect(saved.trainerState.step).toBeGreaterThanOrEqual(5);
    expect(saved.trainerState.step).toBeLessThan(STEPS);

    cluster.restartCoordinator();
    expect(await waitForJobState(queue, jobId, ['completed', 'failed'], 90_000)).toBe('completed');
    const job = (await queue.getJob(jobId))!;
    expect(job.attemptsStarted).toBe(2);
    expect(job.attemptsMade).toBe(1);
    await expectSameCheckpoint('drained', 'reference');
  });
});
