import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { runStepToWire, stepResultFromWire } from '../shared/rpc/convert.js';
import { CONTROL_DEADLINE_MS, deadlineAfter, STEP_DEADLINE_MS } from '../shared/rpc/deadline.js';
import { wrapCallError, WorkerStepError, type CallContext } from '../shared/rpc/errors.js';
import type {
  HealthCheckResponse,
  PutStateRequest as WirePutStateRequest,
  PutStateResponse,
  TensorChunk,
  WireStepResult,
} from '../shared/rpc/messages.js';
import { CHANNEL_OPTIONS, loadProtos } from '../shared/rpc/proto.js';
import { writeMessage } from '../shared/rpc/streams.js';
import { encodeTensors, TensorStreamDecoder } from '../shared/rpc/tensors.js';
import type {
  EndJobRequest,
  NamedTensor,
  PutStateRequest,
  RunStepRequest,
  StartJobRequest,
  StepResult,
} from '../shared/rpc/types.js';

export interface WorkerClientOptions {
  /** HOST:PORT the worker advertised at registration. */
  address: string;
  workerId?: string;
  /** The worker's rank, named in errors once assigned. */
  rank?: number;
  /** Deadline of StartJob, EndJob and health checks, in milliseconds (default 10 000). */
  controlDeadlineMs?: number;
  /** Deadline of RunStep, GetState and PutState, in milliseconds (default 120 000). */
  stepDeadlineMs?: number;
  logger?: Logger;
}

type UnaryMethod<Request, Response> = (
  request: Request,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Response) => void,
) => grpc.ClientUnaryCall;

interface RawWorkerClient {
  StartJob: UnaryMethod<unknown, unknown>;
  RunStep: UnaryMethod<unknown, WireStepResult>;
  EndJob: UnaryMethod<unknown, unknown>;
  GetState(request: unknown, options: grpc.CallOptions): grpc.ClientReadableStream<TensorChunk>;
  PutState(
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: PutStateResponse) => void,
  ): grpc.ClientWritableStream<WirePutStateRequest>;
}

interface RawHealthClient {
  Check: UnaryMethod<{ service: string }, HealthCheckResponse>;
}

/**
 * A typed client of one worker's gRPC service, used by the coordinator. Every call has a deadline (the
 * per-call argument, or the defaults of the options). Every failure throws an RpcError naming the call, the
 * worker's rank, id and address, the job and the step. A step the worker reports as failed throws a
 * WorkerStepError with the worker's message.
 */
export class WorkerClient {
  /** The worker's rank, named in errors. StartJob sets it. */
  rank: number | undefined;

  private readonly raw: RawWorkerClient;
  private readonly healthClient: RawHealthClient;
  private readonly controlDeadlineMs: number;
  private readonly stepDeadlineMs: number;
  private readonly log: Logger;

  constructor(private readonly options: WorkerClientOptions) {
    const protos = loadProtos();
    const credentials = grpc.credentials.createInsecure();
    this.raw = new protos.WorkerClient(
      options.address,
      credentials,
      CHANNEL_OPTIONS,
    ) as unknown as RawWorkerClient;
    this.healthClient = new protos.HealthClient(
      options.address,
      credentials,
      CHANNEL_OPTIONS,
    ) as unknown as RawHealthClient;
    this.rank = options.rank;
    this.controlDeadlineMs = options.controlDeadlineMs ?? CONTROL_DEADLINE_MS;
    this.stepDeadlineMs = options.stepDeadlineMs ?? STEP_DEADLINE_MS;
    this.log =
      options.logger ?? createLogger('coordinator', { workerId: options.workerId, address: options.address });
  }

  /** Starts a job on the worker. The config travels as JSON. */
  async startJob(request: StartJobRequest, deadlineMs = this.controlDeadlineMs): Promise<void> {
    const wire = {
      jobId: request.jobId,
      configJson: JSON.stringify(request.config),
      rank: request.rank,
      worldSize: request.worldSize,
    };
    await this.unary('StartJob', this.raw.StartJob, wire, deadlineMs, {
      jobId: request.jobId,
      rank: request.rank,
    });
    this.rank = request.rank;
  }

  /** Runs one step on the worker's shard and returns its losses and timings. */
  async runStep(request: RunStepRequest, deadlineMs = this.stepDeadlineMs): Promise<StepResult> {
    const context = { jobId: request.jobId, step: request.step };
    const wire = await this.unary('RunStep', this.raw.RunStep, runStepToWire(request), deadlineMs, context);
    if (wire.error !== '') {
      const error = new WorkerStepError(wire.error, this.context(context));
      this.log.error(
        { jobId: request.jobId, step: request.step, rank: this.rank, err: error },
        'worker reported a failed step',
      );
      throw error;
    }
    return stepResultFromWire(wire);
  }

  /** Ends a job on the worker, which frees the job's model and optimizer. */
  async endJob(request: EndJobRequest, deadlineMs = this.controlDeadlineMs): Promise<void> {
    await this.unary('EndJob', this.raw.EndJob, request, deadlineMs, { jobId: request.jobId });
  }

  /** Downloads the worker's named tensors (parameters and optimizer state) for a checkpoint. */
  getState(jobId: string, deadlineMs = this.stepDeadlineMs): Promise<NamedTensor[]> {
    const context = { jobId };
    const stream = this.raw.GetState({ jobId }, { deadline: deadlineAfter(deadlineMs) });
    const decoder = new TensorStreamDecoder();

    return new Promise((resolve, reject) => {
      const failWith = (error: unknown) => reject(this.callError('GetState', error, context));
      stream.on('data', (chunk: TensorChunk) => {
        try {
          decoder.push(chunk);
        } catch (error) {
          stream.cancel();
          failWith(error);
        }
      });
      stream.on('error', failWith);
      stream.on('end', () => {
        try {
          resolve(decoder.finish());
        } catch (error) {
          failWith(error);
        }
      });
    });
  }

  /** Uploads named tensors to the worker, replacing its state (resume, broadcast of rank 0's state). */
  async putState(request: PutStateRequest, deadlineMs = this.stepDeadlineMs): Promise<void> {
    const context = { jobId: request.jobId };
    let stream!: grpc.ClientWritableStream<WirePutStateRequest>;
    const finished = new Promise<PutStateResponse>((resolve, reject) => {
      stream = this.raw.PutState({ deadline: deadlineAfter(deadlineMs) }, (error, response) => {
        if (error !== null) reject(this.callError('PutState', error, context));
        else resolve(response!);
      });
    });
    finished.catch(() => undefined);

    try {
      // job_id on the first message, then one TensorChunk per message.
      await writeMessage(stream, { jobId: request.jobId, chunk: null });
      for (const chunk of encodeTensors(request.tensors)) await writeMessage(stream, { jobId: '', chunk });
      stream.end();
    } catch {
      // The stream failed, and `finished` rejects with the call's status.
    }
    await finished;
  }

  /** Returns the worker's health status (`SERVING` when it is up). */
  async checkHealth(deadlineMs = this.controlDeadlineMs): Promise<HealthCheckResponse['status']> {
    const response = await this.unary(
      'Health/Check',
      this.healthClient.Check,
      { service: '' },
      deadlineMs,
      {},
    );
    return response.status;
  }

  /** Closes the channels to the worker. */
  close(): void {
    (this.raw as unknown as grpc.Client).close();
    (this.healthClient as unknown as grpc.Client).close();
  }

  private unary<Request, Response>(
    call: string,
    method: UnaryMethod<Request, Response>,
    request: Request,
    deadlineMs: number,
    context: CallContext,
  ): Promise<Response> {
    const target = call === 'Health/Check' ? this.healthClient : this.raw;
    return new Promise((resolve, reject) => {
      method.call(target, request, { deadline: deadlineAfter(deadlineMs) }, (error, response) => {
        if (error !== null) reject(this.callError(call, error, context));
        else resolve(response!);
      });
    });
  }

  private callError(call: string, error: unknown, context: CallContext): Error {
    const wrapped = wrapCallError(call, error, this.context(context));
    this.log.error(
      { jobId: context.jobId, step: context.step, rank: this.rank, err: wrapped },
      `${call} failed`,
    );
    return wrapped;
  }

  private context(extra: CallContext): CallContext {
    return { rank: this.rank, workerId: this.options.workerId, address: this.options.address, ...extra };
  }
}
