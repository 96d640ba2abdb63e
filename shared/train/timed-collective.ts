import type { Collective } from '../collective/collective.js';

/** Wraps a collective and adds up the wall time spent waiting for reductions. */
export class TimedCollective implements Collective {
  /** Milliseconds spent inside reductions since the last `takeElapsedMs`. */
  private elapsedMs = 0;

  constructor(private readonly inner: Collective) {}

  get rank(): number {
    return this.inner.rank;
  }

  get worldSize(): number {
    return this.inner.worldSize;
  }

  async allReduceSum<T extends Float32Array | Float64Array>(opId: string, data: T): Promise<T> {
    const start = performance.now();
    try {
      return await this.inner.allReduceSum(opId, data);
    } finally {
      this.elapsedMs += performance.now() - start;
    }
  }

  async allGather(opId: string, data: Float64Array): Promise<Float64Array[]> {
    const start = performance.now();
    try {
      return await this.inner.allGather(opId, data);
    } finally {
      this.elapsedMs += performance.now() - start;
    }
  }

  /** Returns the time accumulated so far and restarts the count. */
  takeElapsedMs(): number {
    const value = this.elapsedMs;
    this.elapsedMs = 0;
    return value;
  }
}
