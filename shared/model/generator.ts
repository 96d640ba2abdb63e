import * as tf from '@tensorflow/tfjs-core';
import { GenResBlock } from './gen-resblock.js';
import type { ConditionalBatchNorm, CbnOptions } from './layers/cbn.js';
import { Conv2d } from './layers/conv2d.js';
import { Dense } from './layers/dense.js';
import { Tanh } from './layers/elementwise.js';
import { ParamStore, type GradMap } from './params.js';
import type { PassContext } from './pass-context.js';
import type { ModelPreset } from './presets.js';

/**
 * Class-conditional generator:
 *   [z, onehot(y)] [N,Z+K] → dense → [N,4,4,C] → up-ResBlocks with CBN (4→8→16→32) → conv3×3 → tanh → [N,32,32,1]
 *
 * `forward` and `backward` are async because every CBN layer may pause for a cross-replica reduction.
 */
export class Generator {
  readonly store: ParamStore;
  private readonly dense: Dense;
  private readonly blocks: GenResBlock[];
  private readonly outConv: Conv2d;
  private readonly tanh = new Tanh();

  constructor(
    readonly preset: ModelPreset,
    seed: number,
    scope = '',
    cbnOptions: CbnOptions = {},
  ) {
    this.store = new ParamStore(scope, seed * 2 + 1);
    const { zDim, numClasses, genBaseChannels: base } = preset;
    this.dense = new Dense('G/dense', this.store, zDim + numClasses, 16 * base);

    let inChannels = base;
    this.blocks = preset.genBlockChannels.map((outChannels, i) => {
      const block = new GenResBlock(
        `G/block${i}`,
        this.store,
        numClasses,
        inChannels,
        outChannels,
        true,
        cbnOptions,
      );
      inChannels = outChannels;
      return block;
    });
    this.outConv = new Conv2d('G/out_conv', this.store, 3, inChannels, preset.imageChannels);
  }

  /** Returns all CBN layers in a fixed order. */
  batchNorms(): ConditionalBatchNorm[] {
    return this.blocks.flatMap((block) => block.batchNorms());
  }

  /** z [N,Z] with ctx.oneHot [N,K] -> images [N,32,32,1] in [-1,1]. */
  async forward(z: tf.Tensor2D, ctx: PassContext): Promise<tf.Tensor4D> {
    const train = ctx.bn !== 'inference';
    const [n] = z.shape;
    const input = tf.concat([z, ctx.oneHot], 1) as tf.Tensor2D; // [N,Z] ++ [N,K] -> [N,Z+K]
    const flat = this.dense.forward(input, train);
    input.dispose();
    let h = tf.reshape(flat, [n, 4, 4, this.preset.genBaseChannels]) as tf.Tensor4D; // [N,16C] -> [N,4,4,C]
    flat.dispose();

    for (const block of this.blocks) {
      const next = await block.forward(h, ctx);
      h.dispose();
      h = next;
    }
    const logits = this.outConv.forward(h, train);
    h.dispose();
    const images = this.tanh.forward(logits, train);
    logits.dispose();
    return images;
  }

  /** Accumulates gradients of all G parameters for d images [N,32,32,1] into `grads`. */
  async backward(dImages: tf.Tensor4D, ctx: PassContext, grads: GradMap): Promise<void> {
    const dLogits = this.tanh.backward(dImages);
    let dh = this.outConv.backward(dLogits, grads, true)!;
    dLogits.dispose();

    for (const block of [...this.blocks].reverse()) {
      const next = await block.backward(dh, ctx, grads);
      dh.dispose();
      dh = next;
    }
    const dFlat = tf.reshape(dh, [dh.shape[0], 16 * this.preset.genBaseChannels]) as tf.Tensor2D; // [N,4,4,C] -> [N,16C]
    dh.dispose();
    this.dense.backward(dFlat, grads, false);
    dFlat.dispose();
  }

  /** Releases everything kept for a backward that will not run (the D phase uses G forward only). */
  release(): void {
    this.dense.release();
    for (const block of this.blocks) block.release();
    this.outConv.release();
    this.tanh.release();
  }

  dispose(): void {
    this.release();
    this.store.dispose();
  }
}
