/**
 * Interval averages from cumulative engine counters, exactly as Kthena computes TTFT/TPOT
 * (docs/reference/kthena-behaviour.md §7, volcano-sh/kthena:pkg/kthena-router/backend/metrics):
 *
 *   avg = (sum_now - sum_prev) / (count_now - count_prev)
 *   - first observation (no previous totals)       -> 0
 *   - no new samples (count unchanged)             -> 0
 *   - counter reset (count or sum went down, e.g.
 *     the engine restarted)                         -> sum_now / count_now (0 if count_now is 0)
 * and a 0 result never overwrites the stored value: the last non-zero average is kept
 * (`keepNonZero`). The lag is one scrape interval: the value describes the requests that produced
 * a token between the last two scrapes.
 *
 * The prefix-cache hit rate follows the same shape over the (hits, queries) counters, with -1 as
 * "unknown" instead of 0, because 0 is a real hit rate.
 */
import type { HistogramTotals } from './engines.js';

export function histogramMean(prev: HistogramTotals | null, now: HistogramTotals): number {
  if (prev === null) return 0;
  if (now.count < prev.count || now.sum < prev.sum) return now.count > 0 ? now.sum / now.count : 0;
  const dc = now.count - prev.count;
  if (dc === 0) return 0;
  const v = (now.sum - prev.sum) / dc;
  return Number.isFinite(v) && v > 0 ? v : 0;
}

/** Kthena's rule for TTFT/TPOT: a 0 (no information) keeps what was stored. */
export function keepNonZero(stored: number, next: number): number {
  return next !== 0 ? next : stored;
}

export interface PrefixTotals {
  hits: number;
  queries: number;
}

/** Hit rate 0..1 over the interval, or -1 when the interval tells nothing (first look, no queries). */
export function prefixHitRate(prev: PrefixTotals | null, now: PrefixTotals): number {
  if (prev === null) return -1;
  if (now.queries < prev.queries || now.hits < prev.hits) {
    return now.queries > 0 ? clamp01(now.hits / now.queries) : -1;
  }
  const dq = now.queries - prev.queries;
  if (dq === 0) return -1;
  return clamp01((now.hits - prev.hits) / dq);
}

/** The hit-rate counterpart of keepNonZero: -1 (unknown) keeps what was stored. */
export function keepKnown(stored: number, next: number): number {
  return next >= 0 ? next : stored;
}

function clamp01(v: number): number {
  if (!Number.isFinite(v)) return -1;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
