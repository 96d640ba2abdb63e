import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, Tensor } from '@tensorflow/tfjs-core';
import { sumToShape } from './sum-to-shape.js';

/*
 * Gradients of the element-wise arithmetic kernels, with broadcasting undone by `sumToShape`. Each entry
 * states the derivative it implements.
 */

/** d(a+b) = da + db. */
const add: GradConfig = {
  kernelName: 'Add',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => sumToShape(dy as Tensor, a!.shape),
    b: () => sumToShape(dy as Tensor, b!.shape),
  }),
};

/** d(Σ xᵢ) = Σ dxᵢ: every input receives dy. */
const addN: GradConfig = {
  kernelName: 'AddN',
  saveAllInputs: true,
  gradFunc: (dy, saved) => Object.fromEntries(saved.map((_, i) => [i, () => (dy as Tensor).clone()])),
};

/** d(a−b) = da − db. */
const sub: GradConfig = {
  kernelName: 'Sub',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => sumToShape(dy as Tensor, a!.shape),
    b: () => tf.neg(sumToShape(dy as Tensor, b!.shape)),
  }),
};

/** d(a·b) = b·da + a·db. */
const multiply: GradConfig = {
  kernelName: 'Multiply',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => sumToShape(tf.mul(dy as Tensor, tf.cast(b!, 'float32')), a!.shape),
    b: () => sumToShape(tf.mul(dy as Tensor, tf.cast(a!, 'float32')), b!.shape),
  }),
};

/** d(a/b) = da/b − a·db/b². */
const realDiv: GradConfig = {
  kernelName: 'RealDiv',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => sumToShape(tf.div(dy as Tensor, b!), a!.shape),
    b: () => sumToShape(tf.neg(tf.mul(dy as Tensor, tf.div(a!, tf.square(b!)))), b!.shape),
  }),
};

/** d(−x) = −dx. */
const neg: GradConfig = {
  kernelName: 'Neg',
  gradFunc: (dy) => ({ x: () => tf.neg(dy as Tensor) }),
};

/** d(x²) = 2x·dx. */
const square: GradConfig = {
  kernelName: 'Square',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as Tensor, tf.mul(x!, 2)) }),
};

/** d(a−b)² = 2(a−b)·(da − db). */
const squaredDifference: GradConfig = {
  kernelName: 'SquaredDifference',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => ({
    a: () => sumToShape(tf.mul(dy as Tensor, tf.mul(tf.sub(a!, b!), 2)), a!.shape),
    b: () => sumToShape(tf.mul(dy as Tensor, tf.mul(tf.sub(a!, b!), -2)), b!.shape),
  }),
};

/** d(x^−½) = −½·x^−½/x·dx. */
const rsqrt: GradConfig = {
  kernelName: 'Rsqrt',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as Tensor, tf.mul(tf.div(tf.rsqrt(x!), x!), -0.5)) }),
};

/** d(√x) = dx/(2√x). */
const sqrt: GradConfig = {
  kernelName: 'Sqrt',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as Tensor, tf.mul(tf.sqrt(x!), 2)) }),
};

/** d(eˣ) = eˣ·dx, from the saved output. */
const exp: GradConfig = {
  kernelName: 'Exp',
  outputsToSave: [true],
  gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as Tensor, y!) }),
};

/** d(ln x) = dx/x. */
const log: GradConfig = {
  kernelName: 'Log',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as Tensor, x!) }),
};

export const ARITHMETIC_GRADIENTS: readonly GradConfig[] = [
  add,
  addN,
  sub,
  multiply,
  realDiv,
  neg,
  square,
  squaredDifference,
  rsqrt,
  sqrt,
  exp,
  log,
];
