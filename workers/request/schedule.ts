/**
 * Scheduling: filters, scores and the top-N pick over the shared endpoint state (workers/scheduler,
 * docs/scheduler.md), for the aggregated path and for prefill/decode pairs, then the first try.
 * kvcache-aware's scores come first when the profile has it (an await on /tokenize and Redis).
 */
import { failOverLate } from '../provider/fallback.js';
import type { CompiledEndpoint, CompiledServer, CompiledSnapshot } from '../compile.js';
import type { Profile } from '../scheduler/framework.js';
import { KvCacheAwareScorer } from '../scheduler/kvcache-aware.js';
import { workerRedis } from '../redis.js';
import { demoteBy, demoteEjected, demoteEjectedPairs, demotionClock, ejectedNow } from '../outlier.js';
import { dispatchAttempt, outlierPolicy, startAttempt } from './attempt.js';
import { startPair } from './attempt-pd.js';
import { pinBound, pinPod, stickyAttempt } from './sticky.js';
import { clientAborted, internalError, respondError } from './finish.js';
import type { RequestState, WorkerContext } from './state.js';

/** Kthena walks at most this many scheduled pods when no retry policy is set. */
const kDefaultFallbackPods = 5;

function kvAwareScorer(ctx: WorkerContext): KvCacheAwareScorer {
  if (ctx.kvAware === null) {
    const breaker = workerRedis(ctx.cfg.redis);
    ctx.kvAware = new KvCacheAwareScorer({ redis: breaker.client, breaker, avoid: (e) => ejectedNow(ctx.ep, e.slot) });
  }
  return ctx.kvAware;
}

/**
 * Schedules `server` for the request (st.profile and st.sreq set) and starts the first try; with
 * kvcache-aware in the profile, after its scores arrived.
 */
export function schedule(st: RequestState, snap: CompiledSnapshot<Profile>, server: CompiledServer): void {
  const run = server.pd !== null ? schedulePd : scheduleAggregated;
  if (!st.profile!.hasKvcacheAware) { run(st, server, null); return; }
  const extra = new Float64Array(server.endpoints.length);
  void kvAwareScorer(st.l.ctx).score(snap.ir.scheduler.args['kvcache-aware'], st.sreq!, server.endpoints, extra).then((ok) => {
    if (st.finished) return;
    try {
      if (st.aborted) clientAborted(st);
      else run(st, server, ok ? extra : null);
    } catch (err) {
      internalError(st, err);
    }
  }, (err: unknown) => {
    // score() never rejects by contract; a bug there must still end this request, not the worker.
    if (!st.finished) internalError(st, err);
  });
}

/** schedule() returned 0 (every candidate filtered out) or -1 (nothing scored). */
function schedulingFailed(st: RequestState, n: number): void {
  if (st.fallback !== null && failOverLate(st, 'scheduling_failed')) return;
  respondError(st, 'RTR_ERR_SCHEDULING', n === 0
    ? `pods have all been filtered out by ${JSON.stringify(st.l.ctx.scheduler.filteredBy)}`
    : 'no score plugin scored any pod');
}

/** The aggregated path. `extra` carries kvcache-aware's scores when the profile has it. */
export function scheduleAggregated(st: RequestState, server: CompiledServer, extra: Float64Array | null): void {
  const ctx = st.l.ctx;
  if (st.stickyRedisKey !== '') { scheduleStickyRedis(st, server, extra); return; }
  const scheduler = ctx.scheduler;
  // A session bound to a pod: every pod that passes the filters is ranked, so the bound one is
  // found wherever its score puts it (only for requests whose session has a live binding).
  const key = st.stickyKey;
  const bound = key !== null ? ctx.sticky.get(key[0], key[1]) : -1;
  const boundGen = ctx.sticky.lastGen;
  const ranked = new Int32Array(bound >= 0 ? Math.max(kDefaultFallbackPods, server.endpoints.length) : kDefaultFallbackPods);
  let n = scheduler.schedule(st.profile!, server.endpoints, st.sreq!, ranked, extra);
  if (n <= 0) {
    if (bound >= 0) ctx.sticky.delete(key![0], key![1]);
    schedulingFailed(st, n);
    return;
  }
  if (bound >= 0) n = pinBound(st, server, ranked, n, bound, boundGen, kDefaultFallbackPods);
  dispatchRanked(st, server, ranked, n, scheduler.takePrefixHashes());
}

/** Ejected pods last, the prefix hint, then the first try. */
function dispatchRanked(st: RequestState, server: CompiledServer, ranked: Int32Array, n: number, prefixHashes: RequestState['prefixHashes']): void {
  const ctx = st.l.ctx;
  const scheduler = ctx.scheduler;
  // Ejected pods (outlier detection) go behind the healthy ones: tried only if those fail (a
  // session's bound pod, pinned first above, keeps its place only when it is healthy).
  demoteEjected(ctx.ep, server.endpoints, ranked, n, outlierPolicy(ctx.cfg));
  st.prefixHashes = prefixHashes;
  // The chosen pod is recorded as holding the prompt's prefix now, at the decision, not only
  // once the response succeeded (Kthena): otherwise every request of a burst that shares a
  // prefix arrives before the first one finished, finds no entry and is spread at random, and
  // once they finish every pod holds the prefix, so affinity never forms (measured with
  // native-bench compare). A failed try leaves a stale hint; the pod that finally serves
  // is inserted by the post-schedule hook as before.
  scheduler.postSchedule(st.profile!, st.prefixHashes, server.endpoints[ranked[0]], st.sreq!.modelId);
  st.ranked = ranked;
  st.rankedCount = n;
  st.maxAttempts = server.retryAttempts >= 0 ? server.retryAttempts + 1 : n;
  dispatchAttempt(st, st.stickyKey !== null ? stickyAttempt : startAttempt);
}

/**
 * The aggregated path of a sticky request with the Redis binding store: every schedulable pod is
 * ranked, then one round trip binds the session to the best pod or returns its binding; a bound
 * pod this router cannot schedule is replaced by compare-and-set (a second round trip). Redis
 * unanswered: this router's table decides, as in memory mode.
 */
function scheduleStickyRedis(st: RequestState, server: CompiledServer, extra: Float64Array | null): void {
  const ctx = st.l.ctx;
  const scheduler = ctx.scheduler;
  const store = ctx.stickyRedis!;
  const ranked = new Int32Array(Math.max(kDefaultFallbackPods, server.endpoints.length));
  const n = scheduler.schedule(st.profile!, server.endpoints, st.sreq!, ranked, extra);
  if (n <= 0) { schedulingFailed(st, n); return; }
  // Taken now: the scheduler's buffer belongs to the next request once this one waits.
  const hashes = scheduler.takePrefixHashes();
  const best = server.endpoints[ranked[0]].key;
  const ttl = st.stickyTtlSec;
  const resume = (f: () => void): void => {
    if (st.finished) return;
    try {
      if (st.aborted) clientAborted(st);
      else f();
    } catch (err) {
      internalError(st, err);
    }
  };
  const fail = (err: unknown): void => { if (!st.finished) internalError(st, err); };
  void store.bind(st.stickyRedisKey, best, ttl).then((bound) => resume(() => {
    if (bound === null) {
      // Redis did not answer: this router's own table, exactly as in memory mode.
      const k = st.stickyKey!;
      const local = ctx.sticky.get(k[0], k[1]);
      const m = local >= 0 ? pinBound(st, server, ranked, n, local, ctx.sticky.lastGen, kDefaultFallbackPods) : Math.min(n, kDefaultFallbackPods);
      dispatchRanked(st, server, ranked, m, hashes);
      return;
    }
    if (pinPod(server, ranked, n, bound)) {
      st.stickyPod = bound;
      dispatchRanked(st, server, ranked, Math.min(n, kDefaultFallbackPods), hashes);
      return;
    }
    // The bound pod left this router's schedulable set (gone, or filtered out as overloaded).
    ctx.log('info', { requestId: st.rec.requestId, modelServer: server.key }, 'session-sticky pod is no longer schedulable; the session is bound again');
    void store.rebind(st.stickyRedisKey, bound, best, ttl).then((now) => resume(() => {
      // Another replica may have moved it first, to a pod this router schedules too: follow it.
      if (now !== null && pinPod(server, ranked, n, now)) st.stickyPod = now;
      dispatchRanked(st, server, ranked, Math.min(n, kDefaultFallbackPods), hashes);
    }), fail);
  }), fail);
}

/**
 * docs/reference/kthena-behaviour.md §4.1: the decode pods of every group go through the profile; for the decode pods chosen
 * the prefill pods of the same group are scheduled, once per group (Kthena: once per decode pod),
 * and the j-th decode pod of a group is paired with its j-th best prefill pod, so that a retry
 * after a failed pair tries another prefill pod too.
 */
export function schedulePd(st: RequestState, server: CompiledServer, extra: Float64Array | null): void {
  const ctx = st.l.ctx;
  const scheduler = ctx.scheduler;
  const pd = server.pd!;
  const profile = st.profile!;
  const sreq = st.sreq!;
  if (pd.decode.length === 0) { if (!failOverLate(st, 'scheduling_failed')) respondError(st, 'RTR_ERR_SCHEDULING', 'no decode pod found'); return; }
  const ranked = new Int32Array(kDefaultFallbackPods);
  const n = scheduler.schedule(profile, pd.decode, sreq, ranked, extra !== null ? gather(extra, pd.decodeIdx) : null);
  if (n <= 0) { schedulingFailed(st, n); return; }
  st.prefixHashes = scheduler.takePrefixHashes();
  // Outlier detection as on the aggregated path, each role capped by its own share: ejected
  // decode pods go behind the healthy ones before pairing (a healthy decode pod gets its group's
  // best prefill pod), ejected prefill pods behind the healthy ones of their group, and pairs
  // still holding an ejected pod behind the healthy pairs.
  const policy = outlierPolicy(ctx.cfg);
  const decodeClock = demotionClock(ctx.ep, pd.decode, policy);
  const prefillClock = demotionClock(ctx.ep, pd.prefill, policy);
  demoteBy(ctx.ep, pd.decode, ranked, n, decodeClock);
  // Prefill picks per group, best first; groups seen in ranked order (at most n of them).
  const groups: number[] = [];
  const wanted: number[] = [];
  for (let i = 0; i < n; i++) {
    const g = pd.decodeGroup[ranked[i]];
    const at = groups.indexOf(g);
    if (at < 0) { groups.push(g); wanted.push(1); } else wanted[at]++;
  }
  const picks: (Int32Array | null)[] = [];
  for (let j = 0; j < groups.length; j++) {
    const prefills = pd.prefillByGroup[groups[j]];
    if (prefills.length === 0) { picks.push(null); continue; }
    // Ranked as deep as the aggregated path (not only as many as the group's pairs), so an
    // ejected prefill pod has healthy ones to go behind.
    const out = new Int32Array(Math.min(kDefaultFallbackPods, prefills.length));
    const m = scheduler.schedule(profile, prefills, sreq, out, extra !== null ? gather(extra, pd.prefillIdxByGroup[groups[j]]) : null);
    demoteBy(ctx.ep, prefills, out, m, prefillClock);
    picks.push(m > 0 ? out.subarray(0, m) : null);
  }
  const used = new Int32Array(groups.length);
  const pairDecode = new Int32Array(n);
  const pairPrefill: CompiledEndpoint[] = [];
  for (let i = 0; i < n; i++) {
    const j = groups.indexOf(pd.decodeGroup[ranked[i]]);
    const pick = picks[j];
    if (pick === null) continue;
    pairDecode[pairPrefill.length] = ranked[i];
    pairPrefill.push(pd.prefillByGroup[groups[j]][pick[used[j]++ % pick.length]]);
  }
  if (pairPrefill.length === 0) { if (!failOverLate(st, 'scheduling_failed')) respondError(st, 'RTR_ERR_SCHEDULING', 'no valid prefill-decode pod pairs found'); return; }
  demoteEjectedPairs(ctx.ep, pd.decode, pairDecode, pairPrefill, pairPrefill.length, decodeClock, prefillClock);
  // Both pods of the first pair hold the prompt's prefix from now on (see scheduleAggregated).
  scheduler.postSchedule(profile, st.prefixHashes, pd.decode[pairDecode[0]], sreq.modelId);
  scheduler.postSchedule(profile, st.prefixHashes, pairPrefill[0], sreq.modelId);
  st.pd = pd;
  st.ranked = pairDecode;
  st.rankedCount = pairPrefill.length;
  st.pairPrefill = pairPrefill;
  st.maxAttempts = server.retryAttempts >= 0 ? server.retryAttempts + 1 : pairPrefill.length;
  dispatchAttempt(st, startPair);
}

/** values[idx[i]] for each i (kvcache-aware scores of all of a server's pods, for one PD role). */
function gather(values: Float64Array, idx: Int32Array): Float64Array {
  const out = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = values[idx[i]];
  return out;
}
