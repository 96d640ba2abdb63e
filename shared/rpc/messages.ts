/**
 * TypeScript shapes of the protocol's messages as `@grpc/proto-loader` decodes them (see `loadProtos`):
 * camelCase fields, numbers for 64-bit integers, enum names as strings, Buffers for `bytes`. Only the
 * transport uses these, and the handlers see the plain types of `types.ts`.
 */

export type WireDType = 'DTYPE_UNSPECIFIED' | 'DTYPE_FLOAT32' | 'DTYPE_FLOAT64';
export type WireReduceKind = 'REDUCE_KIND_UNSPECIFIED' | 'REDUCE_KIND_SUM' | 'REDUCE_KIND_GATHER';

export interface RegisterRequest {
  workerId: string;
  address: string;
  backend: string;
  protocolVersion: number;
  modelHash: string;
}

export interface RegisterResponse {
  accepted: boolean;
  rank?: number;
  message: string;
}

export interface ReduceHeader {
  jobId: string;
  opId: string;
  rank: number;
  workerId: string;
  kind: WireReduceKind;
  dtype: WireDType;
  length: number;
  deadlineMs: number;
  step: number;
}

export interface ReduceRequest {
  header?: ReduceHeader | null;
  data: Buffer;
}

export interface ReduceResultHeader {
  dtype: WireDType;
  partLengths: number[];
}

export interface ReduceResponse {
  header?: ReduceResultHeader | null;
  data: Buffer;
}

export interface StartJobRequest {
  jobId: string;
  configJson: string;
  rank: number;
  worldSize: number;
}

export interface WireShard {
  images: Buffer;
  labels: Buffer;
  globalIndices: number[];
  count: number;
  height: number;
  width: number;
  channels: number;
}

export interface RunStepRequest {
  jobId: string;
  step: number;
  phases: string[];
  globalBatch: number;
  shard?: WireShard | null;
}

export interface WireStepResult {
  losses: Record<string, number>;
  timingsMs: Record<string, number>;
  paramChecksum?: number;
  error: string;
}

export interface GetStateRequest {
  jobId: string;
}

export interface TensorChunk {
  name: string;
  shape: number[];
  dtype: WireDType;
  offset: number;
  data: Buffer;
}

export interface PutStateRequest {
  jobId: string;
  chunk?: TensorChunk | null;
}

export interface PutStateResponse {
  tensorCount: number;
}

export interface EndJobRequest {
  jobId: string;
  reason: string;
}

export type Empty = Record<string, never>;

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
}
