import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from '../runtime/errors.js';

/** MNIST digits are 28x28; the models take 32x32, so each side gets 2 pixels of background. */
export const MNIST_SIZE = 28;
export const MODEL_IMAGE_SIZE = 32;
const MNIST_PADDING = (MODEL_IMAGE_SIZE - MNIST_SIZE) / 2; // 2

/**
 * Converts uint8 MNIST images to the model's float input: x / 127.5 - 1 maps 0 (background) to -1 and 255
 * to 1, and a border of 2 background pixels makes each 28x28 image 32x32.
 * `images` contains `count` images of 28x28, so its length must be count * 784.
 */
export function mnistToModelInput(images: Uint8Array, count: number): Float32Array {
  const pixelsPerImage = MNIST_SIZE * MNIST_SIZE;
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new UsageError(`count must be a non-negative integer, got ${count}`);
  }
  if (images.length !== count * pixelsPerImage) {
    throw new UsageError(
      `images must contain ${count} x 28 x 28 = ${count * pixelsPerImage} bytes, got ${images.length}`,
    );
  }

  const size = MODEL_IMAGE_SIZE;
  const output = new Float32Array(count * size * size).fill(-1); // [N,32,32,1]
  for (let n = 0; n < count; n++) {
    for (let row = 0; row < MNIST_SIZE; row++) {
      const source = n * pixelsPerImage + row * MNIST_SIZE;
      const target = n * size * size + (row + MNIST_PADDING) * size + MNIST_PADDING;
      for (let col = 0; col < MNIST_SIZE; col++) {
        output[target + col] = images[source + col]! / 127.5 - 1;
      }
    }
  }
  return output;
}

/**
 * Converts uint8 MNIST images to a float32 tensor of shape [count,32,32,1] in [-1, 1]; see
 * `mnistToModelInput`. The caller owns the tensor and must dispose it.
 */
export function mnistToTensor(images: Uint8Array, count: number): tf.Tensor4D {
  // The pixel loop stays outside tf: a TypedArray costs nothing to track, and tf.tidy walks returned arrays.
  const pixels = mnistToModelInput(images, count);
  return tf.tensor4d(pixels, [count, MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE, 1], 'float32');
}

/**
 * Gathers samples by dataset index: `images` is [N, ...] with `bytesPerImage` bytes per sample, and the
 * result holds the rows of `indices` in order. The coordinator uses it to cut a shard out of the dataset.
 */
export function gatherSamples(
  images: Uint8Array,
  labels: Uint8Array,
  bytesPerImage: number,
  indices: ArrayLike<number>,
): { images: Uint8Array; labels: Uint8Array } {
  const gatheredImages = new Uint8Array(indices.length * bytesPerImage); // [N,...] -> [indices.length,...]
  const gatheredLabels = new Uint8Array(indices.length); // [N] -> [indices.length]

  for (let i = 0; i < indices.length; i++) {
    const index = indices[i]!;
    if (!Number.isInteger(index) || index < 0 || index >= labels.length) {
      throw new UsageError(`sample index ${index} is out of range [0, ${labels.length - 1}]`);
    }
    gatheredImages.set(
      images.subarray(index * bytesPerImage, (index + 1) * bytesPerImage),
      i * bytesPerImage,
    );
    gatheredLabels[i] = labels[index]!;
  }
  return { images: gatheredImages, labels: gatheredLabels };
}
