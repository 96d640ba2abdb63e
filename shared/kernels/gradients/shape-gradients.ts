import * as tf from '@tensorflow/tfjs-core';
import { slice_util, util } from '@tensorflow/tfjs-core';
import type {
  ConcatAttrs,
  GradConfig,
  PadV2Attrs,
  SliceAttrs,
  Tensor,
  TileAttrs,
  TransposeAttrs,
} from '@tensorflow/tfjs-core';

/* Gradients of the kernels that move or copy elements without arithmetic. */

/** Reshape and ExpandDims: dy takes the input shape back. */
const reshape: GradConfig = {
  kernelName: 'Reshape',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy as Tensor, x!.shape) }),
};

const expandDims: GradConfig = {
  kernelName: 'ExpandDims',
  inputsToSave: ['input'],
  gradFunc: (dy, [input]) => ({ input: () => tf.reshape(dy as Tensor, input!.shape) }),
};

/** Identity and Cast pass dy through unchanged. */
const identity: GradConfig = {
  kernelName: 'Identity',
  gradFunc: (dy) => ({ x: () => tf.cast(dy as Tensor, 'float32') }),
};

const cast: GradConfig = {
  kernelName: 'Cast',
  gradFunc: (dy) => ({ x: () => (dy as Tensor).clone() }),
};

/**
 * Tile (which `tf.broadcastTo` also runs): output index r·s + k along an axis of input size s copies input
 * index k, so dx sums dy over the repetition index r: [r0·s0, r1·s1, ...] -> [r0, s0, r1, s1, ...] -> [s0, s1, ...].
 */
const tile: GradConfig = {
  kernelName: 'Tile',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { reps } = attrs as unknown as TileAttrs;
    const split = x!.shape.flatMap((size, axis) => [reps[axis]!, size]);
    const repetitionAxes = x!.shape.map((_, axis) => 2 * axis);
    return { x: () => tf.sum(tf.reshape(dy as Tensor, split), repetitionAxes) };
  },
};

/** Concat: dy splits back into the input sizes along the concatenation axis. */
const concat: GradConfig = {
  kernelName: 'Concat',
  saveAllInputs: true,
  gradFunc: (dy, saved, attrs) => {
    const { axis } = attrs as unknown as ConcatAttrs;
    const $axis = util.parseAxisParam(axis, saved[0]!.shape)[0]!;
    const sizes = saved.map((t) => t.shape[$axis]!);
    const parts = tf.split(dy as Tensor, sizes, $axis);
    return Object.fromEntries(parts.map((part, i) => [i, () => part]));
  },
};

/** Slice: dy is zero-padded back to the input shape around the slice window. */
const slice: GradConfig = {
  kernelName: 'Slice',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { begin, size } = attrs as unknown as SliceAttrs;
    const [start, length] = slice_util.parseSliceParams(x!, begin, size) as [number[], number[]];
    const paddings = x!.shape.map((dim, i) => [start[i]!, dim - start[i]! - length[i]!] as [number, number]);
    return { x: () => tf.pad(dy as Tensor, paddings) };
  },
};

/** Transpose: dy is transposed by the inverse permutation. */
const transpose: GradConfig = {
  kernelName: 'Transpose',
  gradFunc: (dy, _saved, attrs) => {
    const { perm } = attrs as unknown as TransposeAttrs;
    const inverse = new Array<number>(perm.length);
    perm.forEach((source, target) => (inverse[source] = target));
    return { x: () => tf.transpose(dy as Tensor, inverse) };
  },
};

/** PadV2: dx is the window of dy without the padding. */
const padV2: GradConfig = {
  kernelName: 'PadV2',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { paddings } = attrs as unknown as PadV2Attrs;
    const begin = paddings.map((p) => p[0]);
    return { x: () => tf.slice(dy as Tensor, begin, x!.shape) };
  },
};

export const SHAPE_GRADIENTS: readonly GradConfig[] = [
  reshape,
  expandDims,
  identity,
  cast,
  tile,
  concat,
  slice,
  transpose,
  padV2,
];
