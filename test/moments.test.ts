import { describe, expect, it } from 'vitest';
import { biasedVariance, emptyMoments, mergeAllMoments, type Moments } from '../shared/model/moments.js';

// Chan's merge of uneven parts, including an empty one, must equal the moments of the whole batch
// computed directly in float64.

function momentsOf(values: number[][]): Moments {
  const channels = values[0]?.length ?? 1;
  const count = values.length;
  const mean = new Float64Array(channels);
  const m2 = new Float64Array(channels);
  if (count === 0) return emptyMoments(channels);
  for (let c = 0; c < channels; c++) {
    mean[c] = values.reduce((s, v) => s + v[c]!, 0) / count;
    m2[c] = values.reduce((s, v) => s + (v[c]! - mean[c]!) ** 2, 0);
  }
  return { count, mean, m2 };
}

const rows = Array.from({ length: 23 }, (_, i) => [Math.sin(i) * 7 + 1000, (i % 5) - 2.5]);

describe('mergeAllMoments', () => {
  it('equals the whole batch for uneven parts with an empty one', () => {
    const parts = [rows.slice(0, 10), rows.slice(10, 10), rows.slice(10, 13), rows.slice(13)].map((p) =>
      p.length === 0 ? emptyMoments(2) : momentsOf(p),
    );
    const merged = mergeAllMoments(parts, 2);
    const whole = momentsOf(rows);
    expect(merged.count).toBe(23);
    for (let c = 0; c < 2; c++) {
      expect(merged.mean[c]).toBeCloseTo(whole.mean[c]!, 10);
      expect(merged.m2[c]! / whole.m2[c]!).toBeCloseTo(1, 10);
    }
  });

  it('leaves a part unchanged when merged with an empty one', () => {
    const part = momentsOf(rows.slice(0, 4));
    const merged = mergeAllMoments([emptyMoments(2), part, emptyMoments(2)], 2);
    expect(Array.from(merged.mean)).toEqual(Array.from(part.mean));
    expect(Array.from(merged.m2)).toEqual(Array.from(part.m2));
  });

  it('keeps a large offset accurate where E[x²] − E[x]² cancels', () => {
    // Values 1e4 + {0, 1}: float32 E[x²] − E[x]² loses the 0.25 variance entirely.
    const values = Array.from({ length: 1000 }, (_, i) => [1e4 + (i % 2)]);
    const merged = mergeAllMoments([momentsOf(values.slice(0, 333)), momentsOf(values.slice(333))], 1);
    expect(biasedVariance(merged)[0]).toBeCloseTo(0.25, 10);
  });

  it('rejects parts with different channel counts', () => {
    expect(() => mergeAllMoments([emptyMoments(2), emptyMoments(3)], 2)).toThrow(/2 and 3 channels/);
  });
});
