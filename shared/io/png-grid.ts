import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { UsageError } from '../runtime/errors.js';
import { writeFileAtomic } from './atomic.js';

/** The project's sample grid: one row per class, ten samples per row. */
export const SAMPLE_GRID_ROWS = 10;
export const SAMPLE_GRID_COLS = 10;

export interface SampleGridLayout {
  rows: number;
  cols: number;
  /** Height and width of one image, in pixels. */
  height: number;
  width: number;
  /** Pixels between images and around the border; default 2. */
  padding?: number;
}

/**
 * Renders images into an 8-bit grayscale PNG grid: image n goes to row floor(n / cols), column n % cols.
 * Pixel values map from [-1, 1] to [0, 255] by round((x + 1) * 127.5), clamped. Padding and cells without
 * an image are black (-1).
 * @param images [N,H,W,1] in [-1, 1], N <= rows * cols
 * @throws Error on a NaN pixel. Infinite values clamp to 0 or 255 like any other out-of-range value.
 */
export function encodeSampleGrid(images: Float32Array, layout: SampleGridLayout): Buffer {
  const { rows, cols, height, width } = layout;
  const padding = layout.padding ?? 2;
  checkLayout(layout, padding);
  const pixelsPerImage = height * width;
  if (images.length % pixelsPerImage !== 0 || images.length / pixelsPerImage > rows * cols) {
    throw new UsageError(
      `images must contain at most ${rows} x ${cols} images of ${height} x ${width} pixels, ` +
        `got ${images.length} values (${images.length / pixelsPerImage} images)`,
    );
  }

  const png = new PNG({
    width: cols * width + (cols + 1) * padding,
    height: rows * height + (rows + 1) * padding,
    colorType: 0,
    inputColorType: 0,
    inputHasAlpha: false,
    bitDepth: 8,
  });
  png.data = Buffer.alloc(png.width * png.height); // [gridH,gridW] one byte per pixel, 0 = black

  const count = images.length / pixelsPerImage;
  for (let n = 0; n < count; n++) {
    const top = padding + Math.floor(n / cols) * (height + padding);
    const left = padding + (n % cols) * (width + padding);
    drawImage(images, n * pixelsPerImage, png, top, left, layout);
  }
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
}

/**
 * Writes a grayscale PNG grid of images (see `encodeSampleGrid`) to `path` atomically. The PNG goes to a
 * temp file in the same directory, is flushed with fsync and renamed over `path`, so neither a viewer nor
 * a crash finds a partial image at `path`. A crash can leave the hidden temp file behind. A missing parent
 * directory is created.
 * @param images [N,H,W,1] in [-1, 1]
 */
export async function writeSampleGrid(
  path: string,
  images: Float32Array,
  layout: SampleGridLayout,
): Promise<void> {
  const png = encodeSampleGrid(images, layout);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, [png]);
}

// [H,W,1] at images[offset..] -> grid rows top.., columns left..
function drawImage(
  images: Float32Array,
  offset: number,
  png: PNG,
  top: number,
  left: number,
  layout: SampleGridLayout,
) {
  for (let y = 0; y < layout.height; y++) {
    for (let x = 0; x < layout.width; x++) {
      const value = images[offset + y * layout.width + x]!;
      if (Number.isNaN(value)) {
        throw new Error(
          `images contain NaN at index ${offset + y * layout.width + x}, which a PNG cannot show; ` +
            `check the generator output for divergence`,
        );
      }
      png.data[(top + y) * png.width + left + x] = Math.min(
        255,
        Math.max(0, Math.round((value + 1) * 127.5)),
      );
    }
  }
}

function checkLayout(layout: SampleGridLayout, padding: number): void {
  for (const name of ['rows', 'cols', 'height', 'width'] as const) {
    const value = layout[name];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`${name} must be a positive integer, got ${value}`);
    }
  }
  if (!Number.isSafeInteger(padding) || padding < 0) {
    throw new UsageError(`padding must be a non-negative integer, got ${padding}`);
  }
}
