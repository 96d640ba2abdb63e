import type { backend_util, KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';
import { disposeIntermediate } from './backend-kernels.js';

type RunKernel = (name: string, inputs: Record<string, TensorInfo>, attrs: object) => TensorInfo;

/**
 * Reports whether the filter gradient should run as one GEMM over im2col patches
 * (`filterGradByGemm`) instead of the transposed Conv2D in `createFilterGradKernel`.
 *
 * Only stride-1 gradients of 1×1 filters or of single-channel inputs qualify. There the transposed Conv2D
 * has a batch of 1 or an output of 1×1 pixels, which XNNPACK runs slowly. Median ms of
 * `bench/conv-shapes.ts` on wasm (tfjs 4.22.0, XNNPACK, 1 thread, 2-core AMD EPYC, load average 1.0),
 * transposed Conv2D → GEMM:
 *
 * - 1×1: N=32 16×16 64→32 5.1 → 1.8, N=32 32×32 32→16 8.6 → 2.5, N=64 32×32 1→16 8.3 → 0.13.
 * - 3×3 'same': N=64 32×32 1→16 8.9 → 2.2.
 *
 * A prototype of the same GEMM built from tf ops was slower for every 3×3 shape with Ci ≥ 16, for example
 * N=32 16×16 32→32 9.1 → 14.8 and N=32 32×32 16→1 4.4 → 14.0 ms, so those keep the transposed Conv2D.
 */
export function prefersFilterGradByGemm(info: backend_util.Conv2DInfo): boolean {
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return false;
  const isPointwise = info.filterHeight === 1 && info.filterWidth === 1;
  return isPointwise || info.inChannels === 1;
}

/**
 * Computes the stride-1 filter gradient as dw[(kh,kw,ci), co] = Σ_p cols[(kh,kw,ci), p] · dy[p, co],
 * where p runs over the N·Ho·Wo output positions and cols[(kh,kw,ci), p] is the input value that filter
 * tap (kh, kw, ci) reads at position p.
 *
 * x is transposed to [Ci,N,H,W] (a reshape when Ci = 1) and padded like the forward pass. Its Kh·Kw
 * shifted [Ci,N,Ho,Wo] windows are concatenated along the first axis, which gives cols in the row order
 * of the [Kh,Kw,Ci,Co] result. The product runs as a 1×1 Conv2D of cols [Kh·Kw·Ci,1,1,P] with dy as a
 * [1,1,P,Co] filter, because at the model's shapes wasm's Conv2D (XNNPACK) was 6 to 30 times faster than
 * its BatchMatMul (tfjs 4.22.0).
 *
 * NOTE: the wasm backend's conv2d_impl.cc caches the XNNPACK operator, which holds a packed copy of dy as
 * its weights, under the filter's data id until that data is freed. So dy takes about twice its size in
 * memory until it is disposed.
 */
export function filterGradByGemm(
  run: RunKernel,
  backend: KernelBackend,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const positions = batchSize * outHeight * outWidth;

  const xT =
    inChannels === 1
      ? run('Reshape', { x }, { shape: [1, batchSize, inHeight, inWidth] })
      : run('Transpose', { x }, { perm: [3, 0, 1, 2] }); // [N,H,W,Ci] -> [Ci,N,H,W]
  const padded = padSpatially(run, backend, xT, info.padInfo);
  const cols = gatherFilterTaps(run, backend, padded, info); // [Kh·Kw·Ci,N,Ho,Wo]
  const rows = info.filterHeight * info.filterWidth * inChannels;
  const colsMatrix = run('Reshape', { x: cols }, { shape: [rows, 1, 1, positions] });
  disposeIntermediate(backend, cols);

  const dyMatrix = run('Reshape', { x: dy }, { shape: [1, 1, positions, outChannels] });
  const attrs = { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1, dimRoundingMode: undefined };
  const product = run('Conv2D', { x: colsMatrix, filter: dyMatrix }, attrs); // [Kh·Kw·Ci,1,1,Co]
  disposeIntermediate(backend, colsMatrix);
  disposeIntermediate(backend, dyMatrix);

  const filterShape = [info.filterHeight, info.filterWidth, inChannels, outChannels];
  const dw = run('Reshape', { x: product }, { shape: filterShape });
  disposeIntermediate(backend, product);
  return dw;
}

/** Pads the H and W axes of a [C,N,H,W] tensor, and frees the input. Returns the input when all pads are 0. */
function padSpatially(
  run: RunKernel,
  backend: KernelBackend,
  xT: TensorInfo,
  padInfo: backend_util.PadInfo,
): TensorInfo {
  const { top, bottom, left, right } = padInfo;
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return xT;

  const paddings = [
    [0, 0],
    [0, 0],
    [top, bottom],
    [left, right],
  ];
  const padded = run('PadV2', { x: xT }, { paddings, constantValue: 0 });
  disposeIntermediate(backend, xT);
  return padded;
}

/**
 * Slices the Kh·Kw windows [C,N,Ho,Wo] of a padded [C,N,Hp,Wp] tensor, in (kh, kw) row-major order, and
 * concatenates them along the first axis. Frees the input. A 1×1 filter with no padding has one window,
 * the input itself, which is returned unchanged.
 */
function gatherFilterTaps(
  run: RunKernel,
  backend: KernelBackend,
  padded: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const [channels, batch, paddedHeight, paddedWidth] = padded.shape as [number, number, number, number];
  if (paddedHeight === info.outHeight && paddedWidth === info.outWidth) return padded;

  const size = [channels, batch, info.outHeight, info.outWidth];
  const windows: TensorInfo[] = [];
  for (let kh = 0; kh < info.filterHeight; kh++) {
    for (let kw = 0; kw < info.filterWidth; kw++) {
      windows.push(run('Slice', { x: padded }, { begin: [0, 0, kh, kw], size }));
    }
  }
  disposeIntermediate(backend, padded);
  if (windows.length === 1) return windows[0]!;

  // Concat takes its inputs as an array, not as named inputs.
  const cols = run('Concat', windows as unknown as Record<string, TensorInfo>, { axis: 0 });
  for (const window of windows) disposeIntermediate(backend, window);
  return cols;
}
