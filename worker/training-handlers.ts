import * as tf from '@tensorflow/tfjs-core';
import type { MetricsSnapshot } from '../shared/runtime/health-server.js';
import type { Logger } from '../shared/runtime/logger.js';
import type {
  EndJobRequest,
  GetStateRequest,
  NamedTensor,
  PutStateRequest,
  RunStepRequest,
  StartJobRequest,
  StepResult,
  WorkerHandlers,
} from '../shared/rpc/types.js';
import { GanReplica } from '../shared/train/gan-replica.js';
import { GrpcCollective } from './grpc-collective.js';

interface ActiveJob {
  jobId: string;
  replica: GanReplica;
  collective: GrpcCollective;
}

/**
 * The worker's side of a job: one GAN replica per job, driven by the coordinator's calls. A worker runs
 * one job at a time; StartJob for a new job ends the previous one.
 */
export class TrainingHandlers implements WorkerHandlers {
  private active: ActiveJob | undefined;
  private stepsTotal = 0;
  private lastStepMs = 0;

  constructor(private readonly options: { coordinatorAddress: string; workerId: string; logger: Logger }) {}

  async startJob(request: StartJobRequest): Promise<void> {
    this.endActive(`replaced by job ${request.jobId}`);
    const collective = new GrpcCollective({
      coordinatorAddress: this.options.coordinatorAddress,
      jobId: request.jobId,
      rank: request.rank,
      worldSize: request.worldSize,
      workerId: this.options.workerId,
      deadlineMs: request.config.stepDeadlineMs,
      logger: this.options.logger.child({ jobId: request.jobId, rank: request.rank }),
    });
    const nanStep = process.env.CBN_TEST_NAN_GRAD_STEP;
    const perturbStep = process.env.CBN_TEST_PERTURB_STEP;
    const replica = new GanReplica(request.jobId, request.config, collective, {
      ...(nanStep ? { nanGradientAtStep: Number(nanStep) } : {}),
      ...(perturbStep ? { perturbParamsAtStep: Number(perturbStep) } : {}),
    });
    this.active = { jobId: request.jobId, replica, collective };
  }

  async runStep(request: RunStepRequest): Promise<StepResult> {
    const job = this.require(request.jobId);
    const { shard } = request;
    job.collective.step = request.step;
    const start = performance.now();
    const result = await job.replica.trainStep({
      step: request.step,
      globalBatch: request.globalBatch,
      images: shard.images,
      labels: shard.labels,
      globalIndices: shard.globalIndices,
      count: shard.count,
    });
    this.stepsTotal++;
    this.lastStepMs = performance.now() - start;
    return result;
  }

  /** Values for the worker's `/metrics` endpoint. */
  metrics(): MetricsSnapshot {
    return {
      cbn_worker_steps_total: {
        type: 'counter',
        help: 'Training steps this worker ran',
        samples: [{ value: this.stepsTotal }],
      },
      cbn_worker_last_step_ms: {
        help: 'Wall time of the last step on this worker',
        samples: [{ value: this.lastStepMs }],
      },
      cbn_worker_job_active: {
        help: '1 while the worker runs a job',
        samples: [{ value: this.active ? 1 : 0 }],
      },
      cbn_worker_tensors: {
        help: 'Live tf.js tensors (tf.memory().numTensors)',
        samples: [{ value: tf.memory().numTensors }],
      },
    };
  }

  async getState(request: GetStateRequest): Promise<NamedTensor[]> {
    return this.require(request.jobId).replica.exportState();
  }

  async putState(request: PutStateRequest): Promise<void> {
    this.require(request.jobId).replica.importState(request.tensors);
  }

  async endJob(request: EndJobRequest): Promise<void> {
    if (this.active?.jobId !== request.jobId) return;
    this.endActive(request.reason);
  }

  /** Releases the active job, if any (also called on shutdown). */
  endActive(reason: string): void {
    if (this.active === undefined) return;
    // The transport logs StartJob and EndJob; this line covers a release by shutdown or replacement too.
    this.options.logger.debug({ jobId: this.active.jobId, reason }, 'replica released');
    this.active.replica.dispose();
    this.active.collective.close();
    this.active = undefined;
  }

  private require(jobId: string): ActiveJob {
    if (this.active?.jobId !== jobId) {
      const current = this.active === undefined ? 'no job' : `job ${this.active.jobId}`;
      throw new Error(
        `this worker runs ${current}, not job ${jobId}; the coordinator must call StartJob first`,
      );
    }
    return this.active;
  }
}
