/**
 * Statistics over every sample: percentiles are exact (nearest-rank on a sorted copy of all the
 * samples, no histogram and no sampling), so p99 of 1,000 values is the 990th smallest.
 */

/** A distribution summary; units are those of the samples. */
export interface Dist {
  count: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

/** Nearest-rank percentile (q in [0, 1]) of an ascending-sorted array: the ceil(q*n)-th value. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n - 1e-9)));
  return sorted[rank - 1];
}

/** Summary of the finite samples in `values` (null when there are none). */
export function summarize(values: ArrayLike<number>): Dist | null {
  const sorted = new Float64Array(values.length);
  let n = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      sorted[n++] = v;
      sum += v;
    }
  }
  if (n === 0) return null;
  const s = sorted.subarray(0, n).sort();
  return {
    count: n,
    mean: sum / n,
    min: s[0],
    p50: percentile(s, 0.5),
    p90: percentile(s, 0.9),
    p95: percentile(s, 0.95),
    p99: percentile(s, 0.99),
    p999: percentile(s, 0.999),
    max: s[n - 1],
  };
}

/** An append-only Float64 sample store that grows by doubling. */
export class Samples {
  #buf: Float64Array;
  #n = 0;

  constructor(initial = 1024) {
    this.#buf = new Float64Array(Math.max(16, initial));
  }

  get length(): number {
    return this.#n;
  }

  push(v: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = v;
  }

  /** A copy of the samples, in insertion order. */
  toArray(): Float64Array {
    return this.#buf.slice(0, this.#n);
  }
}

/** What goodput counts: a request is good when it succeeded and met every SLO given. */
export interface Slo {
  /** Time to first token bound, ms (simulated). */
  ttftMs?: number;
  /** Inter-token latency bound, ms (simulated), applied to each request's mean ITL (its TPOT). */
  itlMs?: number;
}

/** The per-request figures goodput needs. */
export interface SloSample {
  ok: boolean;
  ttftMs?: number;
  /** Mean inter-token latency of the request; undefined when it streamed a single token chunk. */
  itlMeanMs?: number;
}

/**
 * True when a request meets the SLO: it succeeded, its TTFT is within `ttftMs`, and its mean
 * inter-token latency (time per output token after the first, DistServe's and vLLM's TPOT) is
 * within `itlMs`. A request with a single token chunk has no inter-token latency and passes that
 * bound. A missing bound always passes.
 */
export function meetsSlo(r: SloSample, slo: Slo): boolean {
  if (!r.ok) return false;
  if (slo.ttftMs !== undefined && !(r.ttftMs !== undefined && r.ttftMs <= slo.ttftMs)) return false;
  if (slo.itlMs !== undefined && r.itlMeanMs !== undefined && !(r.itlMeanMs <= slo.itlMs)) return false;
  return true;
}

export interface Goodput {
  slo_ttft_ms: number | null;
  slo_itl_ms: number | null;
  /** How ITL is judged per request. */
  itl_rule: 'per-request mean ITL (TPOT)';
  /** Requests that met the SLO. */
  requests: number;
  /** Of all attempts (sent + rejected), the share that met the SLO. */
  fraction: number;
  /** Requests meeting the SLO per simulated second. */
  rps: number;
}

/** Goodput of `rs` over `durationS` seconds; `attempts` defaults to rs.length. */
export function goodput(rs: readonly SloSample[], slo: Slo, durationS: number, attempts = rs.length): Goodput {
  let met = 0;
  for (const r of rs) if (meetsSlo(r, slo)) met++;
  return {
    slo_ttft_ms: slo.ttftMs ?? null,
    slo_itl_ms: slo.itlMs ?? null,
    itl_rule: 'per-request mean ITL (TPOT)',
    requests: met,
    fraction: attempts > 0 ? met / attempts : 0,
    rps: durationS > 0 ? met / durationS : 0,
  };
}
