import { hostname } from 'node:os';
import { modelHash } from '../shared/model/model-hash.js';
import { RegistrationRejectedError } from '../shared/rpc/errors.js';
import { selectBackend, type BackendChoice } from '../shared/runtime/backend.js';
import { createLogger } from '../shared/runtime/logger.js';
import { registerWithCoordinator } from './registration.js';
import { TrainingHandlers } from './training-handlers.js';
import { startWorkerServer } from './worker-server.js';

export interface WorkerOptions {
  /** HOST:PORT of the coordinator. */
  coordinator: string;
  /** HOST:PORT this worker's gRPC service listens on (port 0 picks one). */
  listen: string;
  /** HOST:PORT the coordinator dials; defaults to the listen host with the bound port. */
  advertise?: string;
  backend: BackendChoice;
  /** Defaults to `<hostname>-<pid>`. */
  workerId?: string;
  /** Give up registering after this many milliseconds. */
  registerTimeoutMs?: number;
}

/**
 * Runs a worker until SIGTERM or SIGINT: selects the backend, serves the Worker gRPC service and registers
 * with the coordinator (retrying while it is unreachable). Resolves when the worker has shut down.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const workerId = options.workerId ?? `${hostname()}-${process.pid}`;
  const log = createLogger('worker', { workerId });
  log.info({ coordinator: options.coordinator, listen: options.listen }, 'worker starting');

  const backend = await selectBackend(options.backend, log);
  const handlers = new TrainingHandlers({ coordinatorAddress: options.coordinator, workerId, logger: log });
  const listenHost = options.listen.slice(0, options.listen.lastIndexOf(':'));
  let advertised = options.advertise ?? '';
  const server = await startWorkerServer({
    listen: options.listen,
    handlers,
    workerId,
    logger: log,
    ...(options.advertise ? { advertisedAddress: options.advertise } : {}),
  });
  advertised ||= `${listenHost}:${server.port}`;

  const stopped = waitForSignal(log);
  try {
    await registerWithCoordinator({
      coordinatorAddress: options.coordinator,
      workerId,
      advertisedAddress: advertised,
      backend: backend.name,
      modelHash: modelHash(),
      logger: log,
      ...(options.registerTimeoutMs ? { timeoutMs: options.registerTimeoutMs } : {}),
    });
    log.info({ advertised }, 'worker registered');
  } catch (error) {
    await server.stop();
    if (error instanceof RegistrationRejectedError) log.error({ err: error }, 'registration rejected');
    throw error;
  }

  const signal = await stopped;
  log.info({ signal }, 'worker stopping');
  handlers.endActive(`worker received ${signal}`);
  await server.stop();
  log.info('worker stopped');
}

function waitForSignal(log: ReturnType<typeof createLogger>): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'signal received');
      resolve(signal);
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
