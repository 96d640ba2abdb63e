import * as tf from '@tensorflow/tfjs-core';

/** Gradients by logical parameter name (`G/block0/conv1/kernel`). The owner disposes the tensors. */
export type GradMap = Map<string, tf.Tensor>;

/**
 * The parameters of one model, in creation order. Logical names (`G/block0/conv1/kernel`) are what
 * checkpoints, the fused gradient buffer and error messages use. The tf.Variable behind each one is
 * registered under `scope + name`, so several replicas can live in one process (tests run N of them).
 */
export class ParamStore {
  private readonly params = new Map<string, tf.Variable>();
  /** Non-trainable state saved with the parameters (BN moving statistics). */
  private readonly buffers = new Map<string, tf.Variable>();

  constructor(
    private readonly scope: string,
    private readonly seed: number,
  ) {}

  /** Creates a trainable parameter with values from `init` (called once, inside a tidy). */
  create(name: string, init: () => tf.Tensor): tf.Variable {
    if (this.params.has(name)) throw new Error(`parameter ${name} is defined twice`);
    const initial = tf.tidy(init);
    const variable = tf.variable(initial, true, `${this.scope}${name}`);
    initial.dispose();
    this.params.set(name, variable);
    return variable;
  }

  /** Creates a non-trainable state variable (not part of gradients, part of checkpoints and checksums). */
  createBuffer(name: string, init: () => tf.Tensor): tf.Variable {
    if (this.buffers.has(name)) throw new Error(`buffer ${name} is defined twice`);
    const initial = tf.tidy(init);
    const variable = tf.variable(initial, false, `${this.scope}${name}`);
    initial.dispose();
    this.buffers.set(name, variable);
    return variable;
  }

  /** Non-trainable state variables in creation order. */
  bufferEntries(): [string, tf.Variable][] {
    return [...this.buffers.entries()];
  }

  /** Glorot-uniform initialization seeded from the store seed and the parameter's index. */
  glorotUniform(name: string, shape: number[], fanIn: number, fanOut: number): tf.Variable {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const seed = this.seed * 1_000_003 + this.params.size;
    return this.create(name, () => tf.randomUniform(shape, -limit, limit, 'float32', seed));
  }

  get(name: string): tf.Variable {
    const variable = this.params.get(name);
    if (variable === undefined) throw new Error(`unknown parameter ${name}`);
    return variable;
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  entries(): [string, tf.Variable][] {
    return [...this.params.entries()];
  }

  /** Total number of float32 values. */
  size(): number {
    let total = 0;
    for (const variable of this.params.values()) total += variable.size;
    return total;
  }

  dispose(): void {
    for (const variable of this.params.values()) variable.dispose();
    for (const variable of this.buffers.values()) variable.dispose();
    this.params.clear();
    this.buffers.clear();
  }
}

/**
 * Flattens gradients into one buffer in the store's parameter order: the fused buffer that one
 * all-reduce sums. A parameter without a gradient contributes zeros, so every replica sends the same layout.
 */
export function flattenGrads(store: ParamStore, grads: GradMap): Float32Array {
  const flat = new Float32Array(store.size());
  let offset = 0;
  for (const [name, variable] of store.entries()) {
    const grad = grads.get(name);
    if (grad !== undefined) flat.set(grad.dataSync() as Float32Array, offset);
    offset += variable.size;
  }
  return flat;
}

/** Splits a fused buffer back into per-parameter tensors of the parameters' shapes. */
export function unflattenGrads(store: ParamStore, flat: Float32Array): GradMap {
  const grads: GradMap = new Map();
  let offset = 0;
  for (const [name, variable] of store.entries()) {
    grads.set(name, tf.tensor(flat.subarray(offset, offset + variable.size), variable.shape, 'float32'));
    offset += variable.size;
  }
  return grads;
}

/** Returns the name of the parameter holding element `index` of a fused buffer. */
export function paramAtFlatIndex(store: ParamStore, index: number): string {
  let offset = 0;
  for (const [name, variable] of store.entries()) {
    if (index < offset + variable.size) return name;
    offset += variable.size;
  }
  throw new Error(`flat index ${index} is past the ${offset} parameter values`);
}

/** Adds `grad` to the entry `name`, taking ownership of `grad`. */
export function accumulateGrad(grads: GradMap, name: string, grad: tf.Tensor): void {
  const previous = grads.get(name);
  if (previous === undefined) {
    grads.set(name, grad);
    return;
  }
  grads.set(name, tf.add(previous, grad));
  previous.dispose();
  grad.dispose();
}

export function disposeGrads(grads: GradMap): void {
  for (const grad of grads.values()) grad.dispose();
  grads.clear();
}
