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
 *   list, so it is tried only when every healthy choice failed. When more than
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
  let ejectedAll = 0;
  for (let i = 0; i < endpoints.length; i++) if (Atomics.load(ep, epIndex(endpoints[i].slot, kEpEjectedUntilSec)) > now) ejectedAll++;
  if (ejectedAll * 100 > p.maxEjectionPercent * endpoints.length) return;
  // Stable partition, healthy first (n <= 5: a small scratch copy is fine).
  const copy = ranked.slice(0, n);
  let w = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < n; i++) {
      const ejected = Atomics.load(ep, epIndex(endpoints[copy[i]].slot, kEpEjectedUntilSec)) > now;
      if (ejected === (pass === 1)) ranked[w++] = copy[i];
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
