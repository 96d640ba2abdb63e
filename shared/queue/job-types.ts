import type { JobConfig } from '../config/job.js';

/** The data of a queued job: a job config that passed `JobConfigSchema` at submit time. */
export interface QueuedJobData {
  config: JobConfig;
}

/** Progress report that a coordinator sends through `job.updateProgress` after training steps. */
export interface QueuedJobProgress {
  step: number;
  totalSteps: number;
  lossD: number;
  lossG: number;
  samplesPerSec: number;
}

/** The return value of a completed job. */
export interface QueuedJobResult {
  /** Absolute path, on the coordinator's file system, of the run's outputs. */
  outDir: string;
  checkpointDir: string;
  steps: number;
  lossD: number;
  lossG: number;
  samplesPerSec: number;
}

/** Failed reasons of cancelled jobs start with this word. */
export const CANCELLED_REASON = 'cancelled';

/** Tells a progress object of a queued job from BullMQ's default progress value, the number 0. */
export function isQueuedJobProgress(value: unknown): value is QueuedJobProgress {
  if (value === null || typeof value !== 'object') return false;
  const { step, totalSteps } = value as Record<string, unknown>;
  return typeof step === 'number' && typeof totalSteps === 'number';
}
