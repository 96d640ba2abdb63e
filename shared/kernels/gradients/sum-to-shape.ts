import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';

/**
 * Reduces a gradient of a broadcast result back to the shape of one operand: sums over the leading axes
 * the operand lacks and over the axes where it has size 1, then reshapes. This is the adjoint of
 * NumPy-style broadcasting.
 */
export function sumToShape(dy: Tensor, shape: readonly number[]): Tensor {
  const extraAxes = dy.rank - shape.length;
  const axes: number[] = [];
  for (let axis = 0; axis < dy.rank; axis++) {
    const size = axis < extraAxes ? 1 : shape[axis - extraAxes];
    if (axis < extraAxes || (size === 1 && dy.shape[axis] !== 1)) axes.push(axis);
  }

  const summed = axes.length > 0 ? tf.sum(dy, axes) : dy;
  return tf.reshape(summed, [...shape]);
}
