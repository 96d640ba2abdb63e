import type { MetricsSnapshot } from '../shared/runtime/health-server.js';
import type { WorkerRegistry } from './registry.js';
import type { TrainingProgress } from './training-run.js';

/** The coordinator's activity (active job, progress, job counts), exported on its `/metrics` endpoint. */
export class CoordinatorStatus {
  activeJobId: string | undefined;
  progress: TrainingProgress | undefined;
  jobsCompleted = 0;
  jobsFailed = 0;

  constructor(private readonly registry: WorkerRegistry) {}

  startJob(jobId: string): void {
    this.activeJobId = jobId;
    this.progress = undefined;
  }

  endJob(outcome: 'completed' | 'failed' | 'stopped'): void {
    if (outcome === 'completed') this.jobsCompleted++;
    if (outcome === 'failed') this.jobsFailed++;
    this.activeJobId = undefined;
  }

  metrics(): MetricsSnapshot {
    const p = this.progress;
    return {
      cbn_coordinator_workers_registered: {
        help: 'Workers currently registered',
        samples: [{ value: this.registry.list().length }],
      },
      cbn_coordinator_job_active: {
        help: '1 while a job runs',
        samples: [{ value: this.activeJobId ? 1 : 0 }],
      },
      cbn_coordinator_jobs_completed_total: {
        type: 'counter',
        help: 'Jobs that completed',
        samples: [{ value: this.jobsCompleted }],
      },
      cbn_coordinator_jobs_failed_total: {
        type: 'counter',
        help: 'Jobs that failed',
        samples: [{ value: this.jobsFailed }],
      },
      cbn_train_step: { help: 'Steps completed by the active job', samples: [{ value: p?.step ?? 0 }] },
      cbn_train_loss_d: {
        help: 'Discriminator hinge loss of the last step',
        samples: [{ value: p?.lossD ?? 0 }],
      },
      cbn_train_loss_g: { help: 'Generator loss of the last step', samples: [{ value: p?.lossG ?? 0 }] },
      cbn_train_samples_per_second: {
        help: 'Training throughput of the last step',
        samples: [{ value: p?.samplesPerSec ?? 0 }],
      },
    };
  }
}
