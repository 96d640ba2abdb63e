import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Path of the CLI entry, run by child processes through tsx. */
export const CLI_ENTRY = fileURLToPath(new URL('./main.ts', import.meta.url));

/**
 * Starts `cbn-train <args>` as a child process in its own process group, so a Ctrl-C on the terminal
 * reaches only the parent, which then stops the children in order (the coordinator first, so it can
 * checkpoint). The child's stdin is a pipe from the parent: with `CBN_EXIT_WITH_PARENT=1` the child stops
 * itself when the pipe closes, which covers a parent killed with SIGKILL.
 */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, pipeStdout = false): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args], {
    stdio: ['pipe', pipeStdout ? 'pipe' : 'inherit', 'inherit'],
    env: { ...process.env, CBN_EXIT_WITH_PARENT: '1', ...env },
    detached: true,
  });
}

/** Finds a free TCP port on `host` by binding port 0 and closing the socket again. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string')
    throw new Error(`could not find a free port on ${host}`);
  return address.port;
}

/** Resolves with the exit code (or 128 + signal number) when the child exits. */
export function exitOf(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal as string] ?? 1;
}

/** Sends SIGTERM, then SIGKILL after `graceMs` to children still running, and waits for all to exit. */
export async function terminateAll(children: ChildProcess[], graceMs: number): Promise<void> {
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const child of running) child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
  }, graceMs);
  await Promise.all(running.map(exitOf));
  clearTimeout(timer);
}
