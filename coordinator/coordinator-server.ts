import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { bytesOf, bytesPerElement, ChunkAssembler, chunksOf } from '../shared/rpc/codec.js';
import { messageOf, serviceError } from '../shared/rpc/errors.js';
import type {
  ReduceHeader,
  ReduceRequest,
  ReduceResponse,
  RegisterRequest,
  RegisterResponse,
} from '../shared/rpc/messages.js';
import { loadProtos } from '../shared/rpc/proto.js';
import { startServer, type RunningServer } from '../shared/rpc/server.js';
import { writeMessage } from '../shared/rpc/streams.js';
import {
  ReductionError,
  type Contribution,
  type ReductionResult,
  type ReductionService,
} from './reduction-service.js';
import type { WorkerRegistry } from './registry.js';

/**
 * Maximum buffer one rank may contribute, in bytes. A fused gradient of 64M float32 parameters fits, and the
 * cap keeps a corrupt header from allocating gigabytes.
 */
export const MAX_REDUCE_BYTES = 256 * 1024 * 1024;

export interface CoordinatorServerOptions {
  /** HOST:PORT to listen on. Port 0 picks a free port. */
  listen: string;
  registry: WorkerRegistry;
  reductions: ReductionService;
  logger?: Logger;
}

/** A running coordinator gRPC server. */
export type CoordinatorServer = RunningServer;

/**
 * Starts the coordinator's gRPC server: `cbntrain.v1.Coordinator` (Register, Reduce) and
 * `grpc.health.v1.Health`. Throws a UsageError naming the address when it is taken or invalid.
 */
export async function startCoordinatorServer(options: CoordinatorServerOptions): Promise<CoordinatorServer> {
  const log = options.logger ?? createLogger('coordinator');
  const implementation: grpc.UntypedServiceImplementation = {
    Register: (
      call: grpc.ServerUnaryCall<RegisterRequest, RegisterResponse>,
      callback: grpc.sendUnaryData<RegisterResponse>,
    ) => {
      callback(null, options.registry.register(call.request));
    },
    Reduce: (call: grpc.ServerDuplexStream<ReduceRequest, ReduceResponse>) => {
      handleReduce(call, options.reductions, log);
    },
  };

  return startServer({
    listen: options.listen,
    name: 'coordinator',
    serviceName: 'cbntrain.v1.Coordinator',
    definition: loadProtos().coordinatorService,
    implementation,
    log,
  });
}

/**
 * Serves one rank's Reduce stream: the header announces the contribution, `data` chunks fill its buffer,
 * the client's half-close delivers it, and the result (or the operation's error) goes back on the stream.
 */
function handleReduce(
  call: grpc.ServerDuplexStream<ReduceRequest, ReduceResponse>,
  reductions: ReductionService,
  log: Logger,
): void {
  let contribution: Contribution | undefined;
  let assembler: ChunkAssembler | undefined;
  let finished = false;

  const failCall = (code: grpc.status, details: string) => {
    if (finished) return;
    finished = true;
    call.emit('error', serviceError(code, details));
  };

  call.on('data', (message: ReduceRequest) => {
    try {
      if (contribution === undefined) {
        const header = message.header;
        if (header === undefined || header === null)
          throw new ReductionError(
            'the first Reduce message must carry a header',
            grpc.status.INVALID_ARGUMENT,
          );
        checkPayloadSize(header);
        assembler = new ChunkAssembler(header.dtype, header.length);
        contribution = reductions.begin(header);
        contribution.result.then(
          (result) => sendResult(call, result).catch((error: unknown) => logSendFailure(log, header, error)),
          (error: unknown) => failCall(codeOf(error), messageOf(error)),
        );
      }
      if (message.data.length > 0) assembler!.push(message.data);
    } catch (error) {
      log.error({ err: error, peer: call.getPeer() }, 'invalid Reduce message');
      contribution?.cancel(messageOf(error));
      failCall(codeOf(error), messageOf(error));
    }
  });

  call.on('end', () => {
    if (contribution === undefined || assembler === undefined)
      return failCall(grpc.status.INVALID_ARGUMENT, 'Reduce stream ended without a header');
    try {
      contribution.deliver(assembler.finish());
    } catch (error) {
      contribution.cancel(messageOf(error));
    }
  });

  call.on('cancelled', () => {
    finished = true;
    contribution?.cancel('the worker cancelled its Reduce call (it stopped, or its deadline passed)');
  });
}

async function sendResult(
  call: grpc.ServerDuplexStream<ReduceRequest, ReduceResponse>,
  result: ReductionResult,
): Promise<void> {
  // Header {dtype, partLengths[P]}, then parts[0] ++ parts[1] ++ ... as raw little-endian chunks.
  const partLengths = result.parts.map((part) => part.length);
  await writeMessage(call, { header: { dtype: result.dtype, partLengths }, data: Buffer.alloc(0) });
  for (const part of result.parts) {
    if (part.length === 0) continue;
    for (const data of chunksOf(bytesOf(part))) await writeMessage(call, { data });
  }
  call.end();
}

function checkPayloadSize(header: ReduceHeader): void {
  const bytes = header.length * bytesPerElement(header.dtype);
  if (bytes > MAX_REDUCE_BYTES) {
    throw new ReductionError(
      `operation ${JSON.stringify(header.opId)}: ${bytes} bytes exceed the maximum of ${MAX_REDUCE_BYTES} per rank`,
      grpc.status.RESOURCE_EXHAUSTED,
    );
  }
}

function logSendFailure(log: Logger, header: ReduceHeader, error: unknown): void {
  log.warn(
    { jobId: header.jobId, step: header.step, opId: header.opId, rank: header.rank, err: error },
    'could not send a reduction result; the worker left',
  );
}

function codeOf(error: unknown): grpc.status {
  return error instanceof ReductionError ? error.code : grpc.status.INVALID_ARGUMENT;
}
