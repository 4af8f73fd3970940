/**
 * The scheduler's Kthena metric families, kept per worker in typed arrays and shipped to the
 * control thread in prom-client's getMetricsAsJSON() shape (summed there with
 * AggregatorRegistry.aggregate, like workers/metrics.ts):
 *
 *  - kthena_router_scheduler_plugin_duration_seconds{model,plugin,type} histogram. Kthena times
 *    every plugin call of every request; we time the plugins that run in 1 decision out of
 *    `sampleEvery` (the counts are a sample, the distribution is the same). gpu-usage and
 *    least-latency results are reused between scrapes (framework.ts), so their series count only
 *    the sampled decisions that recomputed them;
 *  - kthena_router_prefix_cache_match_ratio{model} histogram, once per decision in which the
 *    prefix-cache plugin hashed a non-empty prompt;
 *  - kthena_router_prefix_cache_evictions_total{model} counter, from the prefix index's per-model-id
 *    eviction counts of this worker, named through the snapshot's id -> name table.
 *
 * Names, help texts, label names and buckets are Kthena's
 * (volcano-sh/kthena:pkg/kthena-router/metrics/metrics.go). Series (and their label objects) are
 * created the first time a (model, plugin) pair is observed; an observation allocates nothing.
 */
import type { MetricJSON, MetricValueJSON } from '../../src/shared/metric-json.js';

export const PLUGIN_DURATION = 'kthena_router_scheduler_plugin_duration_seconds';
export const PREFIX_MATCH_RATIO = 'kthena_router_prefix_cache_match_ratio';
export const PREFIX_EVICTIONS = 'kthena_router_prefix_cache_evictions_total';

export const PLUGIN_DURATION_BUCKETS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.05, 0.1, 0.5]);
export const MATCH_RATIO_BUCKETS: readonly number[] = Object.freeze([0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]);

const PLUGIN_DURATION_HELP = 'Processing time per scheduler plugin';
const PREFIX_MATCH_RATIO_HELP =
  "Fraction of the prompt's blocks the best-matching candidate pod had already cached, per prefix-cache match attempt (0 = miss)";
const PREFIX_EVICTIONS_HELP =
  'Number of (prefix block, pod) entries evicted from a per-pod cache when it reached capacity; excludes entries removed when a pod is deleted';

const kDurationBounds = Float64Array.from(PLUGIN_DURATION_BUCKETS);
const kRatioBounds = Float64Array.from(MATCH_RATIO_BUCKETS);

class HistogramSeries {
  /** Per-bucket (not cumulative) counts; observations above the last bound are only in `count`. */
  readonly buckets: Float64Array;
  /** [sum, count] */
  readonly totals = new Float64Array(2);
  constructor(readonly bounds: Float64Array, readonly labels: Record<string, string>) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.buckets[i]++;
        break;
      }
    }
    this.totals[0] += v;
    this.totals[1]++;
  }
}

class ModelSeries {
  readonly durations: (HistogramSeries | null)[];
  matchRatio: HistogramSeries | null = null;
  constructor(identities: number) {
    this.durations = new Array<HistogramSeries | null>(identities).fill(null);
  }
}

/**
 * Eviction counts arrive per model id (PrefixIndex.evictionsByModelId, monotonic per worker). Ids
 * are stable while a model exists but may be given to another model after it is gone, so each
 * compile() folds the count an id accumulated under its previous name into that name's total
 * before the id changes hands: a counter never moves from one model's series to another's.
 */
class EvictionNames {
  /** Current name of each id ('' = none). */
  #names: string[] = [];
  /** Count of each id already attributed to a previous owner (or to nobody). */
  #offset = new Float64Array(0);
  /** Totals of names that no longer own an id (or owned several over time). */
  readonly #folded = new Map<string, number>();

  rename(modelNames: readonly string[], modelIds: readonly number[], counts: Float64Array): void {
    let max = this.#offset.length;
    for (let i = 0; i < modelIds.length; i++) if (modelIds[i] + 1 > max) max = modelIds[i] + 1;
    if (counts.length > max) max = counts.length;
    if (max > this.#offset.length) {
      const next = new Float64Array(max);
      next.set(this.#offset);
      this.#offset = next;
    }
    const next: string[] = new Array<string>(max).fill('');
    for (let i = 0; i < modelIds.length; i++) if (modelIds[i] >= 0) next[modelIds[i]] = modelNames[i];
    for (let id = 0; id < max; id++) {
      const before = this.#names[id] ?? '';
      if (before === next[id]) continue;
      const c = id < counts.length ? counts[id] : 0;
      const pending = c - this.#offset[id];
      if (before !== '' && pending > 0) this.#folded.set(before, (this.#folded.get(before) ?? 0) + pending);
      this.#offset[id] = c;
    }
    this.#names = next;
  }

  /** Per-model totals (names with a zero total are left out, as a Go CounterVec never created them). */
  totals(counts: Float64Array): Map<string, number> {
    const out = new Map<string, number>(this.#folded);
    for (let id = 0; id < this.#names.length; id++) {
      const name = this.#names[id];
      if (name === '') continue;
      const c = (id < counts.length ? counts[id] : 0) - this.#offset[id];
      if (c > 0) out.set(name, (out.get(name) ?? 0) + c);
    }
    for (const [k, v] of out) if (!(v > 0)) out.delete(k);
    return out;
  }
}

/** A plugin in one role, as the duration series label it (registry.ts PLUGIN_IDENTITIES). */
export interface PluginIdentity { readonly name: string; readonly type: 'filter' | 'score' }

/** Per-worker store. One instance per Scheduler (one per worker thread). */
export class SchedulerMetrics {
  readonly #identities: readonly PluginIdentity[];
  readonly #byModel = new Map<string, ModelSeries>();
  // Creation order, for toJSON().
  readonly #durations: HistogramSeries[] = [];
  readonly #ratios: HistogramSeries[] = [];
  readonly #evictions = new EvictionNames();

  /** `identities[i]` names the plugin that pluginDuration(model, i, ...) times. */
  constructor(identities: readonly PluginIdentity[]) {
    this.#identities = identities;
  }

  #model(model: string): ModelSeries {
    let m = this.#byModel.get(model);
    if (m === undefined) {
      m = new ModelSeries(this.#identities.length);
      this.#byModel.set(model, m);
    }
    return m;
  }

  /** One plugin call of a sampled decision took `seconds`. */
  pluginDuration(model: string, identity: number, seconds: number): void {
    const m = this.#model(model);
    let h = m.durations[identity];
    if (h === null) {
      const id = this.#identities[identity];
      h = new HistogramSeries(kDurationBounds, { model, plugin: id.name, type: id.type });
      m.durations[identity] = h;
      this.#durations.push(h);
    }
    h.observe(seconds);
  }

  /**
   * The best candidate matched `matched` of the prompt's `blocks` blocks (0 = miss). Integer
   * arguments, the ratio computed here: a fractional number passed to a call that is not inlined
   * is boxed (16 bytes per decision).
   */
  matchRatio(model: string, matched: number, blocks: number): void {
    const m = this.#model(model);
    let h = m.matchRatio;
    if (h === null) {
      h = new HistogramSeries(kRatioBounds, { model });
      m.matchRatio = h;
      this.#ratios.push(h);
    }
    const v = blocks > 0 ? matched / blocks : 0;
    const b = h.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        h.buckets[i]++;
        break;
      }
    }
    h.totals[0] += v;
    h.totals[1]++;
  }

  /** A new snapshot's model id table (see EvictionNames). */
  modelIds(modelNames: readonly string[], modelIds: readonly number[], evictionsByModelId: Float64Array): void {
    this.#evictions.rename(modelNames, modelIds, evictionsByModelId);
  }

  /** prom-client's getMetricsAsJSON() shape; every family present. Runs at scrape time only. */
  toJSON(evictionsByModelId: Float64Array): MetricJSON[] {
    const evictions: MetricValueJSON[] = [];
    for (const [model, value] of this.#evictions.totals(evictionsByModelId)) evictions.push({ value, labels: { model } });
    return [
      histogramFamily(PLUGIN_DURATION, PLUGIN_DURATION_HELP, this.#durations),
      histogramFamily(PREFIX_MATCH_RATIO, PREFIX_MATCH_RATIO_HELP, this.#ratios),
      { name: PREFIX_EVICTIONS, help: PREFIX_EVICTIONS_HELP, type: 'counter', values: evictions, aggregator: 'sum' },
    ];
  }
}

function histogramFamily(name: string, help: string, series: readonly HistogramSeries[]): MetricJSON {
  const bucketName = name + '_bucket';
  const values: MetricValueJSON[] = [];
  for (const s of series) {
    let acc = 0;
    const b = s.bounds;
    for (let i = 0; i < b.length; i++) {
      acc += s.buckets[i];
      values.push({ value: acc, labels: { le: b[i], ...s.labels }, metricName: bucketName });
    }
    values.push({ value: s.totals[1], labels: { le: '+Inf', ...s.labels }, metricName: bucketName });
    values.push({ value: s.totals[0], labels: { ...s.labels }, metricName: name + '_sum' });
    values.push({ value: s.totals[1], labels: { ...s.labels }, metricName: name + '_count' });
  }
  return { name, help, type: 'histogram', values, aggregator: 'sum' };
}
