import * as tf from '@tensorflow/tfjs-core';

// TODO: replace with the project kernels' exported functions once they land.
export function conv2dBackpropInput(
  xShape: [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  pad: 'same' | 'valid',
): tf.Tensor4D {
  return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
    strides: [1, 1], pad, dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape: xShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export function conv2dBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  pad: 'same' | 'valid',
): tf.Tensor4D {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides: [1, 1], pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
