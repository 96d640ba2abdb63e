import { createHash } from 'node:crypto';
import { PRESETS } from './presets.js';

/**
 * Version of the model code's math (layer order, initializers, loss). Bump it whenever a change would make
 * two builds compute different updates, so the coordinator rejects workers of the other build.
 */
export const MODEL_CODE_VERSION = 1;

/**
 * Identifies the model definition a process runs: a SHA-256 prefix of the code version and every preset.
 * `CBN_MODEL_HASH_OVERRIDE` replaces it, which lets tests start a mismatched worker.
 */
export function modelHash(): string {
  const override = process.env.CBN_MODEL_HASH_OVERRIDE;
  if (override !== undefined && override !== '') return override;
  const text = JSON.stringify({ version: MODEL_CODE_VERSION, presets: PRESETS });
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
