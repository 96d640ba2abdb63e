import * as tf from '@tensorflow/tfjs-core';
import type { Collective } from '../collective/collective.js';
import type { JobConfig } from '../config/job.js';
import { fakeLabelFor, noiseFor, type Phase } from '../data/sampler.js';
import { mnistToTensor } from '../data/images.js';
import { Discriminator } from '../model/discriminator.js';
import { Generator } from '../model/generator.js';
import { mergeAllMoments, packMoments, packedMomentsLength, unpackMoments } from '../model/moments.js';
import {
  disposeGrads,
  flattenGrads,
  paramAtFlatIndex,
  unflattenGrads,
  type GradMap,
  type ParamStore,
} from '../model/params.js';
import type { PassContext } from '../model/pass-context.js';
import { PRESETS, type ModelPreset } from '../model/presets.js';
import type { NamedTensor, StepResult } from '../rpc/types.js';
import { Adam } from './adam.js';
import { exportState, importState, stateChecksum, type StateEntries } from './replica-state.js';
import { TimedCollective } from './timed-collective.js';
import { sumOrZeros } from '../model/layers/empty-safe.js';

/** One replica's share of a global batch, as the worker receives it. */
export interface ShardBatch {
  step: number;
  /** Samples in the global batch (all shards). Losses are divided by it. */
  globalBatch: number;
  /** [count,28,28] uint8 MNIST pixels. */
  images: Uint8Array;
  /** [count] class labels. */
  labels: Uint8Array;
  /** [count] position of each sample in the global batch; noise and fake labels are seeded from it. */
  globalIndices: Uint32Array;
  count: number;
}

export interface ReplicaOptions {
  /** Prefix of the tf variable names, so several replicas can share one process (tests). */
  scope?: string;
  /** Architecture to use instead of the job's preset (tests use smaller ones). */
  preset?: ModelPreset;
  /**
   * Fault injection for tests: at this step, this replica's local G gradient gets a NaN before the
   * reduction, as a numerical blow-up on one shard would. Workers read it from `CBN_TEST_NAN_GRAD_STEP`.
   */
  nanGradientAtStep?: number;
  /**
   * Fault injection for tests: after this step, this replica nudges one parameter, as a replica that
   * silently diverged would. Workers read it from `CBN_TEST_PERTURB_STEP`.
   */
  perturbParamsAtStep?: number;
}

/** Raised when the reduced gradient contains NaN or Inf. Every replica checks the same buffer, so all of them raise it. */
export class NonFiniteGradientError extends Error {
  override name = 'NonFiniteGradientError';
}

/**
 * One data-parallel replica of the class-conditional GAN: full copies of G, D and both Adam optimizers.
 *
 * A step runs the D phase, then the G phase. Every replica issues the same reductions in the same order
 * (ids `<jobId>/s<step>/<phase>/...`), even with an empty shard. Each replica's losses are its shard's sums
 * divided by the global batch size, so the summed gradient is the gradient of the global mean loss, and
 * N replicas reproduce one replica on the whole batch.
 */
export class GanReplica {
  readonly generator: Generator;
  readonly discriminator: Discriminator;
  private readonly optimizerG: Adam;
  private readonly optimizerD: Adam;
  private readonly collective: TimedCollective;
  private readonly nanGradientAtStep: number | undefined;
  private readonly perturbParamsAtStep: number | undefined;

  constructor(
    readonly jobId: string,
    readonly job: JobConfig,
    collective: Collective,
    options: ReplicaOptions = {},
  ) {
    const preset = options.preset ?? PRESETS[job.preset];
    const scope = options.scope ?? '';
    this.generator = new Generator(preset, job.seed, scope);
    this.discriminator = new Discriminator(preset, job.seed, scope);
    const adam = { learningRate: job.lr, beta1: job.beta1, beta2: job.beta2 };
    this.optimizerG = new Adam(this.generator.store, adam, 'G');
    this.optimizerD = new Adam(this.discriminator.store, adam, 'D');
    this.collective = new TimedCollective(collective);
    this.nanGradientAtStep = options.nanGradientAtStep;
    this.perturbParamsAtStep = options.perturbParamsAtStep;
  }

  /** Runs one D update and one G update on this replica's shard. */
  async trainStep(batch: ShardBatch): Promise<StepResult> {
    const start = performance.now();
    this.collective.takeElapsedMs();
    const prefix = `${this.jobId}/s${batch.step}`;

    const lossD = await this.discriminatorPhase(batch, prefix);
    const lossG = await this.generatorPhase(batch, prefix);
    if (this.job.bn === 'local') await this.mergeMovingStats(`${prefix}/G/moving-stats`);
    if (batch.step === this.perturbParamsAtStep) {
      const bias = this.generator.store.get('G/out_conv/bias');
      tf.tidy(() => bias.assign(tf.add(bias, 1e-3)));
    }

    const totalMs = performance.now() - start;
    const reduceMs = this.collective.takeElapsedMs();
    const result: StepResult = {
      losses: { lossD, lossG },
      timingsMs: { compute: totalMs - reduceMs, reduce: reduceMs },
    };
    const every = this.job.checkParamsEvery;
    if (every > 0 && (batch.step + 1) % every === 0) result.paramChecksum = this.checksum();
    return result;
  }

  // ---- D phase: hinge loss Σ relu(1 − D(x)) + Σ relu(1 + D(G(z))), over the global batch size

  private async discriminatorPhase(batch: ShardBatch, prefix: string): Promise<number> {
    const n = batch.count;
    const scale = 1 / batch.globalBatch;
    const fake = await this.generateFake(batch, 'D', { opPrefix: `${prefix}/D/G`, updateMovingStats: false });

    const real = mnistToTensor(batch.images, n); // [n,32,32,1]
    const images = tf.concat([real, fake.images]) as tf.Tensor4D; // [2n,32,32,1]
    const realOneHot = this.oneHot(Int32Array.from(batch.labels));
    const oneHot = tf.concat([realOneHot, fake.oneHot]) as tf.Tensor2D; // [2n,K]
    tf.dispose([real, fake.images, fake.oneHot, realOneHot]);

    const logits = this.discriminator.forward(images, oneHot, true); // [2n]
    tf.dispose([images, oneHot]);
    const { loss, dLogits } = tf.tidy(() => {
      const realLogits = tf.slice(logits, 0, n);
      const fakeLogits = tf.slice(logits, n, n);
      const realMargin = tf.sub(1, realLogits);
      const fakeMargin = tf.add(1, fakeLogits);
      const lossSum = tf.add(sumOrZeros(tf.relu(realMargin), [0]), sumOrZeros(tf.relu(fakeMargin), [0]));
      const dReal = tf.mul(tf.cast(tf.greater(realMargin, 0), 'float32'), -scale);
      const dFake = tf.mul(tf.cast(tf.greater(fakeMargin, 0), 'float32'), scale);
      return { loss: tf.mul(lossSum, scale), dLogits: tf.concat([dReal, dFake]) as tf.Tensor1D };
    });
    logits.dispose();

    const grads: GradMap = new Map();
    this.discriminator.backward(dLogits, grads, false);
    dLogits.dispose();
    await this.applyReducedGrads(
      this.discriminator.store,
      grads,
      this.optimizerD,
      `${prefix}/D/grad`,
      batch.step,
    );
    return readScalar(loss);
  }

  // ---- G phase: loss −Σ D(G(z)) over the global batch size

  private async generatorPhase(batch: ShardBatch, prefix: string): Promise<number> {
    const scale = 1 / batch.globalBatch;
    const ctx = this.passContext(batch, 'G', {
      opPrefix: `${prefix}/G/G`,
      updateMovingStats: this.job.bn === 'sync',
    });
    const z = this.noise(batch, 'G');
    const images = await this.generator.forward(z, ctx);
    z.dispose();

    const logits = this.discriminator.forward(images, ctx.oneHot, true); // [n]
    images.dispose();
    const loss = tf.tidy(() => tf.mul(sumOrZeros(logits, [0]), -scale));
    const dLogits = tf.fill([batch.count], -scale) as tf.Tensor1D;
    logits.dispose();
    const dImages = this.discriminator.backward(dLogits, undefined, true)!;
    dLogits.dispose();

    const grads: GradMap = new Map();
    await this.generator.backward(dImages, ctx, grads);
    tf.dispose([dImages, ctx.oneHot]);
    await this.applyReducedGrads(
      this.generator.store,
      grads,
      this.optimizerG,
      `${prefix}/G/grad`,
      batch.step,
    );
    return readScalar(loss);
  }

  private async generateFake(
    batch: ShardBatch,
    phase: Phase,
    options: { opPrefix: string; updateMovingStats: boolean },
  ): Promise<{ images: tf.Tensor4D; oneHot: tf.Tensor2D }> {
    const ctx = this.passContext(batch, phase, options);
    const z = this.noise(batch, phase);
    const images = await this.generator.forward(z, ctx);
    this.generator.release();
    z.dispose();
    return { images, oneHot: ctx.oneHot };
  }

  /**
   * Sums the gradients of all replicas in one fused buffer, checks it, and applies Adam. The check runs on
   * the reduced buffer, which is identical on every replica, so all of them reject the same step.
   */
  private async applyReducedGrads(
    store: ParamStore,
    grads: GradMap,
    optimizer: Adam,
    opId: string,
    step: number,
  ): Promise<void> {
    const flat = flattenGrads(store, grads); // every parameter in store order -> [P] float32
    disposeGrads(grads);
    if (step === this.nanGradientAtStep && optimizer === this.optimizerG) flat[flat.length - 1] = Number.NaN;
    const reduced = await this.collective.allReduceSum(opId, flat);

    const bad = reduced.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new NonFiniteGradientError(
        `non-finite gradient at step ${step} in parameter ${paramAtFlatIndex(store, bad)} ` +
          `(value ${reduced[bad]}); the step was rejected on every worker. Lower --lr or check the input data`,
      );
    }
    const summed = unflattenGrads(store, reduced);
    optimizer.apply(summed);
    disposeGrads(summed);
  }

  /**
   * Local BN mode normalizes with shard statistics, but the moving statistics must still describe the whole
   * batch on every replica. One gather of every layer's shard moments per step merges them in rank order.
   * Payload per rank: for each CBN layer, count[1], mean[C], m2[C] -> Σ(2C+1) float64.
   */
  private async mergeMovingStats(opId: string): Promise<void> {
    const layers = this.generator.batchNorms();
    const length = layers.reduce((n, bn) => n + packedMomentsLength(bn.channels), 0);
    const packed = new Float64Array(length);
    let offset = 0;
    for (const bn of layers) {
      packMoments(bn.lastLocalMoments, packed, offset);
      offset += packedMomentsLength(bn.channels);
    }

    const parts = await this.collective.allGather(opId, packed);
    offset = 0;
    for (const bn of layers) {
      const perRank = parts.map((part) => unpackMoments(part, offset, bn.channels));
      bn.updateMovingStats(mergeAllMoments(perRank, bn.channels));
      offset += packedMomentsLength(bn.channels);
    }
  }

  private passContext(
    batch: ShardBatch,
    phase: Phase,
    options: { opPrefix: string; updateMovingStats: boolean },
  ): PassContext {
    const labels = new Int32Array(batch.count);
    for (let i = 0; i < batch.count; i++) {
      labels[i] = fakeLabelFor(
        this.job.seed,
        batch.step,
        batch.globalIndices[i]!,
        this.generator.preset.numClasses,
        phase,
      );
    }
    return {
      bn: this.job.bn,
      collective: this.collective,
      oneHot: this.oneHot(labels),
      paramGrads: true,
      ...options,
    };
  }

  /** z [count, zDim] from (seed, step, global index, phase). */
  private noise(batch: ShardBatch, phase: Phase): tf.Tensor2D {
    const zDim = this.generator.preset.zDim;
    const values = new Float32Array(batch.count * zDim);
    for (let i = 0; i < batch.count; i++) {
      values.set(noiseFor(this.job.seed, batch.step, batch.globalIndices[i]!, zDim, phase), i * zDim);
    }
    return tf.tensor2d(values, [batch.count, zDim]);
  }

  private oneHot(labels: Int32Array): tf.Tensor2D {
    const numClasses = this.generator.preset.numClasses;
    return tf.tidy(() =>
      tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), 'float32'),
    ) as tf.Tensor2D;
  }

  // ---- state

  /** Lists every variable of the replica by checkpoint name: G and D parameters, moving statistics, Adam slots. */
  stateEntries(): StateEntries {
    return [
      ...this.generator.store.entries(),
      ...this.generator.store.bufferEntries(),
      ...this.discriminator.store.entries(),
      ...this.optimizerG.slots(),
      ...this.optimizerD.slots(),
    ];
  }

  exportState(): NamedTensor[] {
    return exportState(this.stateEntries());
  }

  importState(tensors: readonly NamedTensor[]): void {
    importState(this.stateEntries(), tensors);
  }

  checksum(): number {
    return stateChecksum(this.stateEntries());
  }

  dispose(): void {
    this.generator.dispose();
    this.discriminator.dispose();
    this.optimizerG.dispose();
    this.optimizerD.dispose();
  }
}

function readScalar(t: tf.Tensor): number {
  const value = t.dataSync()[0] ?? 0;
  t.dispose();
  return value;
}
