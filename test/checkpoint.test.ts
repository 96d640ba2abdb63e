import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  readCheckpoint,
  writeCheckpoint,
  type Checkpoint,
} from '../shared/io/checkpoint.js';

/** Builds a small checkpoint with weights, an optimizer slot, a scalar and special float values. */
function makeCheckpoint(step: number): Checkpoint {
  const kernel = new Float32Array(2 * 3 * 4).map((_, i) => Math.sin(i + step) * 1e3);
  const special = new Float32Array([NaN, Infinity, -Infinity, -0, 1e-45, 3.4028234663852886e38]);
  // A NaN with a non-default payload, to check bits rather than values.
  new Uint32Array(special.buffer)[0] = 0x7fc12345;
  return {
    tensors: [
      { name: 'G/block0/conv1/kernel', shape: [2, 3, 4], data: kernel },
      { name: 'G/block0/conv1/kernel/adam_m', shape: [2, 3, 4], data: kernel.map((v) => v / 7) },
      { name: 'D/step_scale', shape: [], data: new Float32Array([step]) },
      { name: 'D/special', shape: [6], data: special },
      { name: 'D/empty', shape: [0, 5], data: new Float32Array(0) },
    ],
    trainerState: { step, seed: 3, job: { batch: 64, bn: 'sync' } },
  };
}

/**
 * Starts a script under tsx, waits for its first line of output, and kills it with SIGKILL `delayMs` later.
 * Rejects when the script exits before it prints.
 */
async function runAndKill(script: string, delayMs: number): Promise<void> {
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href; // works from any cwd
  const child = spawn(process.execPath, ['--import', tsxLoader, script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));

  // Start the clock at the first completed write, so every kill lands during a later write.
  await new Promise<void>((resolveStarted, rejectStarted) => {
    child.stdout.once('data', () => resolveStarted());
    child.once('exit', (code) =>
      rejectStarted(new Error(`writer script exited with code ${code} before writing`)),
    );
  });
  await new Promise((resolveDelay) => setTimeout(resolveDelay, delayMs));
  child.kill('SIGKILL');
  await exited;
}

function bits(data: Float32Array): number[] {
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

function expectSameCheckpoint(actual: Checkpoint, expected: Checkpoint): void {
  expect(actual.trainerState).toEqual(expected.trainerState);
  expect(actual.tensors.map((t) => t.name)).toEqual(expected.tensors.map((t) => t.name));
  for (const [i, tensor] of expected.tensors.entries()) {
    expect(actual.tensors[i]!.shape).toEqual(tensor.shape);
    expect(bits(actual.tensors[i]!.data)).toEqual(bits(tensor.data));
  }
}

describe('checkpoint', () => {
  let root: string;
  let dir: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cbn-checkpoint-'));
    dir = join(root, 'checkpoint');
  });

  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  describe('round trip', () => {
    it('restores tensors bit for bit', async () => {
      const checkpoint = makeCheckpoint(5);

      await writeCheckpoint(dir, checkpoint);

      expectSameCheckpoint(await readCheckpoint(dir), checkpoint);
    });

    it('writes the TF.js weights layout', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));

      const model = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      expect(model.format).toBe('cbn-train-checkpoint');
      expect(model.formatVersion).toBe(1);
      expect(model.weightsManifest).toHaveLength(1);
      expect(model.weightsManifest[0].paths).toEqual(['weights.bin']);
      expect(model.weightsManifest[0].weights[0]).toEqual({
        name: 'G/block0/conv1/kernel',
        shape: [2, 3, 4],
        dtype: 'float32',
      });
      expect(model.trainerState.step).toBe(1);
      const weights = readFileSync(join(dir, 'weights.bin'));
      expect(weights.length).toBe((24 + 24 + 1 + 6 + 0) * 4);
      // The scalar D/step_scale follows the 48 kernel values, little-endian.
      expect(weights.readFloatLE(48 * 4)).toBe(1);
      expect(readdirSync(dir).sort()).toEqual(['model.json', 'weights.bin']);
    });

    it('replaces a previous checkpoint', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      await writeCheckpoint(dir, makeCheckpoint(2));

      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(2));
      expect(readdirSync(root)).toEqual(['checkpoint']);
    });

    it('accepts a path with a trailing slash', async () => {
      await writeCheckpoint(`${dir}/`, makeCheckpoint(1));
      await writeCheckpoint(`${dir}/`, makeCheckpoint(2));

      expect((await readCheckpoint(`${dir}/`)).trainerState.step).toBe(2);
      expect(readdirSync(root)).toEqual(['checkpoint']);
    });

    it('creates missing parent directories', async () => {
      const nested = join(root, 'runs', 'a', 'checkpoint');

      await writeCheckpoint(nested, makeCheckpoint(1));

      expect((await readCheckpoint(nested)).trainerState.step).toBe(1);
    });
  });

  describe('interrupted writes', () => {
    it('reads the previous checkpoint when a temp dir is left behind', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      // A crash while writing the next checkpoint leaves a partial temp dir.
      mkdirSync(`${dir}.tmp-deadbeef`);
      writeFileSync(join(`${dir}.tmp-deadbeef`, 'weights.bin'), Buffer.alloc(10));

      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(1));
    });

    it('cleans up a stale temp dir on the next write', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      mkdirSync(`${dir}.tmp-deadbeef`);
      writeFileSync(join(`${dir}.tmp-deadbeef`, 'weights.bin'), Buffer.alloc(10));

      await writeCheckpoint(dir, makeCheckpoint(2));

      expect(readdirSync(root)).toEqual(['checkpoint']);
      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(2));
    });

    it('reads the old checkpoint after a crash between the renames', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      await writeCheckpoint(join(root, 'next'), makeCheckpoint(2));
      // The state after step 2: dir moved to dir.old, the complete new checkpoint still in its temp dir.
      cpSync(dir, `${dir}.old`, { recursive: true });
      rmSync(dir, { recursive: true });
      cpSync(join(root, 'next'), `${dir}.tmp-0badf00d`, { recursive: true });
      rmSync(join(root, 'next'), { recursive: true });

      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(1));

      await writeCheckpoint(dir, makeCheckpoint(3));

      expect(readdirSync(root)).toEqual(['checkpoint']);
      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(3));
    });

    it('prefers dir over a leftover old dir', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      await writeCheckpoint(join(root, 'checkpoint.old'), makeCheckpoint(0));
      // The state after step 3: the new checkpoint is in place and dir.old was not deleted yet.

      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(1));

      await writeCheckpoint(dir, makeCheckpoint(2));

      expect(readdirSync(root)).toEqual(['checkpoint']);
    });

    it('keeps the previous checkpoint when a write fails', async () => {
      await writeCheckpoint(dir, makeCheckpoint(1));
      const invalid = makeCheckpoint(2);
      invalid.tensors[0]!.shape = [5];

      await expect(writeCheckpoint(dir, invalid)).rejects.toThrow(
        /tensor G\/block0\/conv1\/kernel: data must be/,
      );

      expectSameCheckpoint(await readCheckpoint(dir), makeCheckpoint(1));
      expect(readdirSync(root)).toEqual(['checkpoint']);
    });
    it('survives killing the writer at random moments', async () => {
      // A child process rewrites an 8 MB checkpoint in a loop until it is killed with SIGKILL. Every
      // checkpoint k has all values equal to k, so a mix of two writes or a partial file shows. This
      // covers a process crash; a power loss also depends on the fsync calls, which no test here reaches.
      const writerScript = join(root, 'writer.mts');
      const checkpointModule = fileURLToPath(new URL('../shared/io/checkpoint.ts', import.meta.url));
      writeFileSync(
        writerScript,
        `import { writeCheckpoint } from ${JSON.stringify(checkpointModule)};
         for (let k = 1; ; k++) {
           const data = new Float32Array(2_000_000).fill(k);
           await writeCheckpoint(${JSON.stringify(dir)}, { tensors: [{ name: 'w', shape: [data.length], data }], trainerState: { step: k } });
           process.stdout.write(k + '\\n');
         }`,
      );

      for (const delayMs of [40, 90, 150, 230, 320, 410]) {
        await runAndKill(writerScript, delayMs);

        const checkpoint = await readCheckpoint(dir);
        const step = checkpoint.trainerState.step as number;
        const data = checkpoint.tensors[0]!.data;
        expect(data.length).toBe(2_000_000);
        expect(data.every((value) => value === step)).toBe(true);
      }
    });
  });

  describe('invalid checkpoints', () => {
    beforeEach(async () => {
      await writeCheckpoint(dir, makeCheckpoint(4));
    });

    function editModelJson(edit: (model: Record<string, unknown>) => void): void {
      const model = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      edit(model);
      writeFileSync(join(dir, 'model.json'), JSON.stringify(model));
    }

    it('rejects a missing directory', async () => {
      await expect(readCheckpoint(join(root, 'nothing'))).rejects.toThrow(
        /checkpoint file .*nothing\/model\.json is missing; pass a checkpoint directory that cbn-train wrote, or start a new run without --resume/,
      );
    });

    it('rejects a missing weights file', async () => {
      rmSync(join(dir, 'weights.bin'));

      await expect(readCheckpoint(dir)).rejects.toThrow(CheckpointError);
      await expect(readCheckpoint(dir)).rejects.toThrow(
        /checkpoint file .*checkpoint\/weights\.bin is missing/,
      );
    });

    it('rejects invalid JSON', async () => {
      writeFileSync(join(dir, 'model.json'), '{"format": "cbn-train-checkpoint", ');

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /checkpoint\/model\.json: invalid checkpoint: it is not valid JSON \(.*\); restore it from a copy or start a new run without --resume/,
      );
    });

    it('rejects a truncated weights file', async () => {
      const weights = readFileSync(join(dir, 'weights.bin'));
      writeFileSync(join(dir, 'weights.bin'), weights.subarray(0, weights.length - 4));

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /weights\.bin: expected 220 bytes for the 5 float32 tensors in model\.json, found 216; the checkpoint is incomplete or corrupt/,
      );
    });

    it('rejects a longer weights file', async () => {
      const weights = readFileSync(join(dir, 'weights.bin'));
      writeFileSync(join(dir, 'weights.bin'), Buffer.concat([weights, Buffer.alloc(8)]));

      await expect(readCheckpoint(dir)).rejects.toThrow(/expected 220 bytes .*, found 228/);
    });

    it('rejects an unknown format version', async () => {
      editModelJson((model) => (model.formatVersion = 2));

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /model\.json: unsupported checkpoint format version 2; this build reads version 1/,
      );
    });

    it('rejects another format', async () => {
      editModelJson((model) => (model.format = 'layers-model'));

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /format is "layers-model", expected "cbn-train-checkpoint"/,
      );
    });

    it('rejects a dtype other than float32', async () => {
      editModelJson((model) => {
        const manifest = model.weightsManifest as { weights: { dtype: string }[] }[];
        manifest[0]!.weights[2]!.dtype = 'int32';
      });

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /weightsManifest\[0\]\.weights\[2\] must be \{name, shape, dtype: "float32"\}, got .*"int32"/,
      );
    });

    it('rejects a weights path outside the directory', async () => {
      editModelJson((model) => {
        const manifest = model.weightsManifest as { paths: string[] }[];
        manifest[0]!.paths = ['../weights.bin'];
      });

      await expect(readCheckpoint(dir)).rejects.toThrow(
        /weightsManifest\[0\]\.paths must list file names in the checkpoint directory/,
      );
    });

    it('rejects a duplicate tensor name', async () => {
      editModelJson((model) => {
        const manifest = model.weightsManifest as { weights: { name: string }[] }[];
        manifest[0]!.weights[1]!.name = manifest[0]!.weights[0]!.name;
      });

      await expect(readCheckpoint(dir)).rejects.toThrow(/tensor "G\/block0\/conv1\/kernel" appears twice/);
    });

    it('rejects a missing trainer state', async () => {
      editModelJson((model) => delete model.trainerState);

      await expect(readCheckpoint(dir)).rejects.toThrow(/trainerState must be a JSON object, got undefined/);
    });
  });

  describe('invalid input', () => {
    it('rejects a name that is not a slash path', async () => {
      const checkpoint = makeCheckpoint(1);
      checkpoint.tensors[0]!.name = 'G//kernel';

      await expect(writeCheckpoint(dir, checkpoint)).rejects.toThrow(
        /tensor name must be a slash path like 'G\/block0\/conv1\/kernel', got "G\/\/kernel"/,
      );
      expect(existsSync(dir)).toBe(false);
    });

    it('rejects a duplicate name', async () => {
      const checkpoint = makeCheckpoint(1);
      checkpoint.tensors[1]!.name = checkpoint.tensors[0]!.name;

      await expect(writeCheckpoint(dir, checkpoint)).rejects.toThrow(
        /tensor name "G\/block0\/conv1\/kernel" appears twice/,
      );
    });

    it('rejects a non-object trainer state', async () => {
      const checkpoint = { ...makeCheckpoint(1), trainerState: [1, 2] as unknown as Record<string, unknown> };

      await expect(writeCheckpoint(dir, checkpoint)).rejects.toThrow(
        /trainerState must be a JSON object, got \[1,2\]/,
      );
    });

    it('rejects a directory with other files', async () => {
      mkdirSync(dir);
      writeFileSync(join(dir, 'notes.txt'), 'keep me');

      await expect(writeCheckpoint(dir, makeCheckpoint(1))).rejects.toThrow(
        /cannot write a checkpoint to .*checkpoint: it contains "notes\.txt", which a checkpoint would replace/,
      );
      expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
    });

    it('writes into an empty directory', async () => {
      mkdirSync(dir);

      await writeCheckpoint(dir, makeCheckpoint(1));

      expect((await readCheckpoint(dir)).trainerState.step).toBe(1);
    });
  });
});
