import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { runAllReduceBench, type AllReduceBenchResult } from '../../bench/allreduce.js';
import { UsageError } from '../../shared/runtime/errors.js';

const KERNEL_BENCH = fileURLToPath(new URL('../../bench/kernels.ts', import.meta.url));

// The sizes of the gloo anchor script: a BN statistics message up to a fused gradient buffer.
const DEFAULT_SIZES = '4K,64K,1M,16M,64M';

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** Parses `4K,64K,1M` (binary units, plain numbers are bytes) into byte counts, each a multiple of 4. */
export function parseSizes(text: string): number[] {
  return text.split(',').map((item) => {
    const match = /^(\d+)([KMG]?)$/i.exec(item.trim());
    if (match === null)
      throw new UsageError(
        `--sizes: invalid size ${JSON.stringify(item)}, expected a byte count such as 4096, 64K or 16M`,
      );

    const bytes = Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
    if (bytes <= 0 || bytes % 4 !== 0)
      throw new UsageError(`--sizes: ${item} must be a positive multiple of 4 bytes (float32), got ${bytes}`);
    return bytes;
  });
}

function parseWorkers(text: string): number {
  const workers = Number(text);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new UsageError(`--workers must be an integer from 1 to 64, got ${JSON.stringify(text)}`);
  }
  return workers;
}

function parseReps(text: string): number {
  const reps = Number(text);
  if (!Number.isInteger(reps) || reps < 1)
    throw new UsageError(`--reps must be a positive integer, got ${JSON.stringify(text)}`);
  return reps;
}

function formatResult(result: AllReduceBenchResult): string {
  return (
    `n=${result.workers} bytes=${result.bytes} reps=${result.reps} time_ms=${result.medianMs.toFixed(3)} ` +
    `algbw_GBps=${result.algbwGBps.toFixed(3)} busbw_GBps=${result.busbwGBps.toFixed(3)}`
  );
}

/** Adds the `bench` command group and its `allreduce` subcommand. */
export function register(program: Command): void {
  const bench = program
    .command('bench')
    .description('Measure the speed of cbn-train components on this machine');

  bench
    .command('allreduce')
    .description(
      'Time the gRPC star all-reduce with N worker processes on loopback. Prints the median time, ' +
        'algbw = bytes / time and busbw = algbw·2(n−1)/n per size (nccl-tests definitions, GB/s = 1e9 B/s).',
    )
    .option('--workers <n>', 'number of worker processes', parseWorkers, 2)
    .option(
      '--sizes <list>',
      `comma-separated buffer sizes in bytes, K, M and G being powers of 1024 (default: ${DEFAULT_SIZES})`,
      parseSizes,
    )
    .option('--reps <n>', 'timed repetitions per size (default: max(3, min(50, 2e8 / bytes)))', parseReps)
    .option('--json', 'print one JSON object per size instead of text lines')
    .action(async (options: { workers: number; sizes?: number[]; reps?: number; json?: boolean }) => {
      const print = (result: AllReduceBenchResult) =>
        process.stdout.write(`${options.json === true ? JSON.stringify(result) : formatResult(result)}\n`);
      await runAllReduceBench(
        {
          workers: options.workers,
          sizesBytes: options.sizes ?? parseSizes(DEFAULT_SIZES),
          reps: options.reps ?? 0,
        },
        print,
      );
    });

  bench
    .command('kernels')
    .description(
      'Time convolution forward, input and filter gradients and CBN ResBlock forward+backward per backend, ' +
        'stock kernels beside the project kernels, with the ratio to PyTorch when /usr/bin/python3 has torch',
    )
    .allowUnknownOption()
    .argument('[options...]', 'passed to bench/kernels.ts: [--backend cpu|wasm|all] [--json] [--reps N]')
    .action(async (args: string[]) => {
      // The kernel benchmark is a standalone script (also `npm run bench:kernels`); run it with these arguments.
      const child = spawn(process.execPath, ['--import', 'tsx', KERNEL_BENCH, ...args], { stdio: 'inherit' });
      const [code] = (await once(child, 'exit')) as [number | null];
      process.exitCode = code ?? 1;
    });
}
