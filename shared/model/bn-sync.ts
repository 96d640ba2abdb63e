import type * as tf from '@tensorflow/tfjs-core';
import type { ConditionalBatchNorm } from './layers/cbn.js';
import { mergeAllMoments, packMoments, packedMomentsLength, unpackMoments, type Moments } from './moments.js';
import type { GradMap } from './params.js';
import type { PassContext } from './pass-context.js';

// The sync points of batch normalization. Each call is one reduction round shared by every BN layer passed
// in, so independent layers (the main and skip paths of one block) cost one round trip instead of two.

/**
 * Forward sync point: computes each layer's shard moments, then (sync mode) gathers them from all replicas
 * and merges them in rank order, returning the statistics each layer normalizes with. Moving statistics
 * are updated from the merged moments when `ctx.updateMovingStats` is set.
 *
 * Wire payload per rank: for each layer in order, count[1], mean[C], m2[C] -> Σ(2C+1) float64. A gather
 * and not a sum is used because Chan's merge is not an element-wise sum.
 */
export async function syncMoments(
  ctx: PassContext,
  opName: string,
  layers: readonly { bn: ConditionalBatchNorm; x: tf.Tensor4D }[],
): Promise<Moments[]> {
  const local = layers.map(({ bn, x }) => bn.localMoments(x));
  if (ctx.bn !== 'sync') return local;

  const packed = new Float64Array(layers.reduce((n, { bn }) => n + packedMomentsLength(bn.channels), 0));
  let offset = 0;
  for (const [i, { bn }] of layers.entries()) {
    packMoments(local[i]!, packed, offset);
    offset += packedMomentsLength(bn.channels);
  }

  const parts = await ctx.collective.allGather(`${ctx.opPrefix}/${opName}`, packed);
  return layers.map(({ bn }, i) => {
    const layerOffset = layers.slice(0, i).reduce((n, l) => n + packedMomentsLength(l.bn.channels), 0);
    const perRank = parts.map((part) => unpackMoments(part, layerOffset, bn.channels));
    const global = mergeAllMoments(perRank, bn.channels);
    if (ctx.updateMovingStats) bn.updateMovingStats(global);
    return global;
  });
}

/**
 * Backward sync point: each layer accumulates dγ, dβ and computes its shard sums Σ(dy·γ), Σ(dy·γ·x̂). In sync
 * mode the sums are added over all replicas, because the normalization used global statistics. Returns dx
 * per layer. Wire payload: for each layer, sumDy[C], sumDyXHat[C] -> Σ2C float64, summed in rank order.
 */
export async function syncGradSums(
  ctx: PassContext,
  opName: string,
  layers: readonly { bn: ConditionalBatchNorm; dy: tf.Tensor4D }[],
  grads: GradMap | undefined,
): Promise<tf.Tensor4D[]> {
  const local = layers.map(({ bn, dy }) => bn.localGradSums(dy, grads));
  let sums = local;

  if (ctx.bn === 'sync') {
    const packed = new Float64Array(local.reduce((n, s) => n + s.length, 0));
    let offset = 0;
    for (const part of local) {
      packed.set(part, offset);
      offset += part.length;
    }
    const total = await ctx.collective.allReduceSum(`${ctx.opPrefix}/${opName}`, packed);
    offset = 0;
    sums = local.map((part) => {
      const slice = total.subarray(offset, offset + part.length);
      offset += part.length;
      return slice;
    });
  }
  return layers.map(({ bn }, i) => bn.inputGrad(sums[i]!));
}
