import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { forEachRow, mergeAxes, stridesAgainst } from './cpu-strided.js';
import { runStockKernel } from './stock-kernels.js';

/*
 * Broadcasting float32 element-wise kernels for the cpu backend. When the shapes differ, the stock kernels
 * compute a multi-index per element, which is slow for x [N,H,W,C] op γ [1,1,1,C] (the batch-norm
 * pattern). These walk the output row by row with per-operand strides.
 */

type RowLoop = (
  out: Float32Array,
  o: number,
  a: Float32Array,
  ia: number,
  sa: number,
  b: Float32Array,
  ib: number,
  sb: number,
  n: number,
) => void;

const ROW_LOOPS = {
  Add: (out, o, a, ia, sa, b, ib, sb, n) => {
    for (let i = 0; i < n; i++) out[o + i] = a[ia + i * sa]! + b[ib + i * sb]!;
  },
  Sub: (out, o, a, ia, sa, b, ib, sb, n) => {
    for (let i = 0; i < n; i++) out[o + i] = a[ia + i * sa]! - b[ib + i * sb]!;
  },
  Multiply: (out, o, a, ia, sa, b, ib, sb, n) => {
    for (let i = 0; i < n; i++) out[o + i] = a[ia + i * sa]! * b[ib + i * sb]!;
  },
  RealDiv: (out, o, a, ia, sa, b, ib, sb, n) => {
    for (let i = 0; i < n; i++) out[o + i] = a[ia + i * sa]! / b[ib + i * sb]!;
  },
  SquaredDifference: (out, o, a, ia, sa, b, ib, sb, n) => {
    for (let i = 0; i < n; i++) {
      const d = a[ia + i * sa]! - b[ib + i * sb]!;
      out[o + i] = d * d;
    }
  },
} satisfies Record<string, RowLoop>;

export type CpuBinaryKernelName = keyof typeof ROW_LOOPS;
export const CPU_BINARY_KERNEL_NAMES = Object.keys(ROW_LOOPS) as CpuBinaryKernelName[];

type CpuArgs = { inputs: Record<string, TensorInfo>; backend: MathBackendCPU; attrs?: object };

/** Creates the cpu kernel for one element-wise op; non-float32 inputs run the stock kernel. */
export function createCpuBinaryKernel(kernelName: CpuBinaryKernelName): KernelConfig {
  const rowLoop: RowLoop = ROW_LOOPS[kernelName];
  const kernelFunc = (args: CpuArgs): TensorInfo => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') {
      return runStockKernel(kernelName, 'cpu', args, `dtype ${a.dtype} ${b.dtype}`);
    }

    const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const out = new Float32Array(outShape.reduce((p, d) => p * d, 1));
    const aValues = args.backend.data.get(a.dataId)!.values as Float32Array;
    const bValues = args.backend.data.get(b.dataId)!.values as Float32Array;

    const outStrides = stridesAgainst(outShape, outShape);
    const operandStrides = [outStrides, stridesAgainst(a.shape, outShape), stridesAgainst(b.shape, outShape)];
    const { shape, strides } = mergeAxes(
      outShape.length > 0 ? outShape : [1],
      outShape.length > 0 ? operandStrides : [[1], [0], [0]],
    );
    const [, aStrides, bStrides] = strides as [number[], number[], number[]];
    const aInner = aStrides[aStrides.length - 1]!;
    const bInner = bStrides[bStrides.length - 1]!;
    forEachRow(shape, strides, ([o, ia, ib], n) =>
      rowLoop(out, o!, aValues, ia!, aInner, bValues, ib!, bInner, n),
    );

    return args.backend.makeTensorInfo(outShape, 'float32', out);
  };
  return { kernelName, backendName: 'cpu', kernelFunc: kernelFunc as unknown as KernelFunc };
}
