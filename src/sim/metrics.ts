/**
 * Prometheus exposition of a simulated engine, with the family names real vLLM and SGLang servers
 * export, because the router's scraper maps exactly those names (reference §7). Numbers are
 * written the way prometheus_client (Python) writes them ("3.0", le="+Inf"), so a parser that only
 * copes with Go-style integers fails here as it would against a real engine.
 */

import type { SimEngine } from './types.js';

interface EngineMetricNames {
  running: string;
  waiting: string;
  kvUsage: string;
  ttft: string;
  itl: string;
  promptTokens: string;
  generationTokens: string;
}

export const ENGINE_METRIC_NAMES: Readonly<Record<SimEngine, Readonly<EngineMetricNames>>> = Object.freeze({
  vLLM: Object.freeze({
    running: 'vllm:num_requests_running',
    waiting: 'vllm:num_requests_waiting',
    kvUsage: 'vllm:kv_cache_usage_perc',
    ttft: 'vllm:time_to_first_token_seconds',
    itl: 'vllm:inter_token_latency_seconds',
    promptTokens: 'vllm:prompt_tokens_total',
    generationTokens: 'vllm:generation_tokens_total',
  }),
  SGLang: Object.freeze({
    running: 'sglang:num_running_reqs',
    waiting: 'sglang:num_queue_reqs',
    kvUsage: 'sglang:token_usage',
    ttft: 'sglang:time_to_first_token_seconds',
    itl: 'sglang:inter_token_latency_seconds',
    promptTokens: 'sglang:prompt_tokens_total',
    generationTokens: 'sglang:generation_tokens_total',
  }),
});

/** vLLM's own bucket bounds, so bucket-based quantiles computed by a router match a real scrape. */
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

export class Histogram {
  readonly bounds: readonly number[];
  /** Non-cumulative counts per bound; the +Inf overflow is count minus their sum. */
  readonly #counts: Float64Array;
  count = 0;
  sum = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
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
}

/** Counters and histograms one simulated engine accumulates over its lifetime. */
export class EngineMetrics {
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly itl = new Histogram(ITL_BUCKETS);
  promptTokens = 0;
  generationTokens = 0;

  render(engine: SimEngine, modelName: string, gauges: EngineGauges): string {
    const n = ENGINE_METRIC_NAMES[engine];
    const label = `model_name="${escapeLabel(modelName)}"`;
    const lines: string[] = [];
    gauge(lines, n.running, 'Number of requests in model execution batches.', label, gauges.running);
    gauge(lines, n.waiting, 'Number of requests waiting to be processed.', label, gauges.waiting);
    gauge(lines, n.kvUsage, 'KV-cache usage. 1 means 100 percent usage.', label, gauges.kvCacheUsage);
    counter(lines, n.promptTokens, 'Number of prefill tokens processed.', label, this.promptTokens);
    counter(lines, n.generationTokens, 'Number of generation tokens processed.', label, this.generationTokens);
    histogram(lines, n.ttft, 'Histogram of time to first token in seconds.', label, this.ttft);
    histogram(lines, n.itl, 'Histogram of inter-token latency in seconds.', label, this.itl);
    return lines.join('\n') + '\n';
  }
}

function gauge(lines: string[], name: string, help: string, label: string, v: number): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${label}} ${promNumber(v)}`);
}

function counter(lines: string[], name: string, help: string, label: string, v: number): void {
  // prometheus_client declares the family without the _total suffix and samples with it.
  const family = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
  lines.push(`# HELP ${family} ${help}`, `# TYPE ${family} counter`, `${name}{${label}} ${promNumber(v)}`);
}

function histogram(lines: string[], name: string, help: string, label: string, h: Histogram): void {
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
