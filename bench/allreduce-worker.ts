/**
 * One rank of `cbn-train bench allreduce`, started by `bench/allreduce.ts` as a child process. It runs the
 * all-reduce of every size repeatedly through the coordinator's star and, on rank 0, prints one JSON line
 * per size with the measured times: `{"bytes":4096,"timesMs":[...]}`.
 *
 * Arguments: one JSON object of type AllReduceWorkerArgs.
 */
import { pino } from 'pino';
import { GrpcCollective } from '../worker/grpc-collective.js';

/** Arguments the parent passes to each rank. */
export interface AllReduceWorkerArgs {
  coordinatorAddress: string;
  rank: number;
  worldSize: number;
  sizesBytes: number[];
  /** Timed repetitions per size. 0 picks max(3, min(50, 2e8 / bytes)), as the gloo anchor script does. */
  reps: number;
  deadlineMs: number;
}

// Untimed operations per size before measuring, as in the gloo anchor script.
const WARMUP_OPS = 2;

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '') as AllReduceWorkerArgs;
  const collective = new GrpcCollective({
    coordinatorAddress: args.coordinatorAddress,
    jobId: 'bench',
    rank: args.rank,
    worldSize: args.worldSize,
    workerId: `bench-${args.rank}`,
    deadlineMs: args.deadlineMs,
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });

  try {
    for (const bytes of args.sizesBytes) {
      const timesMs = await measure(collective, bytes, args.reps > 0 ? args.reps : defaultReps(bytes));
      if (args.rank === 0) process.stdout.write(`${JSON.stringify({ bytes, timesMs })}\n`);
    }
  } finally {
    collective.close();
  }
}

/** Times `reps` all-reduces of `bytes` float32 bytes, with a barrier before each one to line the ranks up. */
async function measure(collective: GrpcCollective, bytes: number, reps: number): Promise<number[]> {
  const data = new Float32Array(bytes / 4).fill(1);
  for (let i = 0; i < WARMUP_OPS; i++) await collective.allReduceSum(`${bytes}/warmup/${i}`, data);

  const timesMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    await collective.allGather(`${bytes}/barrier/${i}`, new Float64Array(0));
    const started = performance.now();
    await collective.allReduceSum(`${bytes}/${i}`, data);
    timesMs.push(performance.now() - started);
  }
  return timesMs;
}

function defaultReps(bytes: number): number {
  return Math.max(3, Math.min(50, Math.floor(2e8 / Math.max(bytes, 1))));
}

main().catch((error: unknown) => {
  process.stderr.write(`bench allreduce worker: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
