import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Directory of the `.proto` files, found relative to this module so that any working directory works. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

const PROTO_FILES = ['cbntrain/v1/cbntrain.proto', 'grpc/health/v1/health.proto'];

/**
 * Largest message either side accepts, in bytes. Payloads travel in chunks of CHUNK_BYTES (1 MiB), and a
 * RunStep shard of 8192 MNIST images is 6.4 MiB, so 64 MiB leaves room without allowing unbounded messages.
 */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * HTTP/2 flow-control window in bytes, in place of the 64 KiB default, so that a 1 MiB chunk does not wait
 * for window updates. NOTE: grpc-js 1.14.7 applies the option to client channels only. Its server ignores
 * it, so uploads to the coordinator keep the 64 KiB stream window. Forcing a larger server window through
 * grpc-js internals made no measurable difference on the all-reduce benchmark.
 */
export const FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

/** Channel options of every cbn-train client and server. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
  // Detects a peer that vanished without closing its connection (a killed container).
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** The loaded services: definitions for servers and client constructors. */
export interface Protos {
  coordinatorService: grpc.ServiceDefinition;
  workerService: grpc.ServiceDefinition;
  healthService: grpc.ServiceDefinition;
  CoordinatorClient: grpc.ServiceClientConstructor;
  WorkerClient: grpc.ServiceClientConstructor;
  HealthClient: grpc.ServiceClientConstructor;
}

let cached: Protos | undefined;

/**
 * Loads the protocol at run time with `@grpc/proto-loader`, so there is no code generation step. Field names
 * become camelCase (`worker_id` -> `workerId`), 64-bit integers become numbers, enums become their names.
 */
export function loadProtos(): Protos {
  if (cached !== undefined) return cached;

  const definition = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition);
  const v1 = (root.cbntrain as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const health = ((root.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject;

  const CoordinatorClient = v1.Coordinator as grpc.ServiceClientConstructor;
  const WorkerClient = v1.Worker as grpc.ServiceClientConstructor;
  const HealthClient = health.Health as grpc.ServiceClientConstructor;
  cached = {
    coordinatorService: CoordinatorClient.service,
    workerService: WorkerClient.service,
    healthService: HealthClient.service,
    CoordinatorClient,
    WorkerClient,
    HealthClient,
  };
  return cached;
}
