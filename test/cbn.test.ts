import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalCollective } from '../shared/collective/collective.js';
import { syncMoments } from '../shared/model/bn-sync.js';
import { ConditionalBatchNorm } from '../shared/model/layers/cbn.js';
import { ParamStore } from '../shared/model/params.js';
import type { PassContext } from '../shared/model/pass-context.js';
import { useBackend } from './support/backend.js';
import { oneHotOf } from './support/tensors.js';

// Hand-computed CBN values. x = [1, 3 | 5, 7] as [N=2,H=1,W=2,C=1]: mean 4, biased variance
// ((−3)² + (−1)² + 1² + 3²)/4 = 5, so x̂ = (x − 4)/√(5 + 0.001).

let scopeCounter = 0;

function makeLayer(numClasses: number, channels: number): { bn: ConditionalBatchNorm; store: ParamStore } {
  const store = new ParamStore(`cbn${scopeCounter++}:`, 0);
  return { bn: new ConditionalBatchNorm('bn', store, numClasses, channels), store };
}

function ctx(oneHot: tf.Tensor2D, updateMovingStats = false): PassContext {
  return {
    bn: 'sync',
    collective: new LocalCollective(),
    opPrefix: 't',
    oneHot,
    updateMovingStats,
    paramGrads: true,
  };
}

async function trainForward(
  bn: ConditionalBatchNorm,
  x: tf.Tensor4D,
  oneHot: tf.Tensor2D,
  update = false,
): Promise<number[]> {
  const [stats] = await syncMoments(ctx(oneHot, update), 'fwd', [{ bn, x }]);
  const y = bn.normalize(x, stats!, oneHot);
  const values = Array.from(y.dataSync());
  y.dispose();
  bn.disposeCache();
  return values;
}

beforeAll(async () => {
  await useBackend('wasm');
});

describe('ConditionalBatchNorm', () => {
  it('initializes γ to 1, β to 0, moving mean 0, moving variance 1', () => {
    const { bn, store } = makeLayer(3, 2);
    expect(Array.from(bn.gamma.dataSync())).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(bn.beta.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(bn.movingMean.dataSync())).toEqual([0, 0]);
    expect(Array.from(bn.movingVariance.dataSync())).toEqual([1, 1]);
    expect(bn.momentum).toBe(0.99);
    expect(bn.epsilon).toBe(1e-3);
    store.dispose();
  });

  it('multiplies by γ and adds β of the sample class', async () => {
    const { bn, store } = makeLayer(2, 1);
    bn.gamma.assign(tf.tensor2d([[2], [3]]));
    bn.beta.assign(tf.tensor2d([[10], [20]]));
    const x = tf.tensor4d([1, 3, 5, 7], [2, 1, 2, 1]);
    const oneHot = oneHotOf([0, 1], 2);

    const y = await trainForward(bn, x, oneHot);
    const s = Math.sqrt(5.001);
    const expected = [2 * (-3 / s) + 10, 2 * (-1 / s) + 10, 3 * (1 / s) + 20, 3 * (3 / s) + 20];
    y.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    tf.dispose([x, oneHot]);
    store.dispose();
  });

  it('uses the row of the label, not the first row', async () => {
    const { bn, store } = makeLayer(3, 1);
    bn.gamma.assign(tf.tensor2d([[1], [1], [-1]]));
    const x = tf.tensor4d([1, 3, 5, 7], [2, 1, 2, 1]);
    const swapped = oneHotOf([2, 2], 3);
    const y = await trainForward(bn, x, swapped);
    const s = Math.sqrt(5.001);
    expect(y[0]).toBeCloseTo(3 / s, 5);
    expect(y[3]).toBeCloseTo(-3 / s, 5);
    tf.dispose([x, swapped]);
    store.dispose();
  });

  it('takes statistics over N, H and W of a non-square input', async () => {
    const { bn, store } = makeLayer(2, 2);
    // [N=2,H=3,W=1,C=2]: channel 0 contains 0..5, channel 1 contains 10·(0..5).
    const values = [0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50];
    const x = tf.tensor4d(values, [2, 3, 1, 2]);
    const oneHot = oneHotOf([0, 0], 2);
    const moments = bn.localMoments(x);
    expect(moments.count).toBe(6);
    expect(moments.mean[0]).toBeCloseTo(2.5, 6);
    expect(moments.mean[1]).toBeCloseTo(25, 5);
    expect(moments.m2[0]).toBeCloseTo(17.5, 5); // Σ(i − 2.5)² for i = 0..5
    expect(moments.m2[1]).toBeCloseTo(1750, 2);

    await trainForward(bn, x, oneHot, true);
    expect(bn.movingMean.dataSync()[1]).toBeCloseTo(0.01 * 25, 5);
    expect(bn.movingVariance.dataSync()[0]).toBeCloseTo(0.99 + 0.01 * (17.5 / 6), 5);
    tf.dispose([x, oneHot]);
    store.dispose();
  });

  it('normalizes with the moving statistics in inference', () => {
    const { bn, store } = makeLayer(2, 1);
    bn.movingMean.assign(tf.tensor1d([2]));
    bn.movingVariance.assign(tf.tensor1d([4 - 1e-3]));
    bn.gamma.assign(tf.tensor2d([[1], [5]]));
    const x = tf.tensor4d([0, 4, 6, 10], [2, 1, 2, 1]);
    const oneHot = oneHotOf([0, 1], 2);
    const y = bn.normalizeInference(x, oneHot);
    const values = Array.from(y.dataSync());
    // (x − 2)/2, times γ = 1 for the first sample and 5 for the second.
    [-1, 1, 10, 20].forEach((v, i) => expect(values[i]).toBeCloseTo(v, 4));
    expect(Array.from(bn.movingMean.dataSync())).toEqual([2]);
    tf.dispose([x, oneHot, y]);
    store.dispose();
  });
});
