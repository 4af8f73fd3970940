import { describe, expect, it } from 'vitest';
import { histogramMean, keepKnown, keepNonZero, prefixHitRate } from '../../src/scrape/delta.js';
import { ENGINE_METRICS, parseEngineMetrics } from '../../src/scrape/engines.js';
import { EngineMetrics } from '../../native-bench/src/sim/metrics.js';

const M = 'meta-llama/Llama-3.1-8B-Instruct';

function page(lines: string[]): string {
  return lines.join('\n') + '\n';
}

describe('engine metrics mapping table', () => {
  it('names every canonical field once, each with a vLLM and/or SGLang source', () => {
    const fields = ENGINE_METRICS.map((m) => m.field);
    expect(new Set(fields).size).toBe(fields.length);
    expect(fields).toEqual(['waiting', 'running', 'kvUsage', 'ttft', 'tpot', 'prefixHits', 'prefixQueries', 'prefixHitRate', 'lora']);
    for (const m of ENGINE_METRICS) expect(m.names.vLLM.length + m.names.SGLang.length).toBeGreaterThan(0);
    expect(Object.isFrozen(ENGINE_METRICS)).toBe(true);
  });

  it('reads a current vLLM page (0.10+ names, engine label, counters with _total)', () => {
    const r = parseEngineMetrics(page([
      '# TYPE vllm:num_requests_running gauge',
      `vllm:num_requests_running{engine="0",model_name="${M}"} 3.0`,
      '# TYPE vllm:num_requests_waiting gauge',
      `vllm:num_requests_waiting{engine="0",model_name="${M}"} 2.0`,
      '# TYPE vllm:kv_cache_usage_perc gauge',
      `vllm:kv_cache_usage_perc{engine="0",model_name="${M}"} 0.25`,
      '# TYPE vllm:gpu_cache_usage_perc gauge',
      `vllm:gpu_cache_usage_perc{engine="0",model_name="${M}"} 0.99`,
      '# TYPE vllm:prefix_cache_queries counter',
      `vllm:prefix_cache_queries_total{engine="0",model_name="${M}"} 1000.0`,
      `vllm:prefix_cache_queries_created{engine="0",model_name="${M}"} 1.7e9`,
      '# TYPE vllm:prefix_cache_hits counter',
      `vllm:prefix_cache_hits_total{engine="0",model_name="${M}"} 400.0`,
      '# TYPE vllm:time_to_first_token_seconds histogram',
      `vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="${M}"} 4.0`,
      `vllm:time_to_first_token_seconds_count{engine="0",model_name="${M}"} 4.0`,
      `vllm:time_to_first_token_seconds_sum{engine="0",model_name="${M}"} 0.8`,
      '# TYPE vllm:inter_token_latency_seconds histogram',
      `vllm:inter_token_latency_seconds_count{engine="0",model_name="${M}"} 100.0`,
      `vllm:inter_token_latency_seconds_sum{engine="0",model_name="${M}"} 2.5`,
      '# TYPE vllm:time_per_output_token_seconds histogram',
      `vllm:time_per_output_token_seconds_count{engine="0",model_name="${M}"} 7.0`,
      `vllm:time_per_output_token_seconds_sum{engine="0",model_name="${M}"} 70.0`,
    ]), 'vLLM', [M]);
    expect(r).toMatchObject({
      waiting: 2, running: 3, kvUsage: 0.25,
      ttft: { sum: 0.8, count: 4 }, tpot: { sum: 2.5, count: 100 },
      prefixHits: 400, prefixQueries: 1000, prefixHitRate: null,
      loraRunning: null, loraWaiting: null,
    });
    // The deprecated aliases on the same page are never read when the current name is present.
    expect(r.sources).toMatchObject({ kvUsage: 'vllm:kv_cache_usage_perc', tpot: 'vllm:inter_token_latency_seconds' });
  });

  it('falls back to the older vLLM names', () => {
    const r = parseEngineMetrics(page([
      `vllm:gpu_cache_usage_perc{model_name="${M}"} 0.5`,
      `vllm:time_per_output_token_seconds_count{model_name="${M}"} 10.0`,
      `vllm:time_per_output_token_seconds_sum{model_name="${M}"} 0.3`,
      `vllm:gpu_prefix_cache_queries_total{model_name="${M}"} 10.0`,
      `vllm:gpu_prefix_cache_hits_total{model_name="${M}"} 5.0`,
      `vllm:gpu_prefix_cache_hit_rate{model_name="${M}"} 0.5`,
    ]), 'vLLM', [M]);
    expect(r).toMatchObject({ kvUsage: 0.5, tpot: { sum: 0.3, count: 10 }, prefixHits: 5, prefixQueries: 10, prefixHitRate: 0.5 });
    expect(r.sources).toMatchObject({ kvUsage: 'vllm:gpu_cache_usage_perc', tpot: 'vllm:time_per_output_token_seconds', prefixHits: 'vllm:gpu_prefix_cache_hits' });
    // Missing families read as null (the scraper decides what to write).
    expect(r.waiting).toBeNull();
    expect(r.ttft).toBeNull();
  });

  it('reads SGLang names, current and older, and its cache_hit_rate gauge', () => {
    const current = parseEngineMetrics(page([
      `sglang:num_running_reqs{model_name="${M}"} 5.0`,
      `sglang:num_queue_reqs{model_name="${M}"} 1.0`,
      `sglang:token_usage{model_name="${M}"} 0.28`,
      `sglang:cache_hit_rate{model_name="${M}"} 0.0075`,
      `sglang:time_to_first_token_seconds_sum{model_name="${M}"} 2.3518979474117756e+06`,
      `sglang:time_to_first_token_seconds_count{model_name="${M}"} 4.0e+06`,
      `sglang:inter_token_latency_seconds_sum{model_name="${M}"} 9.0`,
      `sglang:inter_token_latency_seconds_count{model_name="${M}"} 300.0`,
      `vllm:num_requests_waiting{model_name="${M}"} 77.0`,
    ]), 'SGLang', [M]);
    expect(current).toMatchObject({
      running: 5, waiting: 1, kvUsage: 0.28, prefixHitRate: 0.0075,
      ttft: { sum: 2351897.9474117756, count: 4e6 }, tpot: { sum: 9, count: 300 },
      prefixHits: null, prefixQueries: null, loraRunning: null,
    });
    const older = parseEngineMetrics(page([
      `sglang:time_per_output_token_seconds_sum{model_name="${M}"} 1.0`,
      `sglang:time_per_output_token_seconds_count{model_name="${M}"} 50.0`,
    ]), 'SGLang', [M]);
    expect(older.tpot).toEqual({ sum: 1, count: 50 });
  });

  it('prefers the series whose model_name is one of the target models', () => {
    const text = page([
      'vllm:num_requests_waiting{model_name="other"} 100.0',
      `vllm:num_requests_waiting{model_name="${M}"} 2.0`,
      'vllm:kv_cache_usage_perc{model_name="other"} 0.9',
      `vllm:kv_cache_usage_perc{model_name="${M}"} 0.1`,
      'vllm:time_to_first_token_seconds_count{model_name="other"} 1000.0',
      'vllm:time_to_first_token_seconds_sum{model_name="other"} 1000.0',
      `vllm:time_to_first_token_seconds_count{model_name="${M}"} 4.0`,
      `vllm:time_to_first_token_seconds_sum{model_name="${M}"} 1.0`,
    ]);
    expect(parseEngineMetrics(text, 'vLLM', [M])).toMatchObject({ waiting: 2, kvUsage: 0.1, ttft: { sum: 1, count: 4 } });
    // Two of the pod's models: both of their series, combined by the rule.
    expect(parseEngineMetrics(text, 'vLLM', [M, 'other'])).toMatchObject({ waiting: 102, kvUsage: 0.9, ttft: { sum: 1001, count: 1004 } });
  });

  it('sums counts and takes the max KV usage when no series names a target model (never last-series-wins)', () => {
    const text = page([
      'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
      'vllm:num_requests_running{engine="1",model_name="m"} 4.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 0.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.7',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.2',
      'vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 10.0',
      'vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 1.0',
      'vllm:inter_token_latency_seconds_count{engine="1",model_name="m"} 30.0',
      'vllm:inter_token_latency_seconds_sum{engine="1",model_name="m"} 2.0',
      'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 1.0',
      'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 2.0',
      'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 10.0',
      'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 20.0',
    ]);
    for (const models of [['not-served'], []]) {
      expect(parseEngineMetrics(text, 'vLLM', models)).toMatchObject({
        running: 7, waiting: 1, kvUsage: 0.7, tpot: { sum: 3, count: 40 }, prefixHits: 3, prefixQueries: 30,
      });
    }
  });

  it('averages several SGLang cache_hit_rate series and ignores NaN samples', () => {
    const r = parseEngineMetrics(page([
      'sglang:cache_hit_rate{dp_rank="0"} 0.2',
      'sglang:cache_hit_rate{dp_rank="1"} 0.6',
      'sglang:token_usage{dp_rank="0"} NaN',
      'sglang:token_usage{dp_rank="1"} 0.4',
    ]), 'SGLang', []);
    expect(r.prefixHitRate).toBeCloseTo(0.4, 12);
    expect(r.kvUsage).toBe(0.4);
  });

  it('reads lora_requests_info from the sample with the greatest value, splitting and trimming adapter lists', () => {
    const r = parseEngineMetrics(page([
      '# TYPE vllm:lora_requests_info gauge',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1.7000000001e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora, chat-lora",waiting_lora_adapters="tiny"} 1.7000000009e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7000000005e+09',
    ]), 'vLLM', [M]);
    expect(r.loraRunning).toEqual(['sql-lora', 'chat-lora']);
    expect(r.loraWaiting).toEqual(['tiny']);
  });

  it('ignores a histogram family that lacks _sum or _count', () => {
    const r = parseEngineMetrics(page([`vllm:time_to_first_token_seconds_count{model_name="${M}"} 4.0`]), 'vLLM', [M]);
    expect(r.ttft).toBeNull();
  });
});

describe('interval averages from cumulative counters (Kthena §7)', () => {
  it('gives 0 on the first observation and when there are no new samples', () => {
    expect(histogramMean(null, { sum: 10, count: 5 })).toBe(0);
    expect(histogramMean({ sum: 10, count: 5 }, { sum: 10, count: 5 })).toBe(0);
  });

  it('divides the sum delta by the count delta', () => {
    expect(histogramMean({ sum: 10, count: 5 }, { sum: 13, count: 8 })).toBe(1);
    expect(histogramMean({ sum: 0.5, count: 10 }, { sum: 0.75, count: 20 })).toBeCloseTo(0.025, 12);
  });

  it('uses sum_now/count_now after a counter reset (count or sum went down)', () => {
    expect(histogramMean({ sum: 100, count: 50 }, { sum: 3, count: 2 })).toBe(1.5);
    expect(histogramMean({ sum: 100, count: 50 }, { sum: 99, count: 60 })).toBeCloseTo(1.65, 12);
    expect(histogramMean({ sum: 100, count: 50 }, { sum: 0, count: 0 })).toBe(0);
  });

  it('keeps the last non-zero value when the new one is 0', () => {
    let stored = 0;
    const steps: [number, number][] = [[0, 0], [4, 2], [4, 2], [10, 4], [10, 4]];
    let prev: { sum: number; count: number } | null = null;
    const seen: number[] = [];
    for (const [sum, count] of steps) {
      const now = { sum, count };
      stored = keepNonZero(stored, histogramMean(prev, now));
      prev = now;
      seen.push(stored);
    }
    expect(seen).toEqual([0, 2, 2, 3, 3]);
  });

  it('derives the prefix hit rate from counter deltas, -1 when unknown, kept until known again', () => {
    expect(prefixHitRate(null, { hits: 5, queries: 10 })).toBe(-1);
    expect(prefixHitRate({ hits: 5, queries: 10 }, { hits: 5, queries: 10 })).toBe(-1);
    expect(prefixHitRate({ hits: 5, queries: 10 }, { hits: 35, queries: 110 })).toBeCloseTo(0.3, 12);
    expect(prefixHitRate({ hits: 50, queries: 100 }, { hits: 1, queries: 4 })).toBe(0.25);
    expect(prefixHitRate({ hits: 50, queries: 100 }, { hits: 0, queries: 0 })).toBe(-1);
    expect(prefixHitRate({ hits: 0, queries: 0 }, { hits: 20, queries: 10 })).toBe(1);
    expect(keepKnown(0.3, -1)).toBe(0.3);
    expect(keepKnown(0.3, 0)).toBe(0);
  });
});

describe('the simulator page read through the table', () => {
  it('is read identically with current and legacy vLLM names', () => {
    for (const metricNames of ['current', 'legacy'] as const) {
      const m = new EngineMetrics({ metricNames });
      m.ttft.observe(0.1);
      m.ttft.observe(0.3);
      m.itl.observe(0.02);
      m.promptTokens = 40;
      const text = m.render('vLLM', M, { running: 2, waiting: 1, kvCacheUsage: 0.5, override: { prefixCacheHits: 10 } });
      const r = parseEngineMetrics(text, 'vLLM', [M]);
      expect(r).toMatchObject({ running: 2, waiting: 1, kvUsage: 0.5, ttft: { count: 2 }, tpot: { sum: 0.02, count: 1 }, prefixHits: 10, prefixQueries: 40 });
      expect(r.ttft!.sum).toBeCloseTo(0.4, 12);
      expect(text.includes('vllm:gpu_cache_usage_perc')).toBe(metricNames === 'legacy');
      expect(text.includes('vllm:time_per_output_token_seconds')).toBe(metricNames === 'legacy');
    }
  });

  it('renders SGLang with a cache_hit_rate gauge and older TPOT name', () => {
    const m = new EngineMetrics({ metricNames: 'legacy' });
    const text = m.render('SGLang', M, { running: 1, waiting: 0, kvCacheUsage: 0.1, override: { prefixCacheHits: 1, prefixCacheQueries: 4 } });
    expect(text).toContain('sglang:time_per_output_token_seconds_count');
    expect(parseEngineMetrics(text, 'SGLang', [M])).toMatchObject({ running: 1, kvUsage: 0.1, prefixHitRate: 0.25, tpot: { count: 0 } });
  });

  it('renders extra label sets that the selection rule then picks or sums', () => {
    const m = new EngineMetrics({
      extraSeries: [{ labels: { model_name: 'other' }, running: 10, waiting: 20, kvCacheUsage: 0.9, ttft: { sum: 8, count: 4 } }],
    });
    m.ttft.observe(0.5);
    const text = m.render('vLLM', M, { running: 1, waiting: 2, kvCacheUsage: 0.3 });
    expect(parseEngineMetrics(text, 'vLLM', [M])).toMatchObject({ running: 1, waiting: 2, kvUsage: 0.3, ttft: { sum: 0.5, count: 1 } });
    expect(parseEngineMetrics(text, 'vLLM', ['unrelated'])).toMatchObject({ running: 11, waiting: 22, kvUsage: 0.9, ttft: { sum: 8.5, count: 5 } });
  });

  it('keeps every lora_requests_info label set it reported, the current one holding the greatest value', () => {
    const m = new EngineMetrics();
    m.render('vLLM', M, { running: 0, waiting: 0, kvCacheUsage: 0, loraRunning: ['a'], loraWaiting: [], maxLora: 2 });
    m.render('vLLM', M, { running: 0, waiting: 0, kvCacheUsage: 0, loraRunning: ['a', 'b'], loraWaiting: ['c'], maxLora: 2 });
    const text = m.render('vLLM', M, { running: 0, waiting: 0, kvCacheUsage: 0, loraRunning: ['b'], loraWaiting: [], maxLora: 2 });
    expect(text.match(/^vllm:lora_requests_info\{/gm)).toHaveLength(3);
    expect(parseEngineMetrics(text, 'vLLM', [M])).toMatchObject({ loraRunning: ['b'], loraWaiting: [] });
    const again = m.render('vLLM', M, { running: 0, waiting: 0, kvCacheUsage: 0, loraRunning: ['a'], loraWaiting: [], maxLora: 2 });
    expect(parseEngineMetrics(again, 'vLLM', [M])).toMatchObject({ loraRunning: ['a'] });
  });

  it('observes a TTFT/TPOT override once per render and ignores measured values meanwhile', () => {
    const m = new EngineMetrics();
    const g = { running: 0, waiting: 0, kvCacheUsage: 0, override: { ttftSeconds: 0.25, tpotSeconds: 0.01 } };
    const first = parseEngineMetrics(m.render('vLLM', M, g), 'vLLM', [M]);
    m.ttft.observe(9);
    m.itl.observe(9);
    const second = parseEngineMetrics(m.render('vLLM', M, g), 'vLLM', [M]);
    expect(histogramMean(first.ttft, second.ttft!)).toBeCloseTo(0.25, 12);
    expect(histogramMean(first.tpot, second.tpot!)).toBeCloseTo(0.01, 12);
    m.render('vLLM', M, { running: 0, waiting: 0, kvCacheUsage: 0 });
    m.ttft.observe(1);
    expect(m.ttft.count).toBe(3);
  });
});
