import type { Command } from 'commander';
import { readCheckpoint } from '../../shared/io/checkpoint.js';
import { SAMPLE_GRID_COLS, writeSampleGrid } from '../../shared/io/png-grid.js';
import { PRESETS } from '../../shared/model/presets.js';
import { parseJobConfig } from '../../shared/config/job.js';
import { parseBackendChoice, selectBackend } from '../../shared/runtime/backend.js';
import { UsageError } from '../../shared/runtime/errors.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { renderSamples } from '../../shared/train/sampling.js';

/** Adds `cbn-train sample`. */
export function register(program: Command): void {
  program
    .command('sample')
    .description('Render a grid of generated digits from a checkpoint, in inference mode (moving statistics)')
    .requiredOption('--checkpoint <dir>', 'checkpoint directory written by a run (runs/<name>/checkpoint)')
    .requiredOption('--out <file>', 'PNG file to write')
    .option('--class <k>', 'render only this class (10 samples in one row) instead of one row per class')
    .option('--seed <n>', 'seed of the noise [the run’s seed]')
    .option('--backend <name>', 'auto, tensorflow-gpu, tensorflow, wasm or cpu', 'auto')
    .action(async (options: Record<string, string | undefined>) => {
      const log = createLogger('cli');
      await selectBackend(parseBackendChoice(options.backend!), log);
      const checkpoint = await readCheckpoint(options.checkpoint!);
      const trainer = checkpoint.trainerState as { config?: unknown; step?: number };
      const config = parseJobConfig(trainer.config, `trainer state of ${options.checkpoint}`);
      const preset = PRESETS[config.preset];

      const classes =
        options.class === undefined
          ? Array.from({ length: preset.numClasses }, (_, k) => k)
          : [parseClass(options.class, preset.numClasses)];
      const seed = options.seed === undefined ? config.seed : parseSeed(options.seed);
      const state = checkpoint.tensors.map((t) => ({ name: t.name, shape: t.shape, values: t.data }));
      const images = await renderSamples(preset, state, { seed, classes, columns: SAMPLE_GRID_COLS });
      await writeSampleGrid(options.out!, images, {
        rows: classes.length,
        cols: SAMPLE_GRID_COLS,
        height: preset.imageSize,
        width: preset.imageSize,
      });
      log.info({ out: options.out, step: trainer.step, classes }, 'sample grid written');
    });
}

function parseClass(raw: string, numClasses: number): number {
  const k = Number(raw);
  if (!Number.isInteger(k) || k < 0 || k >= numClasses)
    throw new UsageError(
      `--class must be an integer from 0 to ${numClasses - 1}, got ${JSON.stringify(raw)}`,
    );
  return k;
}

function parseSeed(raw: string): number {
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0)
    throw new UsageError(`--seed must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return seed;
}
