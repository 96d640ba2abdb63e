import { backend_util, Conv2D } from '@tensorflow/tfjs-core';
import type { Conv2DAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { checkFloat32 } from './backend-kernels.js';
import { correlate, padInput } from './cpu-correlate.js';
import { runStockKernel } from './stock-kernels.js';

type CpuArgs = { inputs: Record<string, TensorInfo>; backend: MathBackendCPU; attrs: object };

/**
 * Conv2D for the cpu backend: y[n,oy,ox,co] = Σ_{kh,kw,ci} x[n, oy·sh+kh−top, ox·sw+kw−left, ci] · w[kh,kw,ci,co],
 * with x zero in the padding, as a float64-summing correlation of a zero-padded copy of x. Dilated or NCHW
 * convolutions run the stock kernel.
 */
export const cpuConv2DKernel: KernelConfig = {
  kernelName: Conv2D,
  backendName: 'cpu',
  kernelFunc: ((args: CpuArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
    const { strides, pad, dilations, dataFormat, dimRoundingMode } = attrs as Conv2DAttrs;
    const isPlain = backend_util.tupleValuesAreOne(dilations) && dataFormat !== 'NCHW';
    if (!isPlain) return runStockKernel(Conv2D, 'cpu', args, 'a dilated or NCHW convolution');
    checkFloat32(Conv2D, { x, filter });

    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const xValues = backend.data.get(x.dataId)!.values as Float32Array;
    const filterValues = backend.data.get(filter.dataId)!.values as Float32Array;
    const { padded, paddedHeight, paddedWidth } = padInput(xValues, info); // [N,Hp,Wp,Ci]
    const shape = { ...info, paddedHeight, paddedWidth };
    const y = correlate(
      padded,
      filterValues,
      shape,
      info.filterHeight,
      info.filterWidth,
      info.inChannels,
      info.outChannels,
    );
    return backend.makeTensorInfo(info.outShape, 'float32', y);
  }) as unknown as KernelFunc,
};
