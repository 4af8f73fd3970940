import { describe, expect, it } from 'vitest';

import { StreamClock } from '../../native-bench/src/timing.js';

/**
 * Replays one streamed response: the engine emits token chunks at the given simulated times; the
 * wall clock sees each at sim_t / k plus a fixed real overhead (router and network), which the
 * time scale does not compress.
 */
function replay(k: number, overheadMs: number, simTokens: number[], simEnd: number, withSimT = true): StreamClock {
  const t0 = 5000;
  const c = new StreamClock(k, t0);
  for (const s of simTokens) c.token(t0 + s / k + overheadMs, withSimT ? s : undefined);
  c.chunk(withSimT ? simEnd : undefined);
  return c;
}

describe('bench sim_t accounting', () => {
  it('measures TTFT as sim_t of the first token plus the unscaled real overhead', () => {
    const c = replay(10, 7, [500, 520, 540, 600], 600);
    expect(c.source).toBe('sim');
    expect(c.overheadMs).toBeCloseTo(7, 9);
    expect(c.ttftMs).toBeCloseTo(507, 9);
  });

  it('measures ITL as differences of sim_t, whatever the wall clock did', () => {
    const t0 = 0;
    const c = new StreamClock(10, t0);
    // Wall arrival times bunched (a batched write), sim_t tells the truth.
    c.token(60, 500);
    c.token(61, 520);
    c.token(61, 540);
    c.token(75, 600);
    expect(c.itls).toEqual([20, 20, 60]);
    expect(c.itlMeanMs).toBeCloseTo(100 / 3, 9);
    expect(c.itlMax).toBe(60);
    expect(c.chunks).toBe(4);
  });

  it('gives the same latencies whatever the time scale', () => {
    const sim = [800, 830, 860, 890];
    const ref = replay(1, 4, sim, 900);
    for (const k of [2, 10, 100]) {
      const c = replay(k, 4, sim, 900);
      expect(c.ttftMs).toBeCloseTo(ref.ttftMs, 6);
      expect(c.itls).toEqual(ref.itls);
      const endRef = 5000 + 900 / 1 + 4;
      const end = 5000 + 900 / k + 4;
      expect(c.e2eMs(end)).toBeCloseTo(ref.e2eMs(endRef), 6);
      expect(c.e2eMs(end)).toBeCloseTo(904, 6);
    }
  });

  it('never counts negative overhead', () => {
    const c = new StreamClock(10, 0);
    c.token(40, 500); // the wall clock says 40 ms, sim_t / k says 50 ms
    expect(c.overheadMs).toBe(0);
    expect(c.ttftMs).toBe(500);
  });

  it('scales wall times by k when chunks carry no sim_t (plain wall time at k = 1)', () => {
    const c = replay(1, 0, [100, 110, 125], 125, false);
    expect(c.source).toBe('wall');
    expect(c.ttftMs).toBeCloseTo(100, 9);
    expect(c.itls.map((x) => Math.round(x * 1e6) / 1e6)).toEqual([10, 15]);
    expect(Number.isNaN(c.overheadMs)).toBe(true);
    const k4 = replay(4, 0, [100, 110, 125], 125, false);
    expect(k4.ttftMs).toBeCloseTo(100, 9);
    expect(k4.itls[1]).toBeCloseTo(15, 9);
  });

  it('ends no earlier than the first token and adds the overhead at the end', () => {
    const c = new StreamClock(10, 0);
    c.token(52, 500);
    c.token(62, 600);
    c.chunk(600);
    expect(c.e2eMs(70)).toBeCloseTo(610, 9); // wall e2e 70 vs 600 / 10: 10 ms of real overhead
    const d = new StreamClock(10, 0);
    d.token(90, 500);
    d.chunk(500);
    expect(d.e2eMs(60)).toBe(d.ttftMs);
  });

  it('times a whole (non-streaming) answer from sim_timing', () => {
    const c = new StreamClock(10, 0);
    c.whole(65, 300, 600); // wall 65 ms vs sim e2e 600 / 10 = 60: 5 ms of overhead
    expect(c.ttftMs).toBeCloseTo(305, 9);
    expect(c.e2eMs(65)).toBeCloseTo(605, 9);
    expect(c.itls).toEqual([]);
  });
});
