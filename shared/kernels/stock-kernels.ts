import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Stock kernels that a project kernel replaced, keyed by `backend/kernel`. Project kernels fall back to
 * them for inputs they do not cover (dilated or NCHW convolutions, non-float32 dtypes).
 */
const stockKernels = new Map<string, KernelFunc>();

function key(kernelName: string, backendName: string): string {
  return `${backendName}/${kernelName}`;
}

/** Keeps a stock kernel before `registerProjectKernels` unregisters it. Keeps the first one only. */
export function keepStockKernel(config: KernelConfig): void {
  const name = key(config.kernelName, config.backendName);
  if (!stockKernels.has(name)) stockKernels.set(name, config.kernelFunc);
}

/** Runs the stock kernel kept for `kernelName` on `backendName`, for inputs the project kernel does not cover. */
export function runStockKernel(
  kernelName: string,
  backendName: string,
  args: { inputs: object; backend: object; attrs?: object },
  reason: string,
): TensorInfo {
  const kernelFunc = stockKernels.get(key(kernelName, backendName));
  if (kernelFunc === undefined) {
    throw new Error(
      `${kernelName} on ${backendName}: ${reason} needs the stock kernel, but none was kept. ` +
        'Register the project kernels with registerProjectKernels.',
    );
  }
  return kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
}
