/**
 * Kthena's scheduler plugins (reference §3.3; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins),
 * over the preallocated per-decision view (endpoint-view.ts) instead of per-request maps.
 *
 * Contracts (see FilterPlugin / ScorePlugin in framework.ts): a filter compacts the candidate list
 * ctx.cand[0..ctx.m-1] in place, keeping order, and returns the new count; a score plugin adds
 * score x weight (score an integer in 0..100) to total[k] for each candidate position k it scores
 * and returns kScoredAll, kScoredSome (it marked the scored ones in ctx.scored) or kNoScores (no
 * scores at all, Kthena's nil map). Neither allocates. Scores are truncated to integers as Go's
 * int(float64) does.
 *
 * Unknown metrics (scrape state not fresh, or the seqlock read gave up): least-request keeps the
 * pod and scores it by in-flight alone; gpu-usage assumes it full (0); least-latency treats it as
 * unmeasured (50). The router's in-flight count is always known.
 */
import { kEndpointStride, kEpLoraActiveBits, kEpModelBits, kMaxModelIds } from '../../src/shared/layout.js';
import type { FilterPluginName, ScorePluginName, SchedulerIR } from '../../src/ir/types.js';
import { kVInflight, kVKnown, kVKv, kVRunning, kVTpotUs, kVTtftUs, kVWaiting } from './endpoint-view.js';
import type { DecisionContext, FilterPlugin, ScorePlugin } from './framework.js';
import {
  kPluginFilterLeastRequest,
  kPluginFilterLoraAffinity,
  kPluginScoreGpuUsage,
  kPluginScoreKvcacheAware,
  kPluginScoreLeastLatency,
  kPluginScoreLeastRequest,
  kPluginScorePrefixCache,
  kPluginScoreRandom,
  type SchedulerMetrics,
} from './metrics.js';
import type { PrefixHasher } from './prefix-hash.js';
import type { PrefixIndex } from './prefix-index.js';

/** What plugins share with the scheduler that built them (one set per worker). */
export interface PluginDeps {
  readonly hasher: PrefixHasher;
  readonly index: PrefixIndex;
  readonly metrics: SchedulerMetrics;
}

/** ScorePlugin.score() results (see ScorePlugin in framework.ts). */
export const kNoScores = 0;
export const kScoredAll = 1;
export const kScoredSome = 2;
export type ScoreResult = typeof kNoScores | typeof kScoredAll | typeof kScoredSome;

/**
 * The decisions' random stream: mulberry32 over an Int32Array(1) state, 30 bits per draw. The
 * result is always a small integer (a V8 Smi), so a call never allocates, even when it is not
 * inlined; a stored `() => number` such as Math.random returns a heap-allocated double on every
 * call that is not inlined (measured: ~80 bytes per decision in the pick alone).
 */
export function nextRandom30(state: Int32Array): number {
  const a = (state[0] + 0x6d2b79f5) | 0;
  state[0] = a;
  let t = Math.imul(a ^ (a >>> 15), a | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 2;
}

/** 2^-30: nextRandom30() * kRandomScale is uniform in [0, 1). */
export const kRandomScale = 1 / 1073741824;

/** Kthena's waiting-request weight in the least-request base score. */
const kWaitingWeight = 100;
/** least-latency score of a pod without a TTFT/TPOT measurement. */
const kUnmeasuredLatencyScore = 50;

// ---- filters --------------------------------------------------------------------------------

/** least-request (filter): keep pods whose engine queue is below maxWaitingRequests; unknown metrics are kept. */
export class LeastRequestFilter implements FilterPlugin {
  readonly name = 'least-request';
  readonly identity = kPluginFilterLeastRequest;
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

/**
 * lora-affinity (filter): keep pods that list the request model in /v1/models (kEpModelBits) or
 * currently run it as an adapter (kEpLoraActiveBits). A request model without an id (-1) is held
 * by no pod, so every pod is filtered out. Each bit word is one Atomics.load: a single word is
 * never torn, so no seqlock is needed, and the bits of the last successful scrape stay valid
 * while a later scrape fails (as Kthena keeps the last model list).
 */
export class LoraAffinityFilter implements FilterPlugin {
  readonly name = 'lora-affinity';
  readonly identity = kPluginFilterLoraAffinity;
  readonly consumesMetrics = false;

  filter(ctx: DecisionContext): number {
    const id = ctx.req.modelId;
    if (id < 0 || id >= kMaxModelIds) return 0;
    const word = id >>> 5;
    const bit = 1 << (id & 31);
    const ep = ctx.ep;
    const slot = ctx.view.slot;
    const cand = ctx.cand;
    const m = ctx.m;
    let w = 0;
    for (let k = 0; k < m; k++) {
      const i = cand[k];
      const base = slot[i] * kEndpointStride;
      const bits = Atomics.load(ep, base + kEpModelBits + word) | Atomics.load(ep, base + kEpLoraActiveBits + word);
      if ((bits & bit) !== 0) cand[w++] = i;
    }
    return w;
  }
}

// ---- scores ---------------------------------------------------------------------------------

/**
 * least-request (score). Two load signals: the router's zero-lag in-flight count (exact across
 * workers) and the engine's running count (one scrape interval old). In-flight beyond what the
 * engine reports running is queued somewhere and weighs 100x:
 *   base = inflight + 100 * max(inflight - running, 0)      (running unknown: base = inflight)
 *   score = int((max(base) - base) / max(base) * 100), or 100 for every pod when max(base) = 0.
 */
export class LeastRequestScore implements ScorePlugin {
  readonly name = 'least-request';
  readonly identity = kPluginScoreLeastRequest;
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

/** gpu-usage (score): int((1 - kvCacheUsage) * 100); unknown metrics score 0 (an unscraped or failing pod is assumed full). */
export class GpuUsageScore implements ScorePlugin {
  readonly name = 'gpu-usage';
  readonly identity = kPluginScoreGpuUsage;
  readonly consumesMetrics = true;
  readonly partial = false;
  readonly pure = true;

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const d = ctx.view.data;
    const base = ctx.view.base;
    const cand = ctx.cand;
    const m = ctx.m;
    for (let k = 0; k < m; k++) {
      const b = base[cand[k]];
      if (d[b + kVKnown] === 0) continue; // score 0
      let u = d[b + kVKv];
      if (u < 0) u = 0;
      else if (u > 1) u = 1;
      total[k] += Math.trunc((1 - u) * 100) * w;
    }
    return kScoredAll;
  }
}

/**
 * least-latency (score), exactly Kthena's: pods without a measurement (metrics unknown, TTFT <= 0
 * or TPOT <= 0) score 50; over the measured pods
 *   sTTFT = 100 * (maxTTFT - ttft) / (maxTTFT - minTTFT)   (100 when max = min), sTPOT likewise,
 *   score = int(sTTFT * alpha + sTPOT * (1 - alpha)),  alpha = TTFTTPOTWeightFactor.
 */
export class LeastLatencyScore implements ScorePlugin {
  readonly name = 'least-latency';
  readonly identity = kPluginScoreLeastLatency;
  readonly consumesMetrics = true;
  readonly partial = false;
  readonly pure = true;
  constructor(readonly alpha: number) {}

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const d = ctx.view.data;
    const base = ctx.view.base;
    const cand = ctx.cand;
    const m = ctx.m;
    let minTtft = Infinity;
    let maxTtft = 0;
    let minTpot = Infinity;
    let maxTpot = 0;
    for (let k = 0; k < m; k++) {
      const b = base[cand[k]];
      if (d[b + kVKnown] === 0) continue;
      const ttft = d[b + kVTtftUs];
      const tpot = d[b + kVTpotUs];
      if (ttft <= 0 || tpot <= 0) continue;
      if (ttft < minTtft) minTtft = ttft;
      if (ttft > maxTtft) maxTtft = ttft;
      if (tpot < minTpot) minTpot = tpot;
      if (tpot > maxTpot) maxTpot = tpot;
    }
    const alpha = this.alpha;
    const beta = 1 - alpha;
    // Loop invariants; the divisions stay per pod so the results are bit-identical to Kthena's
    // 100 * (max - x) / (max - min) (a reciprocal multiply can land 1 ulp below an integer).
    const spreadTtft = maxTtft > minTtft;
    const spanTtft = maxTtft - minTtft;
    const spreadTpot = maxTpot > minTpot;
    const spanTpot = maxTpot - minTpot;
    for (let k = 0; k < m; k++) {
      const b = base[cand[k]];
      const ttft = d[b + kVTtftUs];
      const tpot = d[b + kVTpotUs];
      if (d[b + kVKnown] === 0 || ttft <= 0 || tpot <= 0) {
        total[k] += kUnmeasuredLatencyScore * w;
        continue;
      }
      const sTtft = spreadTtft ? (100 * (maxTtft - ttft)) / spanTtft : 100;
      const sTpot = spreadTpot ? (100 * (maxTpot - tpot)) / spanTpot : 100;
      total[k] += Math.trunc(sTtft * alpha + sTpot * beta) * w;
    }
    return kScoredAll;
  }
}

/**
 * prefix-cache (score + post hook). The prompt's first maxBlocksToMatch blocks of blockSizeToHash
 * UTF-8 bytes are hashed in a chain as Kthena does (h0 = H(request model), hi = H(hi-1 || block i);
 * prefix-hash.ts, a 64-bit hash that is not bit-compatible with Kthena's xxHash64); the shared
 * prefix index returns, for the first topKMatches candidates found scanning from the longest
 * prefix back, the number of leading blocks they hold:
 *   score = int(matchLen / blocks * 100), 0 for candidates without a hit.
 * An empty prompt gives no scores (the plugin then does not make candidates eligible).
 * Each run records the best candidate's matched fraction in kthena_router_prefix_cache_match_ratio
 * and leaves the hashes in the hasher for Scheduler.takePrefixHashes().
 */
export class PrefixCacheScore implements ScorePlugin {
  readonly name = 'prefix-cache';
  readonly identity = kPluginScorePrefixCache;
  readonly consumesMetrics = false;
  readonly partial = false;
  readonly pure = false;
  constructor(
    readonly deps: PluginDeps,
    readonly blockSizeToHash: number,
    readonly maxBlocksToMatch: number,
    readonly topKMatches: number,
  ) {}

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const req = ctx.req;
    if (req.prompt.length === 0) return kNoScores;
    const hasher = this.deps.hasher;
    const count = hasher.hash(req.model, req.prompt, this.blockSizeToHash, this.maxBlocksToMatch);
    if (count <= 0) return kNoScores;
    ctx.hashCount = count;
    const v = ctx.view;
    const cand = ctx.cand;
    const m = ctx.m;
    let slots = v.slot;
    let gens = v.gen;
    if (m !== v.n) {
      // Filters removed some endpoints: compact the survivors' slots (else cand[k] === k).
      slots = ctx.candSlot;
      gens = ctx.candGen;
      for (let k = 0; k < m; k++) {
        const i = cand[k];
        slots[k] = v.slot[i];
        gens[k] = v.gen[i];
      }
    }
    const matched = ctx.tmp;
    this.deps.index.match(hasher.lo, hasher.hi, count, slots, gens, m, this.topKMatches, matched);
    let best = 0;
    for (let k = 0; k < m; k++) {
      const len = matched[k];
      if (len > 0) {
        if (len > best) best = len;
        total[k] += Math.trunc((len / count) * 100) * w;
      }
    }
    this.deps.metrics.matchRatio(req.model, best, count);
    return kScoredAll;
  }
}

/**
 * kvcache-aware (score): the scores KvCacheAwareScorer computed before the decision (its network
 * round trips cannot run inside the synchronous pick), passed as `extra`, indexed by endpoint:
 * NaN = no entry (pod without block 0, or the scorer failed), which leaves the pod un-scored by
 * this plugin as in Kthena. Without `extra` the plugin contributes nothing.
 */
export class KvcacheAwareScore implements ScorePlugin {
  readonly name = 'kvcache-aware';
  readonly identity = kPluginScoreKvcacheAware;
  readonly consumesMetrics = false;
  readonly partial = true;
  readonly pure = false;

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const extra = ctx.extra;
    if (extra === null) return kNoScores;
    const cand = ctx.cand;
    const scored = ctx.scored;
    const m = ctx.m;
    for (let k = 0; k < m; k++) {
      const i = cand[k];
      const s = i < extra.length ? extra[i] : NaN;
      if (s === s) {
        total[k] += Math.trunc(s) * w;
        scored[k] = 1;
      }
    }
    return kScoredSome;
  }
}

/** random (score): int in 0..100 per pod, as Go's rand.Intn(101), from the decisions' random stream. */
export class RandomScore implements ScorePlugin {
  readonly name = 'random';
  readonly identity = kPluginScoreRandom;
  readonly consumesMetrics = false;
  readonly partial = false;
  readonly pure = false;

  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult {
    const rng = ctx.rng;
    const m = ctx.m;
    for (let k = 0; k < m; k++) total[k] += Math.floor(nextRandom30(rng) * kRandomScale * 101) * w;
    return kScoredAll;
  }
}

// ---- factories ------------------------------------------------------------------------------

function positiveInt(plugin: string, arg: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`scheduler plugin ${plugin}: ${arg} must be a positive integer, got ${v}`);
  return v;
}

/** Builds the filter registered under `name`. Config validation already refused unknown names and bad args. */
export function createFilter(name: FilterPluginName, ir: SchedulerIR): FilterPlugin {
  switch (name) {
    case 'least-request':
      return new LeastRequestFilter(positiveInt(name, 'maxWaitingRequests', ir.leastRequest.maxWaitingRequests));
    case 'lora-affinity':
      return new LoraAffinityFilter();
    default:
      throw new TypeError(`unknown scheduler filter plugin ${JSON.stringify(name)}`);
  }
}

/** Builds the score plugin registered under `name`. */
export function createScore(name: ScorePluginName, ir: SchedulerIR, deps: PluginDeps): ScorePlugin {
  switch (name) {
    case 'least-request':
      return new LeastRequestScore();
    case 'gpu-usage':
      return new GpuUsageScore();
    case 'least-latency': {
      const a = ir.leastLatency.ttftTpotWeightFactor;
      if (!(a >= 0 && a <= 1)) throw new TypeError(`scheduler plugin least-latency: TTFTTPOTWeightFactor must be a finite value between 0 and 1, got ${a}`);
      return new LeastLatencyScore(a);
    }
    case 'prefix-cache': {
      const a = ir.prefixCache;
      if (a.maxBlocksToMatch > deps.hasher.maxBlocks) {
        throw new TypeError(`scheduler plugin prefix-cache: maxBlocksToMatch must be at most ${deps.hasher.maxBlocks}, got ${a.maxBlocksToMatch}`);
      }
      return new PrefixCacheScore(
        deps,
        positiveInt(name, 'blockSizeToHash', a.blockSizeToHash),
        positiveInt(name, 'maxBlocksToMatch', a.maxBlocksToMatch),
        positiveInt(name, 'topKMatches', a.topKMatches),
      );
    }
    case 'kvcache-aware':
      return new KvcacheAwareScore();
    case 'random':
      return new RandomScore();
    default:
      throw new TypeError(`unknown scheduler score plugin ${JSON.stringify(name)}`);
  }
}
