import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../shared/runtime/errors.js';
import {
  PROMETHEUS_CONTENT_TYPE,
  formatPrometheusText,
  startHealthServer,
  type HealthServer,
  type HealthServerOptions,
} from '../shared/runtime/health-server.js';

const HOST = '127.0.0.1';
const started: HealthServer[] = [];

async function start(options: Partial<HealthServerOptions> = {}): Promise<HealthServer> {
  const server = await startHealthServer({ host: HOST, port: 0, isReady: () => true, ...options });
  started.push(server);
  return server;
}

async function get(port: number, path: string, method = 'GET') {
  const response = await fetch(`http://${HOST}:${port}${path}`, { method });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.close()));
});

describe('startHealthServer', () => {
  it('returns 200 on /healthz', async () => {
    const server = await start({ isReady: () => false });
    const response = await get(server.port, '/healthz');
    expect(response.status).toBe(200);
    expect(response.body).toBe('ok\n');
  });

  it('returns /readyz status from isReady', async () => {
    let ready = false;
    const server = await start({ isReady: async () => ready });

    const before = await get(server.port, '/readyz');
    expect(before.status).toBe(503);
    expect(before.body).toBe('not ready\n');

    ready = true;
    const after = await get(server.port, '/readyz?verbose=1');
    expect(after.status).toBe(200);
    expect(after.body).toBe('ready\n');
  });

  it('returns 503 when isReady throws', async () => {
    const server = await start({
      isReady: () => {
        throw new Error('redis connection lost');
      },
    });
    const response = await get(server.port, '/readyz');
    expect(response.status).toBe(503);
  });

  it('serves metrics in Prometheus text format', async () => {
    const server = await start({
      constantLabels: { role: 'worker' },
      metrics: () => ({
        cbn_step: 42,
        cbn_loss: {
          help: 'Generator and discriminator loss of the last step.',
          samples: [
            { labels: { model: 'generator' }, value: 1.25 },
            { labels: { model: 'discriminator' }, value: 0.5 },
          ],
        },
      }),
    });

    const response = await get(server.port, '/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    expect(response.body).toBe(
      [
        '# TYPE cbn_step gauge',
        'cbn_step{role="worker"} 42',
        '# HELP cbn_loss Generator and discriminator loss of the last step.',
        '# TYPE cbn_loss gauge',
        'cbn_loss{role="worker",model="generator"} 1.25',
        'cbn_loss{role="worker",model="discriminator"} 0.5',
        '',
      ].join('\n'),
    );
  });

  it('serves empty metrics without a metrics callback', async () => {
    const server = await start();
    const response = await get(server.port, '/metrics');
    expect(response.status).toBe(200);
    expect(response.body).toBe('');
  });

  it('returns 500 for invalid metric names', async () => {
    const server = await start({ metrics: () => ({ 'bad-name': 1 }) });
    const response = await get(server.port, '/metrics');
    expect(response.status).toBe(500);
  });

  it('returns 404 for unknown paths', async () => {
    const server = await start();
    const response = await get(server.port, '/livez');
    expect(response.status).toBe(404);
    expect(response.body).toMatch(/not found: \/livez/);
  });

  it('returns 405 for POST', async () => {
    const server = await start();
    const response = await get(server.port, '/healthz', 'POST');
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
  });

  it('returns no body for HEAD', async () => {
    const server = await start();
    const response = await get(server.port, '/healthz', 'HEAD');
    expect(response.status).toBe(200);
    expect(response.body).toBe('');
  });

  it('rejects a port in use with UsageError', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, HOST, resolve));
    const port = (blocker.address() as AddressInfo).port;

    try {
      const attempt = startHealthServer({ host: HOST, port, isReady: () => true, flag: '--health-listen' });
      await expect(attempt).rejects.toBeInstanceOf(UsageError);
      await expect(attempt).rejects.toThrow(
        new RegExp(
          `health server \\(--health-listen\\) cannot listen on 127\\.0\\.0\\.1:${port}: .*already in use`,
        ),
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('rejects an out-of-range port', async () => {
    const attempt = startHealthServer({ host: HOST, port: 70000, isReady: () => true });
    await expect(attempt).rejects.toThrow(/port must be an integer from 0 to 65535, got 70000/);
  });

  it('closes with a keep-alive connection open', async () => {
    const server = await startHealthServer({ host: HOST, port: 0, isReady: () => true });
    const agentResponse = await new Promise<number>((resolve, reject) => {
      const request = httpRequest({
        host: HOST,
        port: server.port,
        path: '/healthz',
        headers: { Connection: 'keep-alive' },
      });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      request.end();
    });
    expect(agentResponse).toBe(200);

    const closedWithinMs = 2000;
    const closed = await Promise.race([
      server.close().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), closedWithinMs)),
    ]);
    expect(closed).toBe(true);
    await expect(get(server.port, '/healthz')).rejects.toThrow();
  });
});

describe('formatPrometheusText', () => {
  it('escapes label values and help text', () => {
    const text = formatPrometheusText({
      cbn_info: {
        help: 'Back\\slash and\nnewline.',
        samples: [{ labels: { address: 'a"b\\c\nd' }, value: 1 }],
      },
    });
    expect(text).toContain('# HELP cbn_info Back\\\\slash and\\nnewline.');
    expect(text).toContain('cbn_info{address="a\\"b\\\\c\\nd"} 1');
  });

  it('writes NaN and infinities', () => {
    const text = formatPrometheusText({ a: Number.NaN, b: Infinity, c: -Infinity });
    expect(text).toContain('a NaN');
    expect(text).toContain('b +Inf');
    expect(text).toContain('c -Inf');
  });

  it('writes the counter type', () => {
    const text = formatPrometheusText({ cbn_steps_total: { type: 'counter', samples: [{ value: 7 }] } });
    expect(text).toBe('# TYPE cbn_steps_total counter\ncbn_steps_total 7\n');
  });

  it('rejects invalid metric and label names', () => {
    expect(() => formatPrometheusText({ '1abc': 1 })).toThrow(/invalid metric name "1abc"/);
    expect(() => formatPrometheusText({ ok: { samples: [{ labels: { __x: 'y' }, value: 1 }] } })).toThrow(
      /invalid label name "__x" on metric ok/,
    );
    expect(() => formatPrometheusText({ ok: 1 }, { 'job-id': 'x' })).toThrow(/invalid label name "job-id"/);
  });
});
