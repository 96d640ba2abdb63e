import { describe, expect, it } from 'vitest';
import {
  epochPermutation,
  fakeLabelFor,
  fakeLabelsForShard,
  globalBatchIndices,
  noiseFor,
  noiseForShard,
  splitShards,
} from '../shared/data/sampler.js';

describe('globalBatchIndices', () => {
  it('returns the same batch for the same arguments', () => {
    const first = globalBatchIndices(7, 1000, 64, 12);
    const second = globalBatchIndices(7, 1000, 64, 12);

    expect(Array.from(first)).toEqual(Array.from(second));
    expect(first.length).toBe(64);
  });

  it('differs between seeds and between steps', () => {
    const base = Array.from(globalBatchIndices(0, 1000, 32, 0));

    expect(Array.from(globalBatchIndices(1, 1000, 32, 0))).not.toEqual(base);
    expect(Array.from(globalBatchIndices(0, 1000, 32, 1))).not.toEqual(base);
  });

  it('covers every index once per epoch', () => {
    // 100 samples, batch 8: epoch 0 ends inside step 12, so steps 0..24 cover epochs 0 and 1 exactly.
    const datasetSize = 100;
    const stream: number[] = [];
    for (let step = 0; step < 25; step++) stream.push(...globalBatchIndices(3, datasetSize, 8, step));

    for (const epoch of [0, 1]) {
      const seen = stream.slice(epoch * datasetSize, (epoch + 1) * datasetSize).sort((a, b) => a - b);
      expect(seen).toEqual(Array.from({ length: datasetSize }, (_, i) => i));
    }
  });

  it('follows the epoch permutations across an epoch boundary', () => {
    const epoch0 = epochPermutation(5, 0, 10);
    const epoch1 = epochPermutation(5, 1, 10);

    // Step 2 of batch 4 covers stream positions 8..11: the last two of epoch 0, the first two of epoch 1.
    const batch = globalBatchIndices(5, 10, 4, 2);

    expect(Array.from(batch)).toEqual([epoch0[8], epoch0[9], epoch1[0], epoch1[1]]);
    expect(Array.from(epoch0)).not.toEqual(Array.from(epoch1));
  });

  it('repeats indices when the batch exceeds the dataset', () => {
    const batch = Array.from(globalBatchIndices(0, 3, 7, 0));

    expect(batch.length).toBe(7);
    expect(batch.slice(0, 3).sort()).toEqual([0, 1, 2]);
    expect(batch.slice(3, 6).sort()).toEqual([0, 1, 2]);
  });

  it('resumes at any step without history', () => {
    const sequential: number[][] = [];
    for (let step = 0; step < 40; step++) sequential.push(Array.from(globalBatchIndices(11, 50, 16, step)));

    // Computing in a different order, with other datasets in between, must not change the results.
    for (const step of [39, 0, 17, 3, 25]) {
      globalBatchIndices(11, 77, 5, step);
      expect(Array.from(globalBatchIndices(11, 50, 16, step))).toEqual(sequential[step]);
    }
  });

  it('rejects invalid arguments', () => {
    expect(() => globalBatchIndices(-1, 10, 4, 0)).toThrow(/seed must be a non-negative integer, got -1/);
    expect(() => globalBatchIndices(0, 0, 4, 0)).toThrow(/datasetSize must be a positive integer, got 0/);
    expect(() => globalBatchIndices(0, 10, 2.5, 0)).toThrow(
      /globalBatch must be a positive integer, got 2.5/,
    );
    expect(() => globalBatchIndices(0, 10, 4, -3)).toThrow(/step must be a non-negative integer, got -3/);
    expect(() => globalBatchIndices(0, 10, 2 ** 30, 2 ** 30)).toThrow(
      /step \* globalBatch must be below 2\^53/,
    );
  });
});

describe('epochPermutation', () => {
  it('is a permutation of the dataset', () => {
    const permutation = Array.from(epochPermutation(0, 4, 60000));

    expect(permutation.sort((a, b) => a - b)).toEqual(Array.from({ length: 60000 }, (_, i) => i));
  });

  it('returns a copy callers may change', () => {
    const first = epochPermutation(2, 0, 10);
    const expected = Array.from(first);
    first.fill(0);

    expect(Array.from(epochPermutation(2, 0, 10))).toEqual(expected);
    expect(Array.from(globalBatchIndices(2, 10, 10, 0))).toEqual(expected);
  });
});

describe('splitShards', () => {
  it.each([
    [10, 3, [4, 3, 3]],
    [3, 4, [1, 1, 1, 0]],
    [8, 4, [2, 2, 2, 2]],
    [5, 1, [5]],
    [0, 2, [0, 0]],
    [1, 3, [1, 0, 0]],
  ])('splits %i over %i ranks', (globalBatch, worldSize, counts) => {
    const shards = splitShards(globalBatch, worldSize);

    expect(shards.map((shard) => shard.count)).toEqual(counts);
    expect(shards.map((shard) => shard.rank)).toEqual(counts.map((_, rank) => rank));
  });

  it('makes contiguous shards covering the batch', () => {
    for (let globalBatch = 0; globalBatch <= 20; globalBatch++) {
      for (let worldSize = 1; worldSize <= 7; worldSize++) {
        const shards = splitShards(globalBatch, worldSize);
        let next = 0;
        for (const shard of shards) {
          expect(shard.start).toBe(next);
          next += shard.count;
        }
        expect(next).toBe(globalBatch);
        const counts = shards.map((shard) => shard.count);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('rejects a worldSize of 0', () => {
    expect(() => splitShards(4, 0)).toThrow(/worldSize must be a positive integer, got 0/);
  });
});

describe('noiseFor', () => {
  it('is a pure function of its arguments', () => {
    const first = noiseFor(1, 2, 3, 128, 'D');
    const second = noiseFor(1, 2, 3, 128, 'D');

    expect(first.length).toBe(128);
    expect(Array.from(first)).toEqual(Array.from(second));
  });

  it('differs by seed, step, sample and phase', () => {
    const base = Array.from(noiseFor(1, 2, 3, 16, 'D'));

    expect(Array.from(noiseFor(2, 2, 3, 16, 'D'))).not.toEqual(base);
    expect(Array.from(noiseFor(1, 3, 3, 16, 'D'))).not.toEqual(base);
    expect(Array.from(noiseFor(1, 2, 4, 16, 'D'))).not.toEqual(base);
    expect(Array.from(noiseFor(1, 2, 3, 16, 'G'))).not.toEqual(base);
  });

  it('defaults the phase to D', () => {
    expect(Array.from(noiseFor(1, 2, 3, 8))).toEqual(Array.from(noiseFor(1, 2, 3, 8, 'D')));
  });

  it('handles an odd dimension', () => {
    const noise = noiseFor(0, 0, 0, 7);

    expect(noise.length).toBe(7);
    expect(Array.from(noise.subarray(0, 6))).toEqual(Array.from(noiseFor(0, 0, 0, 6)));
    expect(Number.isFinite(noise[6])).toBe(true);
  });

  it('is standard normal', () => {
    // 200 samples x 128 values = 25600 draws. The standard error of the mean is 1/sqrt(25600) = 0.00625,
    // so |mean| < 0.03 and |variance - 1| < 0.05 hold unless the transform is wrong.
    const values: number[] = [];
    for (let sample = 0; sample < 200; sample++) values.push(...noiseFor(42, 0, sample, 128, 'G'));
    const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
    const variance = values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / values.length;
    const beyondTwoSigma = values.filter((v) => Math.abs(v) > 2).length / values.length;

    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    // P(|z| > 2) = 0.0455 for a standard normal.
    expect(beyondTwoSigma).toBeGreaterThan(0.04);
    expect(beyondTwoSigma).toBeLessThan(0.051);
  });

  it('does not depend on the sharding', () => {
    const seed = 9;
    const step = 31;
    const dim = 16;
    const globalBatch = 10;
    const oneWorker = noiseForShard(seed, step, { rank: 0, start: 0, count: globalBatch }, dim, 'D');

    for (const worldSize of [2, 3, 4, 16]) {
      const parts = splitShards(globalBatch, worldSize).map((shard) =>
        noiseForShard(seed, step, shard, dim, 'D'),
      );
      const joined = new Float32Array(globalBatch * dim);
      let offset = 0;
      for (const part of parts) {
        joined.set(part, offset);
        offset += part.length;
      }
      expect(Array.from(joined)).toEqual(Array.from(oneWorker));
    }
  });

  it('rejects invalid arguments', () => {
    expect(() => noiseFor(0, 0, 0, 0)).toThrow(/dim must be a positive integer, got 0/);
    expect(() => noiseFor(0, 0, -1, 4)).toThrow(/globalIndex must be a non-negative integer, got -1/);
    expect(() => noiseFor(0, 0, 0, 4, 'X' as 'D')).toThrow(/phase must be 'D' or 'G', got "X"/);
  });
});

describe('fakeLabelFor', () => {
  it('is a pure function in range', () => {
    for (let i = 0; i < 100; i++) {
      const label = fakeLabelFor(3, 5, i, 10, 'G');
      expect(label).toBe(fakeLabelFor(3, 5, i, 10, 'G'));
      expect(Number.isInteger(label)).toBe(true);
      expect(label).toBeGreaterThanOrEqual(0);
      expect(label).toBeLessThan(10);
    }
  });

  it('draws every class', () => {
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 2000; i++) counts[fakeLabelFor(0, 0, i, 10)]!++;

    // Expected 200 per class; 130 and 270 are about five standard deviations (sqrt(180) = 13.4) away.
    for (const count of counts) {
      expect(count).toBeGreaterThan(130);
      expect(count).toBeLessThan(270);
    }
  });

  it('differs between phases', () => {
    const labelsD = Array.from(fakeLabelsForShard(1, 1, { rank: 0, start: 0, count: 32 }, 10, 'D'));
    const labelsG = Array.from(fakeLabelsForShard(1, 1, { rank: 0, start: 0, count: 32 }, 10, 'G'));

    expect(labelsG).not.toEqual(labelsD);
  });

  it('does not depend on the sharding', () => {
    const oneWorker = Array.from(fakeLabelsForShard(4, 8, { rank: 0, start: 0, count: 3 }, 10, 'D'));
    const shards = splitShards(3, 4);
    const joined = shards.flatMap((shard) => Array.from(fakeLabelsForShard(4, 8, shard, 10, 'D')));

    expect(shards[3]!.count).toBe(0);
    expect(joined).toEqual(oneWorker);
  });

  it('rejects zero classes', () => {
    expect(() => fakeLabelFor(0, 0, 0, 0)).toThrow(/numClasses must be a positive integer, got 0/);
  });
});

describe('sampling streams', () => {
  // Recorded from this implementation (pure-rand 8.4.2 xoroshiro128+ keyed by SHA-256) with
  //   globalBatchIndices(0, 60000, 8, 0), noiseFor(0, 0, 0, 4, 'D'), fakeLabelFor(0, 0, i, 10, 'G') for i < 8.
  // A change here changes every run's data order, noise and labels, so a run resumed across the change
  // no longer reproduces the run it continues.
  it('keeps recorded values', () => {
    expect(Array.from(globalBatchIndices(0, 60000, 8, 0))).toEqual([
      44951, 22788, 28603, 20380, 5176, 41219, 56335, 54902,
    ]);
    expect(Array.from(noiseFor(0, 0, 0, 4, 'D'))).toEqual([
      1.808857798576355, 0.9269254803657532, -0.2767258882522583, 1.1275253295898438,
    ]);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => fakeLabelFor(0, 0, i, 10, 'G'))).toEqual([
      0, 6, 2, 8, 2, 0, 6, 3,
    ]);
  });
});
