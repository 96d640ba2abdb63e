/**
 * Benchmarks the convolution kernels and one CBN ResBlock forward+backward on the cpu and wasm backends,
 * stock tfjs kernels beside the project kernels, and compares the ResBlock with a PyTorch anchor.
 *
 * Usage: npm run bench:kernels -- [--backend cpu|wasm|all] [--json] [--reps N]
 * With --json every stdout line is one JSON object, once `npm run --silent` drops the banner of npm.
 *
 * Every figure is the median of N timed runs (default 10 on wasm, 3 on cpu) after 2 warm-up runs. GFLOP/s
 * counts 2·N·Ho·Wo·Kh·Kw·Ci·Co per convolution, the same for the forward pass and both gradients.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerProjectKernels } from '../shared/kernels/register.js';
import { conv2dBackpropFilter, conv2dBackpropInput } from '../shared/kernels/conv-backprop.js';

type BackendName = 'cpu' | 'wasm';

/** One measured figure, printed as one line (or one JSON object with --json). */
interface Measurement {
  backend: BackendName | 'pytorch';
  op: string;
  impl: 'stock' | 'project' | 'pytorch' | 'ratio';
  shape: string;
  medianMs?: number;
  /** Fastest run: less sensitive than the median to other processes on a shared machine. */
  minMs?: number;
  gflops?: number;
  runs?: number;
  /** Ours / PyTorch, of the medians and of the fastest runs. */
  ratio?: number;
  minRatio?: number;
  note?: string;
}

const CONV_X_SHAPE: [number, number, number, number] = [64, 16, 16, 32]; // [N,H,W,Ci]
const CONV_FILTER_SHAPE: [number, number, number, number] = [3, 3, 32, 32]; // [Kh,Kw,Ci,Co]
const CONV_DY_SHAPE: [number, number, number, number] = [64, 16, 16, 32]; // [N,Ho,Wo,Co], 'same' padding
const WARMUP_RUNS = 2;
const DEFAULT_RUNS: Record<BackendName, number> = { wasm: 10, cpu: 3 };
const NUM_CLASSES = 10;
const LEAKY_SLOPE = 0.2;
const BN_EPSILON = 1e-5;

/** ResBlock shapes: batch, height = width, input channels, output channels (also in resblock_torch.py). */
const RESBLOCK_SHAPES = [
  { batch: 64, size: 16, cIn: 32, cOut: 32 },
  { batch: 64, size: 16, cIn: 32, cOut: 64 },
  { batch: 64, size: 32, cIn: 16, cOut: 16 },
] as const;
type ResBlockShape = (typeof RESBLOCK_SHAPES)[number];

const ANCHOR_PYTHON = '/usr/bin/python3';
const ANCHOR_SCRIPT = new URL('./anchors/resblock_torch.py', import.meta.url).pathname;

// ---------------------------------------------------------------------------------------------------------
// Timing

/** Median and fastest wall time of the timed runs, in ms. */
interface Timing {
  medianMs: number;
  minMs: number;
}

/**
 * Times `run` after WARMUP_RUNS untimed calls. `run` must read its results (`await t.data()`) so the
 * timer stops after the work, not after the dispatch, and must dispose what it creates.
 */
async function timeRuns(run: () => Promise<void>, runs: number): Promise<Timing> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP_RUNS + runs; i++) {
    const start = performance.now();
    await run();
    if (i >= WARMUP_RUNS) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const middle = Math.floor(times.length / 2);
  const medianMs = times.length % 2 === 1 ? times[middle]! : (times[middle - 1]! + times[middle]!) / 2;
  return { medianMs, minMs: times[0]! };
}

/** Reads every tensor to force completion, then disposes them. */
async function readAndDispose(tensors: tf.Tensor[]): Promise<void> {
  for (const t of tensors) await t.data();
  tf.dispose(tensors);
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** FLOPs of one convolution: 2·N·Ho·Wo·Kh·Kw·Ci·Co. */
function convFlops(filterShape: readonly number[], outShape: readonly number[]): number {
  const [n, ho, wo] = outShape as [number, number, number, number];
  const [kh, kw, ci, co] = filterShape as [number, number, number, number];
  return 2 * n * ho * wo * kh * kw * ci * co;
}

// ---------------------------------------------------------------------------------------------------------
// Convolution kernels

/** Measures the forward conv and both gradients at the CONV_* shapes with the kernels now registered. */
async function measureConvKernels(backend: BackendName, impl: 'stock' | 'project', runs: number) {
  const x = tf.randomNormal(CONV_X_SHAPE) as tf.Tensor4D;
  const filter = tf.randomNormal(CONV_FILTER_SHAPE, 0, 0.1) as tf.Tensor4D;
  const dy = tf.randomNormal(CONV_DY_SHAPE) as tf.Tensor4D;
  const flops = convFlops(CONV_FILTER_SHAPE, dy.shape);
  const shape = `x [${CONV_X_SHAPE}] filter [${CONV_FILTER_SHAPE}] same`;
  const results: Measurement[] = [];
  const record = (op: string, timing: Timing, runCount: number, note?: string) =>
    results.push({
      backend,
      op,
      impl,
      shape,
      medianMs: round3(timing.medianMs),
      minMs: round3(timing.minMs),
      gflops: round3(flops / timing.medianMs / 1e6),
      runs: runCount,
      note,
    });

  record(
    'conv2d forward',
    await timeRuns(() => readAndDispose([tf.conv2d(x, filter, 1, 'same')]), runs),
    runs,
  );

  const inputGrad = () => conv2dBackpropInput(CONV_X_SHAPE, dy, filter, 1, 'same');
  record('input gradient', await timeRuns(() => readAndDispose([inputGrad()]), runs), runs);

  const filterGrad = () => conv2dBackpropFilter(x, dy, CONV_FILTER_SHAPE, 1, 'same');
  if (impl === 'project') {
    record('filter gradient', await timeRuns(() => readAndDispose([filterGrad()]), runs), runs);
  } else if (backend === 'wasm') {
    results.push({
      backend,
      op: 'filter gradient',
      impl,
      shape,
      note: 'no stock Conv2DBackpropFilter on wasm',
    });
  } else {
    // The stock cpu kernel takes over 10 s at this shape, so it runs once, without warm-up.
    const start = performance.now();
    await readAndDispose([filterGrad()]);
    const ms = performance.now() - start;
    record('filter gradient', { medianMs: ms, minMs: ms }, 1, 'single run, no warm-up');
  }

  tf.dispose([x, filter, dy]);
  return results;
}

// ---------------------------------------------------------------------------------------------------------
// CBN ResBlock

interface ResBlockParams {
  w1: tf.Tensor4D; // [3,3,Ci,Co]
  w2: tf.Tensor4D; // [3,3,Co,Co]
  gamma1: tf.Tensor2D; // [K,Co]
  beta1: tf.Tensor2D;
  gamma2: tf.Tensor2D;
  beta2: tf.Tensor2D;
  skip?: { w: tf.Tensor4D; gamma: tf.Tensor2D; beta: tf.Tensor2D }; // w [1,1,Ci,Co]
}

/**
 * Conditional batch norm: xHat = (x − mean) / √(var + ε) over (N,H,W) with the biased batch variance, then
 * xHat·γ[label] + β[label], the class rows picked by a one-hot [N,K] times [K,C] matMul.
 */
function cbn(x: tf.Tensor4D, oneHot: tf.Tensor2D, gamma: tf.Tensor2D, beta: tf.Tensor2D): tf.Tensor4D {
  const [n, , , c] = x.shape;
  const { mean, variance } = tf.moments(x, [0, 1, 2], true); // [1,1,1,C]
  const xHat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, BN_EPSILON)));
  const g = tf.reshape(tf.matMul(oneHot, gamma), [n, 1, 1, c]); // [N,K]·[K,C] -> [N,1,1,C]
  const b = tf.reshape(tf.matMul(oneHot, beta), [n, 1, 1, c]);
  return tf.add(tf.mul(xHat, g), b);
}

/** conv3×3 → CBN → leaky_relu twice; the skip is the identity or conv1×1 → CBN → leaky_relu; sum of both. */
function resBlock(x: tf.Tensor4D, oneHot: tf.Tensor2D, p: ResBlockParams): tf.Tensor4D {
  const h1 = tf.leakyRelu(cbn(tf.conv2d(x, p.w1, 1, 'same'), oneHot, p.gamma1, p.beta1), LEAKY_SLOPE);
  const h2 = tf.leakyRelu(cbn(tf.conv2d(h1, p.w2, 1, 'same'), oneHot, p.gamma2, p.beta2), LEAKY_SLOPE);
  if (p.skip === undefined) return tf.add(x, h2);

  const skipConv = tf.conv2d(x, p.skip.w, 1, 'same');
  return tf.add(tf.leakyRelu(cbn(skipConv, oneHot, p.skip.gamma, p.skip.beta), LEAKY_SLOPE), h2);
}

function makeResBlockParams(cIn: number, cOut: number): ResBlockParams {
  const table = (value: number) => tf.fill([NUM_CLASSES, cOut], value) as tf.Tensor2D;
  const params: ResBlockParams = {
    w1: tf.randomNormal([3, 3, cIn, cOut], 0, 0.1) as tf.Tensor4D,
    w2: tf.randomNormal([3, 3, cOut, cOut], 0, 0.1) as tf.Tensor4D,
    gamma1: table(1),
    beta1: table(0),
    gamma2: table(1),
    beta2: table(0),
  };
  if (cIn !== cOut) {
    params.skip = {
      w: tf.randomNormal([1, 1, cIn, cOut], 0, 0.1) as tf.Tensor4D,
      gamma: table(1),
      beta: table(0),
    };
  }
  return params;
}

function flattenParams(p: ResBlockParams): tf.Tensor[] {
  const main = [p.w1, p.w2, p.gamma1, p.beta1, p.gamma2, p.beta2];
  return p.skip === undefined ? main : [...main, p.skip.w, p.skip.gamma, p.skip.beta];
}

function resBlockLabel(s: ResBlockShape): string {
  return `N=${s.batch} ${s.size}x${s.size} ${s.cIn}->${s.cOut}`;
}

/** Measures one ResBlock forward+backward (`tf.grads` with a random dy) with the project kernels. */
async function measureResBlock(backend: BackendName, s: ResBlockShape, runs: number): Promise<Measurement> {
  const x = tf.randomNormal([s.batch, s.size, s.size, s.cIn]) as tf.Tensor4D;
  const labels = tf.tensor1d(
    Array.from({ length: s.batch }, (_, i) => i % NUM_CLASSES),
    'int32',
  );
  const oneHot = tf.cast(tf.oneHot(labels, NUM_CLASSES), 'float32') as tf.Tensor2D; // [N,K]
  const params = makeResBlockParams(s.cIn, s.cOut);
  const dy = tf.randomNormal([s.batch, s.size, s.size, s.cOut]) as tf.Tensor4D;
  const names = flattenParams(params);

  const gradients = tf.grads((input: tf.Tensor, ...weights: tf.Tensor[]) => {
    const p = rebuildParams(params, weights);
    return resBlock(input as tf.Tensor4D, oneHot, p);
  });
  const timing = await timeRuns(() => readAndDispose(gradients([x, ...names], dy)), runs);

  // Convolution FLOPs only: each conv runs forward, input gradient and filter gradient.
  const outShape = [s.batch, s.size, s.size, s.cOut];
  const convs = [
    convFlops([3, 3, s.cIn, s.cOut], outShape),
    convFlops([3, 3, s.cOut, s.cOut], outShape),
    s.cIn !== s.cOut ? convFlops([1, 1, s.cIn, s.cOut], outShape) : 0,
  ];
  const flops = 3 * convs.reduce((a, b) => a + b, 0);

  tf.dispose([x, labels, oneHot, dy, ...names]);
  return {
    backend,
    op: 'resblock fwd+bwd',
    impl: 'project',
    shape: resBlockLabel(s),
    medianMs: round3(timing.medianMs),
    minMs: round3(timing.minMs),
    gflops: round3(flops / timing.medianMs / 1e6),
    runs,
    note: 'GFLOP/s counts conv FLOPs only',
  };
}

/** Maps the tensors `tf.grads` passes in back onto the parameter structure, in `flattenParams` order. */
function rebuildParams(template: ResBlockParams, w: tf.Tensor[]): ResBlockParams {
  const [w1, w2, gamma1, beta1, gamma2, beta2, skipW, skipGamma, skipBeta] = w;
  const p = { w1, w2, gamma1, beta1, gamma2, beta2 } as ResBlockParams;
  if (template.skip !== undefined) {
    p.skip = { w: skipW as tf.Tensor4D, gamma: skipGamma as tf.Tensor2D, beta: skipBeta as tf.Tensor2D };
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// PyTorch anchor

/** Runs resblock_torch.py and returns its timing per shape label, or the reason it was skipped. */
function runTorchAnchor(): { byShape: Map<string, Timing>; skipped?: string } {
  const probe = spawnSync(ANCHOR_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    const reason =
      probe.error?.message ?? probe.stderr.trim().split('\n').pop() ?? `exit code ${probe.status}`;
    return { byShape: new Map(), skipped: `${ANCHOR_PYTHON} -c 'import torch' failed: ${reason}` };
  }

  const run = spawnSync(ANCHOR_PYTHON, [ANCHOR_SCRIPT, '--json'], { encoding: 'utf8' });
  if (run.status !== 0) {
    return { byShape: new Map(), skipped: `${ANCHOR_SCRIPT} failed: ${run.stderr.trim().split('\n').pop()}` };
  }
  const byShape = new Map<string, Timing>();
  for (const line of run.stdout.trim().split('\n')) {
    const { shape, medianMs, minMs } = JSON.parse(line) as { shape: string } & Timing;
    byShape.set(shape, { medianMs, minMs });
  }
  return { byShape };
}

// ---------------------------------------------------------------------------------------------------------
// Output and main

function format(m: Measurement): string {
  const parts = [m.backend.padEnd(7), m.op.padEnd(17), m.impl.padEnd(8), m.shape.padEnd(40)];
  if (m.medianMs !== undefined) parts.push(`${m.medianMs.toFixed(1).padStart(9)} ms`);
  if (m.minMs !== undefined) parts.push(`(min ${m.minMs.toFixed(1)})`);
  if (m.gflops !== undefined) parts.push(`${m.gflops.toFixed(2).padStart(7)} GFLOP/s`);
  if (m.ratio !== undefined)
    parts.push(`ours/PyTorch ${m.ratio.toFixed(2)} (fastest runs ${m.minRatio?.toFixed(2)})`);
  if (m.note !== undefined) parts.push(`(${m.note})`);
  return parts.join(' ');
}

function parseOptions(): { backends: BackendName[]; json: boolean; runs?: number } {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'all' },
      json: { type: 'boolean', default: false },
      reps: { type: 'string' },
    },
  });
  const backend = values.backend;
  if (backend !== 'cpu' && backend !== 'wasm' && backend !== 'all') {
    throw new Error(`--backend must be cpu, wasm or all, got ${JSON.stringify(backend)}`);
  }
  const runs = values.reps === undefined ? undefined : Number(values.reps);
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) {
    throw new Error(`--reps must be a positive integer, got ${JSON.stringify(values.reps)}`);
  }
  const backends: BackendName[] = backend === 'all' ? ['wasm', 'cpu'] : [backend];
  return { backends, json: values.json, runs };
}

async function benchmarkBackend(backend: BackendName, runs: number, print: (m: Measurement) => void) {
  await tf.setBackend(backend);
  await tf.ready();

  // Stock kernels first: registerProjectKernels replaces them for this backend.
  for (const m of await measureConvKernels(backend, 'stock', runs)) print(m);
  registerProjectKernels(backend);
  for (const m of await measureConvKernels(backend, 'project', runs)) print(m);

  const resBlocks: Measurement[] = [];
  for (const s of RESBLOCK_SHAPES) {
    const m = await measureResBlock(backend, s, runs);
    print(m);
    resBlocks.push(m);
  }
  return resBlocks;
}

/** Describes the machine, because the figures depend on it and on what else runs there. */
function describeEnvironment(): Record<string, string | number> {
  return {
    node: process.version,
    tfjsCore: tf.version_core,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    date: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const print = (m: Measurement) => console.log(options.json ? JSON.stringify(m) : format(m));
  const environment = describeEnvironment();
  console.log(options.json ? JSON.stringify({ environment }) : `environment ${JSON.stringify(environment)}`);

  const resBlocks: Measurement[] = [];
  for (const backend of options.backends) {
    resBlocks.push(...(await benchmarkBackend(backend, options.runs ?? DEFAULT_RUNS[backend], print)));
  }

  const anchor = runTorchAnchor();
  if (anchor.skipped !== undefined) {
    print({
      backend: 'pytorch',
      op: 'resblock fwd+bwd',
      impl: 'pytorch',
      shape: '-',
      note: `skipped: ${anchor.skipped}`,
    });
    return;
  }
  for (const [shape, timing] of anchor.byShape) {
    print({
      backend: 'pytorch',
      op: 'resblock fwd+bwd',
      impl: 'pytorch',
      shape,
      ...timing,
      note: '1 thread',
    });
  }
  for (const m of resBlocks) {
    const torch = anchor.byShape.get(m.shape);
    if (torch === undefined || m.medianMs === undefined || m.minMs === undefined) continue;
    const ratio = round3(m.medianMs / torch.medianMs);
    const minRatio = round3(m.minMs / torch.minMs);
    print({ backend: m.backend, op: 'resblock fwd+bwd', impl: 'ratio', shape: m.shape, ratio, minRatio });
  }
}

const USAGE = 'usage: npm run bench:kernels -- [--backend cpu|wasm|all] [--json] [--reps N]';

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  console.error(USAGE);
  process.exitCode = 2;
});
