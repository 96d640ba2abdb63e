/** Architecture of one generator/discriminator pair. */
export interface ModelPreset {
  name: string;
  numClasses: number;
  /** Length of the noise vector z. */
  zDim: number;
  /** Channels of the generator's 4×4 starting map. */
  genBaseChannels: number;
  /** Output channels of each generator up-block (4→8→16→32). */
  genBlockChannels: number[];
  /** Output channels of each discriminator block; the first three halve the resolution (32→16→8→4). */
  discBlockChannels: number[];
  imageSize: number;
  imageChannels: number;
}

/** Names accepted by `--preset`. */
export const PRESET_NAMES = ['micro', 'tiny', 'base'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/**
 * `micro`: about 5K parameters, for smoke tests of a cluster and for CI; it does not learn digits.
 * `tiny`: about 0.3M parameters, sized so a two-worker CPU run learns recognizable digits in minutes.
 * `base`: about 4M parameters, for GPU workers.
 */
export const PRESETS: Record<PresetName, ModelPreset> = {
  micro: {
    name: 'micro',
    numClasses: 10,
    zDim: 6,
    genBaseChannels: 8,
    genBlockChannels: [8, 6, 4],
    discBlockChannels: [4, 6, 8, 8],
    imageSize: 32,
    imageChannels: 1,
  },
  tiny: {
    name: 'tiny',
    numClasses: 10,
    zDim: 32,
    genBaseChannels: 64,
    genBlockChannels: [64, 32, 16],
    discBlockChannels: [16, 32, 64, 64],
    imageSize: 32,
    imageChannels: 1,
  },
  base: {
    name: 'base',
    numClasses: 10,
    zDim: 128,
    genBaseChannels: 256,
    genBlockChannels: [256, 128, 64],
    discBlockChannels: [64, 128, 256, 256],
    imageSize: 32,
    imageChannels: 1,
  },
};
