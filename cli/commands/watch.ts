import type { Command } from 'commander';
import type { TrainingQueue } from '../../shared/queue/job-queue.js';
import { EXIT_COMPLETED, EXIT_FAILED, outcomeOf } from '../../shared/queue/job-outcome.js';
import { isQueuedJobProgress } from '../../shared/queue/job-types.js';
import {
  addQueueLocationOptions,
  openQueueForCommand,
  queueLocationFrom,
} from '../../shared/queue/location-options.js';
import { QUEUE_NAME } from '../../shared/queue/queue-names.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { positiveInteger } from '../job-options.js';

/** Adds `cbn-train watch`. */
export function register(program: Command): void {
  const command = program
    .command('watch')
    .description(
      'Print the progress of a queued job until it ends; exits 0 when it completed, 1 when it failed, 3 when it was cancelled',
    )
    .argument('<jobId>', 'id printed by cbn-train submit')
    .option('--interval-ms <ms>', 'how often to read the job from Redis', '500');
  addQueueLocationOptions(command).action(async (jobId: string, options: Record<string, unknown>) => {
    const intervalMs = positiveInteger('--interval-ms', options.intervalMs);
    const log = createLogger('cli', { command: 'watch', jobId });
    const client = await openQueueForCommand(queueLocationFrom(options), { log });
    try {
      process.exitCode = await watchJob(client.queue, jobId, intervalMs);
    } finally {
      await client.close();
    }
  });
}

/** Polls the job, printing each state change and each new progress report; returns the exit code. */
export async function watchJob(queue: TrainingQueue, jobId: string, intervalMs: number): Promise<number> {
  let lastState = '';
  let lastStep = -1;
  for (;;) {
    // State first, then the job: a job that ends between the two reads then already carries its
    // failedReason or return value, whereas the other order could pair a new state with stale fields.
    const state = await queue.getJobState(jobId);
    const job = await queue.getJob(jobId);
    if (job === undefined) {
      process.stderr.write(
        `cbn-train: job ${jobId} not found in queue ${QUEUE_NAME}; check the id, --redis and --queue-prefix\n`,
      );
      return EXIT_FAILED;
    }
    if (state !== lastState) {
      process.stdout.write(
        `${jobId} ${state}${state === 'active' ? ` (attempt ${job.attemptsStarted})` : ''}\n`,
      );
      lastState = state;
    }
    const progress = job.progress;
    if (isQueuedJobProgress(progress) && progress.step !== lastStep) {
      const { step, totalSteps, lossD, lossG, samplesPerSec } = progress;
      process.stdout.write(
        `step ${step}/${totalSteps} lossD ${lossD.toFixed(4)} lossG ${lossG.toFixed(4)} ${samplesPerSec.toFixed(1)} samples/s\n`,
      );
      lastStep = step;
    }
    const outcome = outcomeOf(job, state);
    if (outcome !== undefined) {
      const stream = outcome.exitCode === EXIT_COMPLETED ? process.stdout : process.stderr;
      stream.write(`${outcome.message}\n`);
      return outcome.exitCode;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
