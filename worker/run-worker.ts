import { hostname } from 'node:os';
import { modelHash } from '../shared/model/model-hash.js';
import { RegistrationRejectedError } from '../shared/rpc/errors.js';
import { selectBackend, type BackendChoice } from '../shared/runtime/backend.js';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import { parseHostPort } from '../shared/rpc/server.js';
import { startHealthServer } from '../shared/runtime/health-server.js';
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
  /** HOST:PORT of the HTTP health server (`/healthz`, `/readyz`, `/metrics`); none when absent. */
  healthListen?: string;
}

/**
 * Interval of the heartbeat: the worker registers again this often, so a coordinator that restarted
 * learns about it, and the coordinator drops workers that stop doing so.
 */
export const HEARTBEAT_INTERVAL_MS = 5_000;

/**
 * Runs a worker until SIGTERM or SIGINT: selects the backend, serves the Worker gRPC service and registers
 * with the coordinator (retrying while it is unreachable). Resolves when the worker has shut down.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  parseHostPort('--coordinator', options.coordinator);
  parseHostPort('--listen', options.listen);
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
  let registered = false;
  const health = options.healthListen
    ? await startHealthServer({
        ...parseHostPort('--health-listen', options.healthListen),
        flag: '--health-listen',
        isReady: () => registered,
        metrics: () => handlers.metrics(),
        constantLabels: { role: 'worker', worker_id: workerId },
        log,
      })
    : undefined;

  const registration = {
    coordinatorAddress: options.coordinator,
    workerId,
    advertisedAddress: advertised,
    backend: backend.name,
    modelHash: modelHash(),
    logger: log,
  };
  // A signal during registration stops the worker at once instead of after the registration timeout.
  try {
    const first = await Promise.race([
      registerWithCoordinator({
        ...registration,
        ...(options.registerTimeoutMs ? { timeoutMs: options.registerTimeoutMs } : {}),
      }).then(() => undefined),
      stopped,
    ]);
    if (first !== undefined) {
      log.info({ signal: first }, 'worker stopping before registration completed');
      await Promise.all([server.stop(), health?.close()]);
      return;
    }
    registered = true;
  } catch (error) {
    await Promise.all([server.stop(), health?.close()]);
    if (error instanceof RegistrationRejectedError) log.error({ err: error }, 'registration rejected');
    throw error;
  }

  const heartbeat = startHeartbeat(registration, log);
  const signal = await stopped;
  log.info({ signal }, 'worker stopping');
  clearInterval(heartbeat);
  handlers.endActive(`worker received ${signal}`);
  await Promise.all([server.stop(), health?.close()]);
  log.info('worker stopped');
}

/**
 * Re-registers every HEARTBEAT_INTERVAL_MS. A lost coordinator is logged once when contact is lost and once
 * when it is back, not on every failed heartbeat.
 */
function startHeartbeat(
  registration: Parameters<typeof registerWithCoordinator>[0],
  log: Logger,
): NodeJS.Timeout {
  const quiet = log.child({}, { level: 'silent' });
  let inContact = true;
  return setInterval(() => {
    registerWithCoordinator({
      ...registration,
      logger: quiet,
      heartbeat: true,
      timeoutMs: HEARTBEAT_INTERVAL_MS,
      maxBackoffMs: 1_000,
    })
      .then(() => {
        if (!inContact)
          log.info(
            { coordinator: registration.coordinatorAddress },
            'coordinator reachable again; registered',
          );
        inContact = true;
      })
      .catch((error: unknown) => {
        if (inContact) {
          log.warn(
            {
              coordinator: registration.coordinatorAddress,
              error: error instanceof Error ? error.message : String(error),
            },
            'lost contact with the coordinator; heartbeats continue every 5 s until it is back or the worker is stopped',
          );
        }
        inContact = false;
      });
  }, HEARTBEAT_INTERVAL_MS);
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
