import type { Command } from 'commander';
import type { JobType } from 'bullmq';
import type { TrainingQueue } from '../../shared/queue/job-queue.js';
import { formatJobDetails, formatJobTable, summarizeJob } from '../../shared/queue/job-view.js';
import {
  addQueueLocationOptions,
  openQueueForCommand,
  queueLocationFrom,
} from '../../shared/queue/location-options.js';
import { QUEUE_NAME } from '../../shared/queue/queue-names.js';
import { positiveInteger } from '../job-options.js';

const LISTED_STATES: JobType[] = ['active', 'waiting', 'prioritized', 'delayed', 'completed', 'failed'];

/** Adds `cbn-train status`. */
export function register(program: Command): void {
  const command = program
    .command('status')
    .description('List the jobs of the queue (id, name, state, progress, age), or show one job in detail')
    .argument('[jobId]', 'show this job in detail')
    .option('--limit <n>', 'list at most this many jobs, newest first', '50')
    .option('--json', 'print JSON instead of a table');
  addQueueLocationOptions(command).action(
    async (jobId: string | undefined, options: Record<string, unknown>) => {
      const limit = positiveInteger('--limit', options.limit);
      const client = await openQueueForCommand(queueLocationFrom(options));
      try {
        if (jobId === undefined) {
          await printTable(client.queue, limit, options.json === true);
        } else {
          process.exitCode = await printJob(client.queue, jobId, options.json === true);
        }
      } finally {
        await client.close();
      }
    },
  );
}

async function printTable(queue: TrainingQueue, limit: number, json: boolean): Promise<void> {
  // getJobs returns each state's jobs in turn, so the newest jobs overall are found only after sorting.
  const jobs = (await queue.getJobs(LISTED_STATES, 0, -1))
    .filter((job) => job !== undefined)
    .sort((a, b) => b.timestamp - a.timestamp)
    .slice(0, limit);
  const summaries = await Promise.all(
    jobs.map(async (job) => summarizeJob(job, await queue.getJobState(job.id!))),
  );
  process.stdout.write(json ? `${JSON.stringify(summaries)}\n` : formatJobTable(summaries));
}

async function printJob(queue: TrainingQueue, jobId: string, json: boolean): Promise<number> {
  const job = await queue.getJob(jobId);
  if (job === undefined) {
    process.stderr.write(
      `cbn-train: job ${jobId} not found in queue ${QUEUE_NAME}; check the id, --redis and --queue-prefix\n`,
    );
    return 1;
  }
  const state = await queue.getJobState(jobId);
  process.stdout.write(
    json ? `${JSON.stringify({ ...job.asJSON(), state })}\n` : formatJobDetails(job, state),
  );
  return 0;
}
