import * as grpc from '@grpc/grpc-js';
import { UsageError } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { HealthService } from './health.js';
import { CHANNEL_OPTIONS, loadProtos } from './proto.js';

/** Splits `HOST:PORT` (IPv6 hosts in brackets) and checks the port, throwing a UsageError naming `option`. */
export function parseHostPort(option: string, value: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(value);
  if (match === null) throw new UsageError(`${option} must be HOST:PORT, got ${JSON.stringify(value)}`);

  const port = Number(match[2]);
  if (port > 65_535)
    throw new UsageError(`${option} port must be 0..65535, got ${port} in ${JSON.stringify(value)}`);
  return { host: match[1]!, port };
}

/**
 * Creates a gRPC server with the project's channel options and binds it to `listen` (HOST:PORT, port 0 picks
 * a free port). Returns the server and the bound port. A taken address or an unresolvable host becomes a
 * UsageError naming the address.
 */
export async function bindServer(
  listen: string,
  services: readonly {
    definition: grpc.ServiceDefinition;
    implementation: grpc.UntypedServiceImplementation;
  }[],
): Promise<{ server: grpc.Server; port: number }> {
  parseHostPort('--listen', listen);
  const server = new grpc.Server(CHANNEL_OPTIONS);
  for (const service of services) server.addService(service.definition, service.implementation);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error === null) resolve(boundPort);
      else reject(bindError(listen, error));
    });
  });
  return { server, port };
}

/** Stops a server: waits up to `graceMs` for calls in flight, then cancels them. */
export function stopServer(server: grpc.Server, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function bindError(listen: string, error: Error): UsageError {
  if (error.message.includes('EADDRINUSE')) {
    return new UsageError(`cannot listen on ${listen}: address already in use; choose another --listen port`);
  }
  return new UsageError(`cannot listen on ${listen}: ${error.message}`);
}

/** A running gRPC server of one cbn-train service plus the health service. */
export interface RunningServer {
  /** The bound port (the chosen one when `listen` had port 0). */
  readonly port: number;
  readonly health: HealthService;
  /** Reports NOT_SERVING, waits up to `graceMs` (default 2000) for calls in flight, then closes. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Binds one service and `grpc.health.v1.Health` on `listen`, logging the start and the stop as `name`
 * (for example `coordinator`). Throws a UsageError naming the address when it is taken or invalid.
 */
export async function startServer(options: {
  listen: string;
  name: string;
  serviceName: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  log: Logger;
}): Promise<RunningServer> {
  const health = new HealthService([options.serviceName]);
  const { server, port } = await bindServer(options.listen, [
    { definition: options.definition, implementation: options.implementation },
    { definition: loadProtos().healthService, implementation: health.implementation() },
  ]);
  options.log.info({ listen: options.listen, port }, `${options.name} listening`);

  return {
    port,
    health,
    async stop(graceMs = 2_000) {
      health.setAll(false);
      await stopServer(server, graceMs);
      options.log.info({ port }, `${options.name} server stopped`);
    },
  };
}
