import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, Tensor } from '@tensorflow/tfjs-core';

/**
 * Select (`tf.where`): dy flows to t where the condition is true and to e elsewhere. The boolean condition
 * gets a zero gradient, which the tape requires of every recorded input.
 */
const select: GradConfig = {
  kernelName: 'Select',
  inputsToSave: ['condition'],
  gradFunc: (dy, [condition]) => ({
    condition: () => tf.zeros(condition!.shape, 'float32'),
    t: () => tf.mul(dy as Tensor, tf.cast(condition!, 'float32')),
    e: () => tf.mul(dy as Tensor, tf.cast(tf.logicalNot(condition!), 'float32')),
  }),
};

/**
 * Comparisons are piecewise constant, so both operands get a zero gradient. They appear on the tape when a
 * mask such as `tf.greater(x, 0)` is computed from a differentiated tensor.
 */
function comparison(kernelName: string): GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (_dy, [a, b]) => ({
      a: () => tf.zeros(a!.shape, 'float32'),
      b: () => tf.zeros(b!.shape, 'float32'),
    }),
  };
}

export const SELECTION_GRADIENTS: readonly GradConfig[] = [
  select,
  ...['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual'].map(comparison),
];
