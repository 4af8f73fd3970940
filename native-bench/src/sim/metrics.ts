/**
 * Prometheus exposition of a simulated engine, with the family names real vLLM and SGLang servers
 * export, because the router's scraper maps exactly those names (reference §7, src/scrape/engines.ts).
 * Numbers are written the way prometheus_client (Python) writes them ("3.0", le="+Inf"), counters
 * are declared without `_total` and sampled with it, so a parser that only copes with Go-style
 * output fails here as it would against a real engine.
 *
 * Beyond the basic load families a pod can show:
 * - the older names (`metricNames: 'legacy'`): vLLM `gpu_cache_usage_perc`,
 *   `time_per_output_token_seconds`, `gpu_prefix_cache_*`; SGLang `time_per_output_token_seconds`;
 * - prefix-cache counters (vLLM `prefix_cache_queries`/`_hits`, SGLang `cache_hit_rate`): queries
 *   are the prompt tokens processed, hits 0 (the simulator has no prefix cache) unless
 *   metricsOverride sets them;
 * - `vllm:lora_requests_info` for a pod that serves adapters, with every label combination it
 *   ever reported left on the page, the current one holding the greatest timestamp (as vLLM does);
 * - extra label sets (`extraMetricSeries`) beside the pod's own series;
 * - TTFT / inter-token overrides observed into the histograms (see SimMetricsOverride);
 * - end-to-end latency (both engines) and queue time (vLLM) histograms, preemptions and finished
 *   requests by reason (vLLM), and the cache configuration info gauge (`block_size`,
 *   `num_gpu_blocks`; SGLang `page_size`, `num_pages`) that GIE-style routers read.
 *
 * A pod in model mode (native-bench/src/sim/model.ts) observes simulated seconds, so a scraper sees the same
 * latencies whatever the time scale.
 */

import type { SimEngine, SimExtraSeries, SimMetricNames, SimMetricsOverride } from './types.js';

interface EngineMetricNames {
  running: string;
  waiting: string;
  kvUsage: string;
  ttft: string;
  itl: string;
  promptTokens: string;
  generationTokens: string;
  /** Counter family names (declared without _total); '' when the engine has none. */
  prefixQueries: string;
  prefixHits: string;
  /** Hit-rate gauge (SGLang); '' when the engine exports counters instead. */
  cacheHitRate: string;
  /** LoRA info gauge; '' when the engine has none. */
  loraInfo: string;
  /** End-to-end request latency histogram. */
  e2e: string;
  /** Queue time histogram; '' when the engine has none. */
  queueTime: string;
  /** Preemption counter (declared without _total); '' when the engine has none. */
  preemptions: string;
  /** Finished requests by finished_reason (counter); '' when the engine has none. */
  requestSuccess: string;
  /** Cache configuration info gauge. */
  cacheConfig: string;
}

function names(n: EngineMetricNames): Readonly<EngineMetricNames> {
  return Object.freeze(n);
}

/** Current names (vLLM 0.10+, current SGLang). */
export const ENGINE_METRIC_NAMES: Readonly<Record<SimEngine, Readonly<EngineMetricNames>>> = Object.freeze({
  vLLM: names({
    running: 'vllm:num_requests_running',
    waiting: 'vllm:num_requests_waiting',
    kvUsage: 'vllm:kv_cache_usage_perc',
    ttft: 'vllm:time_to_first_token_seconds',
    itl: 'vllm:inter_token_latency_seconds',
    promptTokens: 'vllm:prompt_tokens_total',
    generationTokens: 'vllm:generation_tokens_total',
    prefixQueries: 'vllm:prefix_cache_queries',
    prefixHits: 'vllm:prefix_cache_hits',
    cacheHitRate: '',
    loraInfo: 'vllm:lora_requests_info',
    e2e: 'vllm:e2e_request_latency_seconds',
    queueTime: 'vllm:request_queue_time_seconds',
    preemptions: 'vllm:num_preemptions',
    requestSuccess: 'vllm:request_success',
    cacheConfig: 'vllm:cache_config_info',
  }),
  SGLang: names({
    running: 'sglang:num_running_reqs',
    waiting: 'sglang:num_queue_reqs',
    kvUsage: 'sglang:token_usage',
    ttft: 'sglang:time_to_first_token_seconds',
    itl: 'sglang:inter_token_latency_seconds',
    promptTokens: 'sglang:prompt_tokens_total',
    generationTokens: 'sglang:generation_tokens_total',
    prefixQueries: '',
    prefixHits: '',
    cacheHitRate: 'sglang:cache_hit_rate',
    loraInfo: '',
    e2e: 'sglang:e2e_request_latency_seconds',
    queueTime: '',
    preemptions: '',
    requestSuccess: '',
    cacheConfig: 'sglang:cache_config_info',
  }),
});

/** Older names: vLLM before 0.10 (V1 0.8/0.9), SGLang before inter_token_latency_seconds. */
export const LEGACY_ENGINE_METRIC_NAMES: Readonly<Record<SimEngine, Readonly<EngineMetricNames>>> = Object.freeze({
  vLLM: names({
    ...ENGINE_METRIC_NAMES.vLLM,
    kvUsage: 'vllm:gpu_cache_usage_perc',
    itl: 'vllm:time_per_output_token_seconds',
    prefixQueries: 'vllm:gpu_prefix_cache_queries',
    prefixHits: 'vllm:gpu_prefix_cache_hits',
  }),
  SGLang: names({
    ...ENGINE_METRIC_NAMES.SGLang,
    itl: 'sglang:time_per_output_token_seconds',
  }),
});

/** vLLM's own bucket bounds, so bucket-based quantiles computed by a router match a real scrape. */
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
/** vLLM's request_latency_buckets (e2e, queue, prefill, decode time). */
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

export class Histogram {
  readonly bounds: readonly number[];
  /** Non-cumulative counts per bound; the +Inf overflow is count minus their sum. */
  readonly #counts: Float64Array;
  count = 0;
  sum = 0;
  /** While true, observe() ignores measured values (an override is being reported instead). */
  frozen = false;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    if (!this.frozen) this.record(seconds);
  }

  /** Observes regardless of `frozen`. */
  record(seconds: number): void {
    this.count++;
    this.sum += seconds;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]) {
        this.#counts[i]++;
        return;
      }
    }
  }

  cumulative(): number[] {
    const out = new Array<number>(this.bounds.length);
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.#counts[i];
      out[i] = acc;
    }
    return out;
  }
}

export interface EngineGauges {
  running: number;
  waiting: number;
  kvCacheUsage: number;
  /**
   * Adapters (model names other than the base) of the running / waiting requests. Given only for a
   * pod that serves adapters; without them no lora_requests_info is rendered.
   */
  loraRunning?: readonly string[];
  loraWaiting?: readonly string[];
  /** Number of adapters the pod serves (the `max_lora` label). */
  maxLora?: number;
  /** The pod's metricsOverride: TTFT/TPOT/prefix/LoRA fields are applied here. */
  override?: SimMetricsOverride;
  /** Measured prefix-cache counters (model mode); without them queries = prompt tokens, hits = 0. */
  prefixQueries?: number;
  prefixHits?: number;
  /** Preemptions so far (model mode); 0 without. */
  preemptions?: number;
  /** The KV cache's shape, for the cache_config_info gauge. */
  cacheConfig?: { blockSize: number; numBlocks: number; prefixCaching: boolean };
}

export type FinishedReason = 'stop' | 'length' | 'abort';

export interface EngineMetricsOptions {
  metricNames?: SimMetricNames;
  extraSeries?: readonly SimExtraSeries[];
}

type Series = [labels: string, value: number];

/** Counters and histograms one simulated engine accumulates over its lifetime. */
export class EngineMetrics {
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly itl = new Histogram(ITL_BUCKETS);
  readonly e2e = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly queueTime = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly finished: Record<FinishedReason, number> = { stop: 0, length: 0, abort: 0 };
  promptTokens = 0;
  generationTokens = 0;
  #metricNames: SimMetricNames = 'current';
  #extra: readonly SimExtraSeries[] = [];
  /** lora_requests_info label sets ever reported -> the time they were last current. */
  readonly #loraSeen = new Map<string, number>();
  #loraLast = 0;

  constructor(opts: EngineMetricsOptions = {}) {
    this.configure(opts);
  }

  configure(opts: EngineMetricsOptions): void {
    this.#metricNames = opts.metricNames ?? 'current';
    this.#extra = opts.extraSeries ? opts.extraSeries.map((s) => ({ ...s, labels: { ...s.labels } })) : [];
  }

  render(engine: SimEngine, modelName: string, gauges: EngineGauges): string {
    const n = (this.#metricNames === 'legacy' ? LEGACY_ENGINE_METRIC_NAMES : ENGINE_METRIC_NAMES)[engine];
    const o = gauges.override ?? {};
    const label = `model_name="${escapeLabel(modelName)}"`;
    const extra = this.#extra.map((s) => ({ s, label: labelString(s.labels) }));
    const lines: string[] = [];
    const series = (own: number, pick: (s: SimExtraSeries) => number | undefined): Series[] => [
      [label, own],
      ...extra.map(({ s, label: l }): Series => [l, pick(s) ?? 0]),
    ];

    this.ttft.frozen = o.ttftSeconds !== undefined;
    if (o.ttftSeconds !== undefined) this.ttft.record(o.ttftSeconds);
    this.itl.frozen = o.tpotSeconds !== undefined;
    if (o.tpotSeconds !== undefined) this.itl.record(o.tpotSeconds);

    gauge(lines, n.running, 'Number of requests in model execution batches.', series(gauges.running, (s) => s.running));
    gauge(lines, n.waiting, 'Number of requests waiting to be processed.', series(gauges.waiting, (s) => s.waiting));
    gauge(lines, n.kvUsage, 'KV-cache usage. 1 means 100 percent usage.', series(gauges.kvCacheUsage, (s) => s.kvCacheUsage));
    counter(lines, n.promptTokens, 'Number of prefill tokens processed.', [[label, this.promptTokens]]);
    counter(lines, n.generationTokens, 'Number of generation tokens processed.', [[label, this.generationTokens]]);
    const queries = o.prefixCacheQueries ?? gauges.prefixQueries ?? this.promptTokens;
    const hits = o.prefixCacheHits ?? gauges.prefixHits ?? 0;
    if (n.prefixQueries !== '') {
      counter(lines, n.prefixQueries + '_total', 'Prefix cache queries, in terms of number of queried tokens.',
        series(queries, (s) => s.prefixCacheQueries));
      counter(lines, n.prefixHits + '_total', 'Prefix cache hits, in terms of number of cached tokens.',
        series(hits, (s) => s.prefixCacheHits));
    }
    if (n.cacheHitRate !== '') {
      const rate = (q: number, h: number) => (q > 0 ? Math.min(1, h / q) : 0);
      gauge(lines, n.cacheHitRate, 'The prefix cache hit rate.',
        series(rate(queries, hits), (s) => rate(s.prefixCacheQueries ?? 0, s.prefixCacheHits ?? 0)));
    }
    histogram(lines, n.ttft, 'Histogram of time to first token in seconds.', label, this.ttft, extra.map(({ s, label: l }) => [l, s.ttft]));
    histogram(lines, n.itl, 'Histogram of inter-token latency in seconds.', label, this.itl, extra.map(({ s, label: l }) => [l, s.tpot]));
    histogram(lines, n.e2e, 'Histogram of e2e request latency in seconds.', label, this.e2e);
    if (n.queueTime !== '') histogram(lines, n.queueTime, 'Histogram of time spent in WAITING phase for request.', label, this.queueTime);
    if (n.preemptions !== '') {
      counter(lines, n.preemptions + '_total', 'Cumulative number of preemption from the engine.', [[label, gauges.preemptions ?? 0]]);
    }
    if (n.requestSuccess !== '') {
      counter(lines, n.requestSuccess + '_total', 'Count of successfully processed requests.',
        (['stop', 'length', 'abort'] as const).map((r): Series => [`${label},finished_reason="${r}"`, this.finished[r]]));
    }
    if (gauges.cacheConfig) {
      const cc = gauges.cacheConfig;
      const labels = engine === 'vLLM'
        ? `block_size="${cc.blockSize}",cache_dtype="auto",enable_prefix_caching="${cc.prefixCaching ? 'True' : 'False'}",` +
          `gpu_memory_utilization="0.9",num_gpu_blocks="${cc.numBlocks}"`
        : `page_size="${cc.blockSize}",num_pages="${cc.numBlocks}"`;
      gauge(lines, n.cacheConfig, 'Information of the LLMEngine CacheConfig', [[labels, 1]]);
    }
    if (n.loraInfo !== '' && (gauges.loraRunning !== undefined || o.loraRunning !== undefined || o.loraWaiting !== undefined)) {
      this.#renderLora(lines, n.loraInfo, o.loraRunning ?? gauges.loraRunning ?? [], o.loraWaiting ?? gauges.loraWaiting ?? [], gauges.maxLora ?? 1);
    }
    return lines.join('\n') + '\n';
  }

  #renderLora(lines: string[], name: string, running: readonly string[], waiting: readonly string[], maxLora: number): void {
    const key = `max_lora="${Math.max(1, maxLora)}",running_lora_adapters="${escapeLabel(running.join(','))}",` +
      `waiting_lora_adapters="${escapeLabel(waiting.join(','))}"`;
    // Strictly increasing, so the current label set always holds the greatest value.
    const now = Math.max(Date.now() / 1000, this.#loraLast + 0.001);
    this.#loraLast = now;
    this.#loraSeen.set(key, now);
    lines.push(`# HELP ${name} Running stats on lora requests.`, `# TYPE ${name} gauge`);
    for (const [labels, ts] of this.#loraSeen) lines.push(`${name}{${labels}} ${promNumber(ts)}`);
  }
}

function gauge(lines: string[], name: string, help: string, series: readonly Series[]): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
  for (const [labels, v] of series) lines.push(`${name}{${labels}} ${promNumber(v)}`);
}

function counter(lines: string[], name: string, help: string, series: readonly Series[]): void {
  // prometheus_client declares the family without the _total suffix and samples with it.
  const family = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
  lines.push(`# HELP ${family} ${help}`, `# TYPE ${family} counter`);
  for (const [labels, v] of series) lines.push(`${name}{${labels}} ${promNumber(v)}`);
}

function histogram(
  lines: string[],
  name: string,
  help: string,
  label: string,
  h: Histogram,
  extra: readonly [string, { sum: number; count: number } | undefined][] = [],
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  const cum = h.cumulative();
  for (let i = 0; i < h.bounds.length; i++) {
    lines.push(`${name}_bucket{${label},le="${promNumber(h.bounds[i])}"} ${promNumber(cum[i])}`);
  }
  lines.push(
    `${name}_bucket{${label},le="+Inf"} ${promNumber(h.count)}`,
    `${name}_count{${label}} ${promNumber(h.count)}`,
    `${name}_sum{${label}} ${promNumber(h.sum)}`,
  );
  for (const [l, t] of extra) {
    const count = t?.count ?? 0;
    lines.push(
      `${name}_bucket{${l},le="+Inf"} ${promNumber(count)}`,
      `${name}_count{${l}} ${promNumber(count)}`,
      `${name}_sum{${l}} ${promNumber(t?.sum ?? 0)}`,
    );
  }
}

export function promNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return Number.isInteger(v) ? v.toFixed(1) : String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelString(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function isNonNegative(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function isTotals(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  const t = v as Record<string, unknown>;
  return isNonNegative(t.sum) && isNonNegative(t.count);
}

/** Checks the metrics fields of a pod spec (metricNames, extraMetricSeries); `at` names the pod. */
export function validateSimMetricsSpec(s: Record<string, unknown>, at: string): void {
  if (s.metricNames !== undefined && s.metricNames !== 'current' && s.metricNames !== 'legacy') {
    throw new TypeError(`${at}.metricNames must be "current" or "legacy"`);
  }
  if (s.extraMetricSeries === undefined) return;
  if (!Array.isArray(s.extraMetricSeries)) throw new TypeError(`${at}.extraMetricSeries must be a list`);
  s.extraMetricSeries.forEach((e: unknown, i) => {
    const where = `${at}.extraMetricSeries[${i}]`;
    if (e === null || typeof e !== 'object') throw new TypeError(`${where} must be an object`);
    const x = e as Record<string, unknown>;
    const labels = x.labels;
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels) || Object.keys(labels).length === 0) {
      throw new TypeError(`${where}.labels must be a non-empty object of label name -> value`);
    }
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL_NAME.test(k) || k === 'le' || typeof v !== 'string') throw new TypeError(`${where}.labels.${k} must be a string label`);
    }
    for (const k of ['running', 'waiting', 'kvCacheUsage', 'prefixCacheHits', 'prefixCacheQueries']) {
      if (x[k] !== undefined && !isNonNegative(x[k])) throw new TypeError(`${where}.${k} must be a number >= 0`);
    }
    for (const k of ['ttft', 'tpot']) {
      if (x[k] !== undefined && !isTotals(x[k])) throw new TypeError(`${where}.${k} must be {sum, count} with numbers >= 0`);
    }
  });
}

const OVERRIDE_NUMBERS: ReadonlySet<string> = new Set([
  'running', 'waiting', 'kvCacheUsage', 'ttftSeconds', 'tpotSeconds', 'prefixCacheHits', 'prefixCacheQueries',
]);
const OVERRIDE_LISTS: ReadonlySet<string> = new Set(['loraRunning', 'loraWaiting']);

/** Checks a metricsOverride object; throws TypeError naming the first bad field. */
export function validateMetricsOverride(m: unknown): void {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new TypeError('metricsOverride must be an object');
  for (const [k, v] of Object.entries(m)) {
    if (OVERRIDE_NUMBERS.has(k)) {
      if (!isNonNegative(v)) throw new TypeError(`metricsOverride.${k} must be a number >= 0`);
    } else if (OVERRIDE_LISTS.has(k)) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '' && !x.includes(','))) {
        throw new TypeError(`metricsOverride.${k} must be a list of adapter names`);
      }
    } else {
      throw new TypeError(`unknown metricsOverride field "${k}"`);
    }
  }
}
