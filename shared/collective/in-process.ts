import { sumInRankOrder, type Collective } from './collective.js';

interface PendingOp {
  kind: 'sum' | 'gather';
  parts: (Float32Array | Float64Array | undefined)[];
  arrived: number;
  resolvers: ((parts: (Float32Array | Float64Array)[]) => void)[];
  rejecters: ((error: Error) => void)[];
}

/**
 * N ranks inside one process, meeting through shared memory. Tests use it to run N replicas step by step
 * without sockets; it applies the same rank-order and matching-id rules as the gRPC star.
 */
export class InProcessGroup {
  private readonly pending = new Map<string, PendingOp>();
  readonly members: Collective[];

  constructor(readonly worldSize: number) {
    this.members = Array.from({ length: worldSize }, (_, rank) => this.member(rank));
  }

  private member(rank: number): Collective {
    const contribute = this.contribute.bind(this);
    return {
      rank,
      worldSize: this.worldSize,
      async allReduceSum<T extends Float32Array | Float64Array>(opId: string, data: T): Promise<T> {
        const parts = await contribute(opId, 'sum', rank, data);
        return sumInRankOrder(parts as T[]);
      },
      async allGather(opId: string, data: Float64Array): Promise<Float64Array[]> {
        const parts = await contribute(opId, 'gather', rank, data);
        return parts.map((p) => Float64Array.from(p));
      },
    };
  }

  private contribute(
    opId: string,
    kind: 'sum' | 'gather',
    rank: number,
    data: Float32Array | Float64Array,
  ): Promise<(Float32Array | Float64Array)[]> {
    let op = this.pending.get(opId);
    if (op === undefined) {
      op = {
        kind,
        parts: new Array(this.worldSize).fill(undefined),
        arrived: 0,
        resolvers: [],
        rejecters: [],
      };
      this.pending.set(opId, op);
    }
    if (op.kind !== kind) {
      throw new Error(`operation ${opId}: rank ${rank} issued ${kind} but another rank issued ${op.kind}`);
    }
    if (op.parts[rank] !== undefined) throw new Error(`operation ${opId}: rank ${rank} contributed twice`);

    op.parts[rank] = data.slice();
    op.arrived++;
    const result = new Promise<(Float32Array | Float64Array)[]>((resolve, reject) => {
      op.resolvers.push(resolve);
      op.rejecters.push(reject);
    });
    if (op.arrived === this.worldSize) {
      this.pending.delete(opId);
      const parts = op.parts as (Float32Array | Float64Array)[];
      for (const resolve of op.resolvers) resolve(parts);
    }
    return result;
  }
}
