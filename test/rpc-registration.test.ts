import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ReductionService } from '../coordinator/reduction-service.js';
import { WorkerRegistry } from '../coordinator/registry.js';
import { startCoordinatorServer, type CoordinatorServer } from '../coordinator/coordinator-server.js';
import { registerWithCoordinator, type RegistrationOptions } from '../worker/registration.js';
import { PROTOCOL_VERSION } from '../shared/rpc/version.js';
import { RegistrationRejectedError } from '../shared/rpc/errors.js';
import { UsageError } from '../shared/runtime/errors.js';
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../shared/rpc/proto.js';

type HealthCheck = (
  request: { service: string },
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: { status: string }) => void,
) => void;

function checkHealth(address: string, service: string): Promise<string> {
  const client = new (loadProtos().HealthClient)(address, grpc.credentials.createInsecure());
  const check = (client as unknown as { Check: HealthCheck }).Check.bind(client);
  return new Promise<string>((resolve, reject) => {
    check({ service }, { deadline: new Date(Date.now() + 2_000) }, (error, response) => {
      client.close();
      if (error !== null) reject(error);
      else resolve(response!.status);
    });
  });
}

const silent = pino({ level: 'silent' });

describe('worker registration', () => {
  const servers: CoordinatorServer[] = [];

  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop(100);
  });

  async function startCoordinator(listen = '127.0.0.1:0') {
    const registry = new WorkerRegistry({ modelHash: 'model-a', logger: silent });
    const server = await startCoordinatorServer({
      listen,
      registry,
      reductions: new ReductionService({ logger: silent }),
      logger: silent,
    });
    servers.push(server);
    return { registry, server, address: `127.0.0.1:${server.port}` };
  }

  function worker(
    coordinatorAddress: string,
    workerId: string,
    extra: Partial<RegistrationOptions> = {},
  ): RegistrationOptions {
    return {
      coordinatorAddress,
      workerId,
      advertisedAddress: `${workerId}.local:7001`,
      backend: 'cpu',
      modelHash: 'model-a',
      logger: silent,
      ...extra,
    };
  }

  it('assigns ranks by sorted worker id', async () => {
    const { registry, address } = await startCoordinator();
    const waiting = registry.waitForWorkers(3, 5_000);

    for (const id of ['w-c', 'w-a', 'w-b']) await registerWithCoordinator(worker(address, id));
    const ranked = await waiting;

    expect(ranked.map((w) => [w.rank, w.workerId, w.address])).toEqual([
      [0, 'w-a', 'w-a.local:7001'],
      [1, 'w-b', 'w-b.local:7001'],
      [2, 'w-c', 'w-c.local:7001'],
    ]);
    const again = await registerWithCoordinator(worker(address, 'w-b'));
    expect(again.rank).toBe(1);
  });

  it('lists joined workers on timeout', async () => {
    const { registry, address } = await startCoordinator();
    await registerWithCoordinator(worker(address, 'w-1'));
    await registerWithCoordinator(worker(address, 'w-2'));

    await expect(registry.waitForWorkers(3, 200)).rejects.toThrow(
      'timed out after 200 ms waiting for 3 workers: 2 joined (w-1 at w-1.local:7001, w-2 at w-2.local:7001)',
    );
  });

  it('says none joined on timeout', async () => {
    const { registry } = await startCoordinator();

    await expect(registry.waitForWorkers(2, 100)).rejects.toThrow(
      'timed out after 100 ms waiting for 2 workers: none joined',
    );
  });

  it('rejects another protocol version on both sides', async () => {
    const { registry, address } = await startCoordinator();
    const attempt = registerWithCoordinator(
      worker(address, 'w-old', { protocolVersion: PROTOCOL_VERSION + 1 }),
    );

    await expect(attempt).rejects.toBeInstanceOf(RegistrationRejectedError);
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `speaks protocol version ${PROTOCOL_VERSION + 1}, but the coordinator speaks ${PROTOCOL_VERSION}`,
      ),
    );
    expect(registry.rejections).toHaveLength(1);
    expect(registry.rejections[0]!.workerId).toBe('w-old');
    expect(registry.rejections[0]!.message).toMatch(/protocol version/);
    expect(registry.list()).toEqual([]);
  });

  it('rejects another model hash on both sides', async () => {
    const { registry, address } = await startCoordinator();
    const attempt = registerWithCoordinator(worker(address, 'w-x', { modelHash: 'model-b' }));

    await expect(attempt).rejects.toThrow(/has model hash model-b, but the coordinator has model-a/);
    expect(registry.rejections[0]!.message).toMatch(
      /has model hash model-b, but the coordinator has model-a/,
    );
    expect(registry.list()).toEqual([]);
  });

  it('retries until the coordinator starts', async () => {
    const probe = await startCoordinator();
    const port = probe.server.port;
    await servers.pop()!.stop(50);

    const attempt = registerWithCoordinator(
      worker(`127.0.0.1:${port}`, 'w-early', { initialBackoffMs: 100, attemptDeadlineMs: 500 }),
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    const { registry } = await startCoordinator(`127.0.0.1:${port}`);

    await expect(attempt).resolves.toMatchObject({ message: 'registered as w-early' });
    expect(registry.list().map((w) => w.workerId)).toEqual(['w-early']);
  });

  it('gives up after its timeout', async () => {
    const probe = await startCoordinator();
    const port = probe.server.port;
    await servers.pop()!.stop(50);

    const attempt = registerWithCoordinator(
      worker(`127.0.0.1:${port}`, 'w-late', { initialBackoffMs: 50, timeoutMs: 300 }),
    );

    await expect(attempt).rejects.toThrow(
      new RegExp(`registration with the coordinator at 127.0.0.1:${port} timed out after \\d+ ms`),
    );
  });

  it('reports a taken address as a usage error', async () => {
    const { server } = await startCoordinator();

    const second = startCoordinator(`127.0.0.1:${server.port}`);

    await expect(second).rejects.toBeInstanceOf(UsageError);
    await expect(second).rejects.toThrow(`cannot listen on 127.0.0.1:${server.port}: address already in use`);
  });

  it('answers standard health checks', async () => {
    const { address } = await startCoordinator();

    await expect(checkHealth(address, '')).resolves.toBe('SERVING');
    await expect(checkHealth(address, 'cbntrain.v1.Coordinator')).resolves.toBe('SERVING');
    await expect(checkHealth(address, 'other.Service')).rejects.toThrow(/NOT_FOUND/);
  });

  it('rejects a malformed listen address', async () => {
    await expect(startCoordinator('localhost')).rejects.toThrow(
      '--listen must be HOST:PORT, got "localhost"',
    );
  });
});
