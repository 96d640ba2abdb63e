import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { useBackend } from './support/backend.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalCollective } from '../shared/collective/collective.js';
import { Discriminator } from '../shared/model/discriminator.js';
import { GenResBlock } from '../shared/model/gen-resblock.js';
import { Generator } from '../shared/model/generator.js';
import { ParamStore, disposeGrads, type GradMap } from '../shared/model/params.js';
import type { PassContext } from '../shared/model/pass-context.js';
import type { ModelPreset } from '../shared/model/presets.js';
import { referenceDiscriminator, referenceGenBlock, referenceGenerator } from './support/reference-models.js';
import { maxRelativeError, oneHotOf, testValues } from './support/tensors.js';

// The hand-written, pausable backward must equal tf autodiff of the whole function. With one process the
// reduction is the identity, so sync BN reduces to plain batch statistics, which the reference computes.

const SMALL: ModelPreset = {
  name: 'test',
  numClasses: 3,
  zDim: 5,
  genBaseChannels: 6,
  genBlockChannels: [6, 4, 3],
  discBlockChannels: [3, 5, 6, 6],
  imageSize: 32,
  imageChannels: 1,
};
const TOLERANCE = 1e-5;

function context(oneHot: tf.Tensor2D): PassContext {
  return {
    bn: 'sync',
    collective: new LocalCollective(),
    opPrefix: 'test',
    oneHot,
    updateMovingStats: false,
    paramGrads: true,
  };
}

function expectGradsMatch(
  store: ParamStore,
  grads: GradMap,
  reference: tf.NamedTensorMap,
  scope: string,
): void {
  for (const name of store.names()) {
    const actual = grads.get(name);
    const expected = reference[`${scope}${name}`];
    expect(actual, `gradient of ${name}`).toBeDefined();
    expect(expected, `reference gradient of ${name}`).toBeDefined();
    const error = maxRelativeError(actual!.dataSync(), expected!.dataSync());
    expect(error, `relative error of ${name}`).toBeLessThanOrEqual(TOLERANCE);
  }
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('pausable backward', () => {
  it('equals autodiff for a ResBlock with a learned skip on a non-square input', async () => {
    const store = new ParamStore('block:', 3);
    const block = new GenResBlock('blk', store, 3, 4, 6, false);
    const x = tf.tensor4d(testValues(3 * 5 * 6 * 4, 1), [3, 5, 6, 4]);
    const dy = tf.tensor4d(testValues(3 * 5 * 6 * 6, 2), [3, 5, 6, 6]);
    const oneHot = oneHotOf([0, 2, 2], 3);
    // Make γ and β per class different, so a wrong row selection shows.
    for (const name of store.names().filter((n) => n.endsWith('gamma') || n.endsWith('beta'))) {
      const variable = store.get(name);
      variable.assign(tf.tensor(testValues(variable.size, name.length), variable.shape));
    }

    const ctx = context(oneHot);
    const y = await block.forward(x, ctx);
    const grads: GradMap = new Map();
    const dx = await block.backward(dy, ctx, grads);

    const variables = store.entries().map(([, v]) => v);
    const reference = tf.variableGrads(
      () => tf.sum(tf.mul(referenceGenBlock(store, 'blk', x, oneHot, true, false), dy)) as tf.Scalar,
      variables,
    );
    const referenceDx = tf.grads((input: tf.Tensor) =>
      referenceGenBlock(store, 'blk', input as tf.Tensor4D, oneHot, true, false),
    )([x], dy)[0]!;

    expect(maxRelativeError(dx.dataSync(), referenceDx.dataSync())).toBeLessThanOrEqual(TOLERANCE);
    expectGradsMatch(store, grads, reference.grads, 'block:');
    tf.dispose([x, dy, oneHot, y, dx, referenceDx, reference.value, ...Object.values(reference.grads)]);
    disposeGrads(grads);
    store.dispose();
  });

  it('equals autodiff for the generator', async () => {
    const generator = new Generator(SMALL, 7, 'g:');
    const n = 4;
    const z = tf.tensor2d(testValues(n * SMALL.zDim, 3), [n, SMALL.zDim]);
    const oneHot = oneHotOf([1, 0, 2, 1], 3);
    const dImages = tf.tensor4d(testValues(n * 32 * 32, 4), [n, 32, 32, 1]);

    const ctx = context(oneHot);
    const images = await generator.forward(z, ctx);
    const grads: GradMap = new Map();
    await generator.backward(dImages, ctx, grads);

    const reference = tf.variableGrads(
      () => tf.sum(tf.mul(referenceGenerator(generator.store, SMALL, z, oneHot), dImages)) as tf.Scalar,
      generator.store.entries().map(([, v]) => v),
    );
    expectGradsMatch(generator.store, grads, reference.grads, 'g:');
    tf.dispose([z, oneHot, dImages, images, reference.value, ...Object.values(reference.grads)]);
    disposeGrads(grads);
    generator.dispose();
  });

  it('equals autodiff for the discriminator, parameters and input', () => {
    const discriminator = new Discriminator(SMALL, 7, 'd:');
    const n = 5;
    const x = tf.tensor4d(testValues(n * 32 * 32, 5), [n, 32, 32, 1]);
    const oneHot = oneHotOf([0, 1, 2, 1, 0], 3);
    const dLogits = tf.tensor1d(testValues(n, 6));

    const logits = discriminator.forward(x, oneHot, true);
    const grads: GradMap = new Map();
    const dx = discriminator.backward(dLogits, grads, true)!;

    const reference = tf.variableGrads(
      () =>
        tf.sum(tf.mul(referenceDiscriminator(discriminator.store, SMALL, x, oneHot), dLogits)) as tf.Scalar,
      discriminator.store.entries().map(([, v]) => v),
    );
    const referenceDx = tf.grads((input: tf.Tensor) =>
      referenceDiscriminator(discriminator.store, SMALL, input as tf.Tensor4D, oneHot),
    )([x], dLogits)[0]!;

    expectGradsMatch(discriminator.store, grads, reference.grads, 'd:');
    expect(maxRelativeError(dx.dataSync(), referenceDx.dataSync())).toBeLessThanOrEqual(TOLERANCE);
    tf.dispose([
      x,
      oneHot,
      dLogits,
      logits,
      dx,
      referenceDx,
      reference.value,
      ...Object.values(reference.grads),
    ]);
    disposeGrads(grads);
    discriminator.dispose();
  });
});
