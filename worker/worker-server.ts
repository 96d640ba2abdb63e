import * as grpc from '@grpc/grpc-js';
import { parseJobConfig } from '../shared/config/job.js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { runStepFromWire, stepResultToWire } from '../shared/rpc/convert.js';
import { describeContext, messageOf, serviceError, type CallContext } from '../shared/rpc/errors.js';
import { HealthService } from '../shared/rpc/health.js';
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
import { bindServer, stopServer } from '../shared/rpc/server.js';
import { writeMessage } from '../shared/rpc/streams.js';
import { encodeTensors, TensorStreamDecoder } from '../shared/rpc/tensors.js';
import type { WorkerHandlers } from '../shared/rpc/types.js';

export interface WorkerServerOptions {
  /** HOST:PORT to listen on; port 0 picks a free port. */
  listen: string;
  handlers: WorkerHandlers;
  workerId: string;
  /** Address the worker registers with, named in errors; defaults to `listen` with the bound port. */
  advertisedAddress?: string;
  logger?: Logger;
}

/** A running worker gRPC server. */
export interface WorkerServer {
  /** The bound port (the chosen one when `listen` had port 0). */
  readonly port: number;
  readonly health: HealthService;
  /** Reports NOT_SERVING, waits up to `graceMs` (default 2000) for calls in flight, then closes. */
  stop(graceMs?: number): Promise<void>;
}

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
  const protos = loadProtos();
  const health = new HealthService(['cbntrain.v1.Worker']);
  const identity: CallContext = { workerId: options.workerId, address: options.advertisedAddress ?? options.listen };
  const implementation = workerImplementation(options.handlers, identity, log);

  const { server, port } = await bindServer(options.listen, [
    { definition: protos.workerService, implementation },
    { definition: protos.healthService, implementation: health.implementation() },
  ]);
  // With port 0 the address named in errors must carry the port actually bound.
  identity.address = options.advertisedAddress ?? options.listen.replace(/:0$/, `:${port}`);
  log.info({ listen: options.listen, port, address: identity.address }, 'worker listening');

  return {
    port,
    health,
    async stop(graceMs = 2_000) {
      health.setAll(false);
      await stopServer(server, graceMs);
      log.info({ port }, 'worker server stopped');
    },
  };
}

function workerImplementation(handlers: WorkerHandlers, identity: CallContext, log: Logger): grpc.UntypedServiceImplementation {
  // `identity.rank` and `jobId` are filled in by StartJob, so later errors name them.
  const fail = (call: string, error: unknown, extra: CallContext = {}, code = codeOf(error)) => {
    const context = { ...identity, ...extra };
    const details = `${call} failed on ${describeContext(context)}: ${messageOf(error)}`;
    log.error({ rank: context.rank, jobId: context.jobId, step: context.step, err: error }, `${call} failed`);
    return serviceError(code, details);
  };

  const StartJob: Unary<StartJobRequest, Empty> = (call, callback) => {
    const request = call.request;
    run(async () => {
      const config = parseJobConfig(JSON.parse(request.configJson) as unknown, `config of job ${request.jobId}`);
      await handlers.startJob({ jobId: request.jobId, config, rank: request.rank, worldSize: request.worldSize });
      Object.assign(identity, { rank: request.rank, jobId: request.jobId });
      log.info({ jobId: request.jobId, rank: request.rank, worldSize: request.worldSize }, 'job started');
    }).then(
      () => callback(null, {}),
      (error: unknown) => callback(fail('StartJob', error, { jobId: request.jobId, rank: request.rank })),
    );
  };

  const RunStep: Unary<RunStepRequest, WireStepResult> = (call, callback) => {
    const request = call.request;
    const where = { jobId: request.jobId, step: request.step };
    let converted;
    try {
      converted = runStepFromWire(request);
    } catch (error) {
      callback(fail('RunStep', error, where, grpc.status.INVALID_ARGUMENT));
      return;
    }
    handlers.runStep(converted).then(
      (result) => callback(null, stepResultToWire(result)),
      (error: unknown) => {
        const details = fail('RunStep', error, where).details ?? messageOf(error);
        callback(null, { losses: {}, timingsMs: {}, error: details });
      },
    );
  };

  const GetState = (call: grpc.ServerWritableStream<GetStateRequest, TensorChunk>) => {
    const where = { jobId: call.request.jobId };
    run(async () => {
      const tensors = await handlers.getState({ jobId: call.request.jobId });
      for (const chunk of encodeTensors(tensors)) await writeMessage(call, chunk);
      call.end();
    }).catch((error: unknown) => call.emit('error', fail('GetState', error, where)));
  };

  const PutState = (call: grpc.ServerReadableStream<PutStateRequest, PutStateResponse>, callback: grpc.sendUnaryData<PutStateResponse>) => {
    const decoder = new TensorStreamDecoder();
    let jobId: string | undefined;
    let failed = false;
    const reject = (error: unknown, code?: grpc.status) => {
      if (failed) return;
      failed = true;
      callback(fail('PutState', error, jobId === undefined ? {} : { jobId }, code));
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
      let tensors;
      try {
        tensors = decoder.finish();
      } catch (error) {
        reject(error, grpc.status.INVALID_ARGUMENT);
        return;
      }
      handlers.putState({ jobId: jobId ?? '', tensors }).then(() => callback(null, { tensorCount: tensors.length }), reject);
    });
  };

  const EndJob: Unary<EndJobRequest, Empty> = (call, callback) => {
    const request = call.request;
    run(() => handlers.endJob({ jobId: request.jobId, reason: request.reason })).then(
      () => {
        log.info({ jobId: request.jobId, reason: request.reason }, 'job ended');
        callback(null, {});
      },
      (error: unknown) => callback(fail('EndJob', error, { jobId: request.jobId })),
    );
  };

  return { StartJob, RunStep, GetState, PutState, EndJob };
}

/** Runs `action`, turning a synchronous throw into a rejection. */
async function run<T>(action: () => Promise<T>): Promise<T> {
  return action();
}

function codeOf(error: unknown): grpc.status {
  if (error instanceof SyntaxError || (error instanceof Error && error.name === 'UsageError')) return grpc.status.INVALID_ARGUMENT;
  return grpc.status.INTERNAL;
}
