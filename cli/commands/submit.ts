import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  enqueueJob,
  newJobId,
  DEFAULT_ATTEMPTS,
  DEFAULT_BACKOFF_MS,
  type SubmitOptions,
} from '../../shared/queue/job-queue.js';
import {
  addQueueLocationOptions,
  openQueueForCommand,
  queueLocationFrom,
} from '../../shared/queue/location-options.js';
import { redactedUrl } from '../../shared/queue/connection.js';
import { UsageError } from '../../shared/runtime/errors.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { addJobOptions, jobFromOptions, positiveInteger } from '../job-options.js';

// BullMQ accepts priorities from 0 (none) to 2^21.
const MAX_PRIORITY = 2_097_152;

/** Adds `cbn-train submit`. */
export function register(program: Command): void {
  const command = program
    .command('submit')
    .description('Validate a training job and add it to the Redis job queue; prints the job id')
    .option('--name <name>', 'job name shown by cbn-train status', 'train')
    .option('--priority <n>', `1 (highest) to ${MAX_PRIORITY}; jobs without a priority run first`)
    .option(
      '--attempts <n>',
      'attempts in total before the job fails; a retry resumes from the checkpoint',
      String(DEFAULT_ATTEMPTS),
    )
    .option(
      '--backoff-ms <ms>',
      'delay before the first retry, doubled for each further one',
      String(DEFAULT_BACKOFF_MS),
    );
  addQueueLocationOptions(addJobOptions(command)).action(async (options: Record<string, unknown>) => {
    const config = jobFromOptions(options);
    const submit = submitOptions(options);
    const jobId = newJobId();
    // Relative paths are resolved by the coordinator, in its working directory.
    if (!setsOut(options)) config.out = `runs/${jobId}`;

    const location = queueLocationFrom(options);
    const log = createLogger('cli', { command: 'submit' });
    const client = await openQueueForCommand(location);
    try {
      await enqueueJob(client.queue, jobId, config, submit);
    } finally {
      await client.close();
    }
    log.info(
      {
        jobId,
        name: submit.name,
        out: config.out,
        redis: redactedUrl(location.redisUrl),
        prefix: location.prefix,
      },
      'job submitted',
    );
    process.stdout.write(`${jobId}\n`);
  });
}

function submitOptions(options: Record<string, unknown>): SubmitOptions {
  const name = String(options.name);
  if (name === '') throw new UsageError('--name must not be empty');
  const submit: SubmitOptions = {
    name,
    attempts: positiveInteger('--attempts', options.attempts),
    backoffMs: positiveInteger('--backoff-ms', options.backoffMs),
  };
  if (options.priority !== undefined) {
    const priority = positiveInteger('--priority', options.priority);
    if (priority > MAX_PRIORITY)
      throw new UsageError(`--priority must be at most ${MAX_PRIORITY}, got ${priority}`);
    submit.priority = priority;
  }
  return submit;
}

/** Tells whether `--out` or the `--config` file chose the output directory. */
function setsOut(options: Record<string, unknown>): boolean {
  if (options.out !== undefined) return true;
  if (options.config === undefined) return false;
  // jobFromOptions has read and validated this file already.
  const file = JSON.parse(readFileSync(String(options.config), 'utf8')) as Record<string, unknown>;
  return Object.hasOwn(file, 'out');
}
