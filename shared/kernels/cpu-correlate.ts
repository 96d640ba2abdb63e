import type { backend_util } from '@tensorflow/tfjs-core';

/*
 * Building blocks of the cpu convolution kernels: zero-padded NHWC copies and a correlation loop over
 * Float32Arrays that sums in float64.
 */

/** Sizes of a correlation: the padded input, the output and the stride. */
export interface CorrelationShape {
  batchSize: number;
  paddedHeight: number;
  paddedWidth: number;
  outHeight: number;
  outWidth: number;
  strideHeight: number;
  strideWidth: number;
}

/**
 * Computes out[n,i,j,c2] = Σ_{kh,kw,c1} input[n, i·sh+kh, j·sw+kw, c1] · filter[kh,kw,c1,c2], a 'valid'
 * correlation of an already padded NHWC input. Two neighbouring output pixels share each filter load, and
 * four input channels are folded into each pass over the output channels, which cuts the memory traffic
 * per multiply-add.
 */
export function correlate(
  input: Float32Array,
  filter: Float32Array,
  shape: CorrelationShape,
  filterHeight: number,
  filterWidth: number,
  channelsIn: number,
  channelsOut: number,
): Float32Array {
  const { batchSize, paddedHeight, paddedWidth, outHeight, outWidth, strideHeight, strideWidth } = shape;
  const out = new Float32Array(batchSize * outHeight * outWidth * channelsOut);
  const first = new Float64Array(channelsOut);
  const second = new Float64Array(channelsOut);
  const windowShape = { channelsIn, channelsOut, pixelStep: strideWidth * channelsIn };

  for (let n = 0; n < batchSize; n++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j += 2) {
        const isPair = j + 1 < outWidth;
        first.fill(0);
        second.fill(0);

        for (let kh = 0; kh < filterHeight; kh++) {
          for (let kw = 0; kw < filterWidth; kw++) {
            const row = n * paddedHeight + i * strideHeight + kh;
            const inOffset = (row * paddedWidth + j * strideWidth + kw) * channelsIn;
            const filterOffset = (kh * filterWidth + kw) * channelsIn * channelsOut;
            if (isPair) addWindowPair(first, second, input, inOffset, filter, filterOffset, windowShape);
            else addWindow(first, input, inOffset, filter, filterOffset, windowShape);
          }
        }

        const outOffset = ((n * outHeight + i) * outWidth + j) * channelsOut;
        out.set(first, outOffset);
        if (isPair) out.set(second, outOffset + channelsOut);
      }
    }
  }
  return out;
}

interface WindowShape {
  channelsIn: number;
  channelsOut: number;
  /** Distance in the input between the windows of two neighbouring output pixels. */
  pixelStep: number;
}

/**
 * first[c2] += Σ_c1 input[p + c1] · filter[f + c1·Co + c2] and second[c2] likewise at p + pixelStep, for
 * one filter tap (kh,kw).
 */
function addWindowPair(
  first: Float64Array,
  second: Float64Array,
  input: Float32Array,
  p: number,
  filter: Float32Array,
  f: number,
  { channelsIn, channelsOut, pixelStep }: WindowShape,
): void {
  const q = p + pixelStep;
  const foldedChannels = channelsIn - (channelsIn % 4);
  let c1 = 0;
  for (; c1 < foldedChannels; c1 += 4) {
    const a0 = input[p + c1]!;
    const a1 = input[p + c1 + 1]!;
    const a2 = input[p + c1 + 2]!;
    const a3 = input[p + c1 + 3]!;
    const b0 = input[q + c1]!;
    const b1 = input[q + c1 + 1]!;
    const b2 = input[q + c1 + 2]!;
    const b3 = input[q + c1 + 3]!;
    const r0 = f + c1 * channelsOut;
    const r1 = r0 + channelsOut;
    const r2 = r1 + channelsOut;
    const r3 = r2 + channelsOut;
    for (let c2 = 0; c2 < channelsOut; c2++) {
      const f0 = filter[r0 + c2]!;
      const f1 = filter[r1 + c2]!;
      const f2 = filter[r2 + c2]!;
      const f3 = filter[r3 + c2]!;
      first[c2]! += a0 * f0 + a1 * f1 + a2 * f2 + a3 * f3;
      second[c2]! += b0 * f0 + b1 * f1 + b2 * f2 + b3 * f3;
    }
  }
  for (; c1 < channelsIn; c1++) {
    const a = input[p + c1]!;
    const b = input[q + c1]!;
    const r = f + c1 * channelsOut;
    for (let c2 = 0; c2 < channelsOut; c2++) {
      first[c2]! += a * filter[r + c2]!;
      second[c2]! += b * filter[r + c2]!;
    }
  }
}

/** acc[c2] += Σ_c1 input[p + c1] · filter[f + c1·Co + c2], for the last pixel of an odd-width row. */
function addWindow(
  acc: Float64Array,
  input: Float32Array,
  p: number,
  filter: Float32Array,
  f: number,
  { channelsIn, channelsOut }: WindowShape,
): void {
  for (let c1 = 0; c1 < channelsIn; c1++) {
    const a = input[p + c1]!;
    const r = f + c1 * channelsOut;
    for (let c2 = 0; c2 < channelsOut; c2++) acc[c2]! += a * filter[r + c2]!;
  }
}

/**
 * Copies x [N,H,W,Ci] into a zero buffer [N,Hp,Wp,Ci] at offset (top, left), with Hp = max(H + top,
 * (Ho−1)·sh + Kh) so that x and every window the forward pass reads fit inside it.
 */
export function padInput(
  x: Float32Array,
  info: backend_util.Conv2DInfo,
): { padded: Float32Array; paddedHeight: number; paddedWidth: number } {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, padInfo } = info;
  const paddedHeight = Math.max(
    inHeight + padInfo.top,
    (outHeight - 1) * info.strideHeight + info.filterHeight,
  );
  const paddedWidth = Math.max(inWidth + padInfo.left, (outWidth - 1) * info.strideWidth + info.filterWidth);
  const padded = new Float32Array(batchSize * paddedHeight * paddedWidth * inChannels);
  const rowLength = inWidth * inChannels;

  for (let n = 0; n < batchSize; n++) {
    for (let i = 0; i < inHeight; i++) {
      const from = (n * inHeight + i) * rowLength;
      const to = ((n * paddedHeight + i + padInfo.top) * paddedWidth + padInfo.left) * inChannels;
      padded.set(x.subarray(from, from + rowLength), to);
    }
  }
  return { padded, paddedHeight, paddedWidth };
}
