/** `native-bench compare --repeat N`: each figure's median over the runs, and the spread kept. */
import { describe, expect, it } from 'vitest';

import { median, medianRow, table, type CompareRow } from '../../native-bench/src/compare.js';
import type { FleetDiag } from '../../native-bench/src/fleet-probe.js';

const row = (name: string, rps: number, ttft: number | null, backends: Record<string, number> = {}): CompareRow => ({
  name, requests_per_s: rps, output_tokens_per_s: rps * 256, ttft_p50_ms: ttft, ttft_p99_ms: ttft === null ? null : ttft * 3,
  itl_p50_ms: 10, itl_p99_ms: 20, goodput_rps: null, errors: 0, steady_state_rps: rps, overhead_p50_ms: 15, cache_hit_rate: 0.5, backends,
});

describe('compare --repeat', () => {
  it('takes the median of the finite values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([null, 5, Number.NaN])).toBe(5);
    expect(median([null])).toBeNull();
  });

  it('takes each figure\'s median on its own, not the figures of the median run', () => {
    const m = medianRow([row('default', 1, 900, { a: 10 }), row('default', 3, 100, { a: 30, b: 2 }), row('default', 2, 500, { a: 20 })]);
    expect(m.requests_per_s).toBe(2);
    expect(m.ttft_p50_ms).toBe(500);
    expect(m.ttft_p99_ms).toBe(1500);
    expect(m.backends).toEqual({ a: 20, b: 0 });
    expect(m.name).toBe('default');
  });

  it('prints the ratios of medians and every run\'s value', () => {
    const perRun = { default: [row('default', 6, 100), row('default', 9, 120), row('default', 7, 90)], random: [row('random', 3, 1000), row('random', 2, 800), row('random', 3.5, 1200)] };
    const text = table({
      workload: 'long-prefix', repeat: 3, per_run: perRun,
      configs: [medianRow(perRun.default), medianRow(perRun.random)],
      spread: { default: { requests_per_s: [6, 9], ttft_p50_ms: [90, 120] }, random: { requests_per_s: [2, 3.5], ttft_p50_ms: [800, 1200] } },
    });
    expect(text).toMatch(/Medians of 3 runs/);
    // 7 / 3 req/s and 100 / 1000 ms.
    expect(text).toMatch(/\| default \| 7\.00 \| 2\.33x \|.*\| 0\.10x \|/);
    expect(text).toMatch(/\| default \| 6\.00-9\.00 \| 90-120 \| 6\.00, 9\.00, 7\.00 \| 100, 120, 90 \|/);
  });

  it('takes the median of each engine figure and prints what the engines did', () => {
    const diag = (busy: number, prefill: number, loop: number): FleetDiag => ({
      samples: 10, waiting_mean: busy * 10, running_mean: 100, spread_mean: 2.5, preemptions: 3, evictions: 0, prefill_tokens: prefill,
      busy_share: busy, engine_lag_ms_p50: 0, engine_lag_ms_max: 0, loop_delay_ms_p50: 10, loop_delay_ms_p99: loop,
    });
    const runs = [0.9, 0.5, 0.7].map((b, i) => ({ ...row('default', 5, 100), overhead_p50_ms: [12, 1400, 20][i], fleet: diag(b, [2e6, 1e6, 3e6][i], [40, 400, 90][i]) }));
    const m = medianRow(runs);
    expect(m.fleet).toMatchObject({ busy_share: 0.7, prefill_tokens: 2e6, loop_delay_ms_p99: 90, waiting_mean: 7 });
    const text = table({ workload: 'low-sharing', configs: [m, row('random', 5, 100)] });
    expect(text).toMatch(/What the simulated engines did/);
    expect(m.overhead_p50_ms).toBe(20);
    expect(text).toMatch(/\| default \| 70% \| 7 \| 100 \| 2\.5 \| 3 \| 2\.00M \| 90 \| 20 \|/);
    // A row without engine figures (a skipped configuration) is left out of that table.
    expect(text).not.toMatch(/\| random \| \d+% \|/);
  });
});
