import type { Logger } from '../shared/runtime/logger.js';
import type { QueuedJobProgress } from '../shared/queue/job-types.js';
import type { TrainingProgress } from './training-run.js';

/** The one method of a BullMQ job that the reporter calls. */
export interface ProgressTarget {
  updateProgress(progress: QueuedJobProgress): Promise<void>;
}

// At most this many progress writes per second go to Redis; the last step is always written.
const MIN_REPORT_INTERVAL_MS = 500;

/**
 * Forwards training progress to `job.updateProgress` without ever blocking a step: one write at a time,
 * at most one every 500 ms, always the latest value. While Redis is unreachable the writes wait in the
 * client, and the steps go on.
 */
export class QueueProgressReporter {
  private latest: QueuedJobProgress | undefined;
  private inFlight: Promise<void> | undefined;
  private lastSentMs = 0;
  private failures = 0;

  constructor(
    private readonly job: ProgressTarget,
    private readonly log: Logger,
  ) {}

  /** Records the progress after a step and writes it when due. */
  report(progress: TrainingProgress): void {
    const { step, totalSteps, lossD, lossG, samplesPerSec } = progress;
    this.latest = { step, totalSteps, lossD, lossG, samplesPerSec };
    const due = Date.now() - this.lastSentMs >= MIN_REPORT_INTERVAL_MS || step === totalSteps;
    if (due && this.inFlight === undefined) this.send();
  }

  /** Waits for the write in flight, then writes the latest progress if it was not written yet. */
  async flush(): Promise<void> {
    await this.inFlight;
    if (this.latest !== undefined) {
      this.send();
      await this.inFlight;
    }
  }

  private send(): void {
    const progress = this.latest!;
    this.latest = undefined;
    this.lastSentMs = Date.now();
    this.inFlight = this.job
      .updateProgress(progress)
      .catch((error: unknown) => this.logFailure(error, progress.step))
      .finally(() => {
        this.inFlight = undefined;
      });
  }

  private logFailure(error: unknown, step: number): void {
    this.failures++;
    // Every failure during a Redis outage would flood the log: log the first and then every 20th.
    if (this.failures === 1 || this.failures % 20 === 0) {
      this.log.warn(
        { err: error, step, failures: this.failures },
        'progress update failed; training goes on',
      );
    }
  }
}
