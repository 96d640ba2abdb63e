/**
 * Times the project's wasm convolution gradients (Conv2DBackpropFilter and Conv2DBackpropInput) at the
 * stride-1 'same' convolution shapes of the `tiny` preset's generator (batch 32) and discriminator
 * (batch 64).
 *
 * Usage: npx tsx bench/conv-shapes.ts [--json] [--reps N]
 * With --json every stdout line is one JSON object.
 *
 * Every figure is the median of N timed runs (default 10) after 2 warm-up runs. Each run reads the result
 * with dataSync before the timer stops, so it times the work and not only its dispatch.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { registerProjectKernels } from '../shared/kernels/register.js';
import { conv2dBackpropFilter, conv2dBackpropInput } from '../shared/kernels/conv-backprop.js';

/** One convolution of the model: NHWC x [batch, size, size, inChannels], filter [k, k, inChannels, outChannels]. */
interface ConvShape {
  model: 'generator' | 'discriminator';
  batch: number;
  size: number;
  inChannels: number;
  outChannels: number;
  kernelSize: 1 | 3;
}

const SHAPES: readonly ConvShape[] = [
  { model: 'generator', batch: 32, size: 8, inChannels: 64, outChannels: 64, kernelSize: 3 },
  { model: 'generator', batch: 32, size: 16, inChannels: 64, outChannels: 32, kernelSize: 3 },
  { model: 'generator', batch: 32, size: 16, inChannels: 32, outChannels: 32, kernelSize: 3 },
  { model: 'generator', batch: 32, size: 16, inChannels: 64, outChannels: 32, kernelSize: 1 },
  { model: 'generator', batch: 32, size: 32, inChannels: 32, outChannels: 16, kernelSize: 3 },
  { model: 'generator', batch: 32, size: 32, inChannels: 16, outChannels: 16, kernelSize: 3 },
  { model: 'generator', batch: 32, size: 32, inChannels: 32, outChannels: 16, kernelSize: 1 },
  { model: 'generator', batch: 32, size: 32, inChannels: 16, outChannels: 1, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 32, inChannels: 1, outChannels: 16, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 32, inChannels: 16, outChannels: 16, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 32, inChannels: 1, outChannels: 16, kernelSize: 1 },
  { model: 'discriminator', batch: 64, size: 16, inChannels: 16, outChannels: 32, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 16, inChannels: 32, outChannels: 32, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 8, inChannels: 32, outChannels: 64, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 8, inChannels: 64, outChannels: 64, kernelSize: 3 },
  { model: 'discriminator', batch: 64, size: 4, inChannels: 64, outChannels: 64, kernelSize: 3 },
];

const WARMUP_RUNS = 2;
const DEFAULT_RUNS = 10;

interface Measurement {
  shape: string;
  filterGradMs: number;
  inputGradMs: number;
  runs: number;
}

/**
 * Times `runs` calls of `compute` after WARMUP_RUNS untimed ones and returns the median wall time in ms.
 * Each call's result is read with dataSync inside the timed span and then disposed.
 */
function medianMs(compute: () => tf.Tensor, runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < WARMUP_RUNS + runs; i++) {
    const start = performance.now();
    const result = compute();
    result.dataSync();
    const elapsed = performance.now() - start;
    result.dispose();
    if (i >= WARMUP_RUNS) times.push(elapsed);
  }
  times.sort((a, b) => a - b);
  const middle = Math.floor(times.length / 2);
  return times.length % 2 === 1 ? times[middle]! : (times[middle - 1]! + times[middle]!) / 2;
}

function describeShape(s: ConvShape): string {
  return `${s.model} N=${s.batch} ${s.size}×${s.size} ${s.inChannels}→${s.outChannels} ${s.kernelSize}×${s.kernelSize}`;
}

function measureShape(s: ConvShape, runs: number): Measurement {
  const xShape: [number, number, number, number] = [s.batch, s.size, s.size, s.inChannels];
  const filterShape: [number, number, number, number] = [
    s.kernelSize,
    s.kernelSize,
    s.inChannels,
    s.outChannels,
  ];
  const x = tf.randomNormal(xShape, 0, 1, 'float32', 1) as tf.Tensor4D;
  const filter = tf.randomNormal(filterShape, 0, 1, 'float32', 2) as tf.Tensor4D;
  const dy = tf.randomNormal([s.batch, s.size, s.size, s.outChannels], 0, 1, 'float32', 3) as tf.Tensor4D;

  const filterGradMs = medianMs(() => conv2dBackpropFilter(x, dy, filterShape, 1, 'same'), runs);
  const inputGradMs = medianMs(() => conv2dBackpropInput(xShape, dy, filter, 1, 'same'), runs);
  tf.dispose([x, filter, dy]);
  return { shape: describeShape(s), filterGradMs, inputGradMs, runs };
}

/** An invalid command line, reported as its message alone and exit code 2. */
class UsageError extends Error {}

function parseRuns(value: string | undefined): number {
  if (value === undefined) return DEFAULT_RUNS;
  const runs = Number(value);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new UsageError(`--reps must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return runs;
}

function parseCommandLine() {
  try {
    return parseArgs({
      options: { json: { type: 'boolean', default: false }, reps: { type: 'string' } },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${message}. Usage: npx tsx bench/conv-shapes.ts [--json] [--reps N]`);
  }
}

async function main(): Promise<void> {
  const { values } = parseCommandLine();
  const runs = parseRuns(values.reps);

  await tf.setBackend('wasm');
  await tf.ready();
  registerProjectKernels('wasm');

  const started = new Date().toISOString();
  const loadBefore = loadavg()[0]!.toFixed(2);
  if (!values.json)
    console.log(`wasm, ${runs} runs per figure, started ${started}, load average ${loadBefore}`);

  const tensorsBefore = tf.memory().numTensors;
  for (const shape of SHAPES) {
    const m = measureShape(shape, runs);
    if (values.json) {
      console.log(JSON.stringify(m));
    } else {
      const figures = `filter gradient ${m.filterGradMs.toFixed(2)} ms, input gradient ${m.inputGradMs.toFixed(2)} ms`;
      console.log(`${m.shape.padEnd(42)} ${figures}`);
    }
  }

  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) throw new Error(`the benchmark leaked ${leaked} tensors`);
  if (!values.json) console.log(`load average at the end ${loadavg()[0]!.toFixed(2)}`);
}

try {
  await main();
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(error.message);
  process.exitCode = 2;
}
