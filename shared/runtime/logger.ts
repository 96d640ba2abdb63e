import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Creates the process logger. Every line carries the role (coordinator, worker, cli) and, through child
 * loggers, the rank, worker id, job id and step where they exist.
 *
 * Level comes from `CBN_LOG_LEVEL` (default `info`). Logs go to stderr so that stdout stays free for
 * machine-readable output such as `--json` benchmark lines and job ids.
 */
export function createLogger(role: string, bindings: Record<string, unknown> = {}): Logger {
  const level = process.env.CBN_LOG_LEVEL ?? 'info';
  return pino({ level, base: { role, pid: process.pid, ...bindings } }, pino.destination(2));
}
