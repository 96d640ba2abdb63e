import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, startCli, tempDir, waitFor } from './support/cli.js';
import {
  deletePrefix,
  startQueueCluster,
  testQueue,
  uniquePrefix,
  waitForJobState,
  waitForStep,
  type QueueCluster,
} from './support/redis.js';

// The job queue end to end: the CLI commands and a queue-mode coordinator with two workers, as real
// processes on loopback, against the Redis at 127.0.0.1:6379 under a key prefix of this file.

const prefix = uniquePrefix('jobs');
const env = { CBN_QUEUE_PREFIX: prefix, REDIS_URL: 'redis://127.0.0.1:6379' };
const scratch = tempDir('cbn-queue-jobs-');
const queue = testQueue(prefix);
// A lock far shorter than the jobs below: a coordinator whose event loop stalled would lose it.
const LOCK_DURATION_MS = 2000;
let cluster: QueueCluster;

const microJob = (out: string, steps: number) => [
  '--preset',
  'micro',
  '--steps',
  String(steps),
  '--batch',
  '4',
  '--seed',
  '5',
  '--checkpoint-every',
  '2',
  '--sample-every',
  '0',
  '--out',
  join(scratch.path, out),
];

async function submit(args: string[]): Promise<string> {
  const run = await runCli(['submit', ...args], env);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

beforeAll(async () => {
  cluster = await startQueueCluster({
    prefix,
    coordinatorEnv: {
      CBN_QUEUE_LOCK_DURATION_MS: String(LOCK_DURATION_MS),
      CBN_QUEUE_STALLED_INTERVAL_MS: '1000',
    },
  });
});

afterAll(async () => {
  await cluster?.stop();
  await queue.close();
  await deletePrefix(prefix);
  scratch.remove();
});

describe('cbn-train submit', () => {
  it('exits 2 naming the field and enqueues nothing for an invalid job', async () => {
    const ownPrefix = uniquePrefix('invalid');
    const badFile = join(scratch.path, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ preset: 'micro', checkpointEvery: -1 }));

    const flag = await runCli(['submit', '--batch', '0'], { ...env, CBN_QUEUE_PREFIX: ownPrefix });
    const file = await runCli(['submit', '--config', badFile], { ...env, CBN_QUEUE_PREFIX: ownPrefix });

    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--batch: Too small/);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/--checkpoint-every: Too small/);
    const ownQueue = testQueue(ownPrefix);
    expect(await ownQueue.getJobCounts()).toMatchObject({
      waiting: 0,
      active: 0,
      delayed: 0,
      prioritized: 0,
    });
    await ownQueue.close();
    await deletePrefix(ownPrefix);
  });

  it('exits 1 naming the URL when Redis is unreachable', async () => {
    const run = await runCli(['submit', '--preset', 'micro', '--redis', 'redis://127.0.0.1:1'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1.*--redis or REDIS_URL/);
  });
});

describe('queued job', () => {
  it('completes with a result summary, shown by status and watch', async () => {
    const jobId = await submit([...microJob('done', 6), '--name', 'smoke']);
    expect(jobId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{4}$/);

    const watch = await runCli(['watch', jobId], env);
    expect(watch.code, watch.stderr).toBe(0);
    expect(watch.stdout).toMatch(/active \(attempt 1\)/);
    expect(watch.stdout).toMatch(/step 6\/6 lossD -?\d+\.\d{4} lossG -?\d+\.\d{4} \d+\.\d samples\/s/);
    expect(watch.stdout).toMatch(new RegExp(`job ${jobId} completed: 6 steps`));

    const job = (await queue.getJob(jobId))!;
    expect(job.returnvalue.outDir).toBe(join(scratch.path, 'done'));
    expect(job.returnvalue.checkpointDir).toBe(join(scratch.path, 'done', 'checkpoint'));
    expect(job.returnvalue.steps).toBe(6);
    expect(Number.isFinite(job.returnvalue.lossD)).toBe(true);
    expect((await readCheckpoint(join(scratch.path, 'done', 'checkpoint'))).trainerState.step).toBe(6);

    const table = await runCli(['status'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+STATE\s+PROGRESS\s+AGE$/m);
    expect(table.stdout).toMatch(
      new RegExp(`^${jobId}\\s+smoke\\s+completed\\s+6/6 \\(100%\\)\\s+\\d+s$`, 'm'),
    );

    const details = await runCli(['status', jobId], env);
    expect(details.code, details.stderr).toBe(0);
    expect(details.stdout).toMatch(/^state:\s+completed$/m);
    expect(details.stdout).toMatch(/^attempts:\s+1 started, 1 made, 3 allowed$/m);
    expect(details.stdout).toMatch(/^result:\s+\{"outDir":/m);
  });

  it('sets out to runs/<jobId> when the job sets none', async () => {
    // A prefix no coordinator consumes: the job is only inspected, never run.
    const ownPrefix = uniquePrefix('default-out');
    const run = await runCli(['submit', '--preset', 'micro', '--steps', '1', '--batch', '2'], {
      ...env,
      CBN_QUEUE_PREFIX: ownPrefix,
    });
    expect(run.code, run.stderr).toBe(0);
    const jobId = run.stdout.trim();
    const ownQueue = testQueue(ownPrefix);
    const job = (await ownQueue.getJob(jobId))!;
    expect(job.data.config.out).toBe(`runs/${jobId}`);
    await ownQueue.close();
    await deletePrefix(ownPrefix);
  });

  it('is never marked stalled while it outlasts the lock many times', async () => {
    const jobId = await submit(microJob('long', 2000));
    await waitForStep(queue, jobId, 1, 60_000);
    const startedMs = (await queue.getJob(jobId))!.processedOn!;
    // Five lock durations of training, whatever the speed of this machine.
    await waitFor(() => Date.now() - startedMs > 5 * LOCK_DURATION_MS, 60_000, 'five lock durations');

    const job = (await queue.getJob(jobId))!;
    expect(await job.getState()).toBe('active');
    expect(job.attemptsStarted).toBe(1);
    expect(job.stalledCounter).toBe(0);
    expect(cluster.coordinator.output()).not.toMatch(/stalled|lock renewal failed/);

    const cancel = await runCli(['cancel', jobId, '--wait'], env);
    expect(cancel.code, cancel.stderr).toBe(3);
  });

  it('stops at a step boundary with a checkpoint when cancelled from another process', async () => {
    const jobId = await submit(microJob('cancelled', 400));
    await waitForStep(queue, jobId, 3, 60_000);

    const cancel = await runCli(['cancel', jobId, '--reason', 'test cancel', '--wait'], env);
    expect(cancel.code, cancel.stderr).toBe(3);
    expect(cancel.stdout).toMatch(new RegExp(`cancel requested for job ${jobId} \\(active\\)`));
    expect(cancel.stderr).toMatch(/cancelled after step \d+; checkpoint in .*: test cancel/);

    const job = (await queue.getJob(jobId))!;
    expect(await job.getState()).toBe('failed');
    expect(job.failedReason).toMatch(/^cancelled after step (\d+)/);
    expect(job.attemptsStarted).toBe(1);
    const step = Number(/after step (\d+)/.exec(job.failedReason)![1]);
    expect(step).toBeLessThan(400);
    expect((await readCheckpoint(join(scratch.path, 'cancelled', 'checkpoint'))).trainerState.step).toBe(
      step,
    );

    const again = await runCli(['cancel', jobId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/has already failed; there is nothing to cancel/);
  });

  it('fails a waiting job as cancelled when a coordinator takes it', async () => {
    const blocker = await submit(microJob('blocker', 400));
    const waiting = await submit(microJob('never', 5));
    const cancel = await runCli(['cancel', waiting], env);
    expect(cancel.code, cancel.stderr).toBe(0);
    await runCli(['cancel', blocker], env);

    await waitForJobState(queue, waiting, ['failed', 'completed'], 60_000);
    const job = (await queue.getJob(waiting))!;
    expect(job.failedReason).toMatch(/^cancelled before it started/);
    expect(existsSync(join(scratch.path, 'never'))).toBe(false);
  });

  it('retries a failing job, then fails with its reason', async () => {
    // A 1 ms step deadline fails every step: a transient-looking error that is worth a retry.
    const jobId = await submit([
      ...microJob('deadline', 2),
      '--step-deadline-ms',
      '1',
      '--attempts',
      '2',
      '--backoff-ms',
      '300',
    ]);

    const watch = await runCli(['watch', jobId], env);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(new RegExp(`job ${jobId} failed after 2 attempt\\(s\\): `));
    expect((await queue.getJob(jobId))!.attemptsMade).toBe(2);
    expect(cluster.coordinator.output()).toMatch(
      new RegExp(`"jobId":"${jobId}".*"willRetry":true.*queued job attempt failed; it will be retried`),
    );
  });

  it('fails a job with missing data files without retries', async () => {
    const jobId = await submit([
      ...microJob('no-data', 2),
      '--data-dir',
      join(scratch.path, 'missing'),
      '--backoff-ms',
      '300',
    ]);

    const watch = await runCli(['watch', jobId], env);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(
      new RegExp(`job ${jobId} failed after 1 attempt\\(s\\): data file .*missing.* not found`),
    );
    expect((await queue.getJob(jobId))!.attemptsMade).toBe(1);
  });

  it('reports an unknown job id', async () => {
    for (const command of ['status', 'watch', 'cancel']) {
      const run = await runCli([command, 'no-such-job'], env);
      expect(run.code, command).toBe(1);
      expect(run.stderr, command).toMatch(/job no-such-job not found in queue cbn-train/);
    }
  });
});

describe('cbn-train coordinator --queue', () => {
  it('retries with backoff while Redis is unreachable at start', async () => {
    const coordinator = startCli(
      [
        'coordinator',
        '--queue',
        '--listen',
        '127.0.0.1:0',
        '--workers',
        '1',
        '--backend',
        'cpu',
        '--redis',
        'redis://127.0.0.1:1',
      ],
      env,
    );
    await waitFor(
      () => (coordinator.output().match(/Redis unreachable; reconnecting/g) ?? []).length >= 3,
      30_000,
      'three logged retries',
    );
    coordinator.child.kill('SIGTERM');
    const result = await coordinator.done;

    const retries = result.stderr
      .split('\n')
      .filter((line) => line.includes('Redis unreachable'))
      .map((line) => JSON.parse(line));
    expect(retries[0]).toMatchObject({ redis: 'redis://127.0.0.1:1', attempt: 1, delayMs: 500 });
    expect(retries[1]).toMatchObject({ attempt: 2, delayMs: 1000 });
    expect(retries[2]).toMatchObject({ attempt: 3, delayMs: 2000 });
  });

  it('rejects job options beside --queue', async () => {
    const run = await runCli(
      ['coordinator', '--queue', '--listen', '127.0.0.1:0', '--workers', '1', '--steps', '5'],
      env,
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--steps cannot be combined with --queue/);
  });

  it('rejects --redis without --queue', async () => {
    const run = await runCli(
      ['coordinator', '--listen', '127.0.0.1:0', '--workers', '1', '--redis', 'redis://127.0.0.1:6379'],
      env,
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--redis and --queue-prefix need --queue/);
  });
});
