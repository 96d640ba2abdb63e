import * as tf from '@tensorflow/tfjs-core';
import { biasedVariance, emptyMoments, type Moments } from '../moments.js';
import { accumulateGrad, type GradMap, type ParamStore } from '../params.js';
import { matMulOrZeros, sumOrZeros } from './empty-safe.js';

/** Options of a conditional batch-norm layer. */
export interface CbnOptions {
  /**
   * Weight of the old value in the moving-average update (Keras convention, default 0.99):
   * moving = moving·momentum + batch·(1 − momentum). PyTorch's momentum 0.1 is the weight of the new value.
   */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-3, as in Keras). */
  epsilon?: number;
}

interface ForwardCache {
  xHat: tf.Tensor4D; // [N,H,W,C]
  invStd: tf.Tensor1D; // [C]
  gammaRows: tf.Tensor4D; // [N,1,1,C]
  oneHot: tf.Tensor2D; // [N,K]
  count: number; // values per channel that the statistics came from (global in sync mode)
}

/**
 * Conditional batch normalization: per-class affine rows applied to batch-normalized activations.
 *
 *   y = γ[label]·(x − μ)/√(σ² + ε) + β[label]
 *
 * μ and σ² are per-channel statistics over (N,H,W); σ² is the biased variance. γ and β are tables of shape
 * [numClasses, C], initialised to 1 and 0; the rows of each sample are selected with a one-hot matMul and
 * broadcast as [N,1,1,C]. Moving mean starts at 0 and moving variance at 1; the moving variance is updated
 * with the biased variance of the global batch, as Keras does (PyTorch uses the unbiased one).
 *
 * The layer splits its passes at the points where statistics cross replicas, so a caller can run an
 * asynchronous reduction between the steps (tf.grads cannot pause for one):
 *   forward:  localMoments(x) → [reduce] → normalize(x, globalMoments)
 *   backward: localGradSums(dy) → [reduce Σ(dy·γ), Σ(dy·γ·x̂)] → inputGrad(sums)
 */
export class ConditionalBatchNorm {
  readonly gamma: tf.Variable; // [K,C]
  readonly beta: tf.Variable; // [K,C]
  readonly movingMean: tf.Variable; // [C]
  readonly movingVariance: tf.Variable; // [C]
  readonly momentum: number;
  readonly epsilon: number;
  private cache: ForwardCache | undefined;
  private dxHatCache: tf.Tensor4D | undefined; // [N,H,W,C] dy·γ, kept between the two backward steps
  /** Moments of this shard from the last training forward (local mode merges them once per step). */
  lastLocalMoments: Moments;

  constructor(
    readonly name: string,
    store: ParamStore,
    readonly numClasses: number,
    readonly channels: number,
    options: CbnOptions = {},
  ) {
    this.momentum = options.momentum ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-3;
    this.gamma = store.create(`${name}/gamma`, () => tf.ones([numClasses, channels]));
    this.beta = store.create(`${name}/beta`, () => tf.zeros([numClasses, channels]));
    this.movingMean = store.createBuffer(`${name}/moving_mean`, () => tf.zeros([channels]));
    this.movingVariance = store.createBuffer(`${name}/moving_variance`, () => tf.ones([channels]));
    this.lastLocalMoments = emptyMoments(channels);
  }

  /** Computes this shard's per-channel (count, mean, M2) over (N,H,W). Reads values back to the host. */
  localMoments(x: tf.Tensor4D): Moments {
    const [n, h, w, c] = x.shape;
    const count = n * h * w;
    if (count === 0) return emptyMoments(c);

    const [meanData, m2Data] = tf.tidy(() => {
      const mean = tf.mean(x, [0, 1, 2]); // [N,H,W,C] -> [C]
      const m2 = tf.sum(tf.square(tf.sub(x, mean)), [0, 1, 2]); // [C]
      return [mean, m2];
    });
    const moments = {
      count,
      mean: Float64Array.from(meanData.dataSync()),
      m2: Float64Array.from(m2Data.dataSync()),
    };
    meanData.dispose();
    m2Data.dispose();
    this.lastLocalMoments = moments;
    return moments;
  }

  /**
   * Normalizes with the given statistics (global in sync mode, the shard's own in local mode) and caches
   * what the backward needs. `oneHot` is [N,K].
   */
  normalize(x: tf.Tensor4D, stats: Moments, oneHot: tf.Tensor2D): tf.Tensor4D {
    this.disposeCache();
    const variance = biasedVariance(stats);
    const [n] = x.shape;

    const invStd = tf.tidy(() =>
      tf.rsqrt(tf.add(tf.tensor1d(toFloat32(variance)), this.epsilon)),
    ) as tf.Tensor1D;
    const xHat = tf.tidy(() => tf.mul(tf.sub(x, tf.tensor1d(toFloat32(stats.mean))), invStd)) as tf.Tensor4D;
    const gammaRows = tf.tidy(() =>
      tf.reshape(matMulOrZeros(oneHot, this.gamma as tf.Tensor2D), [n, 1, 1, this.channels]),
    ) as tf.Tensor4D;
    const y = tf.tidy(() => {
      const betaRows = tf.reshape(matMulOrZeros(oneHot, this.beta as tf.Tensor2D), [n, 1, 1, this.channels]); // [N,K]x[K,C] -> [N,1,1,C]
      return tf.add(tf.mul(gammaRows, xHat), betaRows);
    }) as tf.Tensor4D;

    this.cache = { xHat, invStd, gammaRows, oneHot: oneHot.clone(), count: stats.count };
    return y;
  }

  /** Normalizes with the moving statistics (inference): no cache, no reduction. */
  normalizeInference(x: tf.Tensor4D, oneHot: tf.Tensor2D): tf.Tensor4D {
    const [n] = x.shape;
    return tf.tidy(() => {
      const invStd = tf.rsqrt(tf.add(this.movingVariance, this.epsilon));
      const xHat = tf.mul(tf.sub(x, this.movingMean), invStd);
      const gammaRows = tf.reshape(tf.matMul(oneHot, this.gamma), [n, 1, 1, this.channels]);
      const betaRows = tf.reshape(tf.matMul(oneHot, this.beta), [n, 1, 1, this.channels]);
      return tf.add(tf.mul(gammaRows, xHat), betaRows);
    });
  }

  /**
   * Updates the moving statistics from global moments (Keras convention, biased variance):
   * moving = moving·momentum + batch·(1 − momentum).
   */
  updateMovingStats(global: Moments): void {
    if (global.count === 0) return;
    const variance = biasedVariance(global);
    tf.tidy(() => {
      const keep = this.momentum;
      this.movingMean.assign(
        tf.add(tf.mul(this.movingMean, keep), tf.mul(tf.tensor1d(toFloat32(global.mean)), 1 - keep)),
      );
      this.movingVariance.assign(
        tf.add(tf.mul(this.movingVariance, keep), tf.mul(tf.tensor1d(toFloat32(variance)), 1 - keep)),
      );
    });
  }

  /**
   * First half of the backward: accumulates dγ and dβ into `grads` and returns this shard's per-channel
   * sums Σ(dy·γ) and Σ(dy·γ·x̂) over (N,H,W), packed as sumDy[C], sumDyXHat[C] -> [2C] float64.
   */
  localGradSums(dy: tf.Tensor4D, grads: GradMap | undefined): Float64Array {
    const cache = this.requireCache();
    if (grads !== undefined) this.accumulateAffineGrads(dy, cache, grads);

    this.dxHatCache?.dispose();
    this.dxHatCache = tf.tidy(() => tf.mul(dy, cache.gammaRows)) as tf.Tensor4D; // [N,H,W,C]
    const out = new Float64Array(2 * this.channels);
    if (dy.shape[0] === 0) return out;

    const [sumDy, sumDyXHat] = tf.tidy(() => [
      tf.sum(this.dxHatCache!, [0, 1, 2]), // [N,H,W,C] -> [C]
      tf.sum(tf.mul(this.dxHatCache!, cache.xHat), [0, 1, 2]), // [C]
    ]);
    out.set(sumDy!.dataSync(), 0);
    out.set(sumDyXHat!.dataSync(), this.channels);
    sumDy!.dispose();
    sumDyXHat!.dispose();
    return out;
  }

  /**
   * Second half of the backward, given the sums over the same population as the statistics
   * (all replicas in sync mode):
   *   dx = invStd · (dy·γ − Σ(dy·γ)/M − x̂ · Σ(dy·γ·x̂)/M),  M = count per channel.
   */
  inputGrad(sums: Float64Array): tf.Tensor4D {
    const cache = this.requireCache();
    const dxHat = this.dxHatCache;
    if (dxHat === undefined) throw new Error(`${this.name}: inputGrad called before localGradSums`);

    const count = Math.max(cache.count, 1);
    const dx = tf.tidy(() => {
      const meanDy = tf.tensor1d(toFloat32(sums.subarray(0, this.channels).map((v) => v / count)));
      const meanDyXHat = tf.tensor1d(toFloat32(sums.subarray(this.channels).map((v) => v / count)));
      return tf.mul(tf.sub(tf.sub(dxHat, meanDy), tf.mul(cache.xHat, meanDyXHat)), cache.invStd);
    }) as tf.Tensor4D;
    this.disposeCache();
    return dx;
  }

  private accumulateAffineGrads(dy: tf.Tensor4D, cache: ForwardCache, grads: GradMap): void {
    const [dGamma, dBeta] = tf.tidy(() => {
      const dyXHatPerSample = sumOrZeros(tf.mul(dy, cache.xHat), [1, 2]) as tf.Tensor2D; // [N,H,W,C] -> [N,C]
      const dyPerSample = sumOrZeros(dy, [1, 2]) as tf.Tensor2D; // [N,C]
      // onehotᵀ·per-sample sums: [K,N]x[N,C] -> [K,C]
      return [
        matMulOrZeros(cache.oneHot, dyXHatPerSample, true),
        matMulOrZeros(cache.oneHot, dyPerSample, true),
      ];
    });
    accumulateGrad(grads, `${this.name}/gamma`, dGamma!);
    accumulateGrad(grads, `${this.name}/beta`, dBeta!);
  }

  private requireCache(): ForwardCache {
    if (this.cache === undefined) throw new Error(`${this.name}: backward called without a training forward`);
    return this.cache;
  }

  /** Releases the tensors kept for the backward pass. */
  disposeCache(): void {
    if (this.cache !== undefined) {
      this.cache.xHat.dispose();
      this.cache.invStd.dispose();
      this.cache.gammaRows.dispose();
      this.cache.oneHot.dispose();
      this.cache = undefined;
    }
    this.dxHatCache?.dispose();
    this.dxHatCache = undefined;
  }
}

function toFloat32(values: Float64Array): Float32Array {
  return Float32Array.from(values);
}
