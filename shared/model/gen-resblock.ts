import * as tf from '@tensorflow/tfjs-core';
import { syncGradSums, syncMoments } from './bn-sync.js';
import { ConditionalBatchNorm, type CbnOptions } from './layers/cbn.js';
import { Conv2d } from './layers/conv2d.js';
import { LeakyRelu } from './layers/elementwise.js';
import { upsample2x, upsample2xBackward } from './layers/resample.js';
import type { GradMap, ParamStore } from './params.js';
import type { PassContext } from './pass-context.js';

/**
 * A generator ResBlock with conditional batch norm:
 *
 *   x ─(up 2×?)─┬─ conv3×3 → CBN → leaky_relu(0.2) → conv3×3 → CBN → leaky_relu(0.2) ─┐
 *               └─ identity, or conv1×1 → CBN → leaky_relu(0.2) when channels change ──+─ out
 *
 * Sync points per pass: forward {bn1, bnSkip} then {bn2}; backward {bn2, bnSkip} then {bn1}.
 */
export class GenResBlock {
  private readonly conv1: Conv2d;
  private readonly bn1: ConditionalBatchNorm;
  private readonly act1 = new LeakyRelu();
  private readonly conv2: Conv2d;
  private readonly bn2: ConditionalBatchNorm;
  private readonly act2 = new LeakyRelu();
  private readonly skip: { conv: Conv2d; bn: ConditionalBatchNorm; act: LeakyRelu } | undefined;

  constructor(
    readonly name: string,
    store: ParamStore,
    numClasses: number,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly upsample: boolean,
    cbnOptions: CbnOptions = {},
  ) {
    this.conv1 = new Conv2d(`${name}/conv1`, store, 3, inChannels, outChannels, false);
    this.bn1 = new ConditionalBatchNorm(`${name}/bn1`, store, numClasses, outChannels, cbnOptions);
    this.conv2 = new Conv2d(`${name}/conv2`, store, 3, outChannels, outChannels, false);
    this.bn2 = new ConditionalBatchNorm(`${name}/bn2`, store, numClasses, outChannels, cbnOptions);
    if (inChannels !== outChannels) {
      this.skip = {
        conv: new Conv2d(`${name}/skip_conv`, store, 1, inChannels, outChannels, false),
        bn: new ConditionalBatchNorm(`${name}/skip_bn`, store, numClasses, outChannels, cbnOptions),
        act: new LeakyRelu(),
      };
    }
  }

  /** Returns the block's CBN layers in a fixed order (for moving-statistics sync in local mode). */
  batchNorms(): ConditionalBatchNorm[] {
    return this.skip === undefined ? [this.bn1, this.bn2] : [this.bn1, this.bn2, this.skip.bn];
  }

  /** [N,H,W,Cin] -> [N,H',W',Cout], H' = 2H when upsampling. Pauses at two BN sync points. */
  async forward(input: tf.Tensor4D, ctx: PassContext): Promise<tf.Tensor4D> {
    const train = ctx.bn !== 'inference';
    const x = this.upsample ? upsample2x(input) : input.clone();

    const h1 = this.conv1.forward(x, train);
    const s = this.skip?.conv.forward(x, train);
    const a1 = await this.normalizeAndActivate(ctx, 'fwd1', [
      { bn: this.bn1, x: h1, act: this.act1 },
      ...(this.skip && s ? [{ bn: this.skip.bn, x: s, act: this.skip.act }] : []),
    ]);
    h1.dispose();
    s?.dispose();

    const h2 = this.conv2.forward(a1[0]!, train);
    a1[0]!.dispose();
    const [a2] = await this.normalizeAndActivate(ctx, 'fwd2', [{ bn: this.bn2, x: h2, act: this.act2 }]);
    h2.dispose();

    const skipOut = this.skip ? a1[1]! : x;
    const out = tf.add(a2!, skipOut) as tf.Tensor4D;
    a2!.dispose();
    skipOut.dispose();
    if (this.skip) x.dispose();
    return out;
  }

  /** Given d out, accumulates parameter gradients and returns d input. Pauses at two BN sync points. */
  async backward(dy: tf.Tensor4D, ctx: PassContext, grads: GradMap | undefined): Promise<tf.Tensor4D> {
    const g2 = this.act2.backward(dy);
    const gSkip = this.skip?.act.backward(dy);
    const [dh2, dsNorm] = await syncGradSums(
      ctx,
      `${this.name}/bwd2`,
      [{ bn: this.bn2, dy: g2 }, ...(this.skip && gSkip ? [{ bn: this.skip.bn, dy: gSkip }] : [])],
      grads,
    );
    g2.dispose();
    gSkip?.dispose();

    const da1 = this.conv2.backward(dh2!, grads, true)!;
    dh2!.dispose();
    const g1 = this.act1.backward(da1);
    da1.dispose();
    const [dh1] = await syncGradSums(ctx, `${this.name}/bwd1`, [{ bn: this.bn1, dy: g1 }], grads);
    g1.dispose();

    const dxMain = this.conv1.backward(dh1!, grads, true)!;
    dh1!.dispose();
    const dxSkip = this.skip ? this.skip.conv.backward(dsNorm!, grads, true)! : dy.clone();
    dsNorm?.dispose();
    const dx = tf.add(dxMain, dxSkip) as tf.Tensor4D;
    dxMain.dispose();
    dxSkip.dispose();

    if (!this.upsample) return dx;
    const dInput = upsample2xBackward(dx);
    dx.dispose();
    return dInput;
  }

  private async normalizeAndActivate(
    ctx: PassContext,
    opName: string,
    items: { bn: ConditionalBatchNorm; x: tf.Tensor4D; act: LeakyRelu }[],
  ): Promise<tf.Tensor4D[]> {
    const train = ctx.bn !== 'inference';
    if (!train) {
      return items.map(({ bn, x, act }) =>
        tf.tidy(() => act.forward(bn.normalizeInference(x, ctx.oneHot), false)),
      );
    }
    const stats = await syncMoments(ctx, `${this.name}/${opName}`, items);
    return items.map(({ bn, x, act }, i) => {
      const normalized = bn.normalize(x, stats[i]!, ctx.oneHot);
      const activated = act.forward(normalized, true);
      normalized.dispose();
      return activated;
    });
  }

  /** Releases everything kept for a backward that will not run. */
  release(): void {
    for (const layer of [this.conv1, this.conv2, this.act1, this.act2]) layer.release();
    for (const bn of this.batchNorms()) bn.disposeCache();
    this.skip?.conv.release();
    this.skip?.act.release();
  }
}
