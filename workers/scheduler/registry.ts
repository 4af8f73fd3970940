/**
 * The scheduler plugin registry: every plugin this router knows, by Kthena's name. Adding a plugin
 * is its file under plugins/ and one line in PLUGINS below; the framework, the router
 * configuration parser, the snapshot and the metrics take everything else from the definition.
 *
 * The one worker module the control thread loads (src/routerconfig validates pluginConfig against
 * the same definitions the workers build plugins from); test/unit/import-graph.test.ts keeps its
 * run-time closure free of the request path (uWS, undici, Redis, the pipeline).
 */
import type { PluginDefinition } from './plugin-api.js';
import { gpuUsage } from './plugins/gpu-usage.js';
import { kvcacheAware } from './plugins/kvcache-aware.js';
import { leastLatency } from './plugins/least-latency.js';
import { leastRequest } from './plugins/least-request.js';
import { loraAffinity } from './plugins/lora-affinity.js';
import { prefixCache } from './plugins/prefix-cache.js';
import { random } from './plugins/random.js';

/** In the order error messages list them ("known: ..."). */
export const PLUGINS: readonly PluginDefinition[] = Object.freeze([
  leastRequest,
  gpuUsage,
  leastLatency,
  prefixCache,
  kvcacheAware,
  random,
  loraAffinity,
]);

const byName = new Map(PLUGINS.map((p) => [p.name, p]));

export function pluginNamed(name: string): PluginDefinition | undefined {
  return byName.get(name);
}

export const FILTER_PLUGIN_NAMES: readonly string[] = Object.freeze(PLUGINS.filter((p) => p.filter !== undefined).map((p) => p.name));
export const SCORE_PLUGIN_NAMES: readonly string[] = Object.freeze(PLUGINS.filter((p) => p.score !== undefined).map((p) => p.name));

/**
 * Metric identities: one per (plugin, role), filters first, each in registry order. A plugin's
 * duration series is labelled {plugin: name, type: 'filter' | 'score'} as in Kthena.
 */
export const PLUGIN_IDENTITIES: readonly { readonly name: string; readonly type: 'filter' | 'score' }[] = Object.freeze([
  ...FILTER_PLUGIN_NAMES.map((name) => Object.freeze({ name, type: 'filter' as const })),
  ...SCORE_PLUGIN_NAMES.map((name) => Object.freeze({ name, type: 'score' as const })),
]);

/** The metric identity of `name` in `role`, or -1 when it plays no such role. */
export function pluginIdentity(name: string, role: 'filter' | 'score'): number {
  return PLUGIN_IDENTITIES.findIndex((p) => p.name === name && p.type === role);
}

/** What the control thread uses besides the table (it imports this module only). */
export { defaultArgs, resolveArgs, type ArgProblem, type PluginArgs, type PluginDefinition } from './plugin-api.js';
