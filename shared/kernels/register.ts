/**
 * Registers the project's training kernels on a tfjs backend.
 * TODO: implement the fast convolution gradients (in progress).
 */
export function registerProjectKernels(_backend: 'cpu' | 'wasm'): void {}
