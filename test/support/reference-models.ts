import * as tf from '@tensorflow/tfjs-core';
import type { ParamStore } from '../../shared/model/params.js';
import type { ModelPreset } from '../../shared/model/presets.js';

// Plain functional versions of the generator and discriminator, written with stock tf ops so that
// tf.grads/tf.variableGrads can differentiate them as a whole. They read the same variables as the
// module implementations and serve as the autodiff reference for the hand-written, pausable backward.

const ALPHA = 0.2;

function p(store: ParamStore, name: string): tf.Tensor {
  return store.get(name);
}

function conv(store: ParamStore, name: string, x: tf.Tensor4D): tf.Tensor4D {
  const y = tf.conv2d(x, p(store, `${name}/kernel`) as tf.Tensor4D, 1, 'same');
  return store.names().includes(`${name}/bias`) ? tf.add(y, p(store, `${name}/bias`)) : y;
}

/** Batch-statistics CBN over the whole batch, biased variance. */
export function referenceCbn(
  store: ParamStore,
  name: string,
  x: tf.Tensor4D,
  oneHot: tf.Tensor2D,
  epsilon = 1e-3,
): tf.Tensor4D {
  const [n, , , c] = x.shape;
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  const xHat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon)));
  const gamma = tf.reshape(tf.matMul(oneHot, p(store, `${name}/gamma`) as tf.Tensor2D), [n, 1, 1, c]);
  const beta = tf.reshape(tf.matMul(oneHot, p(store, `${name}/beta`) as tf.Tensor2D), [n, 1, 1, c]);
  return tf.add(tf.mul(gamma, xHat), beta);
}

// Upsampling by gathering rows and columns floor(i/2), and stock average pooling: independent of the
// reshape-based versions the modules use. tf.image.resizeNearestNeighbor is not used because its cpu
// gradient in tfjs 4.22.0 disagrees with the window sum (checked against this gather form).
function up(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  const rows = tf.tensor1d(
    Array.from({ length: 2 * h }, (_, i) => Math.floor(i / 2)),
    'int32',
  );
  const cols = tf.tensor1d(
    Array.from({ length: 2 * w }, (_, i) => Math.floor(i / 2)),
    'int32',
  );
  return tf.gather(tf.gather(x, rows, 1), cols, 2); // [N,H,W,C] -> [N,2H,W,C] -> [N,2H,2W,C]
}

function down(x: tf.Tensor4D): tf.Tensor4D {
  return tf.avgPool(x, 2, 2, 'valid');
}

export function referenceGenBlock(
  store: ParamStore,
  name: string,
  x: tf.Tensor4D,
  oneHot: tf.Tensor2D,
  learnedSkip: boolean,
  upsample: boolean,
): tf.Tensor4D {
  const input = upsample ? up(x) : x;
  const a1 = tf.leakyRelu(
    referenceCbn(store, `${name}/bn1`, conv(store, `${name}/conv1`, input), oneHot),
    ALPHA,
  );
  const a2 = tf.leakyRelu(
    referenceCbn(store, `${name}/bn2`, conv(store, `${name}/conv2`, a1), oneHot),
    ALPHA,
  );
  const skip = learnedSkip
    ? tf.leakyRelu(
        referenceCbn(store, `${name}/skip_bn`, conv(store, `${name}/skip_conv`, input), oneHot),
        ALPHA,
      )
    : input;
  return tf.add(a2, skip);
}

export function referenceGenerator(
  store: ParamStore,
  preset: ModelPreset,
  z: tf.Tensor2D,
  oneHot: tf.Tensor2D,
): tf.Tensor4D {
  const n = z.shape[0];
  const flat = tf.add(
    tf.matMul(tf.concat([z, oneHot], 1), p(store, 'G/dense/kernel') as tf.Tensor2D),
    p(store, 'G/dense/bias'),
  );
  let h = tf.reshape(flat, [n, 4, 4, preset.genBaseChannels]) as tf.Tensor4D;
  let inChannels = preset.genBaseChannels;
  preset.genBlockChannels.forEach((outChannels, i) => {
    h = referenceGenBlock(store, `G/block${i}`, h, oneHot, inChannels !== outChannels, true);
    inChannels = outChannels;
  });
  return tf.tanh(conv(store, 'G/out_conv', h));
}

export function referenceDiscriminator(
  store: ParamStore,
  preset: ModelPreset,
  x: tf.Tensor4D,
  oneHot: tf.Tensor2D,
): tf.Tensor1D {
  let h = x;
  let inChannels = preset.imageChannels;
  preset.discBlockChannels.forEach((outChannels, i) => {
    const name = `D/block${i}`;
    const a1 = tf.leakyRelu(conv(store, `${name}/conv1`, h), ALPHA);
    const a2 = tf.leakyRelu(conv(store, `${name}/conv2`, a1), ALPHA);
    const skip = inChannels !== outChannels ? conv(store, `${name}/skip_conv`, h) : h;
    const sum = tf.add(a2, skip) as tf.Tensor4D;
    h = i < 3 ? down(sum) : sum;
    inChannels = outChannels;
  });
  const features = tf.sum(h, [1, 2]) as tf.Tensor2D;
  const linear = tf.add(
    tf.matMul(features, p(store, 'D/head/kernel') as tf.Tensor2D),
    p(store, 'D/head/bias'),
  );
  const projection = tf.sum(tf.mul(features, tf.matMul(oneHot, p(store, 'D/embedding') as tf.Tensor2D)), 1);
  return tf.add(tf.reshape(linear, [-1]), projection);
}
