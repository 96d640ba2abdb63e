/**
 * Per-channel batch moments carried as (count, mean, M2), where M2 is the sum of squared deviations from the
 * mean. Parts are merged with Chan et al.'s parallel formula in float64, which stays accurate where
 * E[x²] − E[x]² in float32 cancels (it can even turn negative).
 *
 *   n = nA + nB,  δ = meanB − meanA,  mean = meanA + δ·nB/n,  M2 = M2A + M2B + δ²·nA·nB/n
 *
 * A part with count 0 leaves the other unchanged, so a replica with an empty shard can contribute.
 */
export interface Moments {
  /** Number of values per channel (N·H·W for an NHWC activation). */
  count: number;
  mean: Float64Array; // [C]
  m2: Float64Array; // [C]
}

export function emptyMoments(channels: number): Moments {
  return { count: 0, mean: new Float64Array(channels), m2: new Float64Array(channels) };
}

/** Merges two parts into a new one (Chan's formula). */
export function mergeMoments(a: Moments, b: Moments): Moments {
  if (a.mean.length !== b.mean.length) {
    throw new Error(`cannot merge moments of ${a.mean.length} and ${b.mean.length} channels`);
  }
  if (b.count === 0) return copyMoments(a);
  if (a.count === 0) return copyMoments(b);

  const count = a.count + b.count;
  const mean = new Float64Array(a.mean.length);
  const m2 = new Float64Array(a.mean.length);
  for (let c = 0; c < mean.length; c++) {
    const delta = b.mean[c]! - a.mean[c]!;
    mean[c] = a.mean[c]! + (delta * b.count) / count;
    m2[c] = a.m2[c]! + b.m2[c]! + (delta * delta * a.count * b.count) / count;
  }
  return { count, mean, m2 };
}

/** Merges parts left to right. Every replica merges in rank order, so all get identical values. */
export function mergeAllMoments(parts: readonly Moments[], channels: number): Moments {
  return parts.reduce(mergeMoments, emptyMoments(channels));
}

function copyMoments(m: Moments): Moments {
  return { count: m.count, mean: m.mean.slice(), m2: m.m2.slice() };
}

/** Biased (population) variance M2/n, which normalization uses. A zero count gives zeros. */
export function biasedVariance(m: Moments): Float64Array {
  const variance = new Float64Array(m.mean.length);
  if (m.count === 0) return variance;
  for (let c = 0; c < variance.length; c++) variance[c] = Math.max(m.m2[c]! / m.count, 0);
  return variance;
}

/** Number of float64 values `packMoments` writes for C channels. */
export function packedMomentsLength(channels: number): number {
  return 1 + 2 * channels;
}

/** Writes a part into `out` at `offset`: count[1], mean[C], m2[C] -> [2C+1] float64. */
export function packMoments(m: Moments, out: Float64Array, offset: number): void {
  out[offset] = m.count;
  out.set(m.mean, offset + 1);
  out.set(m.m2, offset + 1 + m.mean.length);
}

/** Reads a part written by `packMoments`. */
export function unpackMoments(buffer: Float64Array, offset: number, channels: number): Moments {
  return {
    count: buffer[offset]!,
    mean: buffer.slice(offset + 1, offset + 1 + channels),
    m2: buffer.slice(offset + 1 + channels, offset + 1 + 2 * channels),
  };
}
