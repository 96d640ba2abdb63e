import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, LeakyReluAttrs, Tensor } from '@tensorflow/tfjs-core';

/*
 * Gradients of the activation kernels. At x = 0 the ReLU family takes the slope of the negative side,
 * as TensorFlow does.
 */

/** d leakyRelu(x) = dx where x > 0, alpha·dx elsewhere. */
const leakyRelu: GradConfig = {
  kernelName: 'LeakyRelu',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { alpha } = attrs as unknown as LeakyReluAttrs;
    return { x: () => tf.where(tf.greater(x!, 0), dy as Tensor, tf.mul(dy as Tensor, alpha)) };
  },
};

/** d relu(x) = dx where x > 0, 0 elsewhere. */
const relu: GradConfig = {
  kernelName: 'Relu',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as Tensor, tf.cast(tf.greater(x!, 0), 'float32')) }),
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
