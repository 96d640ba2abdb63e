import { selectBackend } from '../../shared/runtime/backend.js';

/** Activates a backend the way the product does, with the project kernels registered. */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  await selectBackend(name);
}
