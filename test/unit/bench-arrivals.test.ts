import { describe, expect, it } from 'vitest';

import { arrivalProcess, arrivalTimes } from '../../native-bench/src/arrivals.js';
import { Rng } from '../../native-bench/src/rng.js';

function gapStats(gaps: number[]): { mean: number; cv: number } {
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  const variance = gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / (gaps.length - 1);
  return { mean, cv: Math.sqrt(variance) / mean };
}

function gaps(kind: 'poisson' | 'gamma', rate: number, cv: number | undefined, n: number, seed = 7): number[] {
  const p = arrivalProcess({ kind, rate, cv, seed });
  return Array.from({ length: n }, () => p.nextGapMs());
}

describe('bench arrival processes', () => {
  it('Poisson arrivals have the asked mean rate and a coefficient of variation of 1', () => {
    const { mean, cv } = gapStats(gaps('poisson', 50, undefined, 100_000));
    expect(1000 / mean).toBeGreaterThan(50 * 0.98);
    expect(1000 / mean).toBeLessThan(50 * 1.02);
    expect(cv).toBeGreaterThan(0.98);
    expect(cv).toBeLessThan(1.02);
  });

  it.each([0.5, 1, 2, 4])('gamma arrivals keep the mean rate with CV %s', (want) => {
    const { mean, cv } = gapStats(gaps('gamma', 200, want, 200_000));
    expect(1000 / mean).toBeGreaterThan(200 * 0.97);
    expect(1000 / mean).toBeLessThan(200 * 1.03);
    expect(cv).toBeGreaterThan(want * 0.95);
    expect(cv).toBeLessThan(want * 1.05);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    expect(gaps('gamma', 10, 2, 5, 3)).toEqual(gaps('gamma', 10, 2, 5, 3));
    expect(gaps('poisson', 10, undefined, 5, 3)).not.toEqual(gaps('poisson', 10, undefined, 5, 4));
  });

  it('schedules the first request at time zero and then accumulates gaps', () => {
    const t = arrivalTimes(arrivalProcess({ kind: 'poisson', rate: 100, seed: 1 }), 1000);
    expect(t[0]).toBe(0);
    for (let i = 1; i < t.length; i++) expect(t[i]).toBeGreaterThanOrEqual(t[i - 1]);
    // 1000 arrivals at 100/s span about 10 s.
    expect(t[999]).toBeGreaterThan(9000);
    expect(t[999]).toBeLessThan(11000);
  });

  it('rejects a non-positive rate or CV', () => {
    expect(() => arrivalProcess({ kind: 'poisson', rate: 0, seed: 1 })).toThrow(/rate/);
    expect(() => arrivalProcess({ kind: 'gamma', rate: 1, cv: 0, seed: 1 })).toThrow(/CV/);
  });

  it('draws gamma deviates with the asked mean for small and large shapes', () => {
    for (const [k, theta] of [[0.25, 4], [3, 2]] as const) {
      const rng = new Rng(11);
      let sum = 0;
      const n = 100_000;
      for (let i = 0; i < n; i++) sum += rng.gamma(k, theta);
      expect(sum / n).toBeGreaterThan(k * theta * 0.97);
      expect(sum / n).toBeLessThan(k * theta * 1.03);
    }
  });
});
