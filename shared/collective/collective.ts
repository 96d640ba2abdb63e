/**
 * The communication primitives a replica uses during a training step.
 *
 * Every rank must issue the same operations in the same order with the same `opId`. An id identifies one
 * operation within a job, for example `step 12/D/grad` or `step 12/G/fwd/block0.bn1+block0.bnSkip`, so a
 * mismatch is detected instead of silently pairing different buffers. A rank with an empty shard still
 * takes part, contributing zeros or a zero count, because the others would otherwise wait for it.
 *
 * Implementations: `LocalCollective` (one process, identity), `InProcessGroup` (N ranks in one process,
 * for tests), and the gRPC star through the coordinator.
 */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;

  /**
   * Sums `data` element-wise over all ranks. The sum is taken in rank order (rank 0 + rank 1 + ...), so every
   * rank receives bit-identical values on every run. The result has the type and length of `data`.
   */
  allReduceSum<T extends Float32Array | Float64Array>(opId: string, data: T): Promise<T>;

  /** Gathers one buffer from every rank, returned in rank order. Buffers may differ in length. */
  allGather(opId: string, data: Float64Array): Promise<Float64Array[]>;
}

/** The collective of a single process: every operation returns its input. */
export class LocalCollective implements Collective {
  readonly rank = 0;
  readonly worldSize = 1;

  async allReduceSum<T extends Float32Array | Float64Array>(_opId: string, data: T): Promise<T> {
    return data.slice() as T;
  }

  async allGather(_opId: string, data: Float64Array): Promise<Float64Array[]> {
    return [data.slice()];
  }
}

/** Sums buffers in rank order into a new buffer of the first buffer's type. */
export function sumInRankOrder<T extends Float32Array | Float64Array>(parts: readonly T[]): T {
  const first = parts[0];
  if (first === undefined) throw new Error('sumInRankOrder needs at least one part');
  const out = first.slice() as T;
  for (let r = 1; r < parts.length; r++) {
    const part = parts[r]!;
    if (part.length !== out.length) {
      throw new Error(`buffer of rank ${r} has length ${part.length}, expected ${out.length} like rank 0`);
    }
    for (let i = 0; i < out.length; i++) out[i]! += part[i]!;
  }
  return out;
}
