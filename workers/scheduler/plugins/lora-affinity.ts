/**
 * lora-affinity (filter; volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/lora_affinity.go):
 * keep pods that list the request model in /v1/models (kEpModelBits) or currently run it as an
 * adapter (kEpLoraActiveBits). A request model without an id (-1) is held by no pod, so every pod
 * is filtered out. Each bit word is one Atomics.load: a single word is never torn, so no seqlock
 * is needed, and the bits of the last successful scrape stay valid while a later scrape fails (as
 * Kthena keeps the last model list).
 */
import { kEndpointStride, kEpLoraActiveBits, kEpModelBits, kMaxModelIds } from '../../../src/shared/layout.js';
import { definePlugin, type DecisionContext, type FilterPlugin } from '../plugin-api.js';

export class LoraAffinityFilter implements FilterPlugin {
  readonly name = 'lora-affinity';
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

export const loraAffinity = definePlugin({
  name: 'lora-affinity',
  args: {},
  filter: () => new LoraAffinityFilter(),
});
