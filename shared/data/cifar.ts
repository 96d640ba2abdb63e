import { join } from 'node:path';
import { DataFormatError } from './errors.js';
import { checkLabels, readDataFile } from './idx.js';

/**
 * CIFAR-10 binary version: each batch file is a sequence of 3073-byte records, one label byte followed by
 * 3072 pixel bytes in planar order (1024 red, 1024 green, 1024 blue, each 32x32 row-major).
 */
export const CIFAR_SIZE = 32;
export const CIFAR_CHANNELS = 3;
export const CIFAR_NUM_CLASSES = 10;
const PLANE_BYTES = CIFAR_SIZE * CIFAR_SIZE; // 1024
const IMAGE_BYTES = PLANE_BYTES * CIFAR_CHANNELS; // 3072
export const CIFAR_RECORD_BYTES = 1 + IMAGE_BYTES; // 3073

/** CIFAR images in HWC order and their labels. */
export interface CifarData {
  images: Uint8Array; // [N,32,32,3] uint8
  labels: Uint8Array; // [N]
  count: number;
  height: number;
  width: number;
  channels: number;
}

/**
 * Parses the bytes of one CIFAR-10 binary batch, converting the planar CHW pixels to HWC.
 * @throws DataFormatError naming the file and byte offset when the length is not a multiple of 3073 bytes
 *   or a label is 10 or more.
 */
export function parseCifarBatch(bytes: Uint8Array, file: string): CifarData {
  if (bytes.byteLength % CIFAR_RECORD_BYTES !== 0) {
    const count = Math.floor(bytes.byteLength / CIFAR_RECORD_BYTES);
    throw new DataFormatError(
      `${file}: invalid CIFAR-10 batch at byte offset ${count * CIFAR_RECORD_BYTES}: expected a length that is ` +
        `a multiple of ${CIFAR_RECORD_BYTES} bytes, found ${bytes.byteLength} bytes ` +
        `(${count} records and ${bytes.byteLength % CIFAR_RECORD_BYTES} bytes of a partial one); ` +
        `the file is truncated or corrupt, so download it again`,
    );
  }
  const count = bytes.byteLength / CIFAR_RECORD_BYTES;
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * IMAGE_BYTES);

  for (let n = 0; n < count; n++) {
    const record = n * CIFAR_RECORD_BYTES;
    labels[n] = bytes[record]!;
    planarToInterleaved(bytes, record + 1, images, n * IMAGE_BYTES);
  }
  checkLabels(labels, CIFAR_NUM_CLASSES, file, 0, CIFAR_RECORD_BYTES);

  return { images, labels, count, height: CIFAR_SIZE, width: CIFAR_SIZE, channels: CIFAR_CHANNELS };
}

/** Reads one CIFAR-10 binary batch file (`data_batch_1.bin` ... `test_batch.bin`). */
export function readCifarBatch(file: string): CifarData {
  const advice = 'pass a file of the binary version of CIFAR-10 (folder cifar-10-batches-bin)';
  return parseCifarBatch(readDataFile(file, advice), file);
}

/**
 * Loads the CIFAR-10 training split (`data_batch_1.bin` to `data_batch_5.bin`, concatenated in that order)
 * or the test split (`test_batch.bin`) from `dir`, the `cifar-10-batches-bin` folder of the archive.
 */
export function loadCifar10(options: { dir: string; split: 'train' | 'test' }): CifarData {
  const names =
    options.split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const batches = names.map((name) => readCifarBatch(join(options.dir, name)));
  return concatBatches(batches);
}

function concatBatches(batches: CifarData[]): CifarData {
  if (batches.length === 1) return batches[0]!;

  const count = batches.reduce((sum, batch) => sum + batch.count, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let offset = 0;
  for (const batch of batches) {
    images.set(batch.images, offset * IMAGE_BYTES);
    labels.set(batch.labels, offset);
    offset += batch.count;
  }
  return { images, labels, count, height: CIFAR_SIZE, width: CIFAR_SIZE, channels: CIFAR_CHANNELS };
}

// [3,32,32] planar at bytes[source..] -> [32,32,3] interleaved at images[target..]
function planarToInterleaved(bytes: Uint8Array, source: number, images: Uint8Array, target: number): void {
  for (let pixel = 0; pixel < PLANE_BYTES; pixel++) {
    const out = target + pixel * CIFAR_CHANNELS;
    images[out] = bytes[source + pixel]!;
    images[out + 1] = bytes[source + PLANE_BYTES + pixel]!;
    images[out + 2] = bytes[source + 2 * PLANE_BYTES + pixel]!;
  }
}
