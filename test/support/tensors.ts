import * as tf from '@tensorflow/tfjs-core';

/** max|a − b| / max(max|b|, 1e-12): one relative error for a whole tensor. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < actual.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxRef = Math.max(maxRef, Math.abs(expected[i]!));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

/** One-hot [N,K] float32 labels. */
export function oneHotOf(labels: number[], numClasses: number): tf.Tensor2D {
  return tf.tidy(() =>
    tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), 'float32'),
  ) as tf.Tensor2D;
}

/** Deterministic pseudo-random values in [-1, 1] (a tiny LCG, test data only). */
export function testValues(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 32) * 2 - 1;
  }
  return out;
}
