import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { cpuFilterGradKernel, cpuInputGradKernel } from './conv-backprop-cpu.js';
import { cpuConv2DKernel } from './conv2d-cpu.js';
import { CPU_BINARY_KERNEL_NAMES, createCpuBinaryKernel } from './cpu-binary.js';
import { cpuMeanKernel, cpuSumKernel } from './cpu-reduce.js';
import { keepStockKernel } from './stock-kernels.js';
import { createFilterGradKernel, createInputGradKernel } from './conv-backprop-via-conv2d.js';
import { wasmIdentityKernel } from './identity-wasm.js';
import { registerMissingGradients } from './gradients/register-gradients.js';

const PROJECT_KERNELS: Record<'cpu' | 'wasm', readonly KernelConfig[]> = {
  cpu: [
    cpuConv2DKernel,
    cpuInputGradKernel,
    cpuFilterGradKernel,
    ...CPU_BINARY_KERNEL_NAMES.map(createCpuBinaryKernel),
    cpuSumKernel,
    cpuMeanKernel,
  ],
  wasm: [createInputGradKernel('wasm'), createFilterGradKernel('wasm'), wasmIdentityKernel],
};

/**
 * Registers the project's training kernels on a tfjs backend, replacing the stock Conv2DBackpropInput and
 * Conv2DBackpropFilter (wasm has no stock Conv2DBackpropFilter). On cpu it also replaces Conv2D, the
 * broadcasting Add, Sub, Multiply, RealDiv and SquaredDifference, and Sum and Mean. On wasm it replaces
 * Identity with one that shares data instead of copying it. It also registers the
 * gradient functions that `@tensorflow/tfjs-core` alone does not provide (see `registerMissingGradients`).
 * Calling it again changes nothing.
 *
 * It may run before or after the backend initializes, because the project kernels need no setup of their
 * own.
 */
export function registerProjectKernels(backend: 'cpu' | 'wasm'): void {
  const kernels = PROJECT_KERNELS[backend];
  if (kernels === undefined) {
    throw new Error(
      `registerProjectKernels: backend must be 'cpu' or 'wasm', got ${JSON.stringify(backend)}`,
    );
  }

  for (const config of kernels) replaceKernel(config);
  registerMissingGradients();
}

function replaceKernel(config: KernelConfig): void {
  const current = getKernel(config.kernelName, config.backendName);
  if (current === config) return;

  if (current !== undefined) keepStockKernel(current);

  // Unregister first: registerKernel warns when it overwrites an entry.
  if (current !== undefined) unregisterKernel(config.kernelName, config.backendName);
  registerKernel(config);
}
