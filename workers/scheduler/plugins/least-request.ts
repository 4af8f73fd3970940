/**
 * least-request, a filter and a score plugin under one name, as in Kthena
 * (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/least_request.go).
 *
 * Filter: keep pods whose engine queue (waiting) is below maxWaitingRequests; a pod with unknown
 * metrics (scrape not fresh, or the seqlock read gave up) is kept.
 *
 * Score. Two load signals: the router's zero-lag in-flight count (exact across workers) and the
 * engine's running count (one scrape interval old). In-flight beyond what the engine reports
 * running is queued somewhere and weighs 100x:
 *   base = inflight + 100 * max(inflight - running, 0)      (running unknown: base = inflight)
 * where inflight = this replica's count + the other replicas' (kEpRemoteInflight, shared through
 * Redis when REDIS_HOST is set, at most one 50 ms refresh old; 0 otherwise). The view adds the two
 * when it loads the record (workers/scheduler/endpoint-view.ts): one plain read per endpoint, and
 * `running`, which the engine counts over every replica's requests, is compared with the
 * cluster-wide in-flight, as Kthena's Redis counter does.
 *   score = int((max(base) - base) / max(base) * 100), or 100 for every pod when max(base) = 0.
 */
import { kVInflight, kVKnown, kVRunning, kVWaiting } from '../endpoint-view.js';
import { definePlugin, kScoredAll, type DecisionContext, type FilterPlugin, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

/** Kthena's waiting-request weight in the least-request base score. */
const kWaitingWeight = 100;

export class LeastRequestFilter implements FilterPlugin {
  readonly name = 'least-request';
  readonly consumesMetrics = true;
  constructor(readonly maxWaitingRequests: number) {}

  filter(ctx: DecisionContext): number {
    const d = ctx.view.data;
    const base = ctx.view.base;
    const cand = ctx.cand;
    const m = ctx.m;
    const max = this.maxWaitingRequests;
    let w = 0;
    for (let k = 0; k < m; k++) {
      const i = cand[k];
      const b = base[i];
      if (d[b + kVKnown] === 0 || d[b + kVWaiting] < max) cand[w++] = i;
    }
    return w;
  }
}

export class LeastRequestScore implements ScorePlugin {
  readonly name = 'least-request';
  readonly consumesMetrics = true;
  readonly partial = false;
  readonly pure = false;

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const d = ctx.view.data;
    const base = ctx.view.base;
    const cand = ctx.cand;
    const loads = ctx.tmp;
    const m = ctx.m;
    let max = 0;
    for (let k = 0; k < m; k++) {
      const b = base[cand[k]];
      const f = d[b + kVInflight];
      let load = f;
      if (d[b + kVKnown] !== 0) {
        const queued = f - d[b + kVRunning];
        if (queued > 0) load += kWaitingWeight * queued;
      }
      loads[k] = load;
      if (load > max) max = load;
    }
    if (max > 0) {
      for (let k = 0; k < m; k++) total[k] += Math.trunc(((max - loads[k]) / max) * 100) * w;
    } else {
      for (let k = 0; k < m; k++) total[k] += 100 * w;
    }
    return kScoredAll;
  }
}

export const leastRequest = definePlugin({
  name: 'least-request',
  args: { maxWaitingRequests: { type: 'int', min: 1, max: 1_000_000, default: 10 } },
  filter: (a) => new LeastRequestFilter(a.maxWaitingRequests),
  score: () => new LeastRequestScore(),
});
