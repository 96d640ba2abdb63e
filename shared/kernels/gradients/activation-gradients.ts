import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, LeakyReluAttrs, Tensor } from '@tensorflow/tfjs-core';

/*
 * Gradients of the activation kernels. At x = 0 the ReLU family takes the slope of the negative side,
 * as TensorFlow does. The ReLU slopes come from `tf.step(x, alpha)` (x > 0 ? 1 : alpha), one pass over x,
 * where greater + where would take three, and Select is slow on wasm.
 */

/** d leakyRelu(x) = dx where x > 0, alpha·dx elsewhere. */
const leakyRelu: GradConfig = {
  kernelName: 'LeakyRelu',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { alpha } = attrs as unknown as LeakyReluAttrs;
    return { x: () => tf.mul(dy as Tensor, tf.step(x!, alpha)) };
  },
};

/** d relu(x) = dx where x > 0, 0 elsewhere. */
const relu: GradConfig = {
  kernelName: 'Relu',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as Tensor, tf.step(x!, 0)) }),
};

/** d tanh(x) = (1 − y²)·dx with y = tanh(x), from the saved output. */
const tanh: GradConfig = {
  kernelName: 'Tanh',
  outputsToSave: [true],
  gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as Tensor, tf.sub(1, tf.square(y!))) }),
};

/** d σ(x) = y·(1 − y)·dx with y = σ(x), from the saved output. */
const sigmoid: GradConfig = {
  kernelName: 'Sigmoid',
  outputsToSave: [true],
  gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as Tensor, tf.mul(y!, tf.sub(1, y!))) }),
};

/** d softplus(x) = σ(x)·dx. */
const softplus: GradConfig = {
  kernelName: 'Softplus',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as Tensor, tf.sigmoid(x!)) }),
};

export const ACTIVATION_GRADIENTS: readonly GradConfig[] = [leakyRelu, relu, tanh, sigmoid, softplus];
