/**
 * least-latency (score), exactly Kthena's
 * (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/least_latency.go): pods without a
 * measurement (metrics unknown, TTFT <= 0 or TPOT <= 0) score 50; over the measured pods
 *   sTTFT = 100 * (maxTTFT - ttft) / (maxTTFT - minTTFT)   (100 when max = min), sTPOT likewise,
 *   score = int(sTTFT * alpha + sTPOT * (1 - alpha)),  alpha = TTFTTPOTWeightFactor.
 * Pure: it reads scraped fields only.
 */
import { kVKnown, kVTpotUs, kVTtftUs } from '../endpoint-view.js';
import { definePlugin, kScoredAll, type DecisionContext, type ScorePlugin, type ScoreResult } from '../plugin-api.js';

/** least-latency score of a pod without a TTFT/TPOT measurement. */
const kUnmeasuredLatencyScore = 50;

export class LeastLatencyScore implements ScorePlugin {
  readonly name = 'least-latency';
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

export const leastLatency = definePlugin({
  name: 'least-latency',
  args: { TTFTTPOTWeightFactor: { type: 'unit', default: 0.5 } },
  score: (a) => new LeastLatencyScore(a.TTFTTPOTWeightFactor),
});
