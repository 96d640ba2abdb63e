import { getKernel, util } from '@tensorflow/tfjs-core';
import type { KernelBackend, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Runs another kernel registered for `backendName` directly on TensorInfos, the way the stock tfjs kernels
 * compose each other. The engine does not see the call: the result is no tracked Tensor, it does not count
 * in `tf.memory().numTensors`, and it is not recorded on the gradient tape. The caller owns the returned data
 * and must release it with `disposeIntermediate` or return it as the kernel output.
 */
export function runBackendKernel(
  kernelName: string,
  backendName: string,
  backend: KernelBackend,
  inputs: Record<string, TensorInfo>,
  attrs: object,
): TensorInfo {
  const kernel = getKernel(kernelName, backendName);
  if (kernel === undefined) {
    throw new Error(`kernel ${kernelName} is not registered for backend ${backendName}`);
  }

  const out = kernel.kernelFunc({ inputs, backend, attrs: attrs as NamedAttrMap });
  if (Array.isArray(out)) throw new Error(`kernel ${kernelName} returned several outputs, expected one`);
  return out;
}

/**
 * Releases an intermediate result of `runBackendKernel`. Backends count references per data id, so this
 * also works for results such as Reshape that share the data of their input.
 */
export function disposeIntermediate(backend: KernelBackend, info: TensorInfo): void {
  backend.disposeData(info.dataId);
}

/** Creates a float32 tensor of zeros with the Fill kernel of the backend. */
export function zerosOnBackend(
  backendName: string,
  backend: KernelBackend,
  shape: readonly number[],
): TensorInfo {
  return runBackendKernel(
    'Fill',
    backendName,
    backend,
    {},
    { shape: [...shape], value: 0, dtype: 'float32' },
  );
}

/** Reports whether a shape has no elements, as with an empty batch shard. */
export function isEmptyShape(shape: readonly number[]): boolean {
  return util.sizeFromShape([...shape]) === 0;
}

/** Rejects inputs that are not float32, naming the kernel and the input. */
export function checkFloat32(kernelName: string, inputs: Record<string, TensorInfo>): void {
  for (const [name, info] of Object.entries(inputs)) {
    if (info.dtype !== 'float32') {
      throw new Error(`${kernelName}: ${name} must be float32, got ${info.dtype}`);
    }
  }
}
