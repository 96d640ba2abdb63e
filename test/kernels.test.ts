import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, getKernel } from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerProjectKernels } from '../shared/kernels/register.js';
import { conv2dBackpropFilter, conv2dBackpropInput } from '../shared/kernels/conv-backprop.js';

type Shape4 = [number, number, number, number];

interface ConvCase {
  name: string;
  xShape: Shape4;
  filterShape: Shape4;
  strides: number;
  pad: 'same' | 'valid';
}

/** A case for the reference functions, which also accept explicit padding. */
type ReferenceCase = Omit<ConvCase, 'pad'> & { pad: 'same' | 'valid' | backend_util.ExplicitPadding };

const CASES: ConvCase[] = [
  { name: '3x3 same, H≠W, Ci≠Co', xShape: [2, 5, 7, 3], filterShape: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 valid, batch 1', xShape: [1, 6, 4, 2], filterShape: [3, 3, 2, 5], strides: 1, pad: 'valid' },
  { name: '1x1 same', xShape: [2, 4, 5, 6], filterShape: [1, 1, 6, 3], strides: 1, pad: 'same' },
  { name: '1x1 valid, batch 1', xShape: [1, 5, 5, 4], filterShape: [1, 1, 4, 4], strides: 1, pad: 'valid' },
  { name: '3x3 same, stride 2', xShape: [2, 7, 6, 3], filterShape: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { name: '3x3 valid, stride 2', xShape: [1, 8, 5, 2], filterShape: [3, 3, 2, 3], strides: 2, pad: 'valid' },
  {
    name: '3x3 same, 16 channels',
    xShape: [3, 6, 5, 16],
    filterShape: [3, 3, 16, 17],
    strides: 1,
    pad: 'same',
  },
  // On wasm, stride-1 filter gradients of 1×1 filters and of single-channel inputs run as a GEMM.
  {
    name: '3x3 same, 1 input channel',
    xShape: [2, 5, 6, 1],
    filterShape: [3, 3, 1, 4],
    strides: 1,
    pad: 'same',
  },
  {
    name: '3x3 valid, 1 input channel, batch 1',
    xShape: [1, 6, 5, 1],
    filterShape: [3, 3, 1, 3],
    strides: 1,
    pad: 'valid',
  },
  {
    name: '1x1 same, 1 input channel',
    xShape: [2, 4, 3, 1],
    filterShape: [1, 1, 1, 5],
    strides: 1,
    pad: 'same',
  },
  {
    name: '3x3 same, 1 output channel',
    xShape: [2, 5, 5, 4],
    filterShape: [3, 3, 4, 1],
    strides: 1,
    pad: 'same',
  },
  { name: '1x1 valid, stride 2', xShape: [2, 5, 5, 3], filterShape: [1, 1, 3, 2], strides: 2, pad: 'valid' },
  {
    name: '3x3 same, 1 input channel, stride 2',
    xShape: [2, 7, 6, 1],
    filterShape: [3, 3, 1, 2],
    strides: 2,
    pad: 'same',
  },
];

/** Filter shapes whose stride-1 filter gradient takes each wasm code path, for the empty and leak tests. */
const FILTER_GRAD_PATH_CASES = [
  { path: 'transposed conv2d', xShape: [2, 4, 4, 3], filterShape: [3, 3, 3, 5] },
  { path: 'gemm, 1x1', xShape: [2, 4, 4, 3], filterShape: [1, 1, 3, 5] },
  { path: 'gemm, 1 input channel', xShape: [2, 4, 4, 1], filterShape: [3, 3, 1, 5] },
] as const;

const BACKENDS = ['cpu', 'wasm'] as const;
const RTOL = 1e-4;

/** Deterministic values in [-1, 1) from a linear congruential generator, so failures reproduce. */
function seededValues(size: number, seed: number): Float32Array {
  const values = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
  return values;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Float64 direct convolution gradients, read straight off the forward definition
 * y[n,oy,ox,co] = Σ x[n, oy·s+kh−top, ox·s+kw−left, ci] · w[kh,kw,ci,co]: every term of every output adds
 * dy·w to dx and x·dy to dw.
 */
function referenceGradients(
  c: ReferenceCase,
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
): { dx: Float64Array; dw: Float64Array } {
  const info = backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad);
  const [n, h, wd, ci] = c.xShape;
  const [kh, kw, , co] = c.filterShape;
  const dx = new Float64Array(size(c.xShape));
  const dw = new Float64Array(size(c.filterShape));

  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < info.outHeight; oy++)
      for (let ox = 0; ox < info.outWidth; ox++)
        for (let fy = 0; fy < kh; fy++)
          for (let fx = 0; fx < kw; fx++) {
            const iy = oy * c.strides + fy - info.padInfo.top;
            const ix = ox * c.strides + fx - info.padInfo.left;
            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
            for (let i = 0; i < ci; i++)
              for (let o = 0; o < co; o++) {
                const g = dy[((b * info.outHeight + oy) * info.outWidth + ox) * co + o]!;
                const xIndex = ((b * h + iy) * wd + ix) * ci + i;
                const wIndex = ((fy * kw + fx) * ci + i) * co + o;
                dx[xIndex]! += g * w[wIndex]!;
                dw[wIndex]! += g * x[xIndex]!;
              }
          }
  return { dx, dw };
}

/** Float64 direct convolution y[n,oy,ox,co] = Σ x[n, oy·s+kh−top, ox·s+kw−left, ci] · w[kh,kw,ci,co]. */
function referenceForward(c: ReferenceCase, x: Float32Array, w: Float32Array): Float64Array {
  const info = backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad);
  const [, h, wd, ci] = c.xShape;
  const [kh, kw, , co] = c.filterShape;
  const y = new Float64Array(size(info.outShape));

  for (let b = 0; b < c.xShape[0]; b++)
    for (let oy = 0; oy < info.outHeight; oy++)
      for (let ox = 0; ox < info.outWidth; ox++)
        for (let o = 0; o < co; o++) {
          let sum = 0;
          for (let fy = 0; fy < kh; fy++)
            for (let fx = 0; fx < kw; fx++) {
              const iy = oy * c.strides + fy - info.padInfo.top;
              const ix = ox * c.strides + fx - info.padInfo.left;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              for (let i = 0; i < ci; i++)
                sum += x[((b * h + iy) * wd + ix) * ci + i]! * w[((fy * kw + fx) * ci + i) * co + o]!;
            }
          y[((b * info.outHeight + oy) * info.outWidth + ox) * co + o] = sum;
        }
  return y;
}

/** Asserts |actual − expected| ≤ RTOL·max(|expected|, rms(expected)) element by element. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  let squares = 0;
  for (let i = 0; i < expected.length; i++) squares += expected[i]! ** 2;
  const rms = Math.sqrt(squares / Math.max(1, expected.length));

  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(Math.abs(expected[i]!), rms, 1e-12);
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / scale);
  }
  expect(worst).toBeLessThanOrEqual(RTOL);
}

function makeInputs(c: ReferenceCase) {
  const info = backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad);
  const dyShape = info.outShape as Shape4;
  const x = seededValues(size(c.xShape), 1);
  const w = seededValues(size(c.filterShape), 2);
  const dy = seededValues(size(dyShape), 3);
  return { x, w, dy, dyShape };
}

async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  registerProjectKernels(name);
  await tf.setBackend(name);
  await tf.ready();
}

let originalBackend = '';
beforeAll(() => {
  originalBackend = tf.getBackend();
});
afterAll(async () => {
  if (originalBackend) await tf.setBackend(originalBackend);
});

describe.each(BACKENDS)('project conv kernels on %s', (backendName) => {
  beforeAll(() => useBackend(backendName));

  it.each(CASES)('input gradient matches float64 reference: $name', (c) => {
    const { x, w, dy, dyShape } = makeInputs(c);
    const expected = referenceGradients(c, x, w, dy).dx;

    const dyTensor = tf.tensor4d(dy, dyShape);
    const filter = tf.tensor4d(w, c.filterShape);
    const dx = conv2dBackpropInput(c.xShape, dyTensor, filter, c.strides, c.pad);

    expect(dx.shape).toEqual(c.xShape);
    expectClose(dx.dataSync(), expected);
    tf.dispose([dyTensor, filter, dx]);
  });

  it.each(CASES)('filter gradient matches float64 reference: $name', (c) => {
    const { x, w, dy, dyShape } = makeInputs(c);
    const expected = referenceGradients(c, x, w, dy).dw;

    const xTensor = tf.tensor4d(x, c.xShape);
    const dyTensor = tf.tensor4d(dy, dyShape);
    const dw = conv2dBackpropFilter(xTensor, dyTensor, c.filterShape, c.strides, c.pad);

    expect(dw.shape).toEqual(c.filterShape);
    expectClose(dw.dataSync(), expected);
    tf.dispose([xTensor, dyTensor, dw]);
  });

  it.each([CASES[0]!, CASES[4]!, CASES[6]!])('forward conv2d matches float64 reference: $name', (c) => {
    const { x, w } = makeInputs(c);
    const xTensor = tf.tensor4d(x, c.xShape);
    const filter = tf.tensor4d(w, c.filterShape);

    const y = tf.conv2d(xTensor, filter, c.strides, c.pad);

    expectClose(y.dataSync(), referenceForward(c, x, w));
    tf.dispose([xTensor, filter, y]);
  });

  it.each(FILTER_GRAD_PATH_CASES)('empty batch gives zero dw and empty dx: $path', (c) => {
    const [, h, w, ci] = c.xShape;
    const filterShape = [...c.filterShape] as Shape4;
    const co = filterShape[3];
    const x = tf.zeros([0, h, w, ci]) as tf.Tensor4D;
    const dy = tf.zeros([0, h, w, co]) as tf.Tensor4D;
    const filter = tf.ones(filterShape) as tf.Tensor4D;

    const dw = conv2dBackpropFilter(x, dy, filterShape, 1, 'same');
    const dx = conv2dBackpropInput([0, h, w, ci], dy, filter, 1, 'same');

    expect(dw.shape).toEqual(filterShape);
    expect(Array.from(dw.dataSync()).every((v) => v === 0)).toBe(true);
    expect(dx.shape).toEqual([0, h, w, ci]);
    tf.dispose([x, dy, filter, dw, dx]);
  });

  it.each(FILTER_GRAD_PATH_CASES)('kernels leave tensor and data counts unchanged: $path', (pathCase) => {
    const c: ConvCase = {
      name: pathCase.path,
      xShape: [...pathCase.xShape],
      filterShape: [...pathCase.filterShape],
      strides: 1,
      pad: 'same',
    };
    const { x, w, dy, dyShape } = makeInputs(c);
    const inputs = [
      tf.tensor4d(x, c.xShape),
      tf.tensor4d(w, c.filterShape),
      tf.tensor4d(dy, dyShape),
    ] as const;
    const tensorsBefore = tf.memory().numTensors;
    const dataIdsBefore = tf.engine().backend.numDataIds();

    for (let step = 0; step < 3; step++) {
      tf.dispose([
        conv2dBackpropInput(c.xShape, inputs[2], inputs[1], 1, c.pad),
        conv2dBackpropFilter(inputs[0], inputs[2], c.filterShape, 1, c.pad),
        tf.conv2d(inputs[0], inputs[1], 1, c.pad),
      ]);
    }

    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.engine().backend.numDataIds()).toBe(dataIdsBefore);
    tf.dispose([...inputs]);
  });

  it('tf.grads through conv2d matches reference and does not leak', () => {
    const c = CASES[4]!;
    const { x, w, dy, dyShape } = makeInputs(c);
    const expected = referenceGradients(c, x, w, dy);
    const xTensor = tf.tensor4d(x, c.xShape);
    const filter = tf.tensor4d(w, c.filterShape);
    const weights = tf.tensor4d(dy, dyShape);
    const tensorsBefore = tf.memory().numTensors;

    // d/dx Σ conv2d(x, w)·dy is the input gradient of dy, and likewise for w.
    const loss = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), weights));
    const [dx, dw] = tf.grads(loss)([xTensor, filter]);

    expectClose(dx!.dataSync(), expected.dx);
    expectClose(dw!.dataSync(), expected.dw);
    tf.dispose([dx!, dw!]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    tf.dispose([xTensor, filter, weights]);
  });

  it('variableGrads training lowers loss without leaks', () => {
    const x = tf.tensor4d(seededValues(4 * 6 * 6 * 3, 7), [4, 6, 6, 3]);
    const target = tf.tensor4d(seededValues(4 * 6 * 6 * 2, 8), [4, 6, 6, 2]);
    const w = tf.variable(tf.zeros([3, 3, 3, 2]), true, `w-${backendName}`);
    const optimizer = tf.train.sgd(0.1);
    const loss = () =>
      tf.mean(tf.square(tf.sub(tf.leakyRelu(tf.conv2d(x, w as tf.Tensor4D, 1, 'same'), 0.2), target)));

    const losses: number[] = [];
    const tensorCounts: number[] = [];
    for (let step = 0; step < 5; step++) {
      const { value, grads } = tf.variableGrads(loss as () => tf.Scalar);
      optimizer.applyGradients(grads);
      losses.push(value.dataSync()[0]!);
      tf.dispose([value, ...Object.values(grads)]);
      tensorCounts.push(tf.memory().numTensors);
    }

    expect(losses[4]!).toBeLessThan(losses[0]!);
    expect(new Set(tensorCounts.slice(1)).size).toBe(1);
    tf.dispose([x, target, w]);
    optimizer.dispose();
  });

  it.each([
    { name: '3 input channels', xShape: [2, 5, 6, 3] as Shape4, filterShape: [3, 3, 3, 4] as Shape4 },
    { name: '1 input channel', xShape: [2, 5, 6, 1] as Shape4, filterShape: [3, 3, 1, 4] as Shape4 },
  ])('explicit padding narrower than the filter matches reference: $name', (shapes) => {
    const c: ReferenceCase = {
      name: shapes.name,
      xShape: shapes.xShape,
      filterShape: shapes.filterShape,
      strides: 1,
      pad: [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ],
    };
    const { x, w, dy, dyShape } = makeInputs(c);
    const expected = referenceGradients(c, x, w, dy);
    const [xTensor, filter, dyTensor] = [
      tf.tensor4d(x, c.xShape),
      tf.tensor4d(w, c.filterShape),
      tf.tensor4d(dy, dyShape),
    ];
    const attrs = { strides: 1, pad: c.pad, dataFormat: 'NHWC' };

    const dx = tf
      .engine()
      .runKernel('Conv2DBackpropInput', { dy: dyTensor, filter }, { ...attrs, inputShape: c.xShape });
    const dw = tf
      .engine()
      .runKernel(
        'Conv2DBackpropFilter',
        { x: xTensor, dy: dyTensor },
        { ...attrs, filterShape: c.filterShape },
      );

    expectClose((dx as tf.Tensor).dataSync(), expected.dx);
    expectClose((dw as tf.Tensor).dataSync(), expected.dw);
    tf.dispose([xTensor, filter, dyTensor, dx as tf.Tensor, dw as tf.Tensor]);
  });

  it('explicit padding as wide as the filter is exact or rejected', () => {
    const c: ReferenceCase = {
      name: 'wide explicit',
      xShape: [1, 4, 4, 2],
      filterShape: [3, 3, 2, 2],
      strides: 1,
      pad: [
        [0, 0],
        [3, 3],
        [3, 3],
        [0, 0],
      ],
    };
    const { w, dy, dyShape } = makeInputs(c);
    const expected = referenceGradients(c, new Float32Array(size(c.xShape)), w, dy).dx;
    const [filter, dyTensor] = [tf.tensor4d(w, c.filterShape), tf.tensor4d(dy, dyShape)];
    const attrs = { strides: 1, pad: c.pad, dataFormat: 'NHWC', inputShape: c.xShape };
    const run = () =>
      tf.engine().runKernel('Conv2DBackpropInput', { dy: dyTensor, filter }, attrs) as tf.Tensor;

    if (backendName === 'wasm') {
      expect(run).toThrow(/is at least as wide as the filter 3x3/);
    } else {
      const dx = run();
      expectClose(dx.dataSync(), expected);
      dx.dispose();
    }
    tf.dispose([filter, dyTensor]);
  });

  it('dilated conv2d runs forward but its gradient is rejected', () => {
    const x = tf.tensor4d(seededValues(2 * 7 * 7 * 2, 12), [2, 7, 7, 2]);
    const filter = tf.tensor4d(seededValues(3 * 3 * 2 * 3, 13), [3, 3, 2, 3]);
    const conv = (a: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, filter, 1, 'same', 'NHWC', 2);

    const y = conv(x);
    expect(y.shape).toEqual([2, 7, 7, 3]);
    expect(() => tf.grads((a: tf.Tensor) => tf.sum(conv(a)))([x])).toThrow(
      /gradient of Conv2D: dilations must be 1, got 2/,
    );
    tf.dispose([x, filter, y]);
  });

  it('rejects NCHW, unknown pad and a wrong dy shape', () => {
    const x = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
    const dy = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    const filter = tf.zeros([3, 3, 2, 3]) as tf.Tensor4D;
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] };

    expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs)).toThrow(
      /dataFormat must be 'NHWC', got "NCHW"/,
    );
    expect(() => conv2dBackpropFilter(x, dy, [3, 3, 2, 3], 1, 'full' as 'same')).toThrow(
      /pad must be 'same' or 'valid', got "full"/,
    );
    expect(() => conv2dBackpropFilter(x, dy, [3, 3, 2, 3], 1, 'valid')).toThrow(
      /dy must have the forward output shape \[1,2,2,3\]/,
    );
    expect(() => conv2dBackpropInput([1, 4, 4, 2], dy, filter, 0, 'same')).toThrow(
      /strides must be positive integers, got 0/,
    );
    tf.dispose([x, dy, filter]);
  });
});

describe('gradients registered for the model ops on wasm', () => {
  beforeAll(() => useBackend('wasm'));

  // Each case: f(x) whose Σ f(x)·r is differentiated, and the expected dx from the calculus by hand.
  const X = [-1.5, -0.25, 0.5, 2, 0.75, -3];
  const R = [0.5, -1, 2, 0.25, -0.5, 1];
  type GradCase = {
    name: string;
    f: (x: tf.Tensor2D) => tf.Tensor;
    dx: (x: number[], r: number[]) => number[];
  };
  const GRAD_CASES: GradCase[] = [
    {
      name: 'leakyRelu',
      f: (x) => tf.leakyRelu(x, 0.2),
      dx: (x, r) => x.map((v, i) => (v > 0 ? 1 : 0.2) * r[i]!),
    },
    { name: 'relu', f: (x) => tf.relu(x), dx: (x, r) => x.map((v, i) => (v > 0 ? r[i]! : 0)) },
    { name: 'tanh', f: (x) => tf.tanh(x), dx: (x, r) => x.map((v, i) => (1 - Math.tanh(v) ** 2) * r[i]!) },
    { name: 'mul', f: (x) => tf.mul(x, x), dx: (x, r) => x.map((v, i) => 2 * v * r[i]!) },
    {
      name: 'where',
      f: (x) => tf.where(tf.greater(x, 0), x, tf.mul(x, 3)),
      dx: (x, r) => x.map((v, i) => (v > 0 ? 1 : 3) * r[i]!),
    },
    {
      // Columns 1 and 2 of x, then column 0 of 2x.
      name: 'concat and slice',
      f: (x) => tf.slice(tf.concat([x, tf.mul(x, 2)], 1), [0, 1], [2, 3]),
      dx: (_x, r) => [0, 1].flatMap((row) => [2 * r[3 * row + 2]!, r[3 * row]!, r[3 * row + 1]!]),
    },
  ];

  it.each(GRAD_CASES)('elementwise gradient of $name', ({ f, dx }) => {
    const x = tf.tensor2d(X, [2, 3]);
    const r = tf.tensor2d(R, [2, 3]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor2D), r)))([x]);
    expectClose(g!.dataSync(), dx(X, R));
    tf.dispose([x, r, g!]);
  });

  it.each([
    [false, true],
    [true, false],
    [true, true],
  ])('matMul gradient with transposeA %s, transposeB %s', (transposeA, transposeB) => {
    const a = tf.tensor2d(seededValues(6, 9), transposeA ? [3, 2] : [2, 3]);
    const b = tf.tensor2d(seededValues(12, 10), transposeB ? [4, 3] : [3, 4]);
    const r = tf.tensor2d(seededValues(8, 11), [2, 4]);
    const viaFlags = (p: tf.Tensor, q: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(p as tf.Tensor2D, q as tf.Tensor2D, transposeA, transposeB), r));
    const viaTranspose = (p: tf.Tensor, q: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(transposeA ? tf.transpose(p) : p, transposeB ? tf.transpose(q) : q), r));

    const [da, db] = tf.grads(viaFlags)([a, b]);
    const [expectedA, expectedB] = tf.grads(viaTranspose)([a, b]);

    expectClose(da!.dataSync(), expectedA!.dataSync());
    expectClose(db!.dataSync(), expectedB!.dataSync());
    tf.dispose([a, b, r, da!, db!, expectedA!, expectedB!]);
  });

  it('gradients of mean, sum, matMul, reshape and broadcastTo', () => {
    const x = tf.tensor2d(X, [2, 3]);
    const b = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
    // L = Σ (x·b) + mean(x)·6 + Σ broadcastTo(reshape(Σ_rows x, [1,3]), [2,3])
    const loss = (a: tf.Tensor, m: tf.Tensor) =>
      tf.addN([
        tf.sum(tf.matMul(a as tf.Tensor2D, m as tf.Tensor2D)),
        tf.mul(tf.mean(a), 6),
        tf.sum(tf.broadcastTo(tf.reshape(tf.sum(a, 0), [1, 3]), [2, 3])),
      ]);
    const [dx, db] = tf.grads(loss)([x, b]);

    // dL/dx[i,k] = Σ_j b[k,j] + 1 + 2, and dL/db[k,j] = Σ_i x[i,k].
    expectClose(dx!.dataSync(), [6, 10, 14, 6, 10, 14]);
    expectClose(db!.dataSync(), [0.5, 0.5, 0.5, 0.5, -2.5, -2.5]);
    tf.dispose([x, b, dx!, db!]);
  });
});

describe('cpu element-wise and reduction kernels', () => {
  // Expected values come from the stock wasm kernels, an independent implementation.
  async function onBothBackends(
    f: () => tf.Tensor,
  ): Promise<{ cpu: Float32Array; wasm: Float32Array; shape: number[] }> {
    await useBackend('wasm');
    const expected = f();
    const wasm = expected.dataSync() as Float32Array;
    const shape = expected.shape;
    expected.dispose();

    await useBackend('cpu');
    const actual = f();
    const cpu = actual.dataSync() as Float32Array;
    expect(actual.shape).toEqual(shape);
    actual.dispose();
    return { cpu, wasm, shape };
  }

  const BINARY_SHAPES: [number[], number[]][] = [
    [
      [2, 3, 4, 5],
      [1, 1, 1, 5],
    ],
    [
      [2, 3, 4, 5],
      [2, 1, 1, 5],
    ],
    [
      [1, 1, 1, 5],
      [2, 3, 4, 5],
    ],
    [
      [2, 3, 4, 5],
      [2, 3, 4, 5],
    ],
    [
      [3, 1, 5],
      [1, 4, 1],
    ],
    [[2, 3], []],
    [[0, 3], [3]],
  ];
  const OPS: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
    ['div', (a, b) => tf.div(a, tf.add(tf.abs(b), 0.5))],
    ['squaredDifference', tf.squaredDifference],
  ];

  it.each(OPS)('%s broadcasts like the stock kernels', async (_name, op) => {
    for (const [aShape, bShape] of BINARY_SHAPES) {
      const a = () => tf.tensor(seededValues(size(aShape), 4), aShape);
      const b = () => tf.tensor(seededValues(size(bShape), 5), bShape);
      const { cpu, wasm } = await onBothBackends(() => tf.tidy(() => op(a(), b())));
      expectClose(cpu, wasm);
    }
  });

  const AXES: (number[] | undefined)[] = [[0, 1, 2], [1, 2], [3], [0], undefined, [0, 2]];

  it.each([true, false])('sum and mean match the stock kernels, keepDims %s', async (keepDims) => {
    const shape = [3, 4, 2, 5];
    for (const axis of AXES) {
      const x = () => tf.tensor(seededValues(size(shape), 6), shape);
      const sum = await onBothBackends(() => tf.tidy(() => tf.sum(x(), axis, keepDims)));
      const mean = await onBothBackends(() => tf.tidy(() => tf.mean(x(), axis, keepDims)));
      expectClose(sum.cpu, sum.wasm);
      expectClose(mean.cpu, mean.wasm);
    }
  });

  it('int32 inputs run the stock kernels', async () => {
    await useBackend('cpu');
    const a = tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32');
    const sum = tf.sum(tf.add(a, tf.scalar(1, 'int32')), 0);
    expect(sum.dtype).toBe('int32');
    expect(Array.from(sum.dataSync())).toEqual([6, 8]);
    tf.dispose([a, sum]);
  });
});

describe('wasm Identity', () => {
  it('shares data and keeps the clone valid', async () => {
    await useBackend('wasm');
    const dataIdsBefore = tf.engine().backend.numDataIds();
    const x = tf.tensor1d([1, 2, 3]);

    const copy = tf.clone(x);
    x.dispose();

    expect(Array.from(copy.dataSync())).toEqual([1, 2, 3]);
    expect(tf.engine().backend.numDataIds()).toBe(dataIdsBefore + 1);
    copy.dispose();
    expect(tf.engine().backend.numDataIds()).toBe(dataIdsBefore);
  });

  it('copies string tensors with the stock kernel', async () => {
    await useBackend('wasm');
    const words = tf.tensor1d(['a', 'bc'], 'string');
    const copy = tf.clone(words);

    expect(copy.dataSync()).toEqual(['a', 'bc']);
    tf.dispose([words, copy]);
  });
});

describe('registerProjectKernels', () => {
  it('keeps the same kernels when called twice', () => {
    registerProjectKernels('wasm');
    const first = getKernel('Conv2DBackpropFilter', 'wasm');
    registerProjectKernels('wasm');
    expect(getKernel('Conv2DBackpropFilter', 'wasm')).toBe(first);
  });
});
