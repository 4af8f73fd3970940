import { describe, expect, it } from 'vitest';
import { memoryTrend } from '../../native-bench/src/soak.js';

/** A 600 s run sampled every 10 s. */
const times = Array.from({ length: 60 }, (_, i) => (i + 1) * 10);

describe('native-bench soak: memory trend', () => {
  it('RSS swinging with GC around a flat level is flat; one high sample decides nothing', () => {
    // ±25 MB around 200 MB, with a spike to 250 MB right after warm-up.
    const samples = times.map((t, i) => ({ t, rssMb: t === 130 ? 250 : 200 + (i % 2 === 0 ? 25 : -25) }));
    const m = memoryTrend(samples, [], 600, 10);
    expect(m.warmUpS).toBe(120);
    expect(m.windowS).toBe(120);
    expect(m.rssMb.max).toBe(250);
    expect(Math.abs(m.rssMb.windowGrowthPct)).toBeLessThan(10);
    expect(m.heapAfterGcMb).toBeNull();
  });

  it('RSS that keeps growing shows as window growth; so does the heap after GC', () => {
    const samples = times.map((t) => ({ t, rssMb: 150 + t / 5 })); // +2 MB per 10 s
    const gc = [60, 120, 180, 240, 300, 360, 420, 480, 540, 600].map((t) => ({ t, heapUsedMb: 50 + t / 20, externalMb: 14 }));
    const m = memoryTrend(samples, gc, 600, 10);
    // First window: samples at 120-230 s (mean 185); last window: 490-600 s (mean 259).
    expect(m.rssMb.firstWindowMean).toBe(185);
    expect(m.rssMb.lastWindowMean).toBe(259);
    expect(m.rssMb.windowGrowthPct).toBeGreaterThan(10);
    expect(m.heapAfterGcMb).toMatchObject({ firstAt: 120, first: 56, lastAt: 600, last: 80 });
    expect(m.heapAfterGcMb!.growthPct).toBeCloseTo(42.9, 1);
  });
});
