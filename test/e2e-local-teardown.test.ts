import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { startCli, tempDir, waitFor } from './support/cli.js';

// `cbn-train local` owns its coordinator and worker processes: it must stop all of them on Ctrl-C and when
// any of them dies.

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** Pids of the cbn-train processes whose parent is `pid` (tsx also starts an esbuild service). */
function childrenOf(pid: number): number[] {
  try {
    const pids = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
    return pids.filter((child) => argsOf(child).includes('cli/main.ts'));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

function argsOf(pid: number): string {
  return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' });
}

function metricLines(out: string): number {
  const path = join(out, 'metrics.jsonl');
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).length : 0;
}

async function startLocal(
  prefix: string,
): Promise<{ run: ReturnType<typeof startCli>; out: string; children: number[] }> {
  const dir = tempDir(prefix);
  cleanups.push(dir.remove);
  const out = join(dir.path, 'run');
  const run = startCli([
    'local',
    '--workers',
    '2',
    '--preset',
    'micro',
    '--steps',
    '5000',
    '--batch',
    '4',
    '--out',
    out,
    '--checkpoint-every',
    '0',
    '--sample-every',
    '0',
  ]);
  cleanups.push(() => run.child.kill('SIGKILL'));
  await waitFor(() => metricLines(out) >= 3, 60_000, 'three training steps');
  const children = childrenOf(run.child.pid!);
  return { run, out, children };
}

describe('cbn-train local teardown', () => {
  it('stops every process on SIGINT after a checkpoint', async () => {
    const { run, out, children } = await startLocal('cbn-local-int-');
    expect(children).toHaveLength(3);

    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code, result.stderr.slice(-1500)).toBe(0);
    const checkpoint = await readCheckpoint(join(out, 'checkpoint'));
    expect(checkpoint.trainerState.step).toBeGreaterThanOrEqual(3);
    for (const pid of children) expect(() => process.kill(pid, 0), `process ${pid} still runs`).toThrow();
  });

  it('stops everything and fails when a worker dies', async () => {
    const { run, children } = await startLocal('cbn-local-die-');
    const workers = children.filter((pid) => argsOf(pid).includes(' worker '));
    expect(workers).toHaveLength(2);

    process.kill(workers[1]!, 'SIGKILL');
    const result = await run.done;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/worker-\d exited|RunStep failed/);
    for (const pid of children) expect(() => process.kill(pid, 0), `process ${pid} still runs`).toThrow();
  });

  it('lets the children stop themselves when local is killed', async () => {
    const { run, children } = await startLocal('cbn-local-kill-');
    expect(children).toHaveLength(3);

    run.child.kill('SIGKILL');
    await run.done;
    await waitFor(() => children.every((pid) => !isRunning(pid)), 30_000, 'the orphaned children to exit');
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
