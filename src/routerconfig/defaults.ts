/**
 * Scheduler defaults: Kthena's Helm chart ConfigMap (the configuration every Kthena user actually
 * runs; reference §3.2) and each plugin's argument defaults (§3.3).
 */
import type { SchedulerIR } from '../ir/types.js';

export const DEFAULT_PLUGIN_ARGS = Object.freeze({
  leastRequest: Object.freeze({ maxWaitingRequests: 10 }),
  leastLatency: Object.freeze({ ttftTpotWeightFactor: 0.5 }),
  prefixCache: Object.freeze({ blockSizeToHash: 64, maxBlocksToMatch: 128, maxHashCacheSize: 50000, topKMatches: 5 }),
  kvcacheAware: Object.freeze({ blockSizeToHash: 16, maxBlocksToMatch: 128, vllmTokenizerPort: 8000, sglangTokenizerPort: 30000 }),
});

/**
 * Kthena's Helm chart profile: Filter [least-request]; Score least-request, gpu-usage,
 * least-latency, prefix-cache (weight 1 each). What a Kthena user's ConfigMap holds; the
 * micro-benchmark's "default plugin set".
 */
export const DEFAULT_SCHEDULER: SchedulerIR = Object.freeze({
  filters: Object.freeze(['least-request']) as unknown as SchedulerIR['filters'],
  scores: Object.freeze([
    Object.freeze({ name: 'least-request', weight: 1 }),
    Object.freeze({ name: 'gpu-usage', weight: 1 }),
    Object.freeze({ name: 'least-latency', weight: 1 }),
    Object.freeze({ name: 'prefix-cache', weight: 1 }),
  ]) as unknown as SchedulerIR['scores'],
  leastRequest: DEFAULT_PLUGIN_ARGS.leastRequest,
  leastLatency: DEFAULT_PLUGIN_ARGS.leastLatency,
  prefixCache: DEFAULT_PLUGIN_ARGS.prefixCache,
  kvcacheAware: DEFAULT_PLUGIN_ARGS.kvcacheAware,
}) as SchedulerIR;

/**
 * The profile this router runs when `--router-config` is not given: least-request and
 * prefix-cache, weight 1 each, no filter. Measured with `native-bench compare` (docs/benchmarks.md):
 * on Kthena's long-shared-prefix workload it matches the best configuration, while Kthena's Helm
 * profile loses most of the prefix affinity (gpu-usage and least-latency, min-max normalised,
 * outvote prefix-cache) and its least-request filter answers 503 once every engine queue holds 10
 * requests; on the low-sharing workload it is no worse than random.
 */
export const ROUTER_DEFAULT_SCHEDULER: SchedulerIR = Object.freeze({
  filters: Object.freeze([]) as unknown as SchedulerIR['filters'],
  scores: Object.freeze([
    Object.freeze({ name: 'least-request', weight: 1 }),
    Object.freeze({ name: 'prefix-cache', weight: 1 }),
  ]) as unknown as SchedulerIR['scores'],
  leastRequest: DEFAULT_PLUGIN_ARGS.leastRequest,
  leastLatency: DEFAULT_PLUGIN_ARGS.leastLatency,
  prefixCache: DEFAULT_PLUGIN_ARGS.prefixCache,
  kvcacheAware: DEFAULT_PLUGIN_ARGS.kvcacheAware,
}) as SchedulerIR;
