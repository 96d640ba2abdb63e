import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { sumInRankOrder } from '../shared/collective/collective.js';
import { ReductionService, type ReductionMember } from '../coordinator/reduction-service.js';
import { WorkerRegistry } from '../coordinator/registry.js';
import { startCoordinatorServer, type CoordinatorServer } from '../coordinator/coordinator-server.js';
import { GrpcCollective } from '../worker/grpc-collective.js';
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProtos } from '../shared/rpc/proto.js';

const silent = pino({ level: 'silent' });

function members(worldSize: number): ReductionMember[] {
  return Array.from({ length: worldSize }, (_, rank) => ({
    rank,
    workerId: `w${rank}`,
    address: `127.0.0.1:${7000 + rank}`,
  }));
}

/** Values whose float32 sum depends on the order of addition, so a wrong order shows. */
function awkwardValues(rank: number, length: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++)
    values[i] = Math.fround(Math.sin(i * 0.37 + rank) * 10 ** (((i + rank) % 7) - 3));
  return values;
}

describe('GrpcCollective through the coordinator star', () => {
  let server: CoordinatorServer;
  let reductions: ReductionService;
  let collectives: GrpcCollective[] = [];

  beforeEach(async () => {
    reductions = new ReductionService({ logger: silent });
    const registry = new WorkerRegistry({ modelHash: 'h', logger: silent });
    server = await startCoordinatorServer({ listen: '127.0.0.1:0', registry, reductions, logger: silent });
  });

  afterEach(async () => {
    for (const collective of collectives) collective.close();
    collectives = [];
    await server.stop(100);
  });

  function join(jobId: string, worldSize: number, deadlineMs = 10_000): GrpcCollective[] {
    reductions.openJob(jobId, members(worldSize));
    collectives = Array.from(
      { length: worldSize },
      (_, rank) =>
        new GrpcCollective({
          coordinatorAddress: `127.0.0.1:${server.port}`,
          jobId,
          rank,
          worldSize,
          workerId: `w${rank}`,
          deadlineMs,
          logger: silent,
        }),
    );
    return collectives;
  }

  it('sums 3 ranks bit-identically in rank order', async () => {
    const ranks = join('job-sum', 3);
    const inputs = ranks.map((_, rank) => awkwardValues(rank, 10_000));

    const results = await Promise.all(ranks.map((c, rank) => c.allReduceSum('step 1/D/grad', inputs[rank]!)));

    const expected = sumInRankOrder(inputs);
    for (const result of results) {
      expect(result).toBeInstanceOf(Float32Array);
      expect(Buffer.from(result.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });

  it('sums float64 buffers', async () => {
    const ranks = join('job-f64', 3);
    const inputs = ranks.map((_, rank) => Float64Array.from({ length: 5 }, (_, i) => rank * 0.1 + i / 3));

    const results = await Promise.all(ranks.map((c, rank) => c.allReduceSum('op', inputs[rank]!)));

    for (const result of results) {
      expect(result).toBeInstanceOf(Float64Array);
      expect(Array.from(result)).toEqual(Array.from(sumInRankOrder(inputs)));
    }
  });

  it('sums empty buffers', async () => {
    const ranks = join('job-empty', 2);

    const results = await Promise.all(ranks.map((c) => c.allReduceSum('op', new Float32Array(0))));

    for (const result of results) {
      expect(result).toBeInstanceOf(Float32Array);
      expect(result.length).toBe(0);
    }
  });

  it('gathers buffers of different lengths in rank order', async () => {
    const ranks = join('job-gather', 3);
    // count[1], mean[C], m2[C] -> [2C+1] float64 per rank; rank 1 has an empty shard.
    const inputs = [
      new Float64Array([4, 0.5, 1.5]),
      new Float64Array([0, 0, 0]),
      new Float64Array([2, -1, 3, 9]),
    ];

    const results = await Promise.all(ranks.map((c, rank) => c.allGather('step 1/G/fwd/bn0', inputs[rank]!)));

    for (const parts of results) {
      expect(parts.map((part) => Array.from(part))).toEqual(inputs.map((input) => Array.from(input)));
    }
  });

  it('round-trips a 64 MiB buffer', async () => {
    const ranks = join('job-big', 2, 60_000);
    const length = (64 * 1024 * 1024) / 4;
    const inputs = ranks.map((_, rank) => {
      const values = new Float32Array(length);
      for (let i = 0; i < length; i += 1) values[i] = (i % 1000) + rank;
      return values;
    });

    const results = await Promise.all(ranks.map((c, rank) => c.allReduceSum('big', inputs[rank]!)));

    for (const result of results) {
      expect(result.length).toBe(length);
      expect(result[0]).toBe(1);
      expect(result[length - 1]).toBe(((length - 1) % 1000) * 2 + 1);
      expect(Buffer.from(result.buffer).equals(Buffer.from(results[0]!.buffer))).toBe(true);
    }
  }, 60_000);

  it('names a silent rank when the deadline passes', async () => {
    const ranks = join('job-silent', 3, 500);
    const started = Date.now();

    const outcomes = await Promise.allSettled([
      ranks[0]!.allReduceSum('op', new Float32Array(4)),
      ranks[1]!.allReduceSum('op', new Float32Array(4)),
    ]);

    expect(Date.now() - started).toBeLessThan(2_000);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const message = (outcome as PromiseRejectedResult).reason.message as string;
      expect(message).toMatch(
        /timed out after 500 ms: no contribution from rank 2 \(worker w2 at 127\.0\.0\.1:7002\)/,
      );
      expect(message).toMatch(/deadline 500 ms/);
      expect(message).toMatch(/operation "op"/);
    }
  });

  it('fails every rank on a length mismatch', async () => {
    const ranks = join('job-length', 3);

    const outcomes = await Promise.allSettled(
      ranks.map((c, rank) => c.allReduceSum('op', new Float32Array(rank === 1 ? 5 : 4))),
    );

    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason.message).toMatch(
        /rank 1 \(worker w1 at 127\.0\.0\.1:7001\) sent 5 elements but rank 0 \(worker w0 at 127\.0\.0\.1:7000\) sent 4/,
      );
    }
  });

  it('fails every rank on a dtype mismatch', async () => {
    const ranks = join('job-dtype', 2);

    const outcomes = await Promise.allSettled([
      ranks[0]!.allReduceSum('op', new Float32Array(4)),
      ranks[1]!.allReduceSum('op', new Float64Array(4)),
    ]);

    for (const outcome of outcomes) {
      expect((outcome as PromiseRejectedResult).reason.message).toMatch(
        /sent DTYPE_FLOAT64 but .* sent DTYPE_FLOAT32/,
      );
    }
  });

  it('fails the operation on a duplicate contribution', async () => {
    const ranks = join('job-duplicate', 3);

    const outcomes = await Promise.allSettled([
      ranks[0]!.allReduceSum('op', new Float32Array(4)),
      ranks[0]!.allReduceSum('op', new Float32Array(4)),
      ranks[1]!.allReduceSum('op', new Float32Array(4)),
    ]);

    for (const outcome of outcomes) {
      expect((outcome as PromiseRejectedResult).reason.message).toMatch(
        /rank 0 \(worker w0 at 127\.0\.0\.1:7000\) contributed twice/,
      );
    }
  });

  it('fails pending operations on abort', async () => {
    const ranks = join('job-abort', 2);

    const pending = ranks[0]!.allReduceSum('op', new Float32Array(4));
    await waitFor(() => reductions.pendingCount('job-abort') === 1);
    reductions.abort('job-abort', 'worker w1 stopped answering');

    await expect(pending).rejects.toThrow(/ABORTED: .*worker w1 stopped answering/);
    await expect(ranks[1]!.allReduceSum('op2', new Float32Array(4))).rejects.toThrow(
      /job job-abort was aborted/,
    );
  });

  it('fails at once when a rank disconnects mid-upload', async () => {
    const ranks = join('job-disconnect', 2, 10_000);
    const pending = ranks[0]!.allReduceSum('op', new Float32Array(1024));
    const raw = new (loadProtos().CoordinatorClient)(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
    const stream = (
      raw as unknown as { Reduce(options: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown> }
    ).Reduce({});
    stream.on('error', () => undefined);
    const header = {
      jobId: 'job-disconnect',
      opId: 'op',
      rank: 1,
      workerId: 'w1',
      kind: 'REDUCE_KIND_SUM',
      dtype: 'DTYPE_FLOAT32',
      length: 1024,
      deadlineMs: 10_000,
      step: 4,
    };
    const started = Date.now();

    stream.write({ header, data: Buffer.alloc(0) });
    stream.write({ data: Buffer.alloc(1024) });
    await waitFor(() => reductions.pendingCount('job-disconnect') === 1);
    stream.cancel();

    await expect(pending).rejects.toThrow(
      /UNAVAILABLE: .*rank 1 \(worker w1 at 127\.0\.0\.1:7001\) failed before finishing its contribution/,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    raw.close();
  });

  it('fails fast when the coordinator is gone', async () => {
    const ranks = join('job-gone', 2, 5_000);
    await server.stop(100);
    const started = Date.now();

    await expect(ranks[0]!.allReduceSum('step 9/D/grad', new Float32Array(4))).rejects.toThrow(
      /allReduceSum \(deadline 5000 ms\) failed for rank 0 \(worker w0\), job job-gone, step 0, operation "step 9\/D\/grad": UNAVAILABLE/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects a worker id that does not own the rank', async () => {
    reductions.openJob('job-owner', members(2));
    const impostor = new GrpcCollective({
      coordinatorAddress: `127.0.0.1:${server.port}`,
      jobId: 'job-owner',
      rank: 1,
      worldSize: 2,
      workerId: 'w9',
      logger: silent,
    });
    collectives.push(impostor);

    await expect(impostor.allReduceSum('op', new Float32Array(1))).rejects.toThrow(
      /worker w9 claims rank 1 .* belongs to worker w1/,
    );
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
