import * as tf from '@tensorflow/tfjs-core';

/** Negative slope of every leaky ReLU in the models. */
export const LEAKY_RELU_ALPHA = 0.2;

/** Leaky ReLU that keeps its output's sign pattern for a hand-written backward. */
export class LeakyRelu {
  private output: tf.Tensor | undefined;

  forward<T extends tf.Tensor>(x: T, keepForBackward: boolean): T {
    this.release();
    // prelu with a scalar slope computes the same values and ran about twice as fast as leakyRelu on wasm.
    const y = tf.tidy(() => tf.prelu(x, tf.scalar(LEAKY_RELU_ALPHA) as unknown as T)) as T;
    if (keepForBackward) this.output = y.clone();
    return y;
  }

  /**
   * dx = dy where y > 0, else α·dy (y and x have the same sign because α > 0), computed as
   * dy·(α + (1 − α)·step(y)): on wasm this is about twice as fast as where(greater(y, 0), …).
   */
  backward<T extends tf.Tensor>(dy: T): T {
    const y = this.output;
    if (y === undefined) throw new Error('leaky ReLU backward called without a training forward');
    const dx = tf.tidy(() =>
      tf.mul(dy, tf.add(tf.mul(tf.step(y), 1 - LEAKY_RELU_ALPHA), LEAKY_RELU_ALPHA)),
    ) as T;
    this.release();
    return dx;
  }

  release(): void {
    this.output?.dispose();
    this.output = undefined;
  }
}

/** tanh whose backward uses its output: dx = dy·(1 − y²). */
export class Tanh {
  private output: tf.Tensor | undefined;

  forward<T extends tf.Tensor>(x: T, keepForBackward: boolean): T {
    this.release();
    const y = tf.tanh(x) as T;
    if (keepForBackward) this.output = y.clone();
    return y;
  }

  backward<T extends tf.Tensor>(dy: T): T {
    const y = this.output;
    if (y === undefined) throw new Error('tanh backward called without a training forward');
    const dx = tf.tidy(() => tf.mul(dy, tf.sub(1, tf.square(y)))) as T;
    this.release();
    return dx;
  }

  release(): void {
    this.output?.dispose();
    this.output = undefined;
  }
}
