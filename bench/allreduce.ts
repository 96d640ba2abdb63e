import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startCoordinatorServer } from '../coordinator/coordinator-server.js';
import { ReductionService } from '../coordinator/reduction-service.js';
import { WorkerRegistry } from '../coordinator/registry.js';
import type { AllReduceWorkerArgs } from './allreduce-worker.js';

/** Options of one all-reduce benchmark run. */
export interface AllReduceBenchOptions {
  workers: number;
  sizesBytes: number[];
  /** Timed repetitions per size. 0 (default) uses max(3, min(50, 2e8 / bytes)), as the gloo anchor script does. */
  reps?: number;
  /** Deadline of one operation, in milliseconds (default 120 000). */
  deadlineMs?: number;
  /** Time after which the whole run is stopped, in milliseconds (default 900 000). */
  timeoutMs?: number;
}

/** The figures of one message size, with the nccl-tests definitions of bandwidth. */
export interface AllReduceBenchResult {
  workers: number;
  bytes: number;
  reps: number;
  medianMs: number;
  /** Algorithm bandwidth S / t in GB/s (1e9 bytes per second). */
  algbwGBps: number;
  /** Bus bandwidth algbw · 2(n−1)/n in GB/s, comparable across worker counts. */
  busbwGBps: number;
}

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./allreduce-worker.ts', import.meta.url));

/**
 * Measures the gRPC star all-reduce: starts a coordinator in this process and `workers` child processes
 * (Node with `--import tsx`) that each sum float32 buffers of every size through it, timing rank 0's
 * operations after a barrier. `onResult` receives each size's figures as they are ready.
 */
export async function runAllReduceBench(
  options: AllReduceBenchOptions,
  onResult: (result: AllReduceBenchResult) => void = () => undefined,
): Promise<AllReduceBenchResult[]> {
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const reductions = new ReductionService({ logger });
  const registry = new WorkerRegistry({ modelHash: 'bench', logger });
  const server = await startCoordinatorServer({ listen: '127.0.0.1:0', registry, reductions, logger });
  const members = Array.from({ length: options.workers }, (_, rank) => ({
    rank,
    workerId: `bench-${rank}`,
    address: 'child process',
  }));
  reductions.openJob('bench', members);

  const children = members.map(({ rank }) =>
    spawnRank({
      coordinatorAddress: `127.0.0.1:${server.port}`,
      rank,
      worldSize: options.workers,
      sizesBytes: options.sizesBytes,
      reps: options.reps ?? 0,
      deadlineMs: options.deadlineMs ?? 120_000,
    }),
  );
  const timer = setTimeout(() => children.forEach((child) => child.kill()), options.timeoutMs ?? 900_000);

  try {
    const results: AllReduceBenchResult[] = [];
    const rankZeroDone = collectLines(children[0]!, (line) => {
      const result = summarize(options.workers, JSON.parse(line) as { bytes: number; timesMs: number[] });
      results.push(result);
      onResult(result);
    });
    await Promise.all([rankZeroDone, ...children.map((child, rank) => exited(child, rank))]);
    return results;
  } finally {
    clearTimeout(timer);
    for (const child of children) if (child.exitCode === null) child.kill();
    reductions.closeJob('bench');
    await server.stop(500);
  }
}

/** Computes the median time and the nccl-tests bandwidths of one size. */
export function summarize(
  workers: number,
  measured: { bytes: number; timesMs: number[] },
): AllReduceBenchResult {
  const sorted = [...measured.timesMs].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  const algbwGBps = measured.bytes / (medianMs / 1e3) / 1e9;
  return {
    workers,
    bytes: measured.bytes,
    reps: sorted.length,
    medianMs,
    algbwGBps,
    busbwGBps: (algbwGBps * 2 * (workers - 1)) / workers,
  };
}

function spawnRank(args: AllReduceWorkerArgs): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', WORKER_SCRIPT, JSON.stringify(args)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

function collectLines(child: ChildProcess, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      buffered += text;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        try {
          if (line !== '') onLine(line);
        } catch (error) {
          reject(new Error(`invalid output of rank 0: ${JSON.stringify(line)}: ${String(error)}`));
        }
        newline = buffered.indexOf('\n');
      }
    });
    child.stdout!.on('end', () => resolve());
  });
}

function exited(child: ChildProcess, rank: number): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', (error) => reject(new Error(`rank ${rank} could not start: ${error.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`benchmark rank ${rank} exited with ${signal ?? `code ${code}`}`));
    });
  });
}
