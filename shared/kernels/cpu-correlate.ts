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
 * correlation of an already padded NHWC input. Four input channels are folded into each pass over the
 * output channels, which cuts the loads and stores of the float64 accumulator row by four.
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
  const acc = new Float64Array(channelsOut);
  const foldedChannels = channelsIn - (channelsIn % 4);

  for (let n = 0; n < batchSize; n++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++) {
        acc.fill(0);
        for (let kh = 0; kh < filterHeight; kh++) {
          for (let kw = 0; kw < filterWidth; kw++) {
            const inOffset =
              ((n * paddedHeight + i * strideHeight + kh) * paddedWidth + j * strideWidth + kw) * channelsIn;
            const filterOffset = (kh * filterWidth + kw) * channelsIn * channelsOut;

            let c1 = 0;
            for (; c1 < foldedChannels; c1 += 4) {
              const a0 = input[inOffset + c1]!;
              const a1 = input[inOffset + c1 + 1]!;
              const a2 = input[inOffset + c1 + 2]!;
              const a3 = input[inOffset + c1 + 3]!;
              const r0 = filterOffset + c1 * channelsOut;
              const r1 = r0 + channelsOut;
              const r2 = r1 + channelsOut;
              const r3 = r2 + channelsOut;
              for (let c2 = 0; c2 < channelsOut; c2++) {
                acc[c2]! +=
                  a0 * filter[r0 + c2]! +
                  a1 * filter[r1 + c2]! +
                  a2 * filter[r2 + c2]! +
                  a3 * filter[r3 + c2]!;
              }
            }
            for (; c1 < channelsIn; c1++) {
              const a = input[inOffset + c1]!;
              const r = filterOffset + c1 * channelsOut;
              for (let c2 = 0; c2 < channelsOut; c2++) acc[c2]! += a * filter[r + c2]!;
            }
          }
        }
        out.set(acc, ((n * outHeight + i) * outWidth + j) * channelsOut);
      }
    }
  }
  return out;
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
