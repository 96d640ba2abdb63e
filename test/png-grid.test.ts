import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadMnist } from '../shared/data/idx.js';
import { mnistToModelInput } from '../shared/data/images.js';
import { SAMPLE_GRID_COLS, SAMPLE_GRID_ROWS, writeSampleGrid } from '../shared/io/png-grid.js';

describe('writeSampleGrid', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cbn-png-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function readPng(path: string): PNG {
    return PNG.sync.read(readFileSync(path));
  }

  /** Gray value of grid pixel (x, y); pngjs decodes grayscale into RGBA with equal R, G and B. */
  function grayAt(png: PNG, x: number, y: number): number {
    const offset = (y * png.width + x) * 4;
    expect(png.data[offset]).toBe(png.data[offset + 1]);
    expect(png.data[offset]).toBe(png.data[offset + 2]);
    return png.data[offset]!;
  }

  it('writes a 10 x 10 grid of 32 x 32 images', async () => {
    const path = join(dir, 'samples.png');
    const images = new Float32Array(100 * 32 * 32).fill(-1); // [100,32,32,1]

    await writeSampleGrid(path, images, {
      rows: SAMPLE_GRID_ROWS,
      cols: SAMPLE_GRID_COLS,
      height: 32,
      width: 32,
    });

    const png = readPng(path);
    expect(png.width).toBe(10 * 32 + 11 * 2);
    expect(png.height).toBe(10 * 32 + 11 * 2);
    expect(readFileSync(path).readUInt8(25)).toBe(0); // IHDR colour type 0: grayscale
  });

  it('maps [-1, 1] to [0, 255] in each cell', async () => {
    const path = join(dir, 'values.png');
    const height = 2;
    const width = 3;
    // Image n has value v_n everywhere except pixel (y 1, x 2), which is 1.
    const cellValues = [-1, -0.5, 0, 0.5, 1, 2, -3]; // 2 and -3 clamp to 255 and 0
    const images = new Float32Array(cellValues.length * height * width); // [7,2,3,1]
    cellValues.forEach((value, n) => {
      images.fill(value, n * height * width, (n + 1) * height * width);
      images[n * height * width + 1 * width + 2] = 1;
    });

    await writeSampleGrid(path, images, { rows: 3, cols: 3, height, width, padding: 1 });

    const png = readPng(path);
    expect(png.width).toBe(3 * 3 + 4 * 1);
    expect(png.height).toBe(3 * 2 + 4 * 1);
    const expectedGray = [0, 64, 128, 191, 255, 255, 0];
    for (const [n, gray] of expectedGray.entries()) {
      const left = 1 + (n % 3) * (width + 1);
      const top = 1 + Math.floor(n / 3) * (height + 1);
      expect(grayAt(png, left, top)).toBe(gray);
      expect(grayAt(png, left + 2, top + 1)).toBe(255);
    }
    expect(grayAt(png, 0, 0)).toBe(0); // padding
    expect(grayAt(png, png.width - 2, png.height - 2)).toBe(0); // the ninth cell is empty
  });

  it('renders real digits', async () => {
    const path = join(dir, 'mnist.png');
    const mnist = loadMnist({ split: 'test' });
    const images = mnistToModelInput(mnist.images.subarray(0, 100 * 784), 100); // [100,32,32,1]

    await writeSampleGrid(path, images, { rows: 10, cols: 10, height: 32, width: 32 });

    const png = readPng(path);
    // Cell 0 is the first test digit; its pixel (row 10, col 14) of the 28 x 28 image sits 2 + 2 pixels in.
    const expected = mnist.images[10 * 28 + 14]!;
    expect(Math.abs(grayAt(png, 2 + 2 + 14, 2 + 2 + 10) - expected)).toBeLessThanOrEqual(1);
  });

  it('replaces an existing file and leaves no temp file', async () => {
    const path = join(dir, 'samples.png');
    writeFileSync(path, 'old content');

    await writeSampleGrid(path, new Float32Array(4).fill(1), {
      rows: 1,
      cols: 1,
      height: 2,
      width: 2,
      padding: 0,
    });

    expect(grayAt(readPng(path), 1, 1)).toBe(255);
    expect(readdirSync(dir)).toEqual(['samples.png']);
  });

  it('rejects more images than cells', async () => {
    const images = new Float32Array(5 * 4);

    await expect(
      writeSampleGrid(join(dir, 'x.png'), images, { rows: 2, cols: 2, height: 2, width: 2 }),
    ).rejects.toThrow(/images must contain at most 2 x 2 images of 2 x 2 pixels, got 20 values \(5 images\)/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('rejects a length that is not whole images', async () => {
    await expect(
      writeSampleGrid(join(dir, 'x.png'), new Float32Array(5), { rows: 2, cols: 2, height: 2, width: 2 }),
    ).rejects.toThrow(/got 5 values \(1.25 images\)/);
  });

  it('rejects NaN pixels', async () => {
    const images = new Float32Array(8);
    images[6] = NaN;

    await expect(
      writeSampleGrid(join(dir, 'x.png'), images, { rows: 1, cols: 2, height: 2, width: 2 }),
    ).rejects.toThrow(/images contain NaN at index 6/);
  });

  it('rejects an invalid layout', async () => {
    const images = new Float32Array(4);

    await expect(
      writeSampleGrid(join(dir, 'x.png'), images, { rows: 0, cols: 1, height: 2, width: 2 }),
    ).rejects.toThrow(/rows must be a positive integer, got 0/);
    await expect(
      writeSampleGrid(join(dir, 'x.png'), images, { rows: 1, cols: 1, height: 2, width: 2, padding: -1 }),
    ).rejects.toThrow(/padding must be a non-negative integer, got -1/);
  });

  it('creates a missing directory', async () => {
    const path = join(dir, 'run', 'samples', 'step-10.png');

    await writeSampleGrid(path, new Float32Array(4), { rows: 1, cols: 1, height: 2, width: 2 });

    expect(readPng(path).width).toBe(2 + 2 * 2);
  });
});
