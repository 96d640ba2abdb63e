import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { freePort } from '../../cli/child-processes.js';
import { startCli } from './cli.js';
import type { QueuedJobData, QueuedJobResult } from '../../shared/queue/job-types.js';
import { QUEUE_NAME } from '../../shared/queue/queue-names.js';

/** The Redis that the queue tests share; each test isolates itself with its own key prefix. */
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

/** Returns a queue key prefix no other test uses. */
export function uniquePrefix(test: string): string {
  return `cbn-test-${test}-${randomBytes(4).toString('hex')}`;
}

/** Opens the training queue under `prefix`, for a test to inspect jobs. */
export function testQueue(prefix: string, url = SHARED_REDIS_URL): Queue<QueuedJobData, QueuedJobResult> {
  return new Queue<QueuedJobData, QueuedJobResult>(QUEUE_NAME, {
    connection: { url, maxRetriesPerRequest: null },
    prefix,
  });
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(prefix: string, url = SHARED_REDIS_URL): Promise<void> {
  const client = new Redis(url);
  try {
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(...keys);
  } finally {
    client.disconnect();
  }
}

/** A `redis-server` of one test, on a free loopback port, with AOF on in its own directory. */
export interface TestRedisServer {
  url: string;
  port: number;
  /** Shuts the server down (SHUTDOWN, so the AOF is complete) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and directory, and waits until it replies to PING. */
  start(): Promise<void>;
}

/** Starts `redis-server --appendonly yes` in `dir` on a free loopback port. */
export async function startRedisServer(dir: string): Promise<TestRedisServer> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    await waitUntilAnswering(url);
  };
  const stop = async () => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return { url, port, start, stop };
}

async function waitUntilAnswering(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`redis-server at ${url} did not reply within 10 s: ${(error as Error).message}`, {
          cause: error,
        });
    } finally {
      client.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---- A queue-mode coordinator and its workers as real processes on loopback.

/** Backend of the test processes; every run of one comparison must use the same one. */
export const TEST_BACKEND = 'cpu';

export interface QueueClusterOptions {
  prefix: string;
  redisUrl?: string;
  workers?: number;
  /** Extra environment of the coordinator, e.g. short lock settings. */
  coordinatorEnv?: NodeJS.ProcessEnv;
}

/** A coordinator in queue mode with its workers; the coordinator can be killed and started again. */
export interface QueueCluster {
  port: number;
  coordinator: ReturnType<typeof startCli>;
  workers: ReturnType<typeof startCli>[];
  /** Starts a new coordinator on the same port (the workers' heartbeats find it there). */
  restartCoordinator(): ReturnType<typeof startCli>;
  /** Kills every process of the cluster. */
  stop(): Promise<void>;
}

/** Starts a queue-mode coordinator and `workers` workers (default 2). */
export async function startQueueCluster(options: QueueClusterOptions): Promise<QueueCluster> {
  const port = await freePort();
  const redisUrl = options.redisUrl ?? SHARED_REDIS_URL;
  const args = [
    'coordinator',
    '--queue',
    '--listen',
    `127.0.0.1:${port}`,
    '--workers',
    String(options.workers ?? 2),
    '--backend',
    TEST_BACKEND,
  ];
  const env = { REDIS_URL: redisUrl, CBN_QUEUE_PREFIX: options.prefix, ...options.coordinatorEnv };
  const processes: ReturnType<typeof startCli>[] = [];
  const startCoordinator = () => {
    const coordinator = startCli(args, env);
    processes.push(coordinator);
    return coordinator;
  };
  const cluster: QueueCluster = {
    port,
    coordinator: startCoordinator(),
    workers: Array.from({ length: options.workers ?? 2 }, (_, i) =>
      startCli([
        'worker',
        '--coordinator',
        `127.0.0.1:${port}`,
        '--backend',
        TEST_BACKEND,
        '--worker-id',
        `w-${i}`,
      ]),
    ),
    restartCoordinator() {
      cluster.coordinator = startCoordinator();
      return cluster.coordinator;
    },
    async stop() {
      for (const started of [...processes, ...cluster.workers]) {
        if (started.child.exitCode === null && started.child.signalCode === null)
          started.child.kill('SIGKILL');
      }
      await Promise.all([...processes, ...cluster.workers].map((started) => started.done));
    },
  };
  return cluster;
}

/** Waits until the job is in one of `states` (polling every 100 ms) and returns that state. */
export async function waitForJobState(
  queue: Queue<QueuedJobData, QueuedJobResult>,
  jobId: string,
  states: string[],
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(jobId);
    if (states.includes(state)) return state;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for job ${jobId} to be ${states.join(' or ')}; it is ${state}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits until the job has reported progress of at least `step`. */
export async function waitForStep(
  queue: Queue<QueuedJobData, QueuedJobResult>,
  jobId: string,
  step: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await queue.getJob(jobId);
    const progress = job?.progress as { step?: number } | undefined;
    if ((progress?.step ?? 0) >= step) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for job ${jobId} to reach step ${step}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
