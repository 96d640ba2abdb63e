import { modelHash } from '../shared/model/model-hash.js';
import { parseHostPort } from '../shared/rpc/server.js';
import { selectBackend, type BackendChoice } from '../shared/runtime/backend.js';
import { startHealthServer, type HealthServer } from '../shared/runtime/health-server.js';
import type { Logger } from '../shared/runtime/logger.js';
import { startCoordinatorServer, type CoordinatorServer } from './coordinator-server.js';
import { ReductionService } from './reduction-service.js';
import { WorkerRegistry } from './registry.js';
import { CoordinatorStatus } from './status.js';

/** A worker that has not sent a heartbeat (a re-registration every 5 s) for this long is dropped. */
export const WORKER_SILENCE_LIMIT_MS = 20_000;

/** The long-lived parts of a coordinator process, shared by the single-job and the queue modes. */
export interface CoordinatorServices {
  registry: WorkerRegistry;
  reductions: ReductionService;
  server: CoordinatorServer;
  status: CoordinatorStatus;
  stop(): Promise<void>;
}

export interface CoordinatorServicesOptions {
  listen: string;
  backend: BackendChoice;
  /** HOST:PORT of the HTTP server with `/healthz`, `/readyz` and `/metrics`; none when absent. */
  metricsListen?: string;
  log: Logger;
}

/**
 * Selects the coordinator's backend (it renders sample grids), then starts the registry, the reduction
 * star, the gRPC server on `listen`, the optional HTTP metrics server, and the pruning of silent workers.
 */
export async function startCoordinatorServices(
  options: CoordinatorServicesOptions,
): Promise<CoordinatorServices> {
  const { log } = options;
  await selectBackend(options.backend, log);
  const registry = new WorkerRegistry({ modelHash: modelHash(), logger: log });
  const reductions = new ReductionService({ logger: log });
  const status = new CoordinatorStatus(registry);
  const server = await startCoordinatorServer({ listen: options.listen, registry, reductions, logger: log });

  let http: HealthServer | undefined;
  try {
    if (options.metricsListen) {
      http = await startHealthServer({
        ...parseHostPort('--metrics-listen', options.metricsListen),
        flag: '--metrics-listen',
        isReady: () => true,
        metrics: () => status.metrics(),
        constantLabels: { role: 'coordinator' },
        log,
      });
    }
  } catch (error) {
    await server.stop();
    throw error;
  }

  const pruner = setInterval(
    () => registry.removeSilent(WORKER_SILENCE_LIMIT_MS),
    WORKER_SILENCE_LIMIT_MS / 4,
  );
  pruner.unref();
  return {
    registry,
    reductions,
    server,
    status,
    async stop() {
      clearInterval(pruner);
      await Promise.all([server.stop(), http?.close()]);
    },
  };
}
