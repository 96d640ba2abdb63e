import * as tf from '@tensorflow/tfjs-core';
import { util } from '@tensorflow/tfjs-core';
import type { GradConfig, SumAttrs, Tensor } from '@tensorflow/tfjs-core';

/**
 * Reshapes dy of a reduction to the input rank (size 1 on the reduced axes), multiplies it by `scale`
 * while it is small, and broadcasts it to the input shape: [kept dims] -> [N,...].
 */
function broadcastOverReducedAxes(dy: Tensor, xShape: number[], axis: number | number[], scale = 1): Tensor {
  const axes = util.parseAxisParam(axis, xShape);
  const keptShape = xShape.map((size, i) => (axes.includes(i) ? 1 : size));
  const scaled = scale === 1 ? tf.reshape(dy, keptShape) : tf.mul(tf.reshape(dy, keptShape), scale);

  // A multiply by ones, because the Tile kernel behind tf.broadcastTo is far slower on wasm.
  return tf.mul(scaled, tf.ones(xShape, 'float32'));
}

/** d Σ_axes x = dy broadcast over the reduced axes. */
const sum: GradConfig = {
  kernelName: 'Sum',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { axis } = attrs as unknown as SumAttrs;
    return { x: () => broadcastOverReducedAxes(dy as Tensor, x!.shape, axis) };
  },
};

/** d mean_axes x = dy / count broadcast over the reduced axes, count = product of the reduced sizes. */
const mean: GradConfig = {
  kernelName: 'Mean',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { axis } = attrs as unknown as SumAttrs;
    const axes = util.parseAxisParam(axis, x!.shape);
    const count = axes.reduce((product, a) => product * x!.shape[a]!, 1);
    return { x: () => broadcastOverReducedAxes(dy as Tensor, x!.shape, axes, 1 / count) };
  },
};

export const REDUCTION_GRADIENTS: readonly GradConfig[] = [sum, mean];
