import * as tf from '@tensorflow/tfjs-core';
import { accumulateGrad, type GradMap, type ParamStore } from '../params.js';
import { conv2dBackpropFilter, conv2dBackpropInput } from '../../kernels/conv-backprop.js';
import { sumOrZeros } from './empty-safe.js';

/**
 * A stride-1 convolution with 'same' padding ("k×k conv" in the model descriptions) and an optional bias,
 * with a hand-written backward that calls the project's convolution-gradient kernels. A convolution that
 * feeds batch norm has no bias, because the normalization subtracts it again (its gradient is zero).
 */
export class Conv2d {
  readonly kernel: tf.Variable; // [k,k,Cin,Cout]
  readonly bias: tf.Variable | undefined; // [Cout]
  private input: tf.Tensor4D | undefined; // [N,H,W,Cin], kept for the filter gradient

  constructor(
    readonly name: string,
    store: ParamStore,
    readonly kernelSize: number,
    readonly inChannels: number,
    readonly outChannels: number,
    useBias = true,
  ) {
    const receptive = kernelSize * kernelSize;
    this.kernel = store.glorotUniform(
      `${name}/kernel`,
      [kernelSize, kernelSize, inChannels, outChannels],
      receptive * inChannels,
      receptive * outChannels,
    );
    if (useBias) this.bias = store.create(`${name}/bias`, () => tf.zeros([outChannels]));
  }

  /** [N,H,W,Cin] -> [N,H,W,Cout]. Keeps the input for backward when `keepForBackward`. */
  forward(x: tf.Tensor4D, keepForBackward: boolean): tf.Tensor4D {
    this.release();
    if (keepForBackward) this.input = x.clone();
    const [n, h, w] = x.shape;
    if (n === 0) return tf.zeros([0, h, w, this.outChannels]);
    return tf.tidy(() => {
      const y = tf.conv2d(x, this.kernel as tf.Tensor4D, 1, 'same');
      return this.bias === undefined ? y : tf.add(y, this.bias);
    });
  }

  /**
   * Accumulates d kernel = conv2dBackpropFilter(x, dy) and d bias = Σ_{N,H,W} dy (when present) into `grads` (when given)
   * and returns dx, or undefined when `needInputGrad` is false.
   */
  backward(dy: tf.Tensor4D, grads: GradMap | undefined, needInputGrad: boolean): tf.Tensor4D | undefined {
    const x = this.input;
    if (x === undefined) throw new Error(`${this.name}: backward called without a training forward`);
    const empty = x.shape[0] === 0;

    if (grads !== undefined) {
      const dKernel = empty
        ? tf.zerosLike(this.kernel)
        : conv2dBackpropFilter(x, dy, this.kernel.shape as [number, number, number, number], 1, 'same');
      accumulateGrad(grads, `${this.name}/kernel`, dKernel);
      if (this.bias !== undefined) accumulateGrad(grads, `${this.name}/bias`, sumOrZeros(dy, [0, 1, 2])); // -> [Cout]
    }

    let dx: tf.Tensor4D | undefined;
    if (needInputGrad) {
      dx = empty
        ? tf.zeros(x.shape)
        : conv2dBackpropInput(x.shape, dy, this.kernel as tf.Tensor4D, 1, 'same');
    }
    this.release();
    return dx;
  }

  /** Releases the kept input. */
  release(): void {
    this.input?.dispose();
    this.input = undefined;
  }
}
