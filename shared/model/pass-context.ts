import type * as tf from '@tensorflow/tfjs-core';
import type { Collective } from '../collective/collective.js';

/** Source of the statistics batch normalization uses. */
export type BnMode =
  /** Global batch statistics across all replicas, in forward and backward (like PyTorch SyncBatchNorm). */
  | 'sync'
  /** Each replica's own shard statistics; no reduction inside the pass. */
  | 'local'
  /** Moving mean and variance; no reduction, no update. */
  | 'inference';

/**
 * Everything one forward/backward pass of a model needs besides its input. A pass caches the values its
 * backward needs inside the modules, so one context belongs to one forward and its matching backward.
 */
export interface PassContext {
  bn: BnMode;
  collective: Collective;
  /**
   * Prefix of every reduction id issued in this pass, unique within the job, e.g. `job7/s12/D-phase/G`.
   * All replicas build the same prefix, so their reductions pair up.
   */
  opPrefix: string;
  /** One-hot labels of the batch, [N,K] float32, used to pick per-class rows (a matMul, not a gather). */
  oneHot: tf.Tensor2D;
  /** Update the BN moving statistics from this pass's global moments (sync mode only). */
  updateMovingStats: boolean;
  /** Compute parameter gradients in backward (false when only the input gradient is needed). */
  paramGrads: boolean;
}
