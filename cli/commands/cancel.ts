import type { Command } from 'commander';
import { requestCancel } from '../../shared/queue/cancel-requests.js';
import {
  addQueueLocationOptions,
  openQueueForCommand,
  queueLocationFrom,
} from '../../shared/queue/location-options.js';
import { QUEUE_NAME } from '../../shared/queue/queue-names.js';
import { createLogger } from '../../shared/runtime/logger.js';
import { positiveInteger } from '../job-options.js';
import { watchJob } from './watch.js';

/** Adds `cbn-train cancel`. */
export function register(program: Command): void {
  const command = program
    .command('cancel')
    .description('Cancel a queued job from any machine; it fails with a reason that starts with "cancelled"')
    .addHelpText(
      'after',
      '\nA running job stops after its current step and writes a checkpoint first. A waiting job, or one delayed ' +
        'for a retry, fails as soon as a coordinator takes it. Cancelled jobs are not retried.',
    )
    .argument('<jobId>', 'id printed by cbn-train submit')
    .option('--reason <text>', 'why, recorded in the failed reason', 'requested by cbn-train cancel')
    .option('--wait', 'wait until the job has ended and exit like cbn-train watch')
    .option('--interval-ms <ms>', 'with --wait: how often to read the job from Redis', '500');
  addQueueLocationOptions(command).action(async (jobId: string, options: Record<string, unknown>) => {
    const intervalMs = positiveInteger('--interval-ms', options.intervalMs);
    const location = queueLocationFrom(options);
    const log = createLogger('cli', { command: 'cancel', jobId });
    const client = await openQueueForCommand(location);
    try {
      const job = await client.queue.getJob(jobId);
      if (job === undefined) {
        process.stderr.write(
          `cbn-train: job ${jobId} not found in queue ${QUEUE_NAME}; check the id, --redis and --queue-prefix\n`,
        );
        process.exitCode = 1;
        return;
      }
      const state = await client.queue.getJobState(jobId);
      if (state === 'completed' || state === 'failed') {
        process.stderr.write(`cbn-train: job ${jobId} has already ${state}; there is nothing to cancel\n`);
        process.exitCode = 1;
        return;
      }
      const receivers = await requestCancel(client.redis, location.prefix, {
        jobId,
        reason: String(options.reason),
      });
      log.info({ state, coordinatorsNotified: receivers }, 'cancel requested');
      process.stdout.write(`cancel requested for job ${jobId} (${state})\n`);
      if (options.wait === true) process.exitCode = await watchJob(client.queue, jobId, intervalMs);
    } finally {
      await client.close();
    }
  });
}
