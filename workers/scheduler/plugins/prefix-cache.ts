/**
 * prefix-cache (score + post hook; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/
 * prefix_cache.go). The prompt's first maxBlocksToMatch blocks of blockSizeToHash UTF-8 bytes are
 * hashed in a chain as Kthena does (h0 = H(request model), hi = H(hi-1 || block i); prefix-hash.ts,
 * a 64-bit hash that is not bit-compatible with Kthena's xxHash64); the shared prefix index
 * returns, for the first topKMatches candidates found scanning from the longest prefix back, the
 * number of leading blocks they hold:
 *   score = int(matchLen / blocks * 100), 0 for candidates without a hit.
 * With `promptShare: 1` (opt-in; 0 is Kthena's formula, also in this router's default profile) a match that
 * ends inside the hashed window scores the share of the whole prompt it saves,
 *   score = int(matchLen / max(blocks, ceil(promptLength / blockSizeToHash)) * 100),
 * while a match of the whole window still scores 100 (nothing says where it ends). Why: with a
 * short shared prefix ahead of a long unique prompt (Kthena's "low sharing" workload: 256 shared
 * tokens, 4,096 unique) Kthena's formula scores the prefix over the 8 KiB window only (12 points
 * for 6 % of the prompt), enough to outvote a difference of one queued request in least-request's
 * score (the hypothesis: requests then queue behind affinity that saves little); weighted by the share
 * it saves, the same match scores 5. Long shared prefixes (a fully matched window) keep 100.
 * Not in the default profile: measured with `native-bench compare --configs default,default+promptShare`
 * on a loaded machine (3 runs each, low sharing) it showed no gain (median 2.73 vs 3.99 req/s, TTFT p50
 * 19.6 vs 11.4 s, the runs' ranges overlapping); to be measured again on a quiet machine.
 * An empty prompt gives no scores (the plugin then does not make candidates eligible).
 * Each run records the best candidate's matched fraction in kthena_router_prefix_cache_match_ratio
 * and leaves the hashes in the hasher for Scheduler.takePrefixHashes(); maxHashCacheSize bounds
 * the entries per pod the post hook keeps in the shared index.
 */
import { kDefaultMaxPrefixBlocks } from '../prefix-hash.js';
import { definePlugin, kNoScores, kScoredAll, type DecisionContext, type PluginDeps, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

export class PrefixCacheScore implements ScorePlugin {
  readonly name = 'prefix-cache';
  readonly consumesMetrics = false;
  readonly partial = false;
  readonly pure = false;
  constructor(
    readonly deps: PluginDeps,
    readonly blockSizeToHash: number,
    readonly maxBlocksToMatch: number,
    readonly topKMatches: number,
    readonly prefixIndexBound = 50_000,
    readonly promptShare = false,
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
    // Blocks of the whole prompt (string length approximates its UTF-8 bytes: exact for ASCII,
    // an underestimate otherwise, which only errs towards Kthena's formula).
    const promptBlocks = this.promptShare ? Math.max(count, Math.ceil(req.prompt.length / this.blockSizeToHash)) : count;
    for (let k = 0; k < m; k++) {
      const len = matched[k];
      if (len > 0) {
        if (len > best) best = len;
        total[k] += Math.trunc((len / (len < count ? promptBlocks : count)) * 100) * w;
      }
    }
    this.deps.metrics.matchRatio(req.model, best, count);
    return kScoredAll;
  }
}

export const prefixCache = definePlugin({
  name: 'prefix-cache',
  args: {
    blockSizeToHash: { type: 'int', min: 1, max: 65_536, default: 64 },
    // The hasher's scratch is sized for kDefaultMaxPrefixBlocks blocks.
    maxBlocksToMatch: { type: 'int', min: 1, max: kDefaultMaxPrefixBlocks, default: 128 },
    maxHashCacheSize: { type: 'int', min: 1, max: 100_000_000, default: 50_000 },
    topKMatches: { type: 'int', min: 1, max: 1024, default: 5 },
    // 1: a partial match scores the share of the whole prompt it saves (see above); 0: Kthena's.
    promptShare: { type: 'int', min: 0, max: 1, default: 0 },
  },
  score: (a, deps) => new PrefixCacheScore(deps, a.blockSizeToHash, a.maxBlocksToMatch, a.topKMatches, a.maxHashCacheSize, a.promptShare === 1),
});
