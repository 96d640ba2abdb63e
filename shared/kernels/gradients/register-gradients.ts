import { getGradient, registerGradient } from '@tensorflow/tfjs-core';
import type { GradConfig } from '@tensorflow/tfjs-core';
import { ACTIVATION_GRADIENTS } from './activation-gradients.js';
import { ARITHMETIC_GRADIENTS } from './arithmetic-gradients.js';
import { LINEAR_GRADIENTS } from './linear-gradients.js';
import { REDUCTION_GRADIENTS } from './reduction-gradients.js';
import { SELECTION_GRADIENTS } from './selection-gradients.js';
import { SHAPE_GRADIENTS } from './shape-gradients.js';

/** Every gradient the project provides, keyed by tfjs kernel name. */
export const PROJECT_GRADIENTS: readonly GradConfig[] = [
  ...ARITHMETIC_GRADIENTS,
  ...ACTIVATION_GRADIENTS,
  ...REDUCTION_GRADIENTS,
  ...SHAPE_GRADIENTS,
  ...LINEAR_GRADIENTS,
  ...SELECTION_GRADIENTS,
];

/**
 * Registers a gradient for each kernel in `PROJECT_GRADIENTS` that has none yet.
 *
 * `@tensorflow/tfjs-core` 4.22 registers no gradients itself: the `@tensorflow/tfjs` package does, by
 * importing `dist/register_all_gradients`, and that ES module tree cannot be loaded by Node. Without this,
 * `tf.grads` on the cpu and wasm backends fails with "gradient function not found". Kernels that already
 * have a gradient (for example after `@tensorflow/tfjs-node` loaded `@tensorflow/tfjs`) keep it.
 *
 * NOTE: GatherV2 (`tf.gather`) and FusedBatchNorm (`tf.batchNorm`) get no gradient here; wasm also lacks
 * the UnsortedSegmentSum kernel that the stock GatherV2 gradient needs. Select class rows with a one-hot
 * matMul and write batch norm with `tf.moments`.
 */
export function registerMissingGradients(): void {
  for (const config of PROJECT_GRADIENTS) {
    if (getGradient(config.kernelName) === undefined) registerGradient(config);
  }
}
