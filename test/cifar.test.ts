import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CIFAR_RECORD_BYTES, loadCifar10, readCifarBatch } from '../shared/data/cifar.js';
import { DataFormatError } from '../shared/data/errors.js';

/**
 * Builds a CIFAR-10 record whose pixel values encode their position, so the HWC conversion can be checked
 * exactly: red = (y + x) % 256, green = (label + y) % 256, blue = (3 * x + 7) % 256.
 */
function makeRecord(label: number): Uint8Array {
  const record = new Uint8Array(CIFAR_RECORD_BYTES);
  record[0] = label;
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const pixel = y * 32 + x;
      record[1 + pixel] = expectedPixel(label, y, x, 0);
      record[1 + 1024 + pixel] = expectedPixel(label, y, x, 1);
      record[1 + 2048 + pixel] = expectedPixel(label, y, x, 2);
    }
  }
  return record;
}

function expectedPixel(label: number, y: number, x: number, channel: number): number {
  if (channel === 0) return (y + x) % 256;
  if (channel === 1) return (label + y) % 256;
  return (3 * x + 7) % 256;
}

describe('readCifarBatch', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cbn-cifar-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('converts planar records to HWC', () => {
    const file = join(dir, 'data_batch_1.bin');
    writeFileSync(file, Buffer.concat([makeRecord(3), makeRecord(9), makeRecord(0)]));

    const batch = readCifarBatch(file);

    expect(batch.count).toBe(3);
    expect([batch.height, batch.width, batch.channels]).toEqual([32, 32, 3]);
    expect(Array.from(batch.labels)).toEqual([3, 9, 0]);
    expect(batch.images.length).toBe(3 * 32 * 32 * 3);
    let mismatches = 0;
    for (const [n, label] of [3, 9, 0].entries()) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          for (let c = 0; c < 3; c++) {
            const value = batch.images[((n * 32 + y) * 32 + x) * 3 + c];
            if (value !== expectedPixel(label, y, x, c)) mismatches++;
          }
        }
      }
    }
    expect(mismatches).toBe(0);
  });

  it('reads an empty file as zero records', () => {
    const file = join(dir, 'empty.bin');
    writeFileSync(file, Buffer.alloc(0));

    expect(readCifarBatch(file).count).toBe(0);
  });

  it('rejects a length that is not a multiple of 3073', () => {
    const file = join(dir, 'data_batch_2.bin');
    writeFileSync(file, Buffer.concat([makeRecord(1), makeRecord(2).subarray(0, 100)]));

    expect(() => readCifarBatch(file)).toThrow(DataFormatError);
    expect(() => readCifarBatch(file)).toThrow(
      /data_batch_2\.bin: invalid CIFAR-10 batch at byte offset 3073: expected a length that is a multiple of 3073 bytes, found 3173 bytes \(1 records and 100 bytes of a partial one\)/,
    );
  });

  it('rejects a label of 10', () => {
    const file = join(dir, 'test_batch.bin');
    writeFileSync(file, Buffer.concat([makeRecord(1), makeRecord(2), makeRecord(10)]));

    expect(() => readCifarBatch(file)).toThrow(
      /test_batch\.bin: invalid label at byte offset 6146 \(sample 2\): expected a label in \[0, 9\], found 10/,
    );
  });

  it('names a missing file', () => {
    expect(() => readCifarBatch(join(dir, 'missing.bin'))).toThrow(
      /data file .*missing\.bin not found; pass a file of the binary version of CIFAR-10/,
    );
  });
});

describe('loadCifar10', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cbn-cifar-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('concatenates the five training batches in order', () => {
    for (let i = 1; i <= 5; i++) {
      writeFileSync(join(dir, `data_batch_${i}.bin`), Buffer.concat([makeRecord(i), makeRecord(i + 4)]));
    }

    const train = loadCifar10({ dir, split: 'train' });

    expect(train.count).toBe(10);
    expect(Array.from(train.labels)).toEqual([1, 5, 2, 6, 3, 7, 4, 8, 5, 9]);
    expect(train.images.length).toBe(10 * 32 * 32 * 3);
    // Sample 9 (label 9), pixel (y 4, x 6), green channel.
    expect(train.images[((9 * 32 + 4) * 32 + 6) * 3 + 1]).toBe(expectedPixel(9, 4, 6, 1));
  });

  it('reads the test batch', () => {
    writeFileSync(join(dir, 'test_batch.bin'), makeRecord(7));

    expect(Array.from(loadCifar10({ dir, split: 'test' }).labels)).toEqual([7]);
  });

  it('names the first missing training batch', () => {
    writeFileSync(join(dir, 'data_batch_1.bin'), makeRecord(0));

    expect(() => loadCifar10({ dir, split: 'train' })).toThrow(/data_batch_2\.bin not found/);
  });
});
