import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../shared/runtime/logger.js';
import type { RegisterRequest, RegisterResponse } from '../shared/rpc/messages.js';
import { PROTOCOL_VERSION } from '../shared/rpc/version.js';

/** A worker that joined the coordinator. `rank` is set once ranks are assigned. */
export interface RegisteredWorker {
  workerId: string;
  address: string;
  backend: string;
  rank?: number;
  /** When the worker last registered (workers re-register as a heartbeat), in `Date.now()` milliseconds. */
  lastSeenMs?: number;
}

/** A worker with its assigned rank, as `waitForWorkers` returns it. */
export interface RankedWorker extends RegisteredWorker {
  rank: number;
}

/** A registration the coordinator rejected. */
export interface Rejection {
  workerId: string;
  address: string;
  message: string;
}

export interface WorkerRegistryOptions {
  /** Hash of the coordinator's model definition. A worker must present the same one. */
  modelHash: string;
  /** Protocol version workers must present (default PROTOCOL_VERSION). */
  protocolVersion?: number;
  logger?: Logger;
}

/** Error of a `waitForWorkers` call that timed out. The message lists who joined. */
export class WorkerWaitTimeoutError extends Error {
  override name = 'WorkerWaitTimeoutError';
}

// How many rejections `rejections` keeps, oldest dropped first.
const MAX_KEPT_REJECTIONS = 100;

/**
 * The workers that registered with the coordinator, keyed by worker id.
 *
 * Ranks are assigned by `waitForWorkers(n)` once n workers have joined: the joined workers are sorted by
 * worker id (UTF-16 code unit order, as `Array.prototype.sort` compares strings) and the first n get ranks
 * 0..n−1. The same set of ids therefore always yields the same ranks, whatever order they joined in.
 * A worker that registers again with the same id (a restarted container) replaces its address and keeps its
 * rank. Workers beyond n stay registered without a rank.
 */
export class WorkerRegistry {
  private readonly workers = new Map<string, RegisteredWorker>();
  private readonly joined = new EventEmitter();
  private readonly protocolVersion: number;
  private readonly log: Logger;
  /** The latest rejected registrations, at most 100. */
  readonly rejections: Rejection[] = [];

  constructor(private readonly options: WorkerRegistryOptions) {
    this.protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION;
    this.log = options.logger ?? createLogger('coordinator');
  }

  /** Handles one Register call: validates the worker, records it and returns the response. */
  register(request: RegisterRequest): RegisterResponse {
    const reason = this.rejectionReason(request);
    if (reason !== undefined) return this.reject(request, reason);

    const previous = this.workers.get(request.workerId);
    const worker: RegisteredWorker = {
      workerId: request.workerId,
      address: request.address,
      backend: request.backend,
      lastSeenMs: Date.now(),
      ...(previous?.rank === undefined ? {} : { rank: previous.rank }),
    };
    this.workers.set(worker.workerId, worker);

    const logFields = {
      workerId: worker.workerId,
      address: worker.address,
      backend: worker.backend,
      rank: worker.rank,
    };
    if (previous === undefined) {
      this.log.info({ ...logFields, joined: this.workers.size }, 'worker registered');
    } else if (previous.address !== worker.address) {
      this.log.warn(
        { ...logFields, previousAddress: previous.address },
        'worker registered again at a new address',
      );
    } else {
      this.log.debug(logFields, 'worker heartbeat');
    }
    this.joined.emit('joined');

    const response: RegisterResponse = { accepted: true, message: `registered as ${worker.workerId}` };
    if (worker.rank !== undefined) response.rank = worker.rank;
    return response;
  }

  /** Returns the registered workers sorted by worker id. */
  list(): RegisteredWorker[] {
    return [...this.workers.values()].sort((a, b) => compareIds(a.workerId, b.workerId));
  }

  /** Forgets a worker, for example after it stopped answering. Logs the loss with `reason`. */
  remove(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (worker === undefined) return;
    this.workers.delete(workerId);
    this.log.warn({ workerId, address: worker.address, rank: worker.rank, reason }, 'worker removed');
  }

  /**
   * Removes workers that have not registered for `maxSilenceMs` (workers re-register as a heartbeat), and
   * returns their ids. The coordinator calls it periodically, so a dead worker is not ranked for a new job.
   */
  removeSilent(maxSilenceMs: number): string[] {
    const cutoff = Date.now() - maxSilenceMs;
    const silent = [...this.workers.values()].filter((w) => (w.lastSeenMs ?? 0) < cutoff);
    for (const worker of silent) this.remove(worker.workerId, `no heartbeat for ${maxSilenceMs} ms`);
    return silent.map((w) => w.workerId);
  }

  /**
   * Waits until `n` workers have joined, assigns ranks (see the class comment) and returns the n ranked
   * workers in rank order. Rejects with WorkerWaitTimeoutError after `timeoutMs`, naming who joined.
   */
  waitForWorkers(n: number, timeoutMs: number): Promise<RankedWorker[]> {
    if (!Number.isInteger(n) || n < 1) throw new Error(`worker count must be a positive integer, got ${n}`);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new Error(`timeoutMs must be positive, got ${timeoutMs}`);
    if (this.workers.size >= n) return Promise.resolve(this.assignRanks(n));

    this.log.info({ expected: n, joined: this.workers.size, timeoutMs }, 'waiting for workers');
    return new Promise((resolve, reject) => {
      const onJoined = () => {
        if (this.workers.size < n) return;
        clearTimeout(timer);
        this.joined.off('joined', onJoined);
        resolve(this.assignRanks(n));
      };
      const timer = setTimeout(() => {
        this.joined.off('joined', onJoined);
        const error = new WorkerWaitTimeoutError(this.timeoutMessage(n, timeoutMs));
        this.log.error(
          { expected: n, joined: this.workers.size, err: error },
          'timed out waiting for workers',
        );
        reject(error);
      }, timeoutMs);
      this.joined.on('joined', onJoined);
    });
  }

  private assignRanks(n: number): RankedWorker[] {
    const sorted = this.list();
    for (const worker of sorted) delete worker.rank;

    const ranked = sorted.slice(0, n).map((worker, rank) => Object.assign(worker, { rank }));
    for (const worker of ranked) {
      this.log.info(
        { workerId: worker.workerId, address: worker.address, rank: worker.rank },
        'rank assigned',
      );
    }
    return ranked.map((worker) => ({ ...worker }));
  }

  private rejectionReason(request: RegisterRequest): string | undefined {
    const who = `worker ${JSON.stringify(request.workerId)} at ${request.address || '(no address)'}`;
    if (request.workerId === '') return `${who}: worker id is empty`;
    if (request.address === '')
      return `${who}: address is empty; the worker must send the HOST:PORT at which the coordinator reaches it`;
    if (request.protocolVersion !== this.protocolVersion) {
      return (
        `${who} speaks protocol version ${request.protocolVersion}, but the coordinator speaks ` +
        `${this.protocolVersion}; run the same cbn-train release on both`
      );
    }
    if (request.modelHash !== this.options.modelHash) {
      return (
        `${who} has model hash ${request.modelHash || '(empty)'}, but the coordinator has ` +
        `${this.options.modelHash}; run the same cbn-train release and preset on both`
      );
    }
    return undefined;
  }

  private reject(request: RegisterRequest, message: string): RegisterResponse {
    this.rejections.push({ workerId: request.workerId, address: request.address, message });
    if (this.rejections.length > MAX_KEPT_REJECTIONS) this.rejections.shift();
    this.log.warn(
      { workerId: request.workerId, address: request.address, reason: message },
      'registration rejected',
    );
    return { accepted: false, message };
  }

  private timeoutMessage(n: number, timeoutMs: number): string {
    const joined = this.list();
    const names = joined.map((worker) => `${worker.workerId} at ${worker.address}`).join(', ');
    const who = joined.length === 0 ? 'none joined' : `${joined.length} joined (${names})`;
    return `timed out after ${timeoutMs} ms waiting for ${n} workers: ${who}`;
  }
}

function compareIds(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}
