/**
 * gpu-usage (score; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/gpu.go):
 * int((1 - kvCacheUsage) * 100). A pod with unknown metrics scores 0: an unscraped or failing pod
 * is assumed full. Pure: it reads scraped fields only, so the framework reuses its contribution
 * between scrapes.
 */
import { kVKnown, kVKv } from '../endpoint-view.js';
import { definePlugin, kScoredAll, type DecisionContext, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

export class GpuUsageScore implements ScorePlugin {
  readonly name = 'gpu-usage';
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

export const gpuUsage = definePlugin({
  name: 'gpu-usage',
  args: {},
  score: () => new GpuUsageScore(),
});
