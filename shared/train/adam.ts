import * as tf from '@tensorflow/tfjs-core';
import type { GradMap, ParamStore } from '../model/params.js';

/** Adam hyperparameters. */
export interface AdamOptions {
  learningRate: number;
  beta1: number;
  beta2: number;
  /** Added to √v̂ (default 1e-8, as in PyTorch and the Adam paper). */
  epsilon?: number;
}

/**
 * Adam over a ParamStore, with its slots named after the parameters (`<name>/adam_m`, `<name>/adam_v`) so
 * they go into checkpoints beside them. Every replica applies the same reduced gradients in the same
 * order, so replicas stay bit-identical.
 *
 *   m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²,
 *   p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε)
 */
export class Adam {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  /** Number of updates applied so far, a scalar variable so that it is saved and restored with the slots. */
  private readonly stepCount: tf.Variable;
  private readonly epsilon: number;

  /** `slotPrefix` names the step counter (`<prefix>/adam_step`), e.g. `G` or `D`. */
  constructor(
    private readonly store: ParamStore,
    private readonly options: AdamOptions,
    private readonly slotPrefix: string,
  ) {
    this.epsilon = options.epsilon ?? 1e-8;
    this.stepCount = tf.variable(tf.scalar(0), false);
    for (const [name, variable] of store.entries()) {
      this.m.set(name, tf.variable(tf.zerosLike(variable), false));
      this.v.set(name, tf.variable(tf.zerosLike(variable), false));
    }
  }

  /** Applies one update with `grads` (one tensor per parameter, as unflattened from the reduced buffer). */
  apply(grads: GradMap): void {
    const t = (this.stepCount.dataSync()[0] ?? 0) + 1;
    tf.tidy(() => this.stepCount.assign(tf.scalar(t)));
    const { learningRate, beta1, beta2 } = this.options;
    const stepSize = (learningRate * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);

    for (const [name, variable] of this.store.entries()) {
      const g = grads.get(name);
      if (g === undefined) throw new Error(`Adam: no gradient for parameter ${name}`);
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const mNext = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const vNext = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        m.assign(mNext);
        v.assign(vNext);
        variable.assign(
          tf.sub(variable, tf.mul(stepSize, tf.div(mNext, tf.add(tf.sqrt(vNext), this.epsilon)))),
        );
      });
    }
  }

  /** Slot variables by checkpoint name: the step counter, then m and v of each parameter in order. */
  slots(): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [[`${this.slotPrefix}/adam_step`, this.stepCount]];
    for (const name of this.store.names()) {
      out.push([`${name}/adam_m`, this.m.get(name)!], [`${name}/adam_v`, this.v.get(name)!]);
    }
    return out;
  }

  dispose(): void {
    for (const variable of [...this.m.values(), ...this.v.values()]) variable.dispose();
    this.stepCount.dispose();
    this.m.clear();
    this.v.clear();
  }
}
