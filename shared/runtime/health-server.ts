import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import { UsageError } from './errors.js';

/** One series of a metric family: its labels and its current value. */
export interface MetricSample {
  labels?: Record<string, string>;
  value: number;
}

/** A metric family with help text, type and one sample per label set. */
export interface MetricFamily {
  help?: string;
  /** Prometheus metric type; default `gauge`. Counter names should end in `_total`. */
  type?: 'gauge' | 'counter';
  samples: MetricSample[];
}

/** Metric name → a single unlabeled gauge value, or a whole family. */
export type MetricsSnapshot = Record<string, number | MetricFamily>;

export interface HealthServerOptions {
  /** Address to bind, for example `0.0.0.0` in a container or `127.0.0.1` on a workstation. */
  host: string;
  /** TCP port; 0 lets the kernel choose, and the chosen port is returned. */
  port: number;
  /** Readiness check of `GET /readyz`. False or a thrown error makes the endpoint respond 503. */
  isReady: () => boolean | Promise<boolean>;
  /** Values for `GET /metrics`. Without it, `/metrics` responds with an empty exposition. */
  metrics?: () => MetricsSnapshot | Promise<MetricsSnapshot>;
  /** Labels added to every sample, such as `{ role: 'worker', worker_id: 'w3' }`. */
  constantLabels?: Record<string, string>;
  /** The command-line flag that set the address, named in the error when the port is taken. */
  flag?: string;
  log?: Logger;
}

export interface HealthServer {
  /** The bound port, useful when `port` was 0. */
  port: number;
  /** Stops listening and closes open keep-alive connections. */
  close(): Promise<void>;
}

/** Content type of the Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Listen errors caused by the address the user chose, reported as UsageError. */
const ADDRESS_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use; stop the other process or choose another port',
  EADDRNOTAVAIL: 'the address does not belong to this host; use 0.0.0.0 or one of its addresses',
  EACCES: 'permission denied; ports below 1024 need privileges, so choose a higher port',
};

/**
 * Starts the HTTP server that orchestrators and Prometheus poll:
 * - `GET /healthz` is liveness: 200 while the event loop runs.
 * - `GET /readyz` is readiness: 200 when `isReady()` returns true, 503 otherwise.
 * - `GET /metrics` is the Prometheus text format built from `metrics()`.
 *
 * HEAD is accepted wherever GET is. Other methods get 405 and other paths 404. A bind failure caused by
 * the address (in use, not local, privileged) rejects with a UsageError that names `host:port`.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { host, port, log } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`health server port must be an integer from 0 to 65535, got ${port}`);
  }

  const server = createServer((request, response) => {
    handleRequest(options, request, response).catch((error: unknown) => {
      log?.error({ err: error, url: request.url }, 'health server request failed');
      if (!response.headersSent) respond(response, request, 500, 'internal error\n');
      else response.destroy();
    });
  });

  await listen(server, host, port, options.flag);
  const boundPort = (server.address() as AddressInfo).port;
  log?.info({ host, port: boundPort }, 'health server listening');

  return {
    port: boundPort,
    close: () => closeServer(server, log, host, boundPort),
  };
}

async function handleRequest(
  options: HealthServerOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  // Only the path matters; probes may add query strings.
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  const routes = ['/healthz', '/readyz', '/metrics'];

  if (!routes.includes(path)) {
    respond(response, request, 404, `not found: ${path}; try ${routes.join(', ')}\n`);
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    respond(response, request, 405, `method ${request.method} not allowed; use GET or HEAD\n`);
    return;
  }

  if (path === '/healthz') {
    respond(response, request, 200, 'ok\n');
  } else if (path === '/readyz') {
    const ready = await checkReady(options);
    respond(response, request, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n');
  } else {
    const snapshot = options.metrics ? await options.metrics() : {};
    const body = formatPrometheusText(snapshot, options.constantLabels ?? {});
    respond(response, request, 200, body, PROMETHEUS_CONTENT_TYPE);
  }
}

async function checkReady(options: HealthServerOptions): Promise<boolean> {
  try {
    return (await options.isReady()) === true;
  } catch (error) {
    // A failing readiness check means "not ready", not a crash of the probe endpoint.
    options.log?.warn({ err: error }, 'readiness check failed');
    return false;
  }
}

function respond(
  response: ServerResponse,
  request: IncomingMessage,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  response.statusCode = status;
  response.setHeader('Content-Type', contentType);
  response.setHeader('Content-Length', Buffer.byteLength(body));
  response.setHeader('Cache-Control', 'no-store');
  response.end(request.method === 'HEAD' ? undefined : body);
}

/**
 * Formats a snapshot in the Prometheus text exposition format 0.0.4: one `# HELP` and `# TYPE` line per
 * family, then one line per sample. Constant labels come first and a sample's own labels override them.
 * Throws on a metric or label name that Prometheus would reject, naming it.
 */
export function formatPrometheusText(
  snapshot: MetricsSnapshot,
  constantLabels: Record<string, string> = {},
): string {
  const lines: string[] = [];

  for (const [name, entry] of Object.entries(snapshot)) {
    if (!METRIC_NAME.test(name)) {
      throw new Error(`invalid metric name ${JSON.stringify(name)}: it must match ${METRIC_NAME.source}`);
    }
    const family: MetricFamily = typeof entry === 'number' ? { samples: [{ value: entry }] } : entry;

    if (family.help !== undefined) lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${name} ${family.type ?? 'gauge'}`);
    for (const sample of family.samples) {
      const labels = formatLabels({ ...constantLabels, ...sample.labels }, name);
      lines.push(`${name}${labels} ${formatValue(sample.value)}`);
    }
  }

  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function formatLabels(labels: Record<string, string>, metricName: string): string {
  const pairs = Object.entries(labels);
  if (pairs.length === 0) return '';

  const formatted = pairs.map(([label, value]) => {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) {
      throw new Error(
        `invalid label name ${JSON.stringify(label)} on metric ${metricName}: it must match ` +
          `${LABEL_NAME.source} and must not start with __`,
      );
    }
    return `${label}="${escapeLabelValue(String(value))}"`;
  });
  return `{${formatted.join(',')}}`;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function listen(server: Server, host: string, port: number, flag: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const hint = error.code === undefined ? undefined : ADDRESS_ERRORS[error.code];
      if (hint === undefined) {
        reject(error);
        return;
      }
      const what = flag === undefined ? 'health server' : `health server (${flag})`;
      reject(new UsageError(`${what} cannot listen on ${formatAddress(host, port)}: ${hint}`));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };

    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function closeServer(server: Server, log: Logger | undefined, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => {
      if (error) {
        reject(error);
        return;
      }
      log?.info({ host, port }, 'health server closed');
      resolve();
    });
    // Probes and scrapers keep connections alive; without this, close() waits for their idle timeout.
    server.closeAllConnections();
  });
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
