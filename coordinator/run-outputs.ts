import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../shared/io/atomic.js';
import { join } from 'node:path';
import type { JobConfig } from '../shared/config/job.js';
import { readCheckpoint, writeCheckpoint, type Checkpoint } from '../shared/io/checkpoint.js';
import { writeSampleGrid, SAMPLE_GRID_COLS } from '../shared/io/png-grid.js';
import { modelHash } from '../shared/model/model-hash.js';
import { PRESETS } from '../shared/model/presets.js';
import type { NamedTensor } from '../shared/rpc/types.js';
import { renderSamples } from '../shared/train/sampling.js';

/** One line of `metrics.jsonl`. */
export interface StepMetrics {
  step: number;
  lossD: number;
  lossG: number;
  samplesPerSec: number;
  /** Wall time of the step at the coordinator. */
  stepMs: number;
  /** Slowest worker's compute time and reduction wait. */
  computeMs: number;
  reduceMs: number;
  /** Time the coordinator spent cutting shards. */
  dataMs: number;
  time: string;
}

/** Trainer state that a checkpoint records besides the tensors. */
export interface TrainerState {
  /** Steps completed: training resumes at this step. The sampler position is a function of it. */
  step: number;
  jobId: string;
  config: JobConfig;
  modelHash: string;
  worldSize: number;
  savedAt: string;
}

/**
 * The files of one run under its output directory, written only by the coordinator:
 * `metrics.jsonl`, `samples/step-XXXXXX.png` and `checkpoint/` (model.json + weights.bin, replaced atomically).
 */
export class RunOutputs {
  readonly checkpointDir: string;
  readonly samplesDir: string;
  readonly metricsPath: string;

  constructor(readonly outDir: string) {
    this.checkpointDir = join(outDir, 'checkpoint');
    this.samplesDir = join(outDir, 'samples');
    this.metricsPath = join(outDir, 'metrics.jsonl');
  }

  async prepare(): Promise<void> {
    await mkdir(this.samplesDir, { recursive: true });
  }

  /**
   * Drops the metrics lines of steps after `step`. A run that resumes from the checkpoint of step s repeats
   * the steps after s, which a crash may already have logged.
   */
  async truncateMetricsAfter(step: number): Promise<void> {
    if (!existsSync(this.metricsPath)) return;
    const lines = (await readFile(this.metricsPath, 'utf8')).split('\n').filter((line) => line.trim() !== '');
    const kept = lines.filter((line) => {
      try {
        return (JSON.parse(line) as { step?: number }).step! <= step;
      } catch {
        return false; // a line cut short by a crash
      }
    });
    if (kept.length === lines.length) return;
    await writeFileAtomic(this.metricsPath, [Buffer.from(kept.map((line) => `${line}\n`).join(''))]);
  }

  /** Returns the last metrics line, or undefined when there is none. */
  async lastMetrics(): Promise<StepMetrics | undefined> {
    if (!existsSync(this.metricsPath)) return undefined;
    const lines = (await readFile(this.metricsPath, 'utf8')).split('\n').filter((line) => line.trim() !== '');
    const last = lines.at(-1);
    return last === undefined ? undefined : (JSON.parse(last) as StepMetrics);
  }

  async appendMetrics(metrics: StepMetrics): Promise<void> {
    await appendFile(this.metricsPath, `${JSON.stringify(metrics)}\n`);
  }

  async writeCheckpoint(
    state: readonly NamedTensor[],
    trainer: Omit<TrainerState, 'modelHash' | 'savedAt'>,
  ): Promise<void> {
    const checkpoint: Checkpoint = {
      tensors: state.map((t) => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.values) })),
      trainerState: { ...trainer, modelHash: modelHash(), savedAt: new Date().toISOString() },
    };
    await writeCheckpoint(this.checkpointDir, checkpoint);
  }

  /** Reads the run's checkpoint, or returns undefined when the run has none yet. */
  async readCheckpoint(): Promise<{ state: NamedTensor[]; trainer: TrainerState } | undefined> {
    // A crashed write can leave only `checkpoint.old`; readCheckpoint falls back to it.
    if (!existsSync(this.checkpointDir) && !existsSync(`${this.checkpointDir}.old`)) return undefined;
    const checkpoint = await readCheckpoint(this.checkpointDir);
    const state = checkpoint.tensors.map((t) => ({ name: t.name, shape: t.shape, values: t.data }));
    return { state, trainer: checkpoint.trainerState as unknown as TrainerState };
  }

  /** Renders the 10 × 10 class grid from generator state and writes `samples/step-XXXXXX.png`. */
  async writeSamples(config: JobConfig, state: readonly NamedTensor[], step: number): Promise<string> {
    const preset = PRESETS[config.preset];
    const classes = Array.from({ length: preset.numClasses }, (_, k) => k);
    const images = await renderSamples(preset, state, {
      seed: config.seed,
      classes,
      columns: SAMPLE_GRID_COLS,
    });
    const path = join(this.samplesDir, `step-${String(step).padStart(6, '0')}.png`);
    await writeSampleGrid(path, images, {
      rows: classes.length,
      cols: SAMPLE_GRID_COLS,
      height: preset.imageSize,
      width: preset.imageSize,
    });
    return path;
  }
}
