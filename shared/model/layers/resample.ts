import * as tf from '@tensorflow/tfjs-core';
import { meanOrEmpty, sumOrZeros } from './empty-safe.js';

// Both resamplings are written with reshape, broadcast and mean, whose gradients exist on every backend
// (wasm registers no ResizeNearestNeighborGrad or AvgPoolGrad kernel).

/**
 * Nearest-neighbour 2× upsampling: [N,H,W,C] -> [N,2H,2W,C]. Written as two concats, because broadcastTo
 * runs through the Tile kernel, which on wasm took 229 ms against 9 ms for the concats on [32,16,16,32].
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const columns = tf.reshape(tf.concat([x, x], 3), [n, h, 2 * w, c]); // [N,H,W,2C] -> [N,H,2W,C]
    return tf.reshape(tf.concat([columns, columns], 2), [n, 2 * h, 2 * w, c]); // [N,H,4W,C] -> [N,2H,2W,C]
  });
}

/** Gradient of `upsample2x`: the sum of each 2×2 window, [N,2H,2W,C] -> [N,H,W,C]. */
export function upsample2xBackward(dy: tf.Tensor4D): tf.Tensor4D {
  const [n, h2, w2, c] = dy.shape;
  return tf.tidy(() => sumOrZeros(tf.reshape(dy, [n, h2 / 2, 2, w2 / 2, 2, c]), [2, 4]) as tf.Tensor4D); // [N,H,2,W,2,C] -> [N,H,W,C]
}

/** 2×2 average pooling with stride 2: [N,H,W,C] -> [N,H/2,W/2,C]. H and W must be even. */
export function avgPool2x(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (h % 2 !== 0 || w % 2 !== 0) throw new Error(`avgPool2x needs even height and width, got ${h}×${w}`);
  return tf.tidy(() => meanOrEmpty(tf.reshape(x, [n, h / 2, 2, w / 2, 2, c]), [2, 4]) as tf.Tensor4D); // -> [N,H/2,W/2,C]
}

/** Gradient of `avgPool2x`: each input of a window gets a quarter of its output's gradient. */
export function avgPool2xBackward(dy: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.mul(upsample2x(dy), 0.25));
}
