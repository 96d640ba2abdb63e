import { backend_util, Mean, Sum, util } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, SumAttrs, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { forEachRow, mergeAxes, stridesAgainst } from './cpu-strided.js';
import { runStockKernel } from './stock-kernels.js';

/*
 * Sum and Mean of float32 tensors for the cpu backend, summed in float64 without the transpose the stock
 * kernels make when the reduced axes are not innermost (batch-norm statistics reduce [N,H,W,C] over N,H,W).
 */

type CpuArgs = { inputs: Record<string, TensorInfo>; backend: MathBackendCPU; attrs: object };

/** Creates the cpu Sum (divideByCount false) or Mean (true) kernel; non-float32 inputs run the stock kernel. */
function createCpuReduceKernel(kernelName: typeof Sum | typeof Mean, divideByCount: boolean): KernelConfig {
  const kernelFunc = (args: CpuArgs): TensorInfo => {
    const { x } = args.inputs as { x: TensorInfo };
    const { axis, keepDims } = args.attrs as SumAttrs;
    if (x.dtype !== 'float32') return runStockKernel(kernelName, 'cpu', args, `dtype ${x.dtype}`);

    const axes = util.parseAxisParam(axis, x.shape);
    const keptShape = x.shape.map((size, i) => (axes.includes(i) ? 1 : size)); // rank of x, 1 on reduced axes
    const count = axes.reduce((p, a) => p * x.shape[a]!, 1);
    const sums = reduceToKeptShape(
      args.backend.data.get(x.dataId)!.values as Float32Array,
      x.shape,
      keptShape,
    );

    const out = new Float32Array(sums.length);
    for (let i = 0; i < sums.length; i++) out[i] = divideByCount ? sums[i]! / count : sums[i]!;
    const outShape = keepDims ? keptShape : backend_util.computeOutAndReduceShapes(x.shape, axes)[0];
    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
  return { kernelName, backendName: 'cpu', kernelFunc: kernelFunc as unknown as KernelFunc };
}

/** Sums x [shape] into float64 sums of `keptShape` (same rank, 1 on the reduced axes). */
function reduceToKeptShape(x: Float32Array, shape: number[], keptShape: number[]): Float64Array {
  const sums = new Float64Array(keptShape.reduce((p, d) => p * d, 1));
  if (shape.length === 0) {
    sums[0] = x[0] ?? 0;
    return sums;
  }

  const operandStrides = [stridesAgainst(shape, shape), stridesAgainst(keptShape, shape)];
  const { shape: merged, strides } = mergeAxes(shape, operandStrides);
  const sumsInner = strides[1]![strides[1]!.length - 1]!;
  forEachRow(merged, strides, ([ix, is], n) => {
    if (sumsInner === 0) {
      let total = 0;
      for (let i = 0; i < n; i++) total += x[ix! + i]!;
      sums[is!]! += total;
    } else {
      for (let i = 0; i < n; i++) sums[is! + i]! += x[ix! + i]!;
    }
  });
  return sums;
}

export const cpuSumKernel = createCpuReduceKernel(Sum, false);
export const cpuMeanKernel = createCpuReduceKernel(Mean, true);
