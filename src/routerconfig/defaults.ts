/**
 * Scheduler profiles used when none is configured: Kthena's Helm chart ConfigMap (the
 * configuration every Kthena user actually runs: volcano-sh/kthena:charts/kthena/charts/networking/
 * templates/kthena-router/component/configmap.yaml) and this router's own default. Plugin
 * arguments are each plugin's defaults, from its definition in the registry
 * (workers/scheduler/registry.ts).
 */
import type { SchedulerIR } from '../ir/types.js';
import { defaultArgs, pluginNamed } from '../../workers/scheduler/registry.js';

/** A frozen profile: `filters`, then `scores` with their weights, each plugin with its default arguments. */
export function schedulerProfile(
  filters: readonly string[],
  scores: readonly { name: string; weight: number }[],
  overrides: Readonly<Record<string, Readonly<Record<string, number>>>> = {},
): SchedulerIR {
  const args: Record<string, Readonly<Record<string, number>>> = {};
  for (const name of [...filters, ...scores.map((s) => s.name)]) {
    const def = pluginNamed(name);
    if (def === undefined) throw new TypeError(`unknown scheduler plugin ${JSON.stringify(name)}`);
    args[name] = Object.freeze({ ...defaultArgs(def), ...overrides[name] });
  }
  return Object.freeze({
    filters: Object.freeze([...filters]) as string[],
    scores: Object.freeze(scores.map((s) => Object.freeze({ name: s.name, weight: s.weight }))) as SchedulerIR['scores'],
    args: Object.freeze(args),
  });
}

/**
 * Kthena's Helm chart profile: Filter [least-request]; Score least-request, gpu-usage,
 * least-latency, prefix-cache (weight 1 each). What a Kthena user's ConfigMap holds; the
 * micro-benchmark's "default plugin set".
 */
export const DEFAULT_SCHEDULER: SchedulerIR = schedulerProfile(['least-request'], [
  { name: 'least-request', weight: 1 },
  { name: 'gpu-usage', weight: 1 },
  { name: 'least-latency', weight: 1 },
  { name: 'prefix-cache', weight: 1 },
]);

/**
 * The profile this router runs when `--router-config` is not given: least-request and
 * prefix-cache, weight 1 each, no filter. Measured with `native-bench compare` (docs/benchmarks.md):
 * on Kthena's long-shared-prefix workload it matches the best configuration, while Kthena's Helm
 * profile loses most of the prefix affinity (gpu-usage and least-latency, min-max normalised,
 * outvote prefix-cache) and its least-request filter answers 503 once every engine queue holds 10
 * requests. (prefix-cache's `promptShare: 1` is not part of it: three runs each on a loaded
 * machine did not show it helping on the low-sharing workload; see docs/scheduler.md.)
 */
export const ROUTER_DEFAULT_SCHEDULER: SchedulerIR = schedulerProfile([], [
  { name: 'least-request', weight: 1 },
  { name: 'prefix-cache', weight: 1 },
]);
