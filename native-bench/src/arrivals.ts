/**
 * Open-loop arrival processes: the gaps between request send times, in simulated milliseconds.
 *
 * - `poisson`: exponential gaps with mean 1000/rate (coefficient of variation 1).
 * - `gamma`: gamma-distributed gaps with the same mean and a chosen coefficient of variation
 *   (`--burstiness CV`): shape k = 1/CV^2, scale = mean/k. CV > 1 is burstier than Poisson (clumps
 *   of near-simultaneous arrivals separated by long gaps), CV < 1 smoother, CV = 1 is Poisson.
 *   Note vLLM's and SGLang's `--burstiness` is the gamma *shape* k, not the CV: their burstiness b
 *   is our CV 1/sqrt(b) (b = 0.25 is CV 2).
 *
 * Sends follow the schedule whatever the responses do (see runner.ts); that is what makes the
 * measured latencies free of coordinated omission.
 */

import { Rng } from './rng.js';

export type ArrivalKind = 'poisson' | 'gamma';

export interface ArrivalOptions {
  kind: ArrivalKind;
  /** Mean arrival rate in requests per (simulated) second. */
  rate: number;
  /** Coefficient of variation of the gaps for `gamma` (default 1). Ignored for `poisson`. */
  cv?: number;
  seed: number;
}

/** A source of inter-arrival gaps in milliseconds. */
export interface ArrivalProcess {
  readonly kind: ArrivalKind;
  readonly rate: number;
  readonly cv: number;
  /** The next gap, in ms. */
  nextGapMs(): number;
}

export function arrivalProcess(o: ArrivalOptions): ArrivalProcess {
  if (!(o.rate > 0)) throw new RangeError(`arrival rate must be a positive number or Infinity, got ${o.rate}`);
  // vLLM's request rate inf: every request at once.
  if (o.rate === Infinity) return { kind: o.kind, rate: o.rate, cv: 0, nextGapMs: () => 0 };
  const rng = Rng.stream(o.seed, 'arrivals');
  const meanMs = 1000 / o.rate;
  if (o.kind === 'poisson') {
    return { kind: 'poisson', rate: o.rate, cv: 1, nextGapMs: () => rng.exponential(meanMs) };
  }
  if (o.kind !== 'gamma') throw new RangeError(`unknown arrival process ${String(o.kind)}: poisson or gamma`);
  const cv = o.cv ?? 1;
  if (!(cv > 0) || !Number.isFinite(cv)) throw new RangeError(`burstiness (CV) must be a positive number, got ${cv}`);
  const shape = 1 / (cv * cv);
  const scale = meanMs / shape;
  return { kind: 'gamma', rate: o.rate, cv, nextGapMs: () => rng.gamma(shape, scale) };
}

/** The first `n` arrival times (ms from the start; the first request goes at 0). */
export function arrivalTimes(p: ArrivalProcess, n: number): Float64Array {
  const out = new Float64Array(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    out[i] = t;
    t += p.nextGapMs();
  }
  return out;
}
