import type {
  backend_util,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { Conv2DBackpropFilter, Conv2DBackpropInput } from '@tensorflow/tfjs-core';
import type { Conv2DBackpropFilterAttrs, Conv2DBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { computeBackpropGeometry } from './conv-geometry.js';
import { filterGradByGemm, prefersFilterGradByGemm } from './conv-filter-grad-gemm.js';
import {
  checkFloat32,
  disposeIntermediate,
  isEmptyShape,
  runBackendKernel,
  zerosOnBackend,
} from './backend-kernels.js';

/*
 * Convolution gradients written as forward Conv2D calls, for backends whose Conv2D is fast and accepts
 * explicit padding and dilation (wasm runs it through XNNPACK). Notation: forward y = conv2d(x, w) with
 * strides (sh, sw), padding (top, left) and filter [Kh, Kw, Ci, Co].
 */

type Conv2DArgs = { inputs: Record<string, TensorInfo>; backend: KernelBackend; attrs: object };

/**
 * Computes dx[n,i,j,ci] = Σ_{kh,kw,co} dy[n,(i+top−kh)/sh,(j+left−kw)/sw,co] · w[kh,kw,ci,co], with the sum
 * over integer, in-range dy positions.
 *
 * That is a stride-1 correlation of dy, dilated by inserting sh−1 (sw−1) zeros between rows (columns). The
 * filter is flipped in both spatial axes and its channel axes are swapped ([Kh,Kw,Co,Ci]). The dilated dy
 * is padded by Kh−1−top rows above and by as many rows below as make the output H rows high.
 */
export function createInputGradKernel(backendName: string): KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: Conv2DArgs): TensorInfo => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { inputShape, ...convAttrs } = attrs as Conv2DBackpropInputAttrs;
    checkFloat32(Conv2DBackpropInput, { dy, filter });
    const info = computeBackpropGeometry(Conv2DBackpropInput, inputShape, filter.shape, dy.shape, convAttrs);
    if (isEmptyShape(inputShape) || isEmptyShape(dy.shape) || isEmptyShape(filter.shape)) {
      return zerosOnBackend(backendName, backend, inputShape);
    }

    const run = (name: string, ins: Record<string, TensorInfo>, a: object): TensorInfo =>
      runBackendKernel(name, backendName, backend, ins, a);

    const flipped = run('Reverse', { x: filter }, { dims: [0, 1] }); // [Kh,Kw,Ci,Co]
    const swapped = run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] }); // [Kh,Kw,Co,Ci]
    disposeIntermediate(backend, flipped);

    const dilated = dilateSpatially(run, backend, dy, info.strideHeight, info.strideWidth); // [N,Hd,Wd,Co]
    const pad = transposedPadding(info, dilated.shape);
    const dx = run('Conv2D', { x: dilated, filter: swapped }, conv2dAttrs(pad, 1)); // [N,H,W,Ci]
    disposeIntermediate(backend, swapped);
    if (dilated !== dy) disposeIntermediate(backend, dilated);
    return dx;
  };
  return { kernelName: Conv2DBackpropInput, backendName, kernelFunc: kernelFunc as unknown as KernelFunc };
}

/**
 * Computes dw[kh,kw,ci,co] = Σ_{n,oy,ox} xPadded[n, oy·sh+kh, ox·sw+kw, ci] · dy[n,oy,ox,co].
 *
 * That is a 'valid' correlation whose batch axis is Ci and whose channel axis is N. Its input is x
 * transposed to [Ci,H,W,N] and padded like the forward pass. Its filter is dy transposed to [Ho,Wo,N,Co]
 * with dilation (sh, sw). Its output [Ci,Kh,Kw,Co] is transposed back to [Kh,Kw,Ci,Co].
 *
 * Stride-1 gradients of 1×1 filters or of single-channel inputs run as one GEMM over im2col patches
 * instead (see `prefersFilterGradByGemm`), which XNNPACK computes several times faster.
 */
export function createFilterGradKernel(backendName: string): KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: Conv2DArgs): TensorInfo => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape, ...convAttrs } = attrs as Conv2DBackpropFilterAttrs;
    checkFloat32(Conv2DBackpropFilter, { x, dy });
    const info = computeBackpropGeometry(Conv2DBackpropFilter, x.shape, filterShape, dy.shape, convAttrs);
    if (isEmptyShape(x.shape) || isEmptyShape(dy.shape) || isEmptyShape(filterShape)) {
      return zerosOnBackend(backendName, backend, filterShape);
    }

    const run = (name: string, ins: Record<string, TensorInfo>, a: object): TensorInfo =>
      runBackendKernel(name, backendName, backend, ins, a);
    if (prefersFilterGradByGemm(info)) return filterGradByGemm(run, backend, x, dy, info);

    const xT = run('Transpose', { x }, { perm: [3, 1, 2, 0] }); // [N,H,W,Ci] -> [Ci,H,W,N]
    const dyT = run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [N,Ho,Wo,Co] -> [Ho,Wo,N,Co]
    const { input, pad } = cropForFilterGrad(run, xT, info);
    const dilations = [info.strideHeight, info.strideWidth];
    const dwT = run('Conv2D', { x: input, filter: dyT }, conv2dAttrs(pad, dilations)); // [Ci,Kh,Kw,Co]
    if (input !== xT) disposeIntermediate(backend, input);
    disposeIntermediate(backend, xT);
    disposeIntermediate(backend, dyT);

    const dw = run('Transpose', { x: dwT }, { perm: [1, 2, 0, 3] }); // [Ci,Kh,Kw,Co] -> [Kh,Kw,Ci,Co]
    disposeIntermediate(backend, dwT);
    return dw;
  };
  return { kernelName: Conv2DBackpropFilter, backendName, kernelFunc: kernelFunc as unknown as KernelFunc };
}

type RunKernel = (name: string, inputs: Record<string, TensorInfo>, attrs: object) => TensorInfo;

/** Explicit NHWC padding: [[0,0],[top,bottom],[left,right],[0,0]]. */
type ExplicitPad = backend_util.ExplicitPadding;

function conv2dAttrs(pad: ExplicitPad, dilations: number | number[]): object {
  return { strides: 1, pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined };
}

/**
 * Inserts s−1 zero rows (columns) between the rows (columns) of dy, so that a stride-s gradient becomes a
 * stride-1 correlation. Returns dy itself when both strides are 1.
 */
function dilateSpatially(
  run: RunKernel,
  backend: KernelBackend,
  dy: TensorInfo,
  strideHeight: number,
  strideWidth: number,
): TensorInfo {
  if (strideHeight === 1 && strideWidth === 1) return dy;

  const [n, ho, wo, c] = dy.shape as [number, number, number, number];
  const split = run('Reshape', { x: dy }, { shape: [n * ho, 1, wo, 1, c] }); // [N·Ho,1,Wo,1,C]
  const paddings = [
    [0, 0],
    [0, strideHeight - 1],
    [0, 0],
    [0, strideWidth - 1],
    [0, 0],
  ];
  const padded = run('PadV2', { x: split }, { paddings, constantValue: 0 }); // [N·Ho,sh,Wo,sw,C]
  disposeIntermediate(backend, split);

  const merged = run('Reshape', { x: padded }, { shape: [n, ho * strideHeight, wo * strideWidth, c] });
  disposeIntermediate(backend, padded);

  // The zeros after the last row and column are not part of the dilated tensor.
  const size = [n, (ho - 1) * strideHeight + 1, (wo - 1) * strideWidth + 1, c];
  const dilated = run('Slice', { x: merged }, { begin: [0, 0, 0, 0], size }); // [N,Hd,Wd,C]
  disposeIntermediate(backend, merged);
  return dilated;
}

/**
 * Padding of the dilated dy for the input gradient: Kh−1−top rows above, and below as many as make the
 * output H rows high (Hd + above + below − Kh + 1 = H). Same for columns.
 */
function transposedPadding(info: backend_util.Conv2DInfo, dilatedShape: number[]): ExplicitPad {
  const [, dilatedHeight, dilatedWidth] = dilatedShape as [number, number, number, number];
  const top = info.filterHeight - 1 - info.padInfo.top;
  const left = info.filterWidth - 1 - info.padInfo.left;
  const bottom = info.inHeight + info.filterHeight - 1 - dilatedHeight - top;
  const right = info.inWidth + info.filterWidth - 1 - dilatedWidth - left;
  if (Math.min(top, left, bottom, right) < 0) {
    // NOTE: only explicit pads at least as wide as the filter reach this, never 'same' or 'valid'.
    throw new Error(
      `${Conv2DBackpropInput}: pad ${JSON.stringify(info.padInfo)} is at least as wide as the filter ` +
        `${info.filterHeight}x${info.filterWidth}, which this backend does not support. Use a narrower pad.`,
    );
  }
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/**
 * Chooses the padding of xT [Ci,H,W,N] for the filter gradient so that a 'valid' correlation with the
 * dilated dyT yields exactly Kh×Kw outputs, so the padded height must be (Ho−1)·sh + Kh. When the forward
 * pass never read the last rows (a stride that does not divide the padded height), xT is cropped instead.
 */
function cropForFilterGrad(
  run: RunKernel,
  xT: TensorInfo,
  info: backend_util.Conv2DInfo,
): { input: TensorInfo; pad: ExplicitPad } {
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const rowsUsed = (info.outHeight - 1) * info.strideHeight + info.filterHeight - top;
  const colsUsed = (info.outWidth - 1) * info.strideWidth + info.filterWidth - left;
  const bottom = rowsUsed - info.inHeight;
  const right = colsUsed - info.inWidth;
  const pad: ExplicitPad = [
    [0, 0],
    [top, Math.max(0, bottom)],
    [left, Math.max(0, right)],
    [0, 0],
  ];
  if (bottom >= 0 && right >= 0) return { input: xT, pad };

  const [channels, , , batch] = xT.shape as [number, number, number, number];
  const size = [channels, Math.min(rowsUsed, info.inHeight), Math.min(colsUsed, info.inWidth), batch];
  const cropped = run('Slice', { x: xT }, { begin: [0, 0, 0, 0], size }); // [Ci,H',W',N]
  return { input: cropped, pad };
}
