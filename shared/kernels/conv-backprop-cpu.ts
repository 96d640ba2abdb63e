import { Conv2DBackpropFilter, Conv2DBackpropInput } from '@tensorflow/tfjs-core';
import type {
  backend_util,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { computeBackpropGeometry } from './conv-geometry.js';
import { checkFloat32 } from './backend-kernels.js';
import { correlate, padInput } from './cpu-correlate.js';

/*
 * Convolution gradients for the tfjs cpu backend as plain loops over NHWC Float32Arrays. Each inner loop
 * runs over a contiguous channel axis and sums in float64. Notation: forward y = conv2d(x, w) with
 * strides (sh, sw), padding (top, left), x [N,H,W,Ci], w [Kh,Kw,Ci,Co], y and dy [N,Ho,Wo,Co].
 */

type CpuArgs = { inputs: Record<string, TensorInfo>; backend: MathBackendCPU; attrs: object };

/** Conv2DBackpropInput for the cpu backend; see `conv2dInputGradLoops` for the formula. */
export const cpuInputGradKernel: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'cpu',
  kernelFunc: (({ inputs, backend, attrs }: CpuArgs): TensorInfo => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { inputShape, ...convAttrs } = attrs as Conv2DBackpropInputAttrs;
    checkFloat32(Conv2DBackpropInput, { dy, filter });
    const info = computeBackpropGeometry(Conv2DBackpropInput, inputShape, filter.shape, dy.shape, convAttrs);

    const dyValues = backend.data.get(dy.dataId)!.values as Float32Array;
    const filterValues = backend.data.get(filter.dataId)!.values as Float32Array;
    const dx = conv2dInputGradLoops(dyValues, filterValues, info);
    return backend.makeTensorInfo([...inputShape], 'float32', dx);
  }) as unknown as KernelFunc,
};

/** Conv2DBackpropFilter for the cpu backend; see `conv2dFilterGradLoops` for the formula. */
export const cpuFilterGradKernel: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'cpu',
  kernelFunc: (({ inputs, backend, attrs }: CpuArgs): TensorInfo => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape, ...convAttrs } = attrs as Conv2DBackpropFilterAttrs;
    checkFloat32(Conv2DBackpropFilter, { x, dy });
    const info = computeBackpropGeometry(Conv2DBackpropFilter, x.shape, filterShape, dy.shape, convAttrs);

    const xValues = backend.data.get(x.dataId)!.values as Float32Array;
    const dyValues = backend.data.get(dy.dataId)!.values as Float32Array;
    const dw = conv2dFilterGradLoops(xValues, dyValues, info);
    return backend.makeTensorInfo([...filterShape], 'float32', dw);
  }) as unknown as KernelFunc,
};

/**
 * Computes dx[n,i,j,ci] = Σ_{kh,kw} Σ_co dy[n,oy,ox,co] · w[kh,kw,ci,co] with oy = (i+top−kh)/sh and
 * ox = (j+left−kw)/sw, over the (kh,kw) for which both are integers inside dy.
 *
 * Runs as a stride-1 correlation of dy, dilated by the strides and zero-padded by Kh−1−top above (Kw−1−left
 * left), with the filter flipped in both spatial axes and its channel axes swapped.
 */
export function conv2dInputGradLoops(
  dy: Float32Array,
  w: Float32Array,
  info: backend_util.Conv2DInfo,
): Float32Array {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, padInfo } = info;
  const top = filterHeight - 1 - padInfo.top;
  const left = filterWidth - 1 - padInfo.left;
  const paddedHeight = inHeight + filterHeight - 1;
  const paddedWidth = inWidth + filterWidth - 1;

  // [N,Ho,Wo,Co] -> [N,H+Kh−1,W+Kw−1,Co]: dy row oy lands on row top + oy·sh, the rest stays zero.
  const padded = new Float32Array(batchSize * paddedHeight * paddedWidth * outChannels);
  for (let n = 0; n < batchSize; n++) {
    for (let oy = 0; oy < outHeight; oy++) {
      const row = top + oy * strideHeight;
      if (row < 0 || row >= paddedHeight) continue;
      for (let ox = 0; ox < outWidth; ox++) {
        const col = left + ox * strideWidth;
        if (col < 0 || col >= paddedWidth) continue;
        const from = ((n * outHeight + oy) * outWidth + ox) * outChannels;
        padded.set(
          dy.subarray(from, from + outChannels),
          ((n * paddedHeight + row) * paddedWidth + col) * outChannels,
        );
      }
    }
  }

  const flipped = flipAndSwapChannels(w, filterHeight, filterWidth, inChannels, outChannels); // [Kh,Kw,Co,Ci]
  const shape = {
    batchSize,
    paddedHeight,
    paddedWidth,
    outHeight: inHeight,
    outWidth: inWidth,
    strideHeight: 1,
    strideWidth: 1,
  };
  return correlate(padded, flipped, shape, filterHeight, filterWidth, outChannels, inChannels);
}

/** Reverses w [Kh,Kw,Ci,Co] in both spatial axes and swaps its channel axes: [Kh,Kw,Co,Ci]. */
function flipAndSwapChannels(
  w: Float32Array,
  filterHeight: number,
  filterWidth: number,
  inChannels: number,
  outChannels: number,
): Float32Array {
  const out = new Float32Array(w.length);
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      const source = (kh * filterWidth + kw) * inChannels * outChannels;
      const target =
        ((filterHeight - 1 - kh) * filterWidth + (filterWidth - 1 - kw)) * inChannels * outChannels;
      for (let ci = 0; ci < inChannels; ci++) {
        for (let co = 0; co < outChannels; co++) {
          out[target + co * inChannels + ci] = w[source + ci * outChannels + co]!;
        }
      }
    }
  }
  return out;
}

/**
 * Computes dw[kh,kw,ci,co] = Σ_{n,oy,ox} x[n, oy·sh+kh−top, ox·sw+kw−left, ci] · dy[n,oy,ox,co], with x zero
 * in the padding. x is first copied into a zero-padded buffer, so the loops need no bounds checks. Then four
 * output columns ox at a time add their outer products x-row [Ci] × dy-row [Co] to the [Ci,Co] block of dw
 * at (kh,kw). An empty batch gives dw = 0.
 */
export function conv2dFilterGradLoops(
  x: Float32Array,
  dy: Float32Array,
  info: backend_util.Conv2DInfo,
): Float32Array {
  const { batchSize, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const { padded, paddedHeight, paddedWidth } = padInput(x, info);
  const sums = new Float64Array(filterHeight * filterWidth * inChannels * outChannels);
  const xStep = strideWidth * inChannels;

  for (let n = 0; n < batchSize; n++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox += 4) {
        const columns = Math.min(4, outWidth - ox);
        const dyOffset = ((n * outHeight + oy) * outWidth + ox) * outChannels;

        for (let kh = 0; kh < filterHeight; kh++) {
          for (let kw = 0; kw < filterWidth; kw++) {
            const xOffset =
              ((n * paddedHeight + oy * strideHeight + kh) * paddedWidth + ox * strideWidth + kw) *
              inChannels;
            const block = (kh * filterWidth + kw) * inChannels * outChannels;
            if (columns === 4) {
              addFourOuterProducts(
                sums,
                block,
                padded,
                xOffset,
                xStep,
                dy,
                dyOffset,
                inChannels,
                outChannels,
              );
            } else {
              for (let q = 0; q < columns; q++) {
                addOuterProduct(
                  sums,
                  block,
                  padded,
                  xOffset + q * xStep,
                  dy,
                  dyOffset + q * outChannels,
                  inChannels,
                  outChannels,
                );
              }
            }
          }
        }
      }
    }
  }
  return Float32Array.from(sums);
}

/** sums[block + ci·Co + co] += Σ_{q<4} x[xOffset + q·xStep + ci] · dy[dyOffset + q·Co + co]. */
function addFourOuterProducts(
  sums: Float64Array,
  block: number,
  x: Float32Array,
  xOffset: number,
  xStep: number,
  dy: Float32Array,
  dyOffset: number,
  inChannels: number,
  outChannels: number,
): void {
  const d1 = dyOffset + outChannels;
  const d2 = d1 + outChannels;
  const d3 = d2 + outChannels;
  const x1 = xOffset + xStep;
  const x2 = x1 + xStep;
  const x3 = x2 + xStep;

  // Two dw rows (ci, ci+1) per pass, so each dy value loaded serves two multiply-adds.
  let ci = 0;
  for (; ci + 1 < inChannels; ci += 2) {
    const a0 = x[xOffset + ci]!;
    const a1 = x[x1 + ci]!;
    const a2 = x[x2 + ci]!;
    const a3 = x[x3 + ci]!;
    const b0 = x[xOffset + ci + 1]!;
    const b1 = x[x1 + ci + 1]!;
    const b2 = x[x2 + ci + 1]!;
    const b3 = x[x3 + ci + 1]!;
    const row = block + ci * outChannels;
    const nextRow = row + outChannels;
    for (let co = 0; co < outChannels; co++) {
      const e0 = dy[dyOffset + co]!;
      const e1 = dy[d1 + co]!;
      const e2 = dy[d2 + co]!;
      const e3 = dy[d3 + co]!;
      sums[row + co]! += a0 * e0 + a1 * e1 + a2 * e2 + a3 * e3;
      sums[nextRow + co]! += b0 * e0 + b1 * e1 + b2 * e2 + b3 * e3;
    }
  }
  if (ci < inChannels) {
    const a0 = x[xOffset + ci]!;
    const a1 = x[x1 + ci]!;
    const a2 = x[x2 + ci]!;
    const a3 = x[x3 + ci]!;
    const row = block + ci * outChannels;
    for (let co = 0; co < outChannels; co++) {
      sums[row + co]! += a0 * dy[dyOffset + co]! + a1 * dy[d1 + co]! + a2 * dy[d2 + co]! + a3 * dy[d3 + co]!;
    }
  }
}

/** sums[block + ci·Co + co] += x[xOffset + ci] · dy[dyOffset + co]. */
function addOuterProduct(
  sums: Float64Array,
  block: number,
  x: Float32Array,
  xOffset: number,
  dy: Float32Array,
  dyOffset: number,
  inChannels: number,
  outChannels: number,
): void {
  for (let ci = 0; ci < inChannels; ci++) {
    const a = x[xOffset + ci]!;
    const row = block + ci * outChannels;
    for (let co = 0; co < outChannels; co++) sums[row + co]! += a * dy[dyOffset + co]!;
  }
}
