/**
 * Passive outlier detection (Envoy's `outlier_detection`, consecutive-failure flavour), in the
 * shared endpoint slots so that every worker sees the same state (src/shared/layout.ts:
 * kEpConsecFailures, kEpEjectedUntilSec, kEpEjections).
 *
 * - `consecutive` failed attempts in a row on an endpoint (connect error, reset, header or idle
 *   timeout, 5xx; a client abort is not the pod's fault) eject it for base × ejections seconds
 *   (capped at 300 s): a dead or hung pod stops getting first attempts (issue 18: a dead pod still
 *   received 445 first attempts, a SIGSTOPped one cut throughput from 155 to 10-40 req/s).
 * - Ejection demotes: an ejected endpoint moves behind the healthy ones in a request's ranked
 *   list, so it is tried only when every healthy choice failed. On a prefill/decode server a pair
 *   with an ejected prefill or decode pod moves behind the healthy pairs (docs/pd.md). When more than
 *   `maxEjectionPercent` of a server's endpoints are ejected nothing is demoted (Envoy's panic
 *   mode): ejecting most of a pool would overload the rest.
 * - A success resets the count; an ejection ends by time (the next failure after it ejects again,
 *   for longer).
 */
import { epIndex, kEpConsecFailures, kEpEjectedUntilSec, kEpEjections } from '../src/shared/layout.js';
import type { MetricJSON } from '../src/shared/metric-json.js';

export interface OutlierPolicy {
  /** Consecutive failures that eject an endpoint; 0 disables outlier detection. */
  consecutive: number;
  /** First ejection, seconds; the n-th lasts n times as long (max 300 s). */
  baseEjectionSec: number;
  /** Most endpoints of one server ejected at once, percent. */
  maxEjectionPercent: number;
}

export const OUTLIER_EJECTIONS_TOTAL = 'kthena_router_outlier_ejections_total';
const kMaxEjectionSec = 300;

let ejections = 0;

const nowSec = (): number => Math.floor(Date.now() / 1000);

/** An attempt on `slot` failed; true when this failure ejected the endpoint. */
export function outlierFailure(ep: Int32Array, slot: number, p: OutlierPolicy): boolean {
  if (p.consecutive <= 0) return false;
  const before = Atomics.add(ep, epIndex(slot, kEpConsecFailures), 1);
  // Exactly one worker sees the count reach the threshold.
  if (before + 1 !== p.consecutive) return false;
  Atomics.store(ep, epIndex(slot, kEpConsecFailures), 0);
  const n = Atomics.add(ep, epIndex(slot, kEpEjections), 1) + 1;
  Atomics.store(ep, epIndex(slot, kEpEjectedUntilSec), nowSec() + Math.min(kMaxEjectionSec, p.baseEjectionSec * n));
  ejections++;
  return true;
}

/** True while the endpoint in `slot` is ejected. */
export function ejectedNow(ep: Int32Array, slot: number): boolean {
  return Atomics.load(ep, epIndex(slot, kEpEjectedUntilSec)) > nowSec();
}

/** An attempt on `slot` succeeded (a response ended without error). */
export function outlierSuccess(ep: Int32Array, slot: number): void {
  if (Atomics.load(ep, epIndex(slot, kEpConsecFailures)) !== 0) Atomics.store(ep, epIndex(slot, kEpConsecFailures), 0);
}

/**
 * Moves ejected endpoints behind the others in ranked[0..n) (stable), unless more than the
 * policy's share of `endpoints` is ejected. `ranked` holds indexes into `endpoints`.
 */
export function demoteEjected(ep: Int32Array, endpoints: readonly { slot: number }[], ranked: Int32Array, n: number, p: OutlierPolicy): void {
  if (p.consecutive <= 0 || n <= 1) return;
  const now = nowSec();
  let ejectedRanked = 0;
  for (let i = 0; i < n; i++) if (Atomics.load(ep, epIndex(endpoints[ranked[i]].slot, kEpEjectedUntilSec)) > now) ejectedRanked++;
  if (ejectedRanked === 0 || ejectedRanked === n) return;
  demoteBy(ep, endpoints, ranked, n, demotionClock(ep, endpoints, p));
}

/**
 * The second that ejections in `pool` are compared with, or 0 when none of its endpoints may be
 * demoted: detection off, none ejected, or more than the policy's share ejected (panic mode).
 * `pool` is what the share is counted over: a server's endpoints, or on a prefill/decode server
 * one role's pods across all its groups (each role is a pool of its own to overload).
 */
export function demotionClock(ep: Int32Array, pool: readonly { slot: number }[], p: OutlierPolicy): number {
  if (p.consecutive <= 0) return 0;
  const now = nowSec();
  let ejected = 0;
  for (let i = 0; i < pool.length; i++) if (Atomics.load(ep, epIndex(pool[i].slot, kEpEjectedUntilSec)) > now) ejected++;
  return ejected > 0 && ejected * 100 <= p.maxEjectionPercent * pool.length ? now : 0;
}

const ejectedAt = (ep: Int32Array, slot: number, clock: number): boolean =>
  clock > 0 && Atomics.load(ep, epIndex(slot, kEpEjectedUntilSec)) > clock;

/** Stable partition of ranked[0..n) (indexes into `endpoints`), healthy first, under `clock` (demotionClock). */
export function demoteBy(ep: Int32Array, endpoints: readonly { slot: number }[], ranked: Int32Array, n: number, clock: number): void {
  if (clock === 0 || n <= 1) return;
  // n <= 5 on the request path: a small scratch copy is fine.
  const copy = ranked.slice(0, n);
  let w = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < n; i++) {
      if (ejectedAt(ep, endpoints[copy[i]].slot, clock) === (pass === 1)) ranked[w++] = copy[i];
    }
  }
}

/**
 * Prefill/decode pairs: pair i is decode[pairDecode[i]] with pairPrefill[i]. Pairs with an ejected
 * decode pod (under `decodeClock`) or an ejected prefill pod (under `prefillClock`) move behind
 * the others, in order, as ejected pods do on the aggregated path.
 */
export function demoteEjectedPairs(
  ep: Int32Array, decode: readonly { slot: number }[], pairDecode: Int32Array, pairPrefill: { slot: number }[], n: number,
  decodeClock: number, prefillClock: number,
): void {
  if ((decodeClock === 0 && prefillClock === 0) || n <= 1) return;
  const d = pairDecode.slice(0, n);
  const pf = pairPrefill.slice(0, n);
  let w = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < n; i++) {
      const ejected = ejectedAt(ep, decode[d[i]].slot, decodeClock) || ejectedAt(ep, pf[i].slot, prefillClock);
      if (ejected === (pass === 1)) { pairDecode[w] = d[i]; pairPrefill[w] = pf[i]; w++; }
    }
  }
}

/** This worker's ejection counter (summed over workers by the control thread). */
export function outlierMetricsJSON(): MetricJSON[] {
  return [{
    name: OUTLIER_EJECTIONS_TOTAL, help: 'Endpoints ejected by passive outlier detection (consecutive failed attempts)',
    type: 'counter', values: [{ value: ejections, labels: {} }], aggregator: 'sum',
  }];
}
