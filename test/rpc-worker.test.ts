import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { JobConfigSchema } from '../shared/config/job.js';
import { WorkerClient } from '../coordinator/worker-client.js';
import { startWorkerServer, type WorkerServer } from '../worker/worker-server.js';
import { WorkerStepError } from '../shared/rpc/errors.js';
import type { NamedTensor, RunStepRequest, StartJobRequest, WorkerHandlers } from '../shared/rpc/types.js';

const silent = pino({ level: 'silent' });

/** Handlers that record their requests and serve a fixed state. */
class RecordingHandlers implements WorkerHandlers {
  started: StartJobRequest[] = [];
  steps: RunStepRequest[] = [];
  stored: NamedTensor[] = [];
  ended: string[] = [];
  failStep: string | undefined;

  async startJob(request: StartJobRequest) {
    this.started.push(request);
  }
  async runStep(request: RunStepRequest) {
    this.steps.push(request);
    if (this.failStep !== undefined) throw new Error(this.failStep);
    return { losses: { d: 1.25, g: -0.5 }, timingsMs: { forward: 12 }, paramChecksum: 42.5 };
  }
  async getState() {
    if (this.stored.length === 0) throw new Error('no job is running');
    return this.stored;
  }
  async putState(request: { jobId: string; tensors: NamedTensor[] }) {
    this.stored = request.tensors;
  }
  async endJob(request: { jobId: string; reason: string }) {
    this.ended.push(`${request.jobId}: ${request.reason}`);
  }
}

/** About 2.5M parameters: a few large conv kernels, a float64 buffer, a scalar and an empty tensor. */
function modelState(): NamedTensor[] {
  const shapes: [string, number[]][] = [
    ['g/block0/conv1/kernel', [3, 3, 256, 256]],
    ['g/block0/conv2/kernel', [3, 3, 256, 256]],
    ['d/block1/conv1/kernel', [3, 3, 256, 256]],
    ['d/block1/conv2/kernel', [3, 3, 256, 256]],
    ['g/embedding', [10, 128]],
    ['adam/iterations', []],
    ['g/unused', [0, 4]],
  ];
  let seed = 1;
  const tensors: NamedTensor[] = shapes.map(([name, shape]) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      values[i] = (seed / 2147483648 - 0.5) * 1e-3;
    }
    return { name, shape, values };
  });
  tensors.push({ name: 'd/bn/movingVariance64', shape: [3], values: new Float64Array([1 / 3, Math.PI, -0]) });
  return tensors;
}

describe('worker server and client', () => {
  let handlers: RecordingHandlers;
  let server: WorkerServer;
  let client: WorkerClient;

  beforeEach(async () => {
    handlers = new RecordingHandlers();
    server = await startWorkerServer({ listen: '127.0.0.1:0', handlers, workerId: 'w1', logger: silent });
    client = new WorkerClient({
      address: `127.0.0.1:${server.port}`,
      workerId: 'w1',
      logger: silent,
      stepDeadlineMs: 20_000,
    });
  });

  afterEach(async () => {
    client.close();
    await server.stop(100);
  });

  it('passes StartJob and EndJob through', async () => {
    const config = JobConfigSchema.parse({ batch: 32, seed: 7 });

    await client.startJob({ jobId: 'j1', config, rank: 2, worldSize: 3 });
    await client.endJob({ jobId: 'j1', reason: 'finished' });

    expect(handlers.started).toEqual([{ jobId: 'j1', config, rank: 2, worldSize: 3 }]);
    expect(handlers.ended).toEqual(['j1: finished']);
    expect(client.rank).toBe(2);
  });

  it('rejects an invalid job config', async () => {
    const config = { ...JobConfigSchema.parse({}), batch: -4 };

    await expect(client.startJob({ jobId: 'j1', config, rank: 0, worldSize: 1 })).rejects.toThrow(
      /StartJob failed for rank 0 \(worker w1 at 127\.0\.0\.1:\d+\), job j1: INVALID_ARGUMENT: .*batch: .*got -4/,
    );
    expect(handlers.started).toEqual([]);
  });

  it('delivers a shard to runStep', async () => {
    const images = Uint8Array.from({ length: 2 * 28 * 28 }, (_, i) => i % 256);
    const request: RunStepRequest = {
      jobId: 'j1',
      step: 12,
      phases: ['D', 'G'],
      globalBatch: 5,
      shard: {
        images,
        labels: Uint8Array.of(3, 9),
        globalIndices: Uint32Array.of(1, 4),
        count: 2,
        height: 28,
        width: 28,
        channels: 1,
      },
    };

    const result = await client.runStep(request);

    expect(result).toEqual({ losses: { d: 1.25, g: -0.5 }, timingsMs: { forward: 12 }, paramChecksum: 42.5 });
    const received = handlers.steps[0]!;
    expect(received.jobId).toBe('j1');
    expect(received.step).toBe(12);
    expect(received.phases).toEqual(['D', 'G']);
    expect(received.globalBatch).toBe(5);
    expect(Buffer.from(received.shard.images).equals(Buffer.from(images))).toBe(true);
    expect(Array.from(received.shard.labels)).toEqual([3, 9]);
    expect(received.shard.globalIndices).toEqual(Uint32Array.of(1, 4));
    expect([
      received.shard.count,
      received.shard.height,
      received.shard.width,
      received.shard.channels,
    ]).toEqual([2, 28, 28, 1]);
  });

  it('delivers an empty shard', async () => {
    const empty = {
      images: new Uint8Array(0),
      labels: new Uint8Array(0),
      globalIndices: new Uint32Array(0),
      count: 0,
      height: 28,
      width: 28,
      channels: 1,
    };

    await client.runStep({ jobId: 'j1', step: 1, phases: ['D'], globalBatch: 1, shard: empty });

    expect(handlers.steps[0]!.shard.count).toBe(0);
    expect(handlers.steps[0]!.shard.images.length).toBe(0);
  });

  it('rejects a shard whose sizes disagree', async () => {
    const shard = {
      images: new Uint8Array(10),
      labels: Uint8Array.of(1),
      globalIndices: Uint32Array.of(0),
      count: 1,
      height: 28,
      width: 28,
      channels: 1,
    };

    await expect(
      client.runStep({ jobId: 'j1', step: 3, phases: ['D'], globalBatch: 1, shard }),
    ).rejects.toThrow(
      /INVALID_ARGUMENT: .*shard images have 10 bytes, expected count×height×width×channels = 1×28×28×1 = 784/,
    );
  });

  it('reports a failed step with rank, address and step', async () => {
    await client.startJob({ jobId: 'j1', config: JobConfigSchema.parse({}), rank: 1, worldSize: 2 });
    handlers.failStep = 'NaN in D loss';
    const empty = {
      images: new Uint8Array(0),
      labels: new Uint8Array(0),
      globalIndices: new Uint32Array(0),
      count: 0,
      height: 28,
      width: 28,
      channels: 1,
    };

    const attempt = client.runStep({ jobId: 'j1', step: 7, phases: ['D'], globalBatch: 4, shard: empty });

    await expect(attempt).rejects.toBeInstanceOf(WorkerStepError);
    await expect(attempt).rejects.toThrow(
      `RunStep failed on rank 1 (worker w1 at 127.0.0.1:${server.port}), job j1, step 7: NaN in D loss`,
    );
  });

  it('round-trips 2.5M parameters bit-exactly', async () => {
    const state = modelState();
    const parameterCount = state.reduce((sum, tensor) => sum + tensor.values.length, 0);
    expect(parameterCount).toBeGreaterThan(2_350_000);

    await client.putState({ jobId: 'j1', tensors: state });
    const back = await client.getState('j1');

    expect(back.map((t) => t.name)).toEqual(state.map((t) => t.name));
    for (const [i, tensor] of back.entries()) {
      const sent = state[i]!;
      expect(tensor.shape).toEqual(sent.shape);
      expect(tensor.values.constructor).toBe(sent.values.constructor);
      expect(
        Buffer.from(tensor.values.buffer, tensor.values.byteOffset, tensor.values.byteLength).equals(
          Buffer.from(sent.values.buffer, sent.values.byteOffset, sent.values.byteLength),
        ),
      ).toBe(true);
    }
  });

  it('reports a failed getState', async () => {
    await expect(client.getState('j1')).rejects.toThrow(
      `GetState failed for worker w1 at 127.0.0.1:${server.port}, job j1: INTERNAL: GetState failed on worker w1 at 127.0.0.1:${server.port}, job j1: no job is running`,
    );
  });

  it('rejects a state with a duplicate name', async () => {
    const tensor = { name: 'g/bias', shape: [2], values: Float32Array.of(1, 2) };

    await expect(client.putState({ jobId: 'j1', tensors: [tensor, { ...tensor }] })).rejects.toThrow(
      /PutState failed .*INVALID_ARGUMENT: .*tensor "g\/bias" sent twice/,
    );
    expect(handlers.stored).toEqual([]);
  });

  it('answers health checks', async () => {
    await expect(client.checkHealth()).resolves.toBe('SERVING');
  });

  it('names the worker when it is unreachable', async () => {
    const gone = new WorkerClient({
      address: '127.0.0.1:1',
      workerId: 'w9',
      rank: 3,
      logger: silent,
      controlDeadlineMs: 500,
    });

    await expect(gone.endJob({ jobId: 'j1', reason: 'x' })).rejects.toThrow(
      /EndJob failed for rank 3 \(worker w9 at 127\.0\.0\.1:1\), job j1: (UNAVAILABLE|DEADLINE_EXCEEDED)/,
    );
    gone.close();
  });
});
