import * as tf from '@tensorflow/tfjs-core';

// Reductions and products that accept empty tensors. A replica with an empty shard still runs its passes to
// take part in every reduction, but the wasm backend's Sum, Mean and Transpose kernels fail on tensors with
// zero elements (tfjs-backend-wasm 4.22.0: "divide by zero"). These return the mathematically right value
// instead: zeros for a sum or product over nothing, and an empty tensor where the result itself is empty.

function reducedShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.filter((_, i) => !axes.includes(i));
}

/** tf.sum over `axes`, or zeros of the reduced shape when `x` is empty. */
export function sumOrZeros(x: tf.Tensor, axes: number[]): tf.Tensor {
  if (x.size > 0) return tf.sum(x, axes);
  return tf.zeros(reducedShape(x.shape, axes));
}

/** tf.mean over `axes` for inputs that keep a non-empty batch axis; an empty input gives an empty result. */
export function meanOrEmpty(x: tf.Tensor, axes: number[]): tf.Tensor {
  if (x.size > 0) return tf.mean(x, axes);
  return tf.zeros(reducedShape(x.shape, axes));
}

/** tf.matMul, or zeros of the result shape when either operand is empty. */
export function matMulOrZeros(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  transposeA = false,
  transposeB = false,
): tf.Tensor2D {
  if (a.size > 0 && b.size > 0) return tf.matMul(a, b, transposeA, transposeB);
  const rows = transposeA ? a.shape[1] : a.shape[0];
  const cols = transposeB ? b.shape[0] : b.shape[1];
  return tf.zeros([rows, cols]);
}
