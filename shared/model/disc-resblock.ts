import * as tf from '@tensorflow/tfjs-core';
import { Conv2d } from './layers/conv2d.js';
import { LeakyRelu } from './layers/elementwise.js';
import { avgPool2x, avgPool2xBackward } from './layers/resample.js';
import type { GradMap, ParamStore } from './params.js';

/**
 * A discriminator ResBlock without normalization:
 *
 *   x ─┬─ conv3×3 → leaky_relu(0.2) → conv3×3 → leaky_relu(0.2) ─┐
 *      └─ identity, or conv1×1 when channels change ─────────────+─ (avg-pool 2×2?) ─ out
 */
export class DiscResBlock {
  private readonly conv1: Conv2d;
  private readonly act1 = new LeakyRelu();
  private readonly conv2: Conv2d;
  private readonly act2 = new LeakyRelu();
  private readonly skipConv: Conv2d | undefined;

  constructor(
    readonly name: string,
    store: ParamStore,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly downsample: boolean,
  ) {
    this.conv1 = new Conv2d(`${name}/conv1`, store, 3, inChannels, outChannels);
    this.conv2 = new Conv2d(`${name}/conv2`, store, 3, outChannels, outChannels);
    if (inChannels !== outChannels)
      this.skipConv = new Conv2d(`${name}/skip_conv`, store, 1, inChannels, outChannels);
  }

  /** [N,H,W,Cin] -> [N,H',W',Cout], H' = H/2 when downsampling. */
  forward(x: tf.Tensor4D, keepForBackward: boolean): tf.Tensor4D {
    const h1 = this.conv1.forward(x, keepForBackward);
    const a1 = this.act1.forward(h1, keepForBackward);
    h1.dispose();
    const h2 = this.conv2.forward(a1, keepForBackward);
    a1.dispose();
    const a2 = this.act2.forward(h2, keepForBackward);
    h2.dispose();

    const skip = this.skipConv ? this.skipConv.forward(x, keepForBackward) : x.clone();
    const sum = tf.add(a2, skip) as tf.Tensor4D;
    a2.dispose();
    skip.dispose();
    if (!this.downsample) return sum;
    const out = avgPool2x(sum);
    sum.dispose();
    return out;
  }

  /** Accumulates parameter gradients (when `grads` is given) and returns d input when `needInputGrad`. */
  backward(dOut: tf.Tensor4D, grads: GradMap | undefined, needInputGrad: boolean): tf.Tensor4D | undefined {
    const dSum = this.downsample ? avgPool2xBackward(dOut) : dOut.clone();

    const dh2 = this.act2.backward(dSum);
    const da1 = this.conv2.backward(dh2, grads, true)!;
    dh2.dispose();
    const dh1 = this.act1.backward(da1);
    da1.dispose();
    const dxMain = this.conv1.backward(dh1, grads, needInputGrad);
    dh1.dispose();

    const dxSkip = this.skipConv
      ? this.skipConv.backward(dSum, grads, needInputGrad)
      : needInputGrad
        ? dSum.clone()
        : undefined;
    dSum.dispose();
    if (!needInputGrad) return undefined;

    const dx = tf.add(dxMain!, dxSkip!) as tf.Tensor4D;
    dxMain!.dispose();
    dxSkip!.dispose();
    return dx;
  }

  release(): void {
    for (const layer of [this.conv1, this.conv2, this.act1, this.act2]) layer.release();
    this.skipConv?.release();
  }
}
