import * as tf from '@tensorflow/tfjs-core';
import { accumulateGrad, type GradMap, type ParamStore } from '../params.js';
import { matMulOrZeros, sumOrZeros } from './empty-safe.js';

/** A fully connected layer y = x·W + b with a hand-written backward. */
export class Dense {
  readonly kernel: tf.Variable; // [in,out]
  readonly bias: tf.Variable; // [out]
  private input: tf.Tensor2D | undefined; // [N,in]

  constructor(
    readonly name: string,
    store: ParamStore,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    this.kernel = store.glorotUniform(`${name}/kernel`, [inFeatures, outFeatures], inFeatures, outFeatures);
    this.bias = store.create(`${name}/bias`, () => tf.zeros([outFeatures]));
  }

  /** [N,in] -> [N,out]. */
  forward(x: tf.Tensor2D, keepForBackward: boolean): tf.Tensor2D {
    this.release();
    if (keepForBackward) this.input = x.clone();
    return tf.tidy(() => tf.add(matMulOrZeros(x, this.kernel as tf.Tensor2D), this.bias));
  }

  /** Accumulates dW = xᵀ·dy and db = Σ_N dy; returns dx = dy·Wᵀ when `needInputGrad`. */
  backward(dy: tf.Tensor2D, grads: GradMap | undefined, needInputGrad: boolean): tf.Tensor2D | undefined {
    const x = this.input;
    if (x === undefined) throw new Error(`${this.name}: backward called without a training forward`);
    if (grads !== undefined) {
      accumulateGrad(grads, `${this.name}/kernel`, matMulOrZeros(x, dy, true, false)); // [in,N]x[N,out] -> [in,out]
      accumulateGrad(grads, `${this.name}/bias`, sumOrZeros(dy, [0])); // [N,out] -> [out]
    }
    const dx = needInputGrad ? matMulOrZeros(dy, this.kernel as tf.Tensor2D, false, true) : undefined;
    this.release();
    return dx;
  }

  release(): void {
    this.input?.dispose();
    this.input = undefined;
  }
}
