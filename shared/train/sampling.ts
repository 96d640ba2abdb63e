import * as tf from '@tensorflow/tfjs-core';
import { LocalCollective } from '../collective/collective.js';
import { noiseFor } from '../data/sampler.js';
import { Generator } from '../model/generator.js';
import type { ModelPreset } from '../model/presets.js';
import type { NamedTensor } from '../rpc/types.js';
import { importState } from './replica-state.js';

// Sample grids reuse one noise vector per column, drawn at this fixed step, so successive grids of a run
// show the same latent points and each row differs only in its class.
const SAMPLE_NOISE_STEP = 0;
const SAMPLE_NOISE_OFFSET = 1_000_000;

let samplerCount = 0;

/**
 * Renders a class × column grid of generator samples in inference mode (moving statistics, no reduction),
 * from the generator parameters and moving statistics in `state`. Returns [rows·cols,32,32,1] in [-1,1],
 * row-major: row r shows class `classes[r]`.
 */
export async function renderSamples(
  preset: ModelPreset,
  state: readonly NamedTensor[],
  options: { seed: number; classes: number[]; columns: number },
): Promise<Float32Array> {
  const generator = new Generator(preset, options.seed, `sampler${samplerCount++}:`);
  try {
    importState([...generator.store.entries(), ...generator.store.bufferEntries()], state);
    const { classes, columns } = options;
    const count = classes.length * columns;

    const z = new Float32Array(count * preset.zDim); // [rows·cols, Z]
    const labels = new Int32Array(count);
    for (let r = 0; r < classes.length; r++) {
      for (let c = 0; c < columns; c++) {
        const index = r * columns + c;
        z.set(
          noiseFor(options.seed, SAMPLE_NOISE_STEP, SAMPLE_NOISE_OFFSET + c, preset.zDim, 'G'),
          index * preset.zDim,
        );
        labels[index] = classes[r]!;
      }
    }

    const zTensor = tf.tensor2d(z, [count, preset.zDim]);
    const oneHot = tf.tidy(() =>
      tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), preset.numClasses), 'float32'),
    ) as tf.Tensor2D;
    const ctx = {
      bn: 'inference' as const,
      collective: new LocalCollective(),
      opPrefix: 'sample',
      oneHot,
      updateMovingStats: false,
      paramGrads: false,
    };
    const images = await generator.forward(zTensor, ctx);
    const pixels = Float32Array.from(images.dataSync());
    tf.dispose([zTensor, oneHot, images]);
    return pixels;
  } finally {
    generator.dispose();
  }
}
