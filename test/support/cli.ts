import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI_ENTRY = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `cbn-train <args>` as a real child process, collecting its output. */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; done: Promise<CliRun>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args], {
    env: { ...process.env, CBN_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliRun>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, output: () => stdout + stderr };
}

/** Runs `cbn-train <args>` to completion, killing it after `timeoutMs`. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 120_000,
): Promise<CliRun> {
  const { child, done } = startCli(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = await done;
  clearTimeout(timer);
  return result;
}

/** Waits until `predicate` holds, polling every 100 ms, or throws after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const LISTENING = /"port":(\d+),"msg":"coordinator listening"/;

/**
 * Starts `cbn-train coordinator --listen 127.0.0.1:0 <args>` and waits until it logs its port. Returns the
 * running process and the address workers dial.
 */
export async function startCoordinator(
  args: string[],
): Promise<{ run: ReturnType<typeof startCli>; address: string }> {
  const run = startCli(['coordinator', '--listen', '127.0.0.1:0', ...args]);
  await waitFor(() => LISTENING.test(run.output()), 30_000, 'the coordinator to listen');
  return { run, address: `127.0.0.1:${LISTENING.exec(run.output())![1]}` };
}

/** Creates a fresh temp directory and returns it with its cleanup. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
