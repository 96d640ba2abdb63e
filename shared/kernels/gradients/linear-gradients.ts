import * as tf from '@tensorflow/tfjs-core';
import { backend_util, Conv2DBackpropFilter, Conv2DBackpropInput } from '@tensorflow/tfjs-core';
import type { BatchMatMulAttrs, Conv2DAttrs, GradConfig, NamedAttrMap, Tensor } from '@tensorflow/tfjs-core';
import { sumToShape } from './sum-to-shape.js';

/**
 * BatchMatMul, c = op(a)·op(b) with op the optional transpose: da = dc·op(b)ᵀ and db = op(a)ᵀ·dc, each
 * transposed back when its operand was transposed, and summed over broadcast batch axes.
 */
const batchMatMul: GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b], attrs) => {
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    const dc = dy as Tensor;
    const da = transposeA
      ? () => tf.matMul(b!, dc, transposeB, true)
      : () => tf.matMul(dc, b!, false, !transposeB);
    const db = transposeB
      ? () => tf.matMul(dc, a!, true, transposeA)
      : () => tf.matMul(a!, dc, !transposeA, false);
    return { a: () => sumToShape(da(), a!.shape), b: () => sumToShape(db(), b!.shape) };
  },
};

/**
 * Conv2D: dx and dfilter come from the Conv2DBackpropInput and Conv2DBackpropFilter kernels of the active
 * backend. Dilated convolutions have no backprop kernels in tfjs, so their gradient is rejected.
 */
const conv2d: GradConfig = {
  kernelName: 'Conv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, [x, filter], attrs) => {
    const { dilations, strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as Conv2DAttrs;
    if (!backend_util.tupleValuesAreOne(dilations)) {
      throw new Error(`gradient of Conv2D: dilations must be 1, got ${JSON.stringify(dilations)}`);
    }

    const common = { strides, pad, dataFormat, dimRoundingMode };
    const inputAttrs = { ...common, inputShape: x!.shape } as unknown as NamedAttrMap;
    const filterAttrs = { ...common, filterShape: filter!.shape } as unknown as NamedAttrMap;
    return {
      x: () =>
        tf
          .engine()
          .runKernel(Conv2DBackpropInput, { dy: dy as Tensor, filter: filter! }, inputAttrs) as Tensor,
      filter: () =>
        tf.engine().runKernel(Conv2DBackpropFilter, { x: x!, dy: dy as Tensor }, filterAttrs) as Tensor,
    };
  },
};

export const LINEAR_GRADIENTS: readonly GradConfig[] = [batchMatMul, conv2d];
