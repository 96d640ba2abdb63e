import { CANCELLED_REASON } from './job-types.js';
import type { TrainingJob } from './job-queue.js';

/** Exit codes of `watch` and `cancel --wait` for the end states of a job. */
export const EXIT_COMPLETED = 0;
export const EXIT_FAILED = 1;
export const EXIT_CANCELLED = 3;

/** The end of a job, or undefined while it may still run (waiting, active, delayed for a retry). */
export interface JobOutcome {
  exitCode: number;
  message: string;
}

/** Returns the outcome of a job in `state`, or undefined when the job has not ended. */
export function outcomeOf(job: TrainingJob, state: string): JobOutcome | undefined {
  if (state === 'completed') {
    const r = job.returnvalue;
    const message = `job ${job.id} completed: ${r.steps} steps, lossD ${formatLoss(r.lossD)}, lossG ${formatLoss(r.lossG)}, outputs in ${r.outDir}, checkpoint ${r.checkpointDir}`;
    return { exitCode: EXIT_COMPLETED, message };
  }
  if (state !== 'failed') return undefined;
  const reason = job.failedReason ?? 'no reason recorded';
  if (reason.startsWith(CANCELLED_REASON))
    return { exitCode: EXIT_CANCELLED, message: `job ${job.id} ${reason}` };
  return {
    exitCode: EXIT_FAILED,
    message: `job ${job.id} failed after ${job.attemptsMade} attempt(s): ${reason}`,
  };
}

// A result stores a loss as null when no step was logged (JSON has no NaN).
function formatLoss(loss: number | null | undefined): string {
  return typeof loss === 'number' && Number.isFinite(loss) ? loss.toFixed(4) : 'n/a';
}
