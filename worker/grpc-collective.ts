import * as grpc from '@grpc/grpc-js';
import type { Collective } from '../shared/collective/collective.js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { bytesOf, ChunkAssembler, chunksOf, wireDTypeOf, type FloatArray } from '../shared/rpc/codec.js';
import { deadlineAfter, REDUCE_CLIENT_GRACE_MS, STEP_DEADLINE_MS } from '../shared/rpc/deadline.js';
import { wrapCallError } from '../shared/rpc/errors.js';
import type {
  ReduceRequest,
  ReduceResponse,
  ReduceResultHeader,
  WireReduceKind,
} from '../shared/rpc/messages.js';
import { CHANNEL_OPTIONS, loadProtos } from '../shared/rpc/proto.js';
import { writeMessage } from '../shared/rpc/streams.js';

export interface GrpcCollectiveOptions {
  /** HOST:PORT of the coordinator's gRPC server. */
  coordinatorAddress: string;
  jobId: string;
  rank: number;
  worldSize: number;
  /** This worker's id. The coordinator checks it against the rank and names it in errors. */
  workerId?: string;
  /** How long an operation may wait for the other ranks, in milliseconds (default 120 000). */
  deadlineMs?: number;
  logger?: Logger;
}

/**
 * The Collective of one worker, backed by the coordinator's Reduce star over gRPC. Each operation streams
 * the buffer to the coordinator in 1 MiB chunks and receives the result the same way.
 *
 * An operation fails instead of hanging. The coordinator fails it `deadlineMs` after its first contribution,
 * naming the silent ranks, and the client's own gRPC deadline passes `REDUCE_CLIENT_GRACE_MS` after that in
 * case the coordinator itself is gone. Errors name the operation id, the deadline, this rank and the step.
 */
export class GrpcCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  /** Step named in errors and in the coordinator's logs. The engine sets it at the start of each step. */
  step = 0;

  private readonly client: grpc.Client;
  private readonly deadlineMs: number;
  private readonly log: Logger;

  constructor(private readonly options: GrpcCollectiveOptions) {
    if (!Number.isInteger(options.worldSize) || options.worldSize < 1) {
      throw new Error(`worldSize must be a positive integer, got ${options.worldSize}`);
    }
    if (!Number.isInteger(options.rank) || options.rank < 0 || options.rank >= options.worldSize) {
      throw new Error(`rank must be an integer in 0..${options.worldSize - 1}, got ${options.rank}`);
    }
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.deadlineMs = options.deadlineMs ?? STEP_DEADLINE_MS;
    this.log =
      options.logger ??
      createLogger('worker', { rank: options.rank, workerId: options.workerId, jobId: options.jobId });
    const { CoordinatorClient } = loadProtos();
    this.client = new CoordinatorClient(
      options.coordinatorAddress,
      grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  /** Sums `data` over all ranks in rank order, as `Collective.allReduceSum` specifies. */
  async allReduceSum<T extends Float32Array | Float64Array>(opId: string, data: T): Promise<T> {
    const { values } = await this.reduce('REDUCE_KIND_SUM', opId, data);
    return values as T;
  }

  /** Gathers one float64 buffer per rank in rank order, as `Collective.allGather` specifies. */
  async allGather(opId: string, data: Float64Array): Promise<Float64Array[]> {
    const { values, header } = await this.reduce('REDUCE_KIND_GATHER', opId, data);
    const parts: Float64Array[] = [];
    let offset = 0;
    for (const length of header.partLengths) {
      parts.push(values.subarray(offset, offset + length) as Float64Array);
      offset += length;
    }
    return parts;
  }

  /** Closes the channel to the coordinator. */
  close(): void {
    this.client.close();
  }

  // TODO: send buffers above about 1 MiB over a binary TCP ring (reduce-scatter, then all-gather) between
  // the workers and keep the star for small ones. On loopback with 2 cores the star is 11 to 38 times
  // slower than gloo, because the coordinator moves n·S bytes each way and grpc-js copies every message.
  private async reduce(kind: WireReduceKind, opId: string, data: FloatArray) {
    const context = {
      rank: this.rank,
      workerId: this.options.workerId,
      jobId: this.options.jobId,
      step: this.step,
      opId,
    };
    const call = `${kind === 'REDUCE_KIND_SUM' ? 'allReduceSum' : 'allGather'} (deadline ${this.deadlineMs} ms)`;
    try {
      const result = await this.exchange(kind, opId, data);
      if (kind === 'REDUCE_KIND_SUM' && result.values.length !== data.length) {
        throw new Error(`result has ${result.values.length} elements, expected ${data.length}`);
      }
      return result;
    } catch (error) {
      const wrapped = wrapCallError(call, error, context);
      this.log.error({ step: this.step, opId, err: wrapped }, 'collective operation failed');
      throw wrapped;
    }
  }

  private exchange(
    kind: WireReduceKind,
    opId: string,
    data: FloatArray,
  ): Promise<{ values: FloatArray; header: ReduceResultHeader }> {
    const deadline = deadlineAfter(this.deadlineMs + REDUCE_CLIENT_GRACE_MS);
    const stream = (this.client as unknown as ReduceClient).Reduce({ deadline });
    const dtype = wireDTypeOf(data);

    const received = new Promise<{ values: FloatArray; header: ReduceResultHeader }>((resolve, reject) => {
      let assembler: ChunkAssembler | undefined;
      let header: ReduceResultHeader | undefined;
      stream.on('data', (message: ReduceResponse) => {
        try {
          if (header === undefined) {
            header = message.header ?? undefined;
            if (header === undefined) throw new Error('the first Reduce response carries no header');
            if (header.dtype !== dtype) throw new Error(`result dtype ${header.dtype}, expected ${dtype}`);
            assembler = new ChunkAssembler(
              header.dtype,
              header.partLengths.reduce((sum, length) => sum + length, 0),
            );
          }
          if (message.data.length > 0) assembler!.push(message.data);
        } catch (error) {
          stream.cancel();
          reject(error);
        }
      });
      stream.on('error', reject);
      stream.on('end', () => {
        try {
          if (header === undefined || assembler === undefined)
            throw new Error('the coordinator closed the stream without a result');
          resolve({ values: assembler.finish(), header });
        } catch (error) {
          reject(error);
        }
      });
    });

    // One header message, then `data` as raw little-endian chunks of at most CHUNK_BYTES.
    const sent = (async () => {
      const header = {
        jobId: this.options.jobId,
        opId,
        rank: this.rank,
        workerId: this.options.workerId ?? '',
        kind,
        dtype,
        length: data.length,
        deadlineMs: this.deadlineMs,
        step: this.step,
      };
      await writeMessage(stream, { header, data: Buffer.alloc(0) } satisfies ReduceRequest);
      if (data.length > 0)
        for (const chunk of chunksOf(bytesOf(data))) await writeMessage(stream, { data: chunk });
      stream.end();
    })();
    // A failed send also surfaces as a stream error, which `received` reports with the server's status.
    sent.catch(() => undefined);
    return received;
  }
}

interface ReduceClient {
  Reduce(options: grpc.CallOptions): grpc.ClientDuplexStream<ReduceRequest, ReduceResponse>;
}
