import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from './logger.js';
import { UsageError } from './errors.js';
import { registerProjectKernels } from '../kernels/register.js';

/** Backends the project can run on, in the order `auto` tries them. */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendChoice = BackendName | 'auto';

/** The backend `selectBackend` chose and the reason, for logs and worker registration. */
export interface BackendSelection {
  name: BackendName;
  /** The tfjs backend name as `tf.getBackend()` returns it (`tensorflow` for both native builds). */
  tfBackend: string;
  reason: string;
}

const INSTALL_HINTS: Record<BackendName, string> = {
  'tensorflow-gpu':
    'install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` on a machine with CUDA 11.2 and cuDNN 8.1 ' +
    '(set TFJS_NODE_CDN_STORAGE if the libtensorflow download is blocked), or choose --backend wasm',
  tensorflow:
    'install it with `npm install @tensorflow/tfjs-node@4.22.0` (it downloads libtensorflow 2.9.1), ' +
    'or choose --backend wasm',
  wasm: 'reinstall the project dependencies with `npm ci`',
  cpu: 'reinstall the project dependencies with `npm ci`',
};

/**
 * Loads one backend and makes it current. Native backends are optional peer dependencies, so they are
 * imported dynamically and a missing package raises a UsageError that explains how to install it.
 */
async function loadBackend(name: BackendName): Promise<string> {
  switch (name) {
    case 'tensorflow-gpu':
      await importOptional('@tensorflow/tfjs-node-gpu', name);
      return activate('tensorflow');
    case 'tensorflow':
      await importOptional('@tensorflow/tfjs-node', name);
      return activate('tensorflow');
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      registerProjectKernels('wasm');
      return activate('wasm');
    case 'cpu':
      // PROD silences the cpu backend's banner recommending tfjs-node; selectBackend logs its own reasons.
      tf.env().set('PROD', true);
      await import('@tensorflow/tfjs-backend-cpu');
      registerProjectKernels('cpu');
      return activate('cpu');
  }
}

async function importOptional(specifier: string, name: BackendName): Promise<void> {
  try {
    await import(specifier);
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(
      `backend ${name} is not available (${specifier}: ${detail}); ${INSTALL_HINTS[name]}`,
    );
  }
}

async function activate(tfBackend: string): Promise<string> {
  const ok = await tf.setBackend(tfBackend);
  if (!ok) throw new Error(`backend ${tfBackend} failed to initialize`);
  await tf.ready();
  return tfBackend;
}

/**
 * Selects the compute backend. `auto` tries tensorflow-gpu, then tensorflow, then wasm, then cpu, and
 * logs what it chose and why every earlier candidate was skipped. An explicit choice that cannot load
 * raises a UsageError with installation advice.
 */
export async function selectBackend(choice: BackendChoice, log?: Logger): Promise<BackendSelection> {
  if (choice !== 'auto') {
    const tfBackend = await loadBackend(choice);
    const selection = { name: choice, tfBackend, reason: 'requested with --backend' };
    log?.info(selection, 'backend selected');
    return selection;
  }

  const skipped: string[] = [];
  for (const name of BACKEND_NAMES) {
    try {
      const tfBackend = await loadBackend(name);
      const reason = skipped.length === 0 ? 'first candidate of auto' : `auto; skipped ${skipped.join('; ')}`;
      const selection = { name, tfBackend, reason };
      log?.info(selection, 'backend selected');
      return selection;
    } catch (error) {
      skipped.push(`${name}: ${error instanceof Error ? error.message.split(';')[0] : String(error)}`);
    }
  }
  throw new Error(`no backend could be loaded: ${skipped.join('; ')}`);
}

/** Parses a `--backend` value, naming the accepted ones when it is unknown. */
export function parseBackendChoice(value: string): BackendChoice {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new UsageError(
    `--backend must be one of auto, ${BACKEND_NAMES.join(', ')}; got ${JSON.stringify(value)}`,
  );
}
