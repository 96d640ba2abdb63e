import { createHash } from 'node:crypto';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { UsageError } from '../runtime/errors.js';

/**
 * Deterministic sampling. Every random draw of the data pipeline is a pure function of the job seed and of
 * where the draw is used (epoch, or step and sample). So N workers reproduce one worker, a re-sharded batch
 * reproduces the original, and a resumed run needs only the step number.
 *
 * Each draw gets its own xoroshiro128+ generator (pure-rand). Its 128-bit state is the first 16 bytes of
 * SHA-256 over a purpose tag and the integer arguments. Hashing keeps streams of neighbouring keys, such as
 * seeds 0 and 1, unrelated, which xoroshiro128+'s own 32-bit seeding does not promise.
 */

/** Phase of a GAN step that makes a draw: the discriminator update ('D') or the generator update ('G'). */
export type Phase = 'D' | 'G';

/** One worker's part of the global batch: positions [start, start + count). */
export interface Shard {
  rank: number;
  start: number;
  count: number;
}

/**
 * Returns the permutation of [0, datasetSize) used in `epoch`, Fisher–Yates shuffled by a generator keyed
 * on (seed, epoch, datasetSize).
 */
export function epochPermutation(seed: number, epoch: number, datasetSize: number): Uint32Array {
  checkNonNegativeInteger('seed', seed);
  checkNonNegativeInteger('epoch', epoch);
  checkPositiveInteger('datasetSize', datasetSize);
  return cachedPermutation(seed, epoch, datasetSize).slice();
}

/**
 * Returns the dataset indices of the global batch of `step` (0-based). The batches read one endless stream
 * that concatenates the epoch permutations, so position p of the stream is `epochPermutation(seed,
 * floor(p / datasetSize))[p % datasetSize]`, and step s covers positions [s * globalBatch, (s + 1) *
 * globalBatch). A batch that crosses an epoch boundary takes the end of one epoch and the start of the next.
 * Every index is therefore drawn exactly once per epoch. When globalBatch exceeds datasetSize, a batch can
 * contain an index more than once.
 */
export function globalBatchIndices(
  seed: number,
  datasetSize: number,
  globalBatch: number,
  step: number,
): Uint32Array {
  checkNonNegativeInteger('seed', seed);
  checkPositiveInteger('datasetSize', datasetSize);
  checkPositiveInteger('globalBatch', globalBatch);
  checkNonNegativeInteger('step', step);
  const first = step * globalBatch;
  if (!Number.isSafeInteger(first + globalBatch)) {
    throw new UsageError(
      `step * globalBatch must be below 2^53, got step ${step} and globalBatch ${globalBatch}`,
    );
  }

  const indices = new Uint32Array(globalBatch); // [globalBatch]
  for (let i = 0; i < globalBatch; i++) {
    const position = first + i;
    const epoch = Math.floor(position / datasetSize);
    indices[i] = cachedPermutation(seed, epoch, datasetSize)[position % datasetSize]!;
  }
  return indices;
}

/**
 * Splits a global batch into one contiguous shard per rank. Sizes differ by at most one and the lowest
 * ranks get the extra samples: 10 over 3 ranks gives 4, 3, 3, and 3 over 4 ranks gives 1, 1, 1, 0. An empty
 * shard is valid, because its rank still joins every reduction with a count of 0.
 */
export function splitShards(globalBatch: number, worldSize: number): Shard[] {
  checkNonNegativeInteger('globalBatch', globalBatch);
  checkPositiveInteger('worldSize', worldSize);

  const base = Math.floor(globalBatch / worldSize);
  const extra = globalBatch % worldSize;
  const shards: Shard[] = [];
  let start = 0;
  for (let rank = 0; rank < worldSize; rank++) {
    const count = base + (rank < extra ? 1 : 0);
    shards.push({ rank, start, count });
    start += count;
  }
  return shards;
}

/**
 * Draws the generator noise of one sample: `dim` standard normal values by the Box–Muller transform,
 * z0 = sqrt(-2 ln u1) cos(2π u2) and z1 = sqrt(-2 ln u1) sin(2π u2) with u1 in (0, 1] and u2 in [0, 1),
 * computed in float64 and rounded to float32. `globalIndex` is the sample's position in the global batch,
 * not in a shard, so every sharding draws the same values. `phase` defaults to 'D'; pass 'G' in the
 * generator update so it draws fresh noise.
 */
export function noiseFor(
  seed: number,
  step: number,
  globalIndex: number,
  dim: number,
  phase: Phase = 'D',
): Float32Array {
  checkPositiveInteger('dim', dim);
  const rng = sampleGenerator('noise', seed, step, globalIndex, phase);

  const noise = new Float32Array(dim); // [dim]
  for (let i = 0; i < dim; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - uniformFloat64(rng)));
    const angle = 2 * Math.PI * uniformFloat64(rng);
    noise[i] = radius * Math.cos(angle);
    if (i + 1 < dim) noise[i + 1] = radius * Math.sin(angle);
  }
  return noise;
}

/**
 * Draws the class label of one fake sample, uniform in [0, numClasses). Like `noiseFor`, it depends only
 * on its arguments, so any sharding draws the same labels. `phase` defaults to 'D'.
 */
export function fakeLabelFor(
  seed: number,
  step: number,
  globalIndex: number,
  numClasses: number,
  phase: Phase = 'D',
): number {
  checkPositiveInteger('numClasses', numClasses);
  const rng = sampleGenerator('fake-label', seed, step, globalIndex, phase);
  return uniformInt(rng, 0, numClasses - 1);
}

/** Draws the noise of a shard's samples, positions [start, start + count) of the global batch. */
export function noiseForShard(
  seed: number,
  step: number,
  shard: Shard,
  dim: number,
  phase: Phase = 'D',
): Float32Array {
  const noise = new Float32Array(shard.count * dim); // [count, dim]
  for (let i = 0; i < shard.count; i++) {
    noise.set(noiseFor(seed, step, shard.start + i, dim, phase), i * dim);
  }
  return noise;
}

/** Draws the fake labels of a shard's samples, positions [start, start + count) of the global batch. */
export function fakeLabelsForShard(
  seed: number,
  step: number,
  shard: Shard,
  numClasses: number,
  phase: Phase = 'D',
): Int32Array {
  const labels = new Int32Array(shard.count); // [count]
  for (let i = 0; i < shard.count; i++) {
    labels[i] = fakeLabelFor(seed, step, shard.start + i, numClasses, phase);
  }
  return labels;
}

// ---- generators

function sampleGenerator(purpose: string, seed: number, step: number, globalIndex: number, phase: Phase) {
  checkNonNegativeInteger('seed', seed);
  checkNonNegativeInteger('step', step);
  checkNonNegativeInteger('globalIndex', globalIndex);
  if (phase !== 'D' && phase !== 'G') {
    throw new UsageError(`phase must be 'D' or 'G', got ${JSON.stringify(phase)}`);
  }
  return keyedGenerator(purpose, seed, step, globalIndex, phase);
}

/** Creates a generator whose state is SHA-256 of the key, so distinct keys give unrelated streams. */
function keyedGenerator(...key: (string | number)[]): RandomGenerator {
  const digest = createHash('sha256')
    .update(`cbn-train/v1/${key.join('/')}`)
    .digest();
  const state = [0, 4, 8, 12].map((offset) => digest.readInt32LE(offset));
  // xoroshiro128+ never leaves the all-zero state; a digest of 16 zero bytes is possible only in theory.
  if (!state.some((word) => word !== 0)) state[0] = 1;
  return xoroshiro128plusFromState(state);
}

// Callers of globalBatchIndices walk through one or two epochs at a time, so two entries avoid reshuffling
// the dataset on every step. Permutations in the cache are never handed out without a copy.
const PERMUTATION_CACHE_SIZE = 2;
const permutationCache = new Map<string, Uint32Array>();

function cachedPermutation(seed: number, epoch: number, datasetSize: number): Uint32Array {
  const key = `${seed}/${epoch}/${datasetSize}`;
  const cached = permutationCache.get(key);
  if (cached !== undefined) return cached;

  const permutation = shuffle(keyedGenerator('epoch', seed, epoch, datasetSize), datasetSize);
  permutationCache.set(key, permutation);
  if (permutationCache.size > PERMUTATION_CACHE_SIZE) {
    permutationCache.delete(permutationCache.keys().next().value!);
  }
  return permutation;
}

// Fisher–Yates: after the loop every permutation of [0, size) is equally likely.
function shuffle(rng: RandomGenerator, size: number): Uint32Array {
  const permutation = new Uint32Array(size);
  for (let i = 0; i < size; i++) permutation[i] = i;
  for (let i = size - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    const swap = permutation[i]!;
    permutation[i] = permutation[j]!;
    permutation[j] = swap;
  }
  return permutation;
}

// ---- argument checks

function checkNonNegativeInteger(name: string, value: number): void {
  if (Number.isSafeInteger(value) && value >= 0) return;
  throw new UsageError(`${name} must be a non-negative integer, got ${value}`);
}

function checkPositiveInteger(name: string, value: number): void {
  if (Number.isSafeInteger(value) && value > 0) return;
  throw new UsageError(`${name} must be a positive integer, got ${value}`);
}
