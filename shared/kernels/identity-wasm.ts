import { Identity } from '@tensorflow/tfjs-core';
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { runStockKernel } from './stock-kernels.js';

type Args = { inputs: Record<string, TensorInfo>; backend: KernelBackend; attrs?: object };

/**
 * Identity for wasm that shares the input's data and raises its reference count, as the wasm Reshape
 * kernel and the cpu Identity kernel do, in place of copying it. Tensors are immutable, so sharing is safe.
 * The engine clones every tensor it saves for a gradient through this kernel, so the stock copy cost a
 * full pass over each saved activation. String tensors run the stock kernel.
 */
export const wasmIdentityKernel: KernelConfig = {
  kernelName: Identity,
  backendName: 'wasm',
  kernelFunc: ((args: Args): TensorInfo => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return runStockKernel(Identity, 'wasm', args, 'a string tensor');

    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as KernelFunc,
};
