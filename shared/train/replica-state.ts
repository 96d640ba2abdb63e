import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../rpc/types.js';

/**
 * The state of one replica as named variables: parameters, BN moving statistics and optimizer slots.
 * Checkpoints, resume, the rank-0 broadcast and the divergence check all go through this list, so they
 * cover the same values.
 */
export type StateEntries = [string, tf.Variable][];

/** Copies every variable out to host memory. */
export function exportState(entries: StateEntries): NamedTensor[] {
  return entries.map(([name, variable]) => ({
    name,
    shape: [...variable.shape],
    values: Float32Array.from(variable.dataSync() as Float32Array),
  }));
}

/**
 * Assigns named tensors to the variables of the same names. Every variable must be present with its exact
 * shape, so a checkpoint of another preset is rejected instead of half-loaded.
 */
export function importState(entries: StateEntries, tensors: readonly NamedTensor[]): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const [name, variable] of entries) {
    const tensor = byName.get(name);
    if (tensor === undefined)
      throw new Error(`state has no tensor ${name}; it was saved from another model or preset`);
    const same =
      tensor.shape.length === variable.shape.length && tensor.shape.every((d, i) => d === variable.shape[i]);
    if (!same) {
      throw new Error(
        `state tensor ${name} has shape [${tensor.shape}], expected [${variable.shape}] for this preset`,
      );
    }
  }
  for (const [name, variable] of entries) {
    const tensor = byName.get(name)!;
    tf.tidy(() => variable.assign(tf.tensor(Float32Array.from(tensor.values), variable.shape, 'float32')));
  }
}

/**
 * FNV-1a (32-bit) over the bytes of every variable in order. Replicas that applied the same updates hold
 * bit-identical values, so any difference means they diverged.
 */
export function stateChecksum(entries: StateEntries): number {
  let hash = 0x811c9dc5;
  for (const [, variable] of entries) {
    const values = variable.dataSync() as Float32Array;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let i = 0; i < bytes.length; i++) {
      hash ^= bytes[i]!;
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
  }
  return hash >>> 0;
}
