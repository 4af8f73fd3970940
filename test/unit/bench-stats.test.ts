import { describe, expect, it } from 'vitest';

import { Samples, goodput, meetsSlo, percentile, summarize } from '../../native-bench/src/stats.js';

describe('bench statistics', () => {
  it('computes nearest-rank percentiles exactly over every sample', () => {
    const v = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1..1000, unsorted
    const d = summarize(v)!;
    expect(d.count).toBe(1000);
    expect(d.min).toBe(1);
    expect(d.max).toBe(1000);
    expect(d.mean).toBe(500.5);
    expect(d.p50).toBe(500);
    expect(d.p90).toBe(900);
    expect(d.p95).toBe(950);
    expect(d.p99).toBe(990);
    expect(d.p999).toBe(999);
  });

  it('takes the ceil(q*n)-th value on small sets, without interpolation', () => {
    const s = Float64Array.from([10, 20, 30, 40]);
    expect(percentile(s, 0.5)).toBe(20);
    expect(percentile(s, 0.51)).toBe(30);
    expect(percentile(s, 0.99)).toBe(40);
    expect(percentile(s, 0)).toBe(10);
    // 0.9 * 10 is 9.000000000000002 in floating point: still the 9th value.
    expect(percentile(Float64Array.from({ length: 10 }, (_, i) => i + 1), 0.9)).toBe(9);
    expect(Number.isNaN(percentile(new Float64Array(0), 0.5))).toBe(true);
  });

  it('ignores non-finite samples and returns null for none', () => {
    expect(summarize([])).toBeNull();
    expect(summarize([NaN, Infinity])).toBeNull();
    const d = summarize([5, NaN, 7])!;
    expect(d.count).toBe(2);
    expect(d.p50).toBe(5);
    expect(d.max).toBe(7);
  });

  it('grows a sample store without losing values', () => {
    const s = new Samples(16);
    for (let i = 0; i < 1000; i++) s.push(i);
    expect(s.length).toBe(1000);
    const a = s.toArray();
    expect(a[0]).toBe(0);
    expect(a[999]).toBe(999);
  });

  it('counts as good only successful requests meeting both TTFT and mean-ITL bounds', () => {
    const slo = { ttftMs: 100, itlMs: 10 };
    expect(meetsSlo({ ok: true, ttftMs: 100, itlMeanMs: 10 }, slo)).toBe(true);
    expect(meetsSlo({ ok: true, ttftMs: 101, itlMeanMs: 5 }, slo)).toBe(false);
    expect(meetsSlo({ ok: true, ttftMs: 50, itlMeanMs: 10.5 }, slo)).toBe(false);
    expect(meetsSlo({ ok: false, ttftMs: 1, itlMeanMs: 1 }, slo)).toBe(false);
    // A single-chunk answer has no inter-token latency: only TTFT applies.
    expect(meetsSlo({ ok: true, ttftMs: 50 }, slo)).toBe(true);
    expect(meetsSlo({ ok: true, ttftMs: 500, itlMeanMs: 1 }, { itlMs: 10 })).toBe(true);
  });

  it('reports goodput per second of run and as a share of attempts', () => {
    const rs = [
      { ok: true, ttftMs: 50, itlMeanMs: 5 },
      { ok: true, ttftMs: 150, itlMeanMs: 5 },
      { ok: true, ttftMs: 50, itlMeanMs: 15 },
      { ok: true, ttftMs: 80, itlMeanMs: 9 },
      { ok: false },
    ];
    const g = goodput(rs, { ttftMs: 100, itlMs: 10 }, 2, 8);
    expect(g.requests).toBe(2);
    expect(g.rps).toBe(1);
    expect(g.fraction).toBe(0.25);
    expect(g.slo_ttft_ms).toBe(100);
    expect(g.slo_itl_ms).toBe(10);
    expect(goodput(rs, { ttftMs: 100 }, 0).rps).toBe(0);
  });
});
