/**
 * random (score; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/random.go): an integer in
 * 0..100 per pod, as Go's rand.Intn(101), from the decisions' allocation-free random stream.
 * routerconfig drops it, with a warning, when other score plugins are enabled (as Kthena does).
 */
import { definePlugin, kRandomScale, kScoredAll, nextRandom30, type DecisionContext, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

export class RandomScore implements ScorePlugin {
  readonly name = 'random';
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

export const random = definePlugin({
  name: 'random',
  args: {},
  score: () => new RandomScore(),
});
