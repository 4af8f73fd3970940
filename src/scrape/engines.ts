/**
 * Engine metrics mapping: ONE table from canonical fields to the Prometheus families each engine
 * exports, in preference order, after the model-server protocol of the Gateway API Inference
 * Extension (kubernetes-sigs/gateway-api-inference-extension:docs/proposals/003-model-server-protocol).
 * No engine name is hard-coded anywhere else; adding an engine (TRT-LLM, ...) is one more column.
 *
 * | Field           | Kind      | vLLM (first present wins)                                       | SGLang                                                                    | Series rule |
 * |-----------------|-----------|-----------------------------------------------------------------|---------------------------------------------------------------------------|-------------|
 * | `waiting`       | gauge     | `vllm:num_requests_waiting`                                     | `sglang:num_queue_reqs`                                                   | sum         |
 * | `running`       | gauge     | `vllm:num_requests_running`                                     | `sglang:num_running_reqs`                                                 | sum         |
 * | `kvUsage` (0-1) | gauge     | `vllm:kv_cache_usage_perc`, older `vllm:gpu_cache_usage_perc`   | `sglang:token_usage`                                                      | max         |
 * | `ttft`          | histogram | `vllm:time_to_first_token_seconds`                              | `sglang:time_to_first_token_seconds`                                      | sum of `_sum`, sum of `_count` |
 * | `tpot`          | histogram | `vllm:inter_token_latency_seconds`, older `vllm:time_per_output_token_seconds` | `sglang:inter_token_latency_seconds`, older `sglang:time_per_output_token_seconds` | sum of `_sum`, sum of `_count` |
 * | `prefixHits`    | counter   | `vllm:prefix_cache_hits`, older `vllm:gpu_prefix_cache_hits` (`_total` samples) | —                                                         | sum         |
 * | `prefixQueries` | counter   | `vllm:prefix_cache_queries`, older `vllm:gpu_prefix_cache_queries` (`_total`)   | —                                                         | sum         |
 * | `prefixHitRate` | gauge 0-1 | older vLLM v0 `vllm:gpu_prefix_cache_hit_rate`                  | `sglang:cache_hit_rate`                                                   | mean        |
 * | `lora`          | info      | `vllm:lora_requests_info`                                       | —                                                                         | greatest value |
 *
 * Several names for one field: the first family in the list that has at least one usable sample
 * is read, the others are ignored (vLLM 0.10 exports both `kv_cache_usage_perc` and its deprecated
 * alias; they are never added together).
 *
 * Series selection (one family, several label sets: per model, per data-parallel engine, per DP
 * rank): the series whose `model_name` label equals one of the target's models (the ModelServer
 * `spec.model` values) are used when there is at least one; otherwise every series is. The chosen
 * series are then combined by the field's rule above: counts (waiting, running, histogram `_sum`
 * and `_count`, counters) are summed, KV usage takes the maximum (the fullest cache is the one that
 * preempts), a hit-rate gauge takes the mean. Never "last series wins" (Kthena's
 * GetCountMetricsInfo overwrites per series). NaN samples are ignored.
 *
 * `vllm:lora_requests_info` is a gauge whose value is the time it was last set and whose labels
 * `running_lora_adapters` / `waiting_lora_adapters` are comma-separated adapter names (blanks
 * around names trimmed); vLLM leaves every earlier label combination on the page, so the sample
 * with the greatest value is the current one.
 *
 * A missing family reads as null; the scraper then writes 0 for waiting/running/KV usage (Kthena:
 * "a missing family sets the field to 0"), keeps the previous TTFT/TPOT/hit rate, and empties the
 * LoRA sets (a page without lora_requests_info reports no active adapter).
 */
import { FamilySelector, parsePrometheus } from './prom.js';
import type { PromFamily, PromSample } from './prom.js';

export type EngineKind = 'vLLM' | 'SGLang';

export type CanonicalField =
  | 'waiting'
  | 'running'
  | 'kvUsage'
  | 'ttft'
  | 'tpot'
  | 'prefixHits'
  | 'prefixQueries'
  | 'prefixHitRate'
  | 'lora';

export type SeriesRule = 'sum' | 'max' | 'mean' | 'latest';

export interface MetricMapping {
  readonly field: CanonicalField;
  readonly kind: 'gauge' | 'counter' | 'histogram' | 'info';
  readonly rule: SeriesRule;
  /** Family names per engine, in preference order (first one present wins). */
  readonly names: Readonly<Record<EngineKind, readonly string[]>>;
}

function mapping(m: MetricMapping): MetricMapping {
  return Object.freeze({ ...m, names: Object.freeze({ vLLM: Object.freeze([...m.names.vLLM]), SGLang: Object.freeze([...m.names.SGLang]) }) });
}

/** The mapping table (see the module comment; docs/metrics.md copies it). */
export const ENGINE_METRICS: readonly MetricMapping[] = Object.freeze([
  mapping({ field: 'waiting', kind: 'gauge', rule: 'sum', names: { vLLM: ['vllm:num_requests_waiting'], SGLang: ['sglang:num_queue_reqs'] } }),
  mapping({ field: 'running', kind: 'gauge', rule: 'sum', names: { vLLM: ['vllm:num_requests_running'], SGLang: ['sglang:num_running_reqs'] } }),
  mapping({
    field: 'kvUsage', kind: 'gauge', rule: 'max',
    names: { vLLM: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'], SGLang: ['sglang:token_usage'] },
  }),
  mapping({
    field: 'ttft', kind: 'histogram', rule: 'sum',
    names: { vLLM: ['vllm:time_to_first_token_seconds'], SGLang: ['sglang:time_to_first_token_seconds'] },
  }),
  mapping({
    field: 'tpot', kind: 'histogram', rule: 'sum',
    names: {
      vLLM: ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds'],
      SGLang: ['sglang:inter_token_latency_seconds', 'sglang:time_per_output_token_seconds'],
    },
  }),
  mapping({ field: 'prefixHits', kind: 'counter', rule: 'sum', names: { vLLM: ['vllm:prefix_cache_hits', 'vllm:gpu_prefix_cache_hits'], SGLang: [] } }),
  mapping({
    field: 'prefixQueries', kind: 'counter', rule: 'sum',
    names: { vLLM: ['vllm:prefix_cache_queries', 'vllm:gpu_prefix_cache_queries'], SGLang: [] },
  }),
  mapping({ field: 'prefixHitRate', kind: 'gauge', rule: 'mean', names: { vLLM: ['vllm:gpu_prefix_cache_hit_rate'], SGLang: ['sglang:cache_hit_rate'] } }),
  mapping({ field: 'lora', kind: 'info', rule: 'latest', names: { vLLM: ['vllm:lora_requests_info'], SGLang: [] } }),
]);

export interface HistogramTotals {
  sum: number;
  count: number;
}

/** One page read through the table; null = no family of the field on the page. */
export interface EngineReading {
  waiting: number | null;
  running: number | null;
  /** Fraction 0..1 as the engine reports it (not clamped here). */
  kvUsage: number | null;
  ttft: HistogramTotals | null;
  tpot: HistogramTotals | null;
  prefixHits: number | null;
  prefixQueries: number | null;
  prefixHitRate: number | null;
  loraRunning: string[] | null;
  loraWaiting: string[] | null;
  /** The family that supplied each field that was found. */
  sources: Partial<Record<CanonicalField, string>>;
}

const selectors = new Map<EngineKind, FamilySelector>();

/** The compiled family selector of an engine (every name of its column; no buckets, no HELP text). */
export function engineSelector(engine: EngineKind): FamilySelector {
  let s = selectors.get(engine);
  if (s === undefined) {
    const names: string[] = [];
    for (const m of ENGINE_METRICS) names.push(...m.names[engine]);
    s = new FamilySelector(names, { buckets: false, created: false, help: false });
    selectors.set(engine, s);
  }
  return s;
}

/** Parses an engine's /metrics page and reads it through the mapping table. */
export function parseEngineMetrics(text: string, engine: EngineKind, models: readonly string[]): EngineReading {
  return readEngineMetrics(parsePrometheus(text, engineSelector(engine)), engine, models);
}

function usable(s: PromSample, kind: MetricMapping['kind']): boolean {
  if (Number.isNaN(s.value)) return false;
  switch (kind) {
    case 'gauge': case 'info': return s.suffix === '';
    case 'counter': return s.suffix === '_total' || s.suffix === '';
    case 'histogram': return s.suffix === '_sum' || s.suffix === '_count';
  }
}

/** The usable samples of a family, narrowed to the target's models when any series names one. */
function chooseSeries(f: PromFamily, kind: MetricMapping['kind'], models: readonly string[]): PromSample[] {
  const all: PromSample[] = [];
  for (const s of f.samples) if (usable(s, kind)) all.push(s);
  if (all.length < 2 || models.length === 0) return all;
  let mine: PromSample[] | null = null;
  for (const s of all) {
    const m = s.labels.model_name;
    if (m !== undefined && models.includes(m)) (mine ??= []).push(s);
  }
  return mine ?? all;
}

function combine(samples: readonly PromSample[], rule: SeriesRule): number {
  switch (rule) {
    case 'sum': {
      let v = 0;
      for (const s of samples) v += s.value;
      return v;
    }
    case 'max': {
      let v = -Infinity;
      for (const s of samples) if (s.value > v) v = s.value;
      return v;
    }
    case 'mean': {
      let v = 0;
      for (const s of samples) v += s.value;
      return v / samples.length;
    }
    case 'latest': {
      let v = -Infinity;
      for (const s of samples) if (s.value > v) v = s.value;
      return v;
    }
  }
}

function splitAdapters(list: string | undefined): string[] {
  if (list === undefined || list === '') return [];
  const out: string[] = [];
  for (const part of list.split(',')) {
    const name = part.trim();
    if (name !== '' && !out.includes(name)) out.push(name);
  }
  return out;
}

/** Reads parsed families (from engineSelector(engine)) through the mapping table. */
export function readEngineMetrics(families: ReadonlyMap<string, PromFamily>, engine: EngineKind, models: readonly string[]): EngineReading {
  const r: EngineReading = {
    waiting: null, running: null, kvUsage: null, ttft: null, tpot: null,
    prefixHits: null, prefixQueries: null, prefixHitRate: null, loraRunning: null, loraWaiting: null,
    sources: {},
  };
  for (const m of ENGINE_METRICS) {
    for (const name of m.names[engine]) {
      const f = families.get(name);
      if (f === undefined) continue;
      const series = chooseSeries(f, m.kind, models);
      if (series.length === 0) continue;
      if (m.kind === 'histogram') {
        let sum = 0;
        let count = 0;
        let sawSum = false;
        let sawCount = false;
        for (const s of series) {
          if (s.suffix === '_sum') { sum += s.value; sawSum = true; } else { count += s.value; sawCount = true; }
        }
        if (!sawSum || !sawCount) continue;
        r[m.field as 'ttft' | 'tpot'] = { sum, count };
      } else if (m.kind === 'info') {
        let best: PromSample = series[0];
        for (const s of series) if (s.value > best.value) best = s;
        r.loraRunning = splitAdapters(best.labels.running_lora_adapters);
        r.loraWaiting = splitAdapters(best.labels.waiting_lora_adapters);
      } else {
        r[m.field as 'waiting' | 'running' | 'kvUsage' | 'prefixHits' | 'prefixQueries' | 'prefixHitRate'] = combine(series, m.rule);
      }
      r.sources[m.field] = name;
      break;
    }
  }
  return r;
}
