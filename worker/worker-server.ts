import * as grpc from '@grpc/grpc-js';
import { parseJobConfig } from '../shared/config/job.js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { runStepFromWire, stepResultToWire } from '../shared/rpc/convert.js';
import { describeContext, messageOf, serviceError, type CallContext } from '../shared/rpc/errors.js';
import type {
  EndJobRequest,
  Empty,
  GetStateRequest,
  PutStateRequest,
  PutStateResponse,
  RunStepRequest,
  StartJobRequest,
  TensorChunk,
  WireStepResult,
} from '../shared/rpc/messages.js';
import { loadProtos } from '../shared/rpc/proto.js';
import { startServer, type RunningServer } from '../shared/rpc/server.js';
import { writeMessage } from '../shared/rpc/streams.js';
import { encodeTensors, TensorStreamDecoder } from '../shared/rpc/tensors.js';
import type { NamedTensor, WorkerHandlers } from '../shared/rpc/types.js';

export interface WorkerServerOptions {
  /** HOST:PORT to listen on. Port 0 picks a free port. */
  listen: string;
  handlers: WorkerHandlers;
  workerId: string;
  /** Address the worker registers with, named in errors. Defaults to `listen` with the bound port. */
  advertisedAddress?: string;
  logger?: Logger;
}

/** A running worker gRPC server. */
export type WorkerServer = RunningServer;

type Unary<Request, Response> = (
  call: grpc.ServerUnaryCall<Request, Response>,
  callback: grpc.sendUnaryData<Response>,
) => void;

/**
 * Starts a worker's gRPC server: `cbntrain.v1.Worker`, backed by `handlers`, and `grpc.health.v1.Health`.
 *
 * The server carries no training logic: it converts messages, calls a handler and converts the outcome.
 * A handler that throws fails the call with an error naming the worker's rank, address and step. A step
 * that throws comes back as a StepResult with `error` set, so the coordinator can tell a failed step from a
 * lost worker. Throws a UsageError naming the address when it is taken or invalid.
 */
export async function startWorkerServer(options: WorkerServerOptions): Promise<WorkerServer> {
  const log = options.logger ?? createLogger('worker', { workerId: options.workerId });
  const identity: CallContext = {
    workerId: options.workerId,
    address: options.advertisedAddress ?? options.listen,
  };
  const server = await startServer({
    listen: options.listen,
    name: 'worker',
    serviceName: 'cbntrain.v1.Worker',
    definition: loadProtos().workerService,
    implementation: new WorkerService(options.handlers, identity, log).implementation(),
    log,
  });

  // With port 0 the address named in errors must carry the port actually bound.
  identity.address = options.advertisedAddress ?? options.listen.replace(/:0$/, `:${server.port}`);
  log.info({ address: identity.address }, 'worker address');
  return server;
}

/**
 * The Worker service's RPC methods. `identity` names this worker in every error, and StartJob adds the rank
 * and job id to it, so that later errors name them too.
 */
class WorkerService {
  constructor(
    private readonly handlers: WorkerHandlers,
    private readonly identity: CallContext,
    private readonly log: Logger,
  ) {}

  implementation(): grpc.UntypedServiceImplementation {
    return {
      StartJob: this.startJob.bind(this),
      RunStep: this.runStep.bind(this),
      GetState: this.getState.bind(this),
      PutState: this.putState.bind(this),
      EndJob: this.endJob.bind(this),
    };
  }

  private startJob(...[call, callback]: Parameters<Unary<StartJobRequest, Empty>>): void {
    const request = call.request;
    run(async () => {
      const config = parseJobConfig(
        JSON.parse(request.configJson) as unknown,
        `config of job ${request.jobId}`,
      );
      await this.handlers.startJob({
        jobId: request.jobId,
        config,
        rank: request.rank,
        worldSize: request.worldSize,
      });
      Object.assign(this.identity, { rank: request.rank, jobId: request.jobId });
      this.log.info(
        { jobId: request.jobId, rank: request.rank, worldSize: request.worldSize },
        'job started',
      );
    }).then(
      () => callback(null, {}),
      (error: unknown) =>
        callback(this.fail('StartJob', error, { jobId: request.jobId, rank: request.rank })),
    );
  }

  // A failing step comes back as a StepResult with `error` set, so the coordinator can tell it from a lost
  // worker. A malformed shard is the caller's fault and fails the call with INVALID_ARGUMENT.
  private runStep(...[call, callback]: Parameters<Unary<RunStepRequest, WireStepResult>>): void {
    const where = { jobId: call.request.jobId, step: call.request.step };
    let request;
    try {
      request = runStepFromWire(call.request);
    } catch (error) {
      callback(this.fail('RunStep', error, where, grpc.status.INVALID_ARGUMENT));
      return;
    }

    run(() => this.handlers.runStep(request)).then(
      (result) => callback(null, stepResultToWire(result)),
      (error: unknown) => {
        const details = this.fail('RunStep', error, where).details ?? messageOf(error);
        callback(null, { losses: {}, timingsMs: {}, error: details });
      },
    );
  }

  private getState(call: grpc.ServerWritableStream<GetStateRequest, TensorChunk>): void {
    const where = { jobId: call.request.jobId };
    run(async () => {
      const tensors = await this.handlers.getState({ jobId: call.request.jobId });
      for (const chunk of encodeTensors(tensors)) await writeMessage(call, chunk);
      call.end();
    }).catch((error: unknown) => call.emit('error', this.fail('GetState', error, where)));
  }

  private putState(
    call: grpc.ServerReadableStream<PutStateRequest, PutStateResponse>,
    callback: grpc.sendUnaryData<PutStateResponse>,
  ): void {
    const decoder = new TensorStreamDecoder();
    let jobId: string | undefined;
    let failed = false;
    const reject = (error: unknown, code?: grpc.status) => {
      if (failed) return;
      failed = true;
      callback(this.fail('PutState', error, jobId === undefined ? {} : { jobId }, code));
    };

    call.on('data', (message: PutStateRequest) => {
      if (failed) return;
      try {
        jobId ??= message.jobId;
        if (message.chunk !== undefined && message.chunk !== null) decoder.push(message.chunk);
      } catch (error) {
        reject(error, grpc.status.INVALID_ARGUMENT);
      }
    });
    call.on('end', () => {
      if (failed) return;
      let tensors: NamedTensor[];
      try {
        tensors = decoder.finish();
      } catch (error) {
        reject(error, grpc.status.INVALID_ARGUMENT);
        return;
      }
      run(() => this.handlers.putState({ jobId: jobId ?? '', tensors })).then(
        () => callback(null, { tensorCount: tensors.length }),
        (error: unknown) => reject(error),
      );
    });
  }

  private endJob(...[call, callback]: Parameters<Unary<EndJobRequest, Empty>>): void {
    const request = call.request;
    run(() => this.handlers.endJob({ jobId: request.jobId, reason: request.reason })).then(
      () => {
        this.log.info({ jobId: request.jobId, reason: request.reason }, 'job ended');
        callback(null, {});
      },
      (error: unknown) => callback(this.fail('EndJob', error, { jobId: request.jobId })),
    );
  }

  /** Logs a failed call and returns the status to send, naming this worker, the job and the step. */
  private fail(call: string, error: unknown, extra: CallContext = {}, code = codeOf(error)) {
    const context = { ...this.identity, ...extra };
    const details = `${call} failed on ${describeContext(context)}: ${messageOf(error)}`;
    this.log.error(
      { rank: context.rank, jobId: context.jobId, step: context.step, err: error },
      `${call} failed`,
    );
    return serviceError(code, details);
  }
}

/** Runs `action`, turning a synchronous throw into a rejection. */
async function run<T>(action: () => Promise<T>): Promise<T> {
  return action();
}

function codeOf(error: unknown): grpc.status {
  if (error instanceof SyntaxError || (error instanceof Error && error.name === 'UsageError'))
    return grpc.status.INVALID_ARGUMENT;
  return grpc.status.INTERNAL;
}
