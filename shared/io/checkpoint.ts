import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../runtime/errors.js';
import { fsyncDirectory, writeFileSynced } from './atomic.js';

/**
 * Checkpoints in the TF.js weights format: a directory with `model.json`, which lists every tensor's name
 * and shape in a weights manifest, and `weights.bin`, the tensors' float32 values in little-endian byte
 * order, concatenated in manifest order. `trainerState` in model.json is whatever JSON the trainer needs to
 * resume (step, seed, job options).
 *
 * Names are slash paths such as `G/block0/conv1/kernel`; optimizer slots append the slot name, as in
 * `G/block0/conv1/kernel/adam_m`.
 */
export const CHECKPOINT_FORMAT = 'cbn-train-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
const MODEL_FILE = 'model.json';
const WEIGHTS_FILE = 'weights.bin';
const BYTES_PER_FLOAT32 = 4;

export interface CheckpointTensor {
  name: string;
  shape: number[];
  data: Float32Array; // row-major, length = product of shape
}

export interface Checkpoint {
  tensors: CheckpointTensor[];
  trainerState: Record<string, unknown>;
}

interface WeightsManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

interface ModelJson {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  weightsManifest: { paths: string[]; weights: WeightsManifestEntry[] }[];
  trainerState: Record<string, unknown>;
}

/** A checkpoint that is missing, incomplete or unreadable. The message names the file and what to do. */
export class CheckpointError extends UsageError {
  override name = 'CheckpointError';
}

// ---- writing

/**
 * Writes a checkpoint to `dir`, replacing any checkpoint there, so that a crash at any moment leaves a
 * complete checkpoint: the old one or the new one. Only one process may write to `dir` at a time.
 * `trainerState` is stored with JSON.stringify, so NaN and Infinity in it are read back as null.
 *
 * Steps:
 * 1. Write both files into a sibling temp directory `<dir>.tmp-<random>`, and fsync them and the directory.
 * 2. Rename `dir` to `<dir>.old`.
 * 3. Rename the temp directory to `dir`, and fsync the parent.
 * 4. Delete `<dir>.old`.
 *
 * A crash between steps 2 and 3 leaves no `dir`, so `readCheckpoint` reads `<dir>.old` instead. The next
 * write restores `<dir>.old` in that case, and deletes stale temp directories and a leftover `<dir>.old`.
 * @throws UsageError when `dir` exists and contains files other than a checkpoint's, because replacing it
 *   would delete them.
 */
export async function writeCheckpoint(checkpointDir: string, checkpoint: Checkpoint): Promise<void> {
  const dir = resolve(checkpointDir); // 'runs/x/' would otherwise give the sibling 'runs/x/.old'
  const modelJson = buildModelJson(checkpoint);
  await mkdir(dirname(dir), { recursive: true });
  await recoverInterruptedWrite(dir);
  await checkReplaceable(dir);

  const tempDir = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeTempCheckpoint(tempDir, checkpoint.tensors, modelJson);
    await swapIntoPlace(tempDir, dir);
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  }
}

async function writeTempCheckpoint(tempDir: string, tensors: CheckpointTensor[], modelJson: ModelJson) {
  await mkdir(tempDir);
  const weights = tensors.map((tensor) => littleEndianBytes(tensor.data));
  await writeFileSynced(join(tempDir, WEIGHTS_FILE), weights);
  await writeFileSynced(join(tempDir, MODEL_FILE), [Buffer.from(JSON.stringify(modelJson, null, 2) + '\n')]);
  await fsyncDirectory(tempDir);
}

// Steps 2 to 4 of writeCheckpoint. When the second rename fails without a crash, the old checkpoint
// goes back to `dir` so the caller is left where it started.
async function swapIntoPlace(tempDir: string, dir: string): Promise<void> {
  const oldDir = `${dir}.old`;
  const hadPrevious = await exists(dir);
  if (hadPrevious) await rename(dir, oldDir);
  try {
    await rename(tempDir, dir);
  } catch (error) {
    if (hadPrevious) await rename(oldDir, dir);
    throw error;
  }
  await fsyncDirectory(dirname(dir));
  if (hadPrevious) await rm(oldDir, { recursive: true, force: true });
}

// A directory that contains anything but model.json and weights.bin was not written by writeCheckpoint.
async function checkReplaceable(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  if (!(await stat(dir)).isDirectory()) {
    throw new UsageError(`cannot write a checkpoint to ${dir}: it is a file; choose a directory path`);
  }

  const unexpected = (await readdir(dir)).filter((entry) => entry !== MODEL_FILE && entry !== WEIGHTS_FILE);
  if (unexpected.length === 0) return;
  throw new UsageError(
    `cannot write a checkpoint to ${dir}: it contains ${unexpected.map((entry) => JSON.stringify(entry)).join(', ')}, ` +
      `which a checkpoint would replace; choose an empty or new directory`,
  );
}

/**
 * Brings `dir` back to one complete checkpoint after a write that crashed: restores `<dir>.old` when `dir`
 * is missing, deletes `<dir>.old` when `dir` exists, and deletes every `<dir>.tmp-*` directory.
 */
async function recoverInterruptedWrite(dir: string): Promise<void> {
  const oldDir = `${dir}.old`;
  if (await exists(oldDir)) {
    if (await exists(dir)) await rm(oldDir, { recursive: true, force: true });
    else await rename(oldDir, dir);
  }

  const prefix = `${basename(dir)}.tmp-`;
  for (const entry of await readdir(dirname(dir))) {
    if (entry.startsWith(prefix)) await rm(join(dirname(dir), entry), { recursive: true, force: true });
  }
}

function buildModelJson(checkpoint: Checkpoint): ModelJson {
  const names = new Set<string>();
  for (const tensor of checkpoint.tensors) {
    checkTensor(tensor, names);
    names.add(tensor.name);
  }
  const state = checkpoint.trainerState;
  if (state === null || typeof state !== 'object' || Array.isArray(state)) {
    throw new UsageError(`trainerState must be a JSON object, got ${JSON.stringify(state)}`);
  }

  const weights = checkpoint.tensors.map(({ name, shape }) => ({ name, shape, dtype: 'float32' as const }));
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights }],
    trainerState: state,
  };
}

function checkTensor(tensor: CheckpointTensor, seen: Set<string>): void {
  const { name, shape, data } = tensor;
  if (!/^[^/]+(\/[^/]+)*$/.test(name)) {
    throw new UsageError(
      `tensor name must be a slash path like 'G/block0/conv1/kernel', got ${JSON.stringify(name)}`,
    );
  }
  if (seen.has(name)) {
    throw new UsageError(
      `tensor name ${JSON.stringify(name)} appears twice; every tensor needs a unique name`,
    );
  }
  if (!shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
    throw new UsageError(`tensor ${name}: shape must be non-negative integers, got [${shape.join(',')}]`);
  }
  if (!(data instanceof Float32Array) || data.length !== elementCount(shape)) {
    throw new UsageError(
      `tensor ${name}: data must be a Float32Array of ${elementCount(shape)} values for shape ` +
        `[${shape.join(',')}], got ${data?.constructor?.name} of length ${data?.length}`,
    );
  }
}

// Float32Array memory uses the host's byte order, but weights.bin is little-endian on every host.
// NOTE: the big-endian branches here and in float32FromLittleEndian have run on no big-endian host.
function littleEndianBytes(data: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

  const bytes = Buffer.alloc(data.byteLength);
  data.forEach((value, i) => bytes.writeFloatLE(value, i * BYTES_PER_FLOAT32));
  return bytes;
}

// ---- reading

/**
 * Reads and validates a checkpoint written by `writeCheckpoint`. When `dir` is missing but `<dir>.old`
 * exists, a write crashed midway and `<dir>.old` is the last complete checkpoint, so it is read instead.
 * @throws CheckpointError when a file is missing, model.json is invalid JSON or not a version-1
 *   checkpoint, or a weights file does not have the length its manifest requires.
 */
export async function readCheckpoint(checkpointDir: string): Promise<Checkpoint> {
  const dir = resolve(checkpointDir);
  const source = (await exists(dir)) || !(await exists(`${dir}.old`)) ? dir : `${dir}.old`;
  const modelFile = join(source, MODEL_FILE);
  const modelJson = parseModelJson(await readCheckpointFile(modelFile), modelFile);

  const tensors: CheckpointTensor[] = [];
  for (const group of modelJson.weightsManifest) {
    const files = group.paths.map((path) => join(source, path));
    const bytes = Buffer.concat(await Promise.all(files.map(readCheckpointFile)));
    tensors.push(...splitWeights(bytes, group.weights, files.join(' + ')));
  }
  return { tensors, trainerState: modelJson.trainerState };
}

async function readCheckpointFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'is missing' : `could not be read (${code})`;
    throw new CheckpointError(
      `checkpoint file ${file} ${reason}; pass a checkpoint directory that cbn-train wrote, or start a new run without --resume`,
    );
  }
}

function parseModelJson(bytes: Buffer, file: string): ModelJson {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw invalidModelJson(file, `it is not valid JSON (${(error as Error).message})`);
  }

  const model = json as Partial<ModelJson> | null;
  if (model === null || typeof model !== 'object' || model.format !== CHECKPOINT_FORMAT) {
    throw invalidModelJson(
      file,
      `format is ${JSON.stringify(model?.format)}, expected "${CHECKPOINT_FORMAT}"`,
    );
  }
  if (model.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `${file}: unsupported checkpoint format version ${JSON.stringify(model.formatVersion)}; this build reads ` +
        `version ${CHECKPOINT_FORMAT_VERSION}, so use the cbn-train release that wrote it or start a new run without --resume`,
    );
  }
  checkManifest(model.weightsManifest, file);
  const state = model.trainerState;
  if (state === null || typeof state !== 'object' || Array.isArray(state)) {
    throw invalidModelJson(file, `trainerState must be a JSON object, got ${JSON.stringify(state)}`);
  }
  return model as ModelJson;
}

function checkManifest(manifest: unknown, file: string): void {
  if (!Array.isArray(manifest)) throw invalidModelJson(file, 'weightsManifest must be an array');
  const names = new Set<string>();

  for (const [groupIndex, group] of manifest.entries()) {
    const where = `weightsManifest[${groupIndex}]`;
    const paths: unknown = group?.paths;
    if (!Array.isArray(paths) || !paths.every((path) => typeof path === 'string' && /^[\w.-]+$/.test(path))) {
      throw invalidModelJson(file, `${where}.paths must list file names in the checkpoint directory`);
    }
    const weights: unknown = group?.weights;
    if (!Array.isArray(weights)) throw invalidModelJson(file, `${where}.weights must be an array`);
    checkManifestEntries(weights as (Partial<WeightsManifestEntry> | null)[], where, file, names);
  }
}

function checkManifestEntries(
  weights: (Partial<WeightsManifestEntry> | null)[],
  where: string,
  file: string,
  names: Set<string>,
): void {
  for (const [i, entry] of weights.entries()) {
    const name = entry?.name;
    const shape: unknown = entry?.shape;
    const validShape = Array.isArray(shape) && shape.every((size) => Number.isSafeInteger(size) && size >= 0);
    if (typeof name !== 'string' || !validShape || entry?.dtype !== 'float32') {
      throw invalidModelJson(
        file,
        `${where}.weights[${i}] must be {name, shape, dtype: "float32"}, got ${JSON.stringify(entry)}`,
      );
    }
    if (names.has(name)) throw invalidModelJson(file, `tensor ${JSON.stringify(name)} appears twice`);
    names.add(name);
  }
}

// bytes = the group's files concatenated; weights are laid out back to back in manifest order.
function splitWeights(bytes: Buffer, weights: WeightsManifestEntry[], files: string): CheckpointTensor[] {
  const expectedBytes = weights.reduce(
    (sum, entry) => sum + elementCount(entry.shape) * BYTES_PER_FLOAT32,
    0,
  );
  if (bytes.byteLength !== expectedBytes) {
    throw new CheckpointError(
      `${files}: expected ${expectedBytes} bytes for the ${weights.length} float32 tensors in model.json, ` +
        `found ${bytes.byteLength}; the checkpoint is incomplete or corrupt, so restore it from a copy or ` +
        `start a new run without --resume`,
    );
  }

  let offset = 0;
  return weights.map(({ name, shape }) => {
    const byteLength = elementCount(shape) * BYTES_PER_FLOAT32;
    const data = float32FromLittleEndian(bytes.subarray(offset, offset + byteLength));
    offset += byteLength;
    return { name, shape, data };
  });
}

function float32FromLittleEndian(bytes: Buffer): Float32Array {
  const data = new Float32Array(bytes.byteLength / BYTES_PER_FLOAT32);
  if (endianness() === 'LE') {
    // Copying bytes (not values) keeps every bit, including NaN payloads.
    new Uint8Array(data.buffer).set(bytes);
    return data;
  }
  for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * BYTES_PER_FLOAT32);
  return data;
}

function invalidModelJson(file: string, problem: string): CheckpointError {
  return new CheckpointError(
    `${file}: invalid checkpoint: ${problem}; restore it from a copy or start a new run without --resume`,
  );
}

// ---- helpers

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
