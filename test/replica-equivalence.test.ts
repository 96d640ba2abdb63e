import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './support/backend.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { InProcessGroup } from '../shared/collective/in-process.js';
import { parseJobConfig } from '../shared/config/job.js';
import { mergeAllMoments } from '../shared/model/moments.js';
import { GanReplica } from '../shared/train/gan-replica.js';
import { shardsForStep, TEST_PRESET, trainReplicas } from './support/replicas.js';
import { maxRelativeError } from './support/tensors.js';

// N replicas on a global batch must reproduce one replica on that batch: same parameters, same moving
// statistics, same optimizer slots. Small preset, project kernels registered.

const TOLERANCE = 1e-4;

function expectSameState(actual: GanReplica, expected: GanReplica, label: string): void {
  const reference = new Map(expected.exportState().map((t) => [t.name, t.values]));
  for (const tensor of actual.exportState()) {
    const error = maxRelativeError(tensor.values, reference.get(tensor.name)!);
    expect(error, `${label}: ${tensor.name}`).toBeLessThanOrEqual(TOLERANCE);
  }
}

function disposeAll(replicas: GanReplica[]): void {
  for (const replica of replicas) replica.dispose();
}

describe.each(['wasm', 'cpu'] as const)('data-parallel replicas, sync BN, %s backend', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('3 workers with shards 4/3/3 equal 1 worker for 3 steps', async () => {
    const job = { batch: 10, seed: 3, bn: 'sync' as const, lr: 1e-3 };
    const [single] = await trainReplicas(job, 1, 3, `one-${backend}`);
    const three = await trainReplicas(job, 3, 3, `three-${backend}`);

    for (const [rank, replica] of three.entries()) expectSameState(replica, single!, `rank ${rank}`);
    expect(three[1]!.checksum()).toBe(three[0]!.checksum());
    expect(three[2]!.checksum()).toBe(three[0]!.checksum());
    disposeAll([single!, ...three]);
  });

  it('4 workers with an empty shard equal 1 worker', async () => {
    const job = { batch: 3, seed: 5, bn: 'sync' as const, lr: 1e-3 };
    const [single] = await trainReplicas(job, 1, 3, `one-b-${backend}`);
    const four = await trainReplicas(job, 4, 3, `four-${backend}`);

    for (const [rank, replica] of four.entries()) expectSameState(replica, single!, `rank ${rank}`);
    disposeAll([single!, ...four]);
  });

  it('detects that the test can fail: a different seed diverges', async () => {
    const [a] = await trainReplicas({ batch: 4, seed: 1 }, 1, 1, `seed-a-${backend}`);
    const [b] = await trainReplicas({ batch: 4, seed: 2 }, 1, 1, `seed-b-${backend}`);
    expect(a!.checksum()).not.toBe(b!.checksum());
    disposeAll([a!, b!]);
  });
});

describe('data-parallel replicas, local BN', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('updates moving statistics from the merged moments of all shards', async () => {
    const job = parseJobConfig({ batch: 10, seed: 4, bn: 'local', checkParamsEvery: 0 });
    const group = new InProcessGroup(3);
    const replicas = group.members.map(
      (c, rank) => new GanReplica('job', job, c, { scope: `local${rank}:`, preset: TEST_PRESET }),
    );
    const shards = shardsForStep(job, 0, 3);
    await Promise.all(replicas.map((replica, rank) => replica.trainStep(shards[rank]!)));

    const layers = replicas.map((r) => r.generator.batchNorms());
    for (const [i, bn] of layers[0]!.entries()) {
      const merged = mergeAllMoments(
        layers.map((l) => l[i]!.lastLocalMoments),
        bn.channels,
      );
      const variance = merged.mean.map((_, c) => merged.m2[c]! / merged.count);
      const expectedMean = merged.mean.map((m) => 0.01 * m);
      const expectedVariance = variance.map((v) => 0.99 + 0.01 * v);
      for (const [rank, replicaLayers] of layers.entries()) {
        const mean = replicaLayers[i]!.movingMean.dataSync();
        const varianceActual = replicaLayers[i]!.movingVariance.dataSync();
        expect(maxRelativeError(mean, expectedMean), `${bn.name} mean rank ${rank}`).toBeLessThanOrEqual(
          1e-5,
        );
        expect(
          maxRelativeError(varianceActual, expectedVariance),
          `${bn.name} variance rank ${rank}`,
        ).toBeLessThanOrEqual(1e-5);
      }
    }
    // The merged count is the whole global batch: N·H·W with N = 10.
    const first = layers.map((l) => l[0]!.lastLocalMoments);
    expect(mergeAllMoments(first, first[0]!.mean.length).count).toBe(10 * 8 * 8);
    disposeAll(replicas);
  });

  it('matches the whole batch on layers that see only the noise', async () => {
    // block0/bn1 and its skip normalize conv(upsample(dense(z))), which does not depend on how the batch is
    // split, so their moving statistics must equal a single replica's.
    const job = { batch: 10, seed: 4, bn: 'local' as const };
    const [single] = await trainReplicas(job, 1, 1, 'local-one');
    const three = await trainReplicas(job, 3, 1, 'local-three');
    const expected = single!.generator.batchNorms()[0]!;
    for (const replica of three) {
      const actual = replica.generator.batchNorms()[0]!;
      expect(
        maxRelativeError(actual.movingMean.dataSync(), expected.movingMean.dataSync()),
      ).toBeLessThanOrEqual(1e-5);
      expect(
        maxRelativeError(actual.movingVariance.dataSync(), expected.movingVariance.dataSync()),
      ).toBeLessThanOrEqual(1e-5);
    }
    disposeAll([single!, ...three]);
  });
});

describe('training step memory', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('leaks no tensors across 5 steps', async () => {
    const job = parseJobConfig({ batch: 6, seed: 1, checkParamsEvery: 1 });
    const group = new InProcessGroup(2);
    const replicas = group.members.map(
      (c, rank) => new GanReplica('job', job, c, { scope: `mem${rank}:`, preset: TEST_PRESET }),
    );
    const counts: number[] = [];
    for (let step = 0; step < 5; step++) {
      const shards = shardsForStep(job, step, 2);
      await Promise.all(replicas.map((replica, rank) => replica.trainStep(shards[rank]!)));
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size, `tensor counts per step: ${counts.join(', ')}`).toBe(1);
    disposeAll(replicas);
  });
});

describe('non-finite gradients', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('are rejected by every replica, naming the step and the parameter', async () => {
    const job = parseJobConfig({ batch: 4, seed: 1, checkParamsEvery: 0 });
    const group = new InProcessGroup(2);
    const replicas = group.members.map(
      (c, rank) =>
        new GanReplica('job', job, c, {
          scope: `nan${rank}:`,
          preset: TEST_PRESET,
          ...(rank === 1 ? { nanGradientAtStep: 1 } : {}),
        }),
    );
    const before = replicas.map((r) => r.checksum());
    await Promise.all(replicas.map((r, rank) => r.trainStep(shardsForStep(job, 0, 2)[rank]!)));
    const outcomes = await Promise.allSettled(
      replicas.map((r, rank) => r.trainStep(shardsForStep(job, 1, 2)[rank]!)),
    );

    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const message = (outcome as PromiseRejectedResult).reason.message as string;
      expect(message).toMatch(/non-finite gradient at step 1 in parameter G\/out_conv\/bias/);
    }
    expect(replicas[0]!.checksum()).toBe(replicas[1]!.checksum());
    expect(replicas[0]!.checksum()).not.toBe(before[0]);
    disposeAll(replicas);
  });
});
