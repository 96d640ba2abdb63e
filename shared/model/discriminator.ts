import * as tf from '@tensorflow/tfjs-core';
import { DiscResBlock } from './disc-resblock.js';
import { Dense } from './layers/dense.js';
import { ParamStore, accumulateGrad, type GradMap } from './params.js';
import type { ModelPreset } from './presets.js';
import { matMulOrZeros, sumOrZeros } from './layers/empty-safe.js';

/**
 * Projection discriminator:
 *   x [N,32,32,1] → ResBlocks (32→16→8→4, no BN) → Σ over H,W → h [N,F]
 *   logit = h·w + b + ⟨embed[y], h⟩                    (Miyato & Koyama, cGANs with projection discriminator)
 * The class embedding row is selected with a one-hot matMul.
 */
export class Discriminator {
  readonly store: ParamStore;
  private readonly blocks: DiscResBlock[];
  private readonly head: Dense;
  private readonly embedding: tf.Variable; // [K,F]
  private cache: { features: tf.Tensor2D; oneHot: tf.Tensor2D; spatial: number[] } | undefined;

  constructor(
    readonly preset: ModelPreset,
    seed: number,
    scope = '',
  ) {
    this.store = new ParamStore(scope, seed * 2 + 2);
    let inChannels = preset.imageChannels;
    this.blocks = preset.discBlockChannels.map((outChannels, i) => {
      const block = new DiscResBlock(`D/block${i}`, this.store, inChannels, outChannels, i < 3);
      inChannels = outChannels;
      return block;
    });
    this.head = new Dense('D/head', this.store, inChannels, 1);
    this.embedding = this.store.glorotUniform(
      'D/embedding',
      [preset.numClasses, inChannels],
      preset.numClasses,
      inChannels,
    );
  }

  /** images [N,32,32,1], oneHot [N,K] -> logits [N]. */
  forward(images: tf.Tensor4D, oneHot: tf.Tensor2D, keepForBackward: boolean): tf.Tensor1D {
    let h = images.clone();
    for (const block of this.blocks) {
      const next = block.forward(h, keepForBackward);
      h.dispose();
      h = next;
    }
    const features = sumOrZeros(h, [1, 2]) as tf.Tensor2D; // [N,H,W,F] -> [N,F]
    const spatial = h.shape;
    h.dispose();

    const linear = this.head.forward(features, keepForBackward); // [N,1]
    const logits = tf.tidy(() => {
      const projection = sumOrZeros(
        tf.mul(features, matMulOrZeros(oneHot, this.embedding as tf.Tensor2D)),
        [1],
      ); // [N,F]·[N,F] -> [N]
      return tf.add(tf.reshape(linear, [images.shape[0]]), projection); // [N,1] -> [N]
    }) as tf.Tensor1D;
    linear.dispose();

    this.releaseHead();
    if (keepForBackward) this.cache = { features, oneHot: oneHot.clone(), spatial };
    else features.dispose();
    return logits;
  }

  /**
   * Given d logits [N], accumulates parameter gradients into `grads` (when given) and returns d images when
   * `needInputGrad`.
   */
  backward(
    dLogits: tf.Tensor1D,
    grads: GradMap | undefined,
    needInputGrad: boolean,
  ): tf.Tensor4D | undefined {
    const cache = this.cache;
    if (cache === undefined) throw new Error('discriminator backward called without a training forward');
    const [n, hh, ww, f] = cache.spatial as [number, number, number, number];

    const dl = tf.reshape(dLogits, [n, 1]) as tf.Tensor2D; // [N] -> [N,1]
    if (grads !== undefined) {
      // d embedding = onehotᵀ·(dl ⊙ h): [K,N]x[N,F] -> [K,F]
      accumulateGrad(
        grads,
        'D/embedding',
        tf.tidy(() => matMulOrZeros(cache.oneHot, tf.mul(dl, cache.features) as tf.Tensor2D, true, false)),
      );
    }
    const dFromHead = this.head.backward(dl, grads, true)!; // [N,F]
    const dFeatures = tf.tidy(() =>
      tf.add(dFromHead, tf.mul(dl, matMulOrZeros(cache.oneHot, this.embedding as tf.Tensor2D))),
    ) as tf.Tensor2D;
    dFromHead.dispose();
    dl.dispose();
    this.releaseHead();

    // The gradient of a sum over H,W is d features broadcast back: [N,F] -> [N,H,W,F].
    // An add to zeros broadcasts on every backend; broadcastTo would run the slow wasm Tile kernel.
    let dh = tf.tidy(() =>
      tf.add(tf.zeros([n, hh, ww, f]), tf.reshape(dFeatures, [n, 1, 1, f])),
    ) as tf.Tensor4D;
    dFeatures.dispose();
    for (const [i, block] of [...this.blocks.entries()].reverse()) {
      const needDx = i > 0 || needInputGrad;
      const next = block.backward(dh, grads, needDx);
      dh.dispose();
      if (next === undefined) return undefined;
      dh = next;
    }
    return dh;
  }

  private releaseHead(): void {
    if (this.cache === undefined) return;
    this.cache.features.dispose();
    this.cache.oneHot.dispose();
    this.cache = undefined;
  }

  release(): void {
    this.releaseHead();
    this.head.release();
    for (const block of this.blocks) block.release();
  }

  dispose(): void {
    this.release();
    this.store.dispose();
  }
}
