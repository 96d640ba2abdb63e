import { modelHash } from '../shared/model/model-hash.js';
import { selectBackend, type BackendChoice } from '../shared/runtime/backend.js';
import type { Logger } from '../shared/runtime/logger.js';
import { startCoordinatorServer, type CoordinatorServer } from './coordinator-server.js';
import { ReductionService } from './reduction-service.js';
import { WorkerRegistry } from './registry.js';

/** The long-lived parts of a coordinator process, shared by the single-job and the queue modes. */
export interface CoordinatorServices {
  registry: WorkerRegistry;
  reductions: ReductionService;
  server: CoordinatorServer;
  stop(): Promise<void>;
}

/**
 * Selects the coordinator's backend (it renders sample grids), then starts the registry, the reduction
 * star and the gRPC server on `listen`.
 */
export async function startCoordinatorServices(options: { listen: string; backend: BackendChoice; log: Logger }): Promise<CoordinatorServices> {
  const { log } = options;
  await selectBackend(options.backend, log);
  const registry = new WorkerRegistry({ modelHash: modelHash(), logger: log });
  const reductions = new ReductionService({ logger: log });
  const server = await startCoordinatorServer({ listen: options.listen, registry, reductions, logger: log });
  return {
    registry,
    reductions,
    server,
    stop: () => server.stop(),
  };
}
