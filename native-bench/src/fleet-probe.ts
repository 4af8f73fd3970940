/**
 * What the simulated fleet did during one `compare` run, sampled from the pods' own state (the
 * simulator runs in this process): where requests waited, how evenly the pods were loaded, how
 * much prefill the engines computed and how busy they were, and how late this process itself was.
 * These are the figures that explain a throughput or TTFT difference between two schedulers (and
 * tell a real difference from a machine that could not keep up with the engines).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

import type { SimFleet } from './sim/types.js';

export interface FleetDiag {
  /** Engine samples taken (every `everyMs` of wall time, every pod). */
  samples: number;
  /** Mean over samples of the pods' engine queue (waiting) and running counts, summed over pods. */
  waiting_mean: number;
  running_mean: number;
  /**
   * Mean over samples of max - min of (running + waiting) across pods: how unevenly the requests
   * in the engines were spread (0 = perfectly even).
   */
  spread_mean: number;
  preemptions: number;
  evictions: number;
  /** Prompt tokens the engines computed (uncached prefill and recomputation), all pods. */
  prefill_tokens: number;
  /** Engine busy time / (pods x simulated run time), 0..1. */
  busy_share: number | null;
  /** Simulated ms the pods' step clocks were behind their virtual clocks: p50 and max of the samples. */
  engine_lag_ms_p50: number;
  engine_lag_ms_max: number;
  /** This process's event-loop delay (the load generator and the pods share it), wall ms. */
  loop_delay_ms_p50: number;
  loop_delay_ms_p99: number;
}

export class FleetProbe {
  readonly #fleet: SimFleet;
  readonly #timer: NodeJS.Timeout;
  readonly #loop = monitorEventLoopDelay({ resolution: 10 });
  readonly #start: { busy: number; prefill: number; preempt: number; evict: number; virt: number };
  #samples = 0;
  #waiting = 0;
  #running = 0;
  #spread = 0;
  readonly #lags: number[] = [];

  constructor(fleet: SimFleet, everyMs = 250) {
    this.#fleet = fleet;
    this.#start = this.#totals();
    this.#loop.enable();
    this.#timer = setInterval(() => this.#sample(), everyMs);
    this.#timer.unref();
  }

  #totals(): { busy: number; prefill: number; preempt: number; evict: number; virt: number } {
    const t = { busy: 0, prefill: 0, preempt: 0, evict: 0, virt: 0 };
    for (const p of this.#fleet.pods) {
      const s = p.state();
      t.virt = Math.max(t.virt, s.virtualNowMs);
      const m = s.engineModel;
      if (m === undefined) continue;
      t.busy += m.busyMs;
      t.prefill += m.prefillTokensComputed;
      t.preempt += m.preemptions;
      t.evict += m.evictions;
    }
    return t;
  }

  #sample(): void {
    let min = Infinity;
    let max = -Infinity;
    for (const p of this.#fleet.pods) {
      const s = p.state();
      this.#lags.push(s.engineLagMs);
      const m = s.engineModel;
      if (m === undefined) continue;
      this.#waiting += m.waiting;
      this.#running += m.running;
      const load = m.waiting + m.running;
      if (load < min) min = load;
      if (load > max) max = load;
    }
    if (max >= min) this.#spread += max - min;
    this.#samples++;
  }

  stop(): FleetDiag {
    clearInterval(this.#timer);
    this.#loop.disable();
    const end = this.#totals();
    const n = Math.max(1, this.#samples);
    const lags = this.#lags.sort((a, b) => a - b);
    const elapsed = (end.virt - this.#start.virt) * this.#fleet.pods.length;
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    return {
      samples: this.#samples,
      waiting_mean: r2(this.#waiting / n),
      running_mean: r2(this.#running / n),
      spread_mean: r2(this.#spread / n),
      preemptions: end.preempt - this.#start.preempt,
      evictions: end.evict - this.#start.evict,
      prefill_tokens: end.prefill - this.#start.prefill,
      busy_share: elapsed > 0 ? r2((end.busy - this.#start.busy) / elapsed) : null,
      engine_lag_ms_p50: r2(lags.length > 0 ? lags[lags.length >> 1] : 0),
      engine_lag_ms_max: r2(lags.length > 0 ? lags[lags.length - 1] : 0),
      loop_delay_ms_p50: r2(this.#loop.percentile(50) / 1e6),
      loop_delay_ms_p99: r2(this.#loop.percentile(99) / 1e6),
    };
  }
}
