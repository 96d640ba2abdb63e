import { describe, expect, it } from 'vitest';
import { runAllReduceBench, summarize } from '../bench/allreduce.js';
import { parseSizes } from '../cli/commands/bench.js';

describe('bench allreduce', () => {
  it('parses sizes with binary units', () => {
    expect(parseSizes('4K,64K,1M,16M,64M')).toEqual([4096, 65536, 1 << 20, 16 << 20, 64 << 20]);
    expect(parseSizes('8, 1G')).toEqual([8, 1 << 30]);
  });

  it('rejects invalid sizes', () => {
    expect(() => parseSizes('6')).toThrow(
      '--sizes: 6 must be a positive multiple of 4 bytes (float32), got 6',
    );
    expect(() => parseSizes('4Q')).toThrow('--sizes: invalid size "4Q"');
    expect(() => parseSizes('0')).toThrow('must be a positive multiple of 4 bytes');
  });

  it('computes nccl-tests bandwidths', () => {
    const result = summarize(4, { bytes: 1e9, timesMs: [3000, 1000, 2000] });

    expect(result.medianMs).toBe(2000);
    expect(result.algbwGBps).toBeCloseTo(0.5, 12);
    expect(result.busbwGBps).toBeCloseTo(0.75, 12);
  });

  it('measures a star of two processes', async () => {
    const printed: number[] = [];

    const results = await runAllReduceBench({ workers: 2, sizesBytes: [4096, 65536], reps: 3 }, (r) =>
      printed.push(r.bytes),
    );

    expect(printed).toEqual([4096, 65536]);
    for (const result of results) {
      expect(result.workers).toBe(2);
      expect(result.reps).toBe(3);
      expect(result.medianMs).toBeGreaterThan(0);
      expect(result.busbwGBps).toBeCloseTo(result.algbwGBps, 12);
    }
  }, 30_000);
});
