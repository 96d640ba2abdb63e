import type { JobConfig } from '../config/job.js';

/**
 * Plain TypeScript types of the Worker service. The transport (`worker/worker-server.ts`,
 * `coordinator/worker-client.ts`) converts between these and the wire messages. The training engine
 * implements `WorkerHandlers` without any gRPC code.
 */

/** A float tensor with a name, as stored in checkpoints. Values are row-major in `shape`. */
export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array | Float64Array;
}

/** Starts a job on one worker: the replica builds its model and optimizer for `rank` of `worldSize`. */
export interface StartJobRequest {
  jobId: string;
  config: JobConfig;
  rank: number;
  worldSize: number;
}

/** One worker's share of a global batch. */
export interface Shard {
  // [count, height, width, channels] uint8 pixels, row-major.
  images: Uint8Array;
  // [count] uint8 class labels.
  labels: Uint8Array;
  // [count] position of each sample in the global batch's sample order. Noise is seeded from it.
  globalIndices: Uint32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

/** One training step on one worker. The shard may be empty (`count` 0): the worker still joins reductions. */
export interface RunStepRequest {
  jobId: string;
  step: number;
  // Phases to run in order, for example ['D', 'G'].
  phases: string[];
  // Samples across all shards of the step.
  globalBatch: number;
  shard: Shard;
}

/** A worker's report of one step. */
export interface StepResult {
  losses: Record<string, number>;
  timingsMs: Record<string, number>;
  // A checksum of all parameters, sent on the steps the job's `checkParamsEvery` selects.
  paramChecksum?: number;
}

export interface GetStateRequest {
  jobId: string;
}

export interface PutStateRequest {
  jobId: string;
  tensors: NamedTensor[];
}

export interface EndJobRequest {
  jobId: string;
  reason: string;
}

/**
 * The behaviour behind a worker's gRPC service. A handler that throws fails the call: the server logs the
 * error and sends it to the coordinator with the worker's rank, address and the step.
 */
export interface WorkerHandlers {
  startJob(request: StartJobRequest): Promise<void>;
  runStep(request: RunStepRequest): Promise<StepResult>;
  getState(request: GetStateRequest): Promise<NamedTensor[]>;
  putState(request: PutStateRequest): Promise<void>;
  endJob(request: EndJobRequest): Promise<void>;
}
