import * as tf from '@tensorflow/tfjs-core';
import { Conv2DBackpropFilter, Conv2DBackpropInput } from '@tensorflow/tfjs-core';
import type { NamedAttrMap, NamedTensorMap, Tensor4D } from '@tensorflow/tfjs-core';

/** Stride of a 2-D convolution: one value for both axes, or [strideHeight, strideWidth]. */
export type ConvStrides = number | [number, number];

/**
 * Computes the gradient of `tf.conv2d(x, filter, strides, pad)` (NHWC, dilation 1) with respect to x:
 * dx[n,i,j,ci] = Σ_{kh,kw,co} dy[n,(i+top−kh)/sh,(j+left−kw)/sw,co] · filter[kh,kw,ci,co], over the integer,
 * in-range dy positions.
 *
 * Dispatches the Conv2DBackpropInput kernel of the active backend through the engine, so the project
 * kernels run on cpu and wasm and native backends use their own. An empty batch returns an empty dx.
 *
 * @param xShape Shape of the forward input, [N,H,W,Ci].
 * @param dy Gradient of the forward output, [N,Ho,Wo,Co].
 * @param filter Forward filter, [Kh,Kw,Ci,Co].
 */
export function conv2dBackpropInput(
  xShape: [number, number, number, number],
  dy: Tensor4D,
  filter: Tensor4D,
  strides: ConvStrides,
  pad: 'same' | 'valid',
): Tensor4D {
  checkPad(pad);
  const inputs: NamedTensorMap = { dy, filter };
  const attrs = { strides, pad, dataFormat: 'NHWC', inputShape: [...xShape] };
  return tf.engine().runKernel(Conv2DBackpropInput, inputs, attrs as unknown as NamedAttrMap) as Tensor4D;
}

/**
 * Computes the gradient of `tf.conv2d(x, filter, strides, pad)` (NHWC, dilation 1) with respect to the
 * filter: dw[kh,kw,ci,co] = Σ_{n,oy,ox} x[n, oy·sh+kh−top, ox·sw+kw−left, ci] · dy[n,oy,ox,co], where x is
 * zero in the padding.
 *
 * Dispatches the Conv2DBackpropFilter kernel of the active backend through the engine. An empty batch
 * (an empty data shard) returns zeros of `filterShape`, so the shard still adds a valid term to an
 * all-reduce of gradients.
 *
 * @param x Forward input, [N,H,W,Ci].
 * @param dy Gradient of the forward output, [N,Ho,Wo,Co].
 * @param filterShape Shape of the forward filter, [Kh,Kw,Ci,Co].
 */
export function conv2dBackpropFilter(
  x: Tensor4D,
  dy: Tensor4D,
  filterShape: [number, number, number, number],
  strides: ConvStrides,
  pad: 'same' | 'valid',
): Tensor4D {
  checkPad(pad);
  const inputs: NamedTensorMap = { x, dy };
  const attrs = { strides, pad, dataFormat: 'NHWC', filterShape: [...filterShape] };
  return tf.engine().runKernel(Conv2DBackpropFilter, inputs, attrs as unknown as NamedAttrMap) as Tensor4D;
}

function checkPad(pad: string): void {
  if (pad === 'same' || pad === 'valid') return;
  throw new Error(`pad must be 'same' or 'valid', got ${JSON.stringify(pad)}`);
}
