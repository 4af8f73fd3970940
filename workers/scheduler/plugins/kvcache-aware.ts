/**
 * kvcache-aware (score; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/kvcache_aware.go).
 * Its scores need a tokenizer call and a Redis lookup, which cannot run inside the synchronous
 * pick: the request path runs KvCacheAwareScorer (../kvcache-aware.ts) with these arguments
 * first and passes its scores to schedule() as `extra`, indexed by endpoint: NaN = no entry (pod
 * without block 0, or the scorer failed), which leaves the pod un-scored by this plugin as in
 * Kthena. Without `extra` the plugin contributes nothing.
 */
import { KV_DEFAULT_BLOCK_SIZE, KV_DEFAULT_MAX_BLOCKS } from '../../../src/shared/kv-blocks.js';
import { definePlugin, kNoScores, kScoredSome, type DecisionContext, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

export class KvcacheAwareScore implements ScorePlugin {
  readonly name = 'kvcache-aware';
  readonly consumesMetrics = false;
  readonly partial = true;
  readonly pure = false;
  readonly scoresFromExtra = true;

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

export const kvcacheAware = definePlugin({
  name: 'kvcache-aware',
  args: {
    blockSizeToHash: { type: 'int', min: 1, max: 4096, default: KV_DEFAULT_BLOCK_SIZE },
    maxBlocksToMatch: { type: 'int', min: 1, max: 1024, default: KV_DEFAULT_MAX_BLOCKS },
    vllmTokenizerPort: { type: 'int', min: 1, max: 65_535, default: 8000 },
    sglangTokenizerPort: { type: 'int', min: 1, max: 65_535, default: 30_000 },
  },
  score: () => new KvcacheAwareScore(),
});
