import v8 from 'node:v8';
import { AggregatorRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { SchedulerIR } from '../../src/ir/types.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import {
  allocatePrefixIndex,
  epIndex,
  kEndpointStride,
  kEpModelBits,
  kEpGen,
  kScrapeStale,
} from '../../src/shared/layout.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';
import { Scheduler } from '../../workers/scheduler/framework.js';
import { MATCH_RATIO_BUCKETS, PLUGIN_DURATION, PLUGIN_DURATION_BUCKETS, PREFIX_EVICTIONS, PREFIX_MATCH_RATIO } from '../../workers/scheduler/metrics.js';
import type { ScheduleRequest, SchedEndpoint } from '../../workers/scheduler/types.js';
import { writeSlot, type SlotMetrics } from '../helpers/slots.js';

type Pod = SlotMetrics;

/** mulberry32: a seeded uniform [0, 1) generator, so statistical tests are deterministic. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


function env(pods: Pod[], opts: { sampleEvery?: number; seed?: number; prefixEntries?: number } = {}) {
  const ep = new Int32Array(new SharedArrayBuffer(64 * kEndpointStride * 4));
  pods.forEach((p, slot) => {
    writeSlot(ep, slot, p);
    Atomics.store(ep, epIndex(slot, kEpGen), 1);
  });
  const endpoints: SchedEndpoint[] = pods.map((_, slot) => ({ slot, gen: 1, podName: `pod-${slot}`, namespace: 'ns', ip: `127.0.0.${slot + 2}`, startedAtSec: 0 }));
  const prefixSab = allocatePrefixIndex(opts.prefixEntries ?? 4096);
  const scheduler = new Scheduler({ ep, prefixSab, random: seeded(opts.seed ?? 1), sampleEvery: opts.sampleEvery });
  return { ep, endpoints, scheduler };
}

function profileIR(fields: Partial<SchedulerIR>): SchedulerIR {
  return { ...DEFAULT_SCHEDULER, ...fields };
}

function request(fields: Partial<ScheduleRequest> = {}): ScheduleRequest {
  return { model: 'llama', modelId: 0, prompt: '', body: {}, engine: 'vLLM', ...fields };
}

function ranked(out: Int32Array, n: number): number[] {
  return n > 0 ? Array.from(out.subarray(0, n)) : [];
}

describe('filters', () => {
  it('fail naming the plugin that emptied the candidate list', () => {
    const { endpoints, scheduler } = env([{ waiting: 10 }, { waiting: 12 }]);
    const p = scheduler.compile(profileIR({}), ['llama'], [0]);
    expect(scheduler.schedule(p, endpoints, request(), new Int32Array(5), null)).toBe(0);
    expect(scheduler.filteredBy).toBe('least-request');
  });

  it('run in configured order: the first filter to empty the list is named', () => {
    // No pod has the model bit: lora-affinity empties the list whichever runs; least-request would too.
    const { endpoints, scheduler } = env([{ waiting: 50 }, { waiting: 50 }]);
    const a = scheduler.compile(profileIR({ filters: ['lora-affinity', 'least-request'] }), ['llama'], [0]);
    expect(scheduler.schedule(a, endpoints, request(), new Int32Array(5), null)).toBe(0);
    expect(scheduler.filteredBy).toBe('lora-affinity');
    const b = scheduler.compile(profileIR({ filters: ['least-request', 'lora-affinity'] }), ['llama'], [0]);
    expect(scheduler.schedule(b, endpoints, request(), new Int32Array(5), null)).toBe(0);
    expect(scheduler.filteredBy).toBe('least-request');
  });

  it('only pass survivors to the score plugins', () => {
    const { endpoints, scheduler } = env([{ waiting: 10 }, { waiting: 0, kv: 0.9 }, { waiting: 11 }, { waiting: 3, kv: 0.5 }]);
    const p = scheduler.compile(profileIR({ scores: [{ name: 'gpu-usage', weight: 1 }] }), ['llama'], [0]);
    const out = new Int32Array(5);
    expect(ranked(out, scheduler.schedule(p, endpoints, request(), out, null))).toEqual([3, 1]);
  });
});

describe('scores and eligibility', () => {
  it('with no score plugin there are no candidates (-1)', () => {
    const { endpoints, scheduler } = env([{}, {}]);
    const p = scheduler.compile(profileIR({ filters: [], scores: [] }), [], []);
    expect(scheduler.schedule(p, endpoints, request(), new Int32Array(5), null)).toBe(-1);
  });

  it('a plugin that gives no scores makes no pod eligible (prefix-cache on an empty prompt)', () => {
    const { endpoints, scheduler } = env([{}, {}]);
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'prefix-cache', weight: 1 }] }), [], []);
    expect(scheduler.schedule(p, endpoints, request({ prompt: '' }), new Int32Array(5), null)).toBe(-1);
    expect(scheduler.takePrefixHashes()).toBeNull();
  });

  it('only pods scored by at least one plugin are eligible (kvcache-aware without an entry)', () => {
    const { endpoints, scheduler } = env([{}, {}, {}, {}]);
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'kvcache-aware', weight: 1 }] }), [], []);
    expect(p.hasKvcacheAware).toBe(true);
    const out = new Int32Array(5);
    expect(scheduler.schedule(p, endpoints, request(), out, null)).toBe(-1);
    const n = scheduler.schedule(p, endpoints, request(), out, Float64Array.from([NaN, 20, NaN, 80]));
    expect(ranked(out, n)).toEqual([3, 1]);
    expect(scheduler.schedule(p, endpoints, request(), out, Float64Array.from([NaN, NaN, NaN, NaN]))).toBe(-1);
  });

  it('a pod scored only with weight 0 is still eligible, as in Kthena', () => {
    const { endpoints, scheduler } = env([{}, {}]);
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'kvcache-aware', weight: 0 }] }), [], []);
    const out = new Int32Array(5);
    expect(scheduler.schedule(p, endpoints, request(), out, Float64Array.from([NaN, 100]))).toBe(1);
    expect(out[0]).toBe(1);
  });

  it('mixes plugins that score every pod with plugins that score some, in either order', () => {
    // gpu: pod 0 -> 100, pod 1 -> 50, pod 2 -> 0; kvcache-aware (weight 2): pod 2 -> 100, others none.
    const { endpoints, scheduler } = env([{ kv: 0 }, { kv: 0.5 }, { kv: 1 }]);
    const extra = Float64Array.from([NaN, NaN, 100]);
    const out = new Int32Array(3);
    for (const scores of [
      [{ name: 'kvcache-aware', weight: 2 }, { name: 'gpu-usage', weight: 1 }],
      [{ name: 'gpu-usage', weight: 1 }, { name: 'kvcache-aware', weight: 2 }],
    ] as SchedulerIR['scores'][]) {
      const p = scheduler.compile(profileIR({ filters: [], scores }), [], []);
      // totals: 100, 50, 200 -> every pod eligible (gpu-usage scored them all)
      expect(ranked(out, scheduler.schedule(p, endpoints, request(), out, extra))).toEqual([2, 0, 1]);
      // without the scorer output only gpu-usage counts
      expect(ranked(out, scheduler.schedule(p, endpoints, request(), out, null))).toEqual([0, 1, 2]);
    }
  });

  it('recomputes reused scores (gpu-usage, least-latency) when a scrape lands or the candidates change', () => {
    const { ep, endpoints, scheduler } = env([{ kv: 0.1, ttftMs: 100, tpotMs: 10 }, { kv: 0.5, ttftMs: 200, tpotMs: 20 }, { kv: 0.9, ttftMs: 300, tpotMs: 30 }]);
    for (let slot = 0; slot < 3; slot++) Atomics.store(ep, epIndex(slot, kEpModelBits), 1); // model id 0
    const p = scheduler.compile(profileIR({ filters: ['lora-affinity'], scores: [{ name: 'gpu-usage', weight: 1 }, { name: 'least-latency', weight: 1 }] }), ['llama'], [0]);
    const out = new Int32Array(3);
    const run = () => ranked(out, scheduler.schedule(p, endpoints, request(), out, null));
    expect(run()).toEqual([0, 1, 2]);
    expect(run()).toEqual([0, 1, 2]);
    // A scrape (through the seqlock) makes pod 2 the best.
    writeSlot(ep, 2, { kv: 0, ttftMs: 50, tpotMs: 5 });
    expect(run()).toEqual([2, 0, 1]);
    // The candidate list changes without any scrape: pod 2 stops advertising the model.
    Atomics.store(ep, epIndex(2, kEpModelBits), 0);
    expect(run()).toEqual([0, 1]);
    Atomics.store(ep, epIndex(0, kEpModelBits), 0);
    Atomics.store(ep, epIndex(2, kEpModelBits), 1);
    // pods 1 and 2 remain: min/max over them only
    expect(run()).toEqual([2, 1]);
  });

  it('serves several servers in turn (each endpoint list read as itself)', () => {
    const { endpoints, scheduler } = env([{ kv: 0.9 }, { kv: 0.1 }, { kv: 0.5 }, { kv: 0.3 }]);
    const a = [endpoints[0], endpoints[1]];
    const b = [endpoints[2], endpoints[3], endpoints[0]];
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }] }), [], []);
    const out = new Int32Array(3);
    for (let t = 0; t < 3; t++) {
      expect(ranked(out, scheduler.schedule(p, a, request(), out, null))).toEqual([1, 0]);
      expect(ranked(out, scheduler.schedule(p, b, request(), out, null))).toEqual([1, 0, 2]);
    }
  });

  it('sums score x weight over the plugins', () => {
    // pod 0: gpu 100 (kv 0), least-request 0 (busiest); pod 1: gpu 40, least-request 100.
    const pods = [{ kv: 0, inflight: 4, running: 4 }, { kv: 0.6, inflight: 0 }];
    const { endpoints, scheduler } = env(pods);
    const out = new Int32Array(2);
    const equal = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }, { name: 'least-request', weight: 1 }] }), [], []);
    expect(ranked(out, scheduler.schedule(equal, endpoints, request(), out, null))).toEqual([1, 0]); // 140 vs 100
    const gpuHeavy = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 3 }, { name: 'least-request', weight: 1 }] }), [], []);
    expect(ranked(out, scheduler.schedule(gpuHeavy, endpoints, request(), out, null))).toEqual([0, 1]); // 300 vs 220
  });

  it('keeps the configured plugin order in the compiled profile', () => {
    const { scheduler } = env([{}]);
    const scores: SchedulerIR['scores'] = [
      { name: 'prefix-cache', weight: 2 },
      { name: 'least-latency', weight: 1 },
      { name: 'gpu-usage', weight: 5 },
      { name: 'least-request', weight: 0 },
    ];
    const p = scheduler.compile(profileIR({ filters: ['lora-affinity', 'least-request'], scores }), [], []);
    expect(p.filters.map((f) => f.name)).toEqual(['lora-affinity', 'least-request']);
    expect(p.scores.map((s) => s.name)).toEqual(['prefix-cache', 'least-latency', 'gpu-usage', 'least-request']);
    expect(Array.from(p.weights)).toEqual([2, 1, 5, 0]);
    expect([p.hasPrefixCache, p.hasKvcacheAware, p.needsMetrics]).toEqual([true, false, true]);
  });

  it('refuses a negative or fractional weight at compile time', () => {
    const { scheduler } = env([{}]);
    expect(() => scheduler.compile(profileIR({ scores: [{ name: 'gpu-usage', weight: -1 }] }), [], [])).toThrow(TypeError);
    expect(() => scheduler.compile(profileIR({ scores: [{ name: 'gpu-usage', weight: 1.5 }] }), [], [])).toThrow(/weight must be an integer >= 0/);
  });

  it('treats stale pods as unknown throughout the default profile', () => {
    // The stale pod's numbers look perfect but are not trusted: gpu 0, latency 50, in-flight only.
    const pods = [{ state: kScrapeStale, kv: 0, ttftMs: 1, tpotMs: 1 }, { kv: 0.5, ttftMs: 100, tpotMs: 10 }];
    const { endpoints, scheduler } = env(pods);
    const p = scheduler.compile(DEFAULT_SCHEDULER, [], []);
    const out = new Int32Array(2);
    // pod 0: 100 + 0 + 50 = 150; pod 1: 100 + 50 + 100 = 250
    expect(ranked(out, scheduler.schedule(p, endpoints, request(), out, null))).toEqual([1, 0]);
  });
});

describe('pick', () => {
  it('returns the top N best first, N = out.length', () => {
    const kvs = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4];
    const { endpoints, scheduler } = env(kvs.map((kv) => ({ kv })));
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }] }), [], []);
    const out5 = new Int32Array(5);
    expect(ranked(out5, scheduler.schedule(p, endpoints, request(), out5, null))).toEqual([1, 5, 3, 7, 0]);
    const out1 = new Int32Array(1);
    expect(ranked(out1, scheduler.schedule(p, endpoints, request(), out1, null))).toEqual([1]);
    const out12 = new Int32Array(12);
    expect(ranked(out12, scheduler.schedule(p, endpoints, request(), out12, null))).toEqual([1, 5, 3, 7, 0, 4, 6, 2]);
  });

  it('spreads equal totals evenly over the tied pods (seeded, deterministic)', () => {
    // Pods 0-3 tie at the top; pod 4 is worse and must never be first.
    const { endpoints, scheduler } = env([{ kv: 0.2 }, { kv: 0.2 }, { kv: 0.2 }, { kv: 0.2 }, { kv: 0.6 }], { seed: 42 });
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }] }), [], []);
    const out = new Int32Array(3);
    const trials = 40_000;
    const first = [0, 0, 0, 0, 0];
    const second = [0, 0, 0, 0, 0];
    for (let t = 0; t < trials; t++) {
      expect(scheduler.schedule(p, endpoints, request(), out, null)).toBe(3);
      first[out[0]]++;
      second[out[1]]++;
    }
    expect(first[4]).toBe(0);
    expect(second[4]).toBe(0);
    // Each tied pod: expected 10 000 per position, sd ~87; allow 5 sd.
    for (let i = 0; i < 4; i++) {
      expect(Math.abs(first[i] - trials / 4)).toBeLessThan(450);
      expect(Math.abs(second[i] - trials / 4)).toBeLessThan(450);
    }
  });

  it('never places a lower total above a higher one, whatever the random keys', () => {
    const { endpoints, scheduler } = env([{ kv: 0.21 }, { kv: 0.2 }, { kv: 0.2 }, { kv: 0.22 }], { seed: 7 });
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }] }), [], []);
    const out = new Int32Array(4);
    for (let t = 0; t < 1000; t++) {
      scheduler.schedule(p, endpoints, request(), out, null);
      expect(new Set([out[0], out[1]])).toEqual(new Set([1, 2]));
      expect([out[2], out[3]]).toEqual([0, 3]);
    }
  });
});

describe('prefix-cache end to end (shared prefix index)', () => {
  const ir = profileIR({
    filters: [],
    scores: [{ name: 'least-request', weight: 1 }, { name: 'prefix-cache', weight: 1 }],
    args: { 'prefix-cache': { blockSizeToHash: 64, maxBlocksToMatch: 128, maxHashCacheSize: 50000, topKMatches: 5 } },
  });
  const prompt = 'You are a helpful assistant. '.repeat(40) + 'What is the capital of France?';

  it('prefers the pod that served the same prefix (inserted by postSchedule)', () => {
    const { endpoints, scheduler } = env([{}, {}, {}, {}]);
    const p = scheduler.compile(ir, ['llama'], [0]);
    const out = new Int32Array(5);
    expect(scheduler.schedule(p, endpoints, request({ prompt }), out, null)).toBe(4);
    const hashes = scheduler.takePrefixHashes();
    expect(hashes).not.toBeNull();
    expect(hashes!.count).toBe(Math.ceil(Buffer.byteLength(prompt) / 64));
    scheduler.postSchedule(p, hashes, endpoints[2], 0);

    for (let t = 0; t < 20; t++) {
      scheduler.schedule(p, endpoints, request({ prompt: prompt + ` follow-up ${t}` }), out, null);
      expect(out[0]).toBe(2);
    }
  });

  it("ignores a departed pod's entries once its slot has a new generation", () => {
    const { ep, endpoints, scheduler } = env([{}, {}, {}], { seed: 3 });
    const p = scheduler.compile(ir, ['llama'], [0]);
    const out = new Int32Array(1);
    scheduler.schedule(p, endpoints, request({ prompt }), out, null);
    scheduler.postSchedule(p, scheduler.takePrefixHashes(), endpoints[1], 0);
    scheduler.schedule(p, endpoints, request({ prompt }), out, null);
    expect(out[0]).toBe(1);

    // The pod in slot 1 is replaced: same slot, next generation.
    Atomics.add(ep, epIndex(1, kEpGen), 1);
    const successor = endpoints.map((e) => (e.slot === 1 ? { ...e, gen: e.gen + 1, podName: 'pod-new' } : e));
    const firsts = new Set<number>();
    for (let t = 0; t < 200; t++) {
      scheduler.schedule(p, successor, request({ prompt }), out, null);
      firsts.add(out[0]);
    }
    expect(firsts).toEqual(new Set([0, 1, 2]));
  });

  it('hands no hashes to the post hook when prefix-cache is not configured or the list was filtered out', () => {
    const { endpoints, scheduler } = env([{ waiting: 50 }]);
    const noPrefix = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'gpu-usage', weight: 1 }] }), [], []);
    scheduler.schedule(noPrefix, endpoints, request({ prompt }), new Int32Array(1), null);
    expect(scheduler.takePrefixHashes()).toBeNull();
    const filtered = scheduler.compile(DEFAULT_SCHEDULER, [], []);
    expect(scheduler.schedule(filtered, endpoints, request({ prompt }), new Int32Array(1), null)).toBe(0);
    expect(scheduler.takePrefixHashes()).toBeNull();
  });
});

describe('metrics', () => {
  function family(json: MetricJSON[], name: string): MetricJSON {
    const f = json.find((m) => m.name === name);
    if (!f) throw new Error(`no family ${name}`);
    return f;
  }

  function sample(json: MetricJSON[], name: string, metricName: string, labels: Record<string, string | number>): number | undefined {
    return family(json, name).values.find((v) => v.metricName === metricName && Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
  }

  it('times the plugins that run in 1 decision out of sampleEvery, labelled model/plugin/type', () => {
    const { ep, endpoints, scheduler } = env([{}, {}], { sampleEvery: 4 });
    const p = scheduler.compile(DEFAULT_SCHEDULER, ['llama'], [0]);
    const decide = () => scheduler.schedule(p, endpoints, request({ prompt: 'hello world' }), new Int32Array(5), null);
    for (let t = 0; t < 8; t++) decide(); // sampled: 1st and 5th
    let json = scheduler.metricsJSON();
    const count = (plugin: string, type: string) => sample(json, PLUGIN_DURATION, PLUGIN_DURATION + '_count', { model: 'llama', plugin, type });
    expect(count('least-request', 'filter')).toBe(2);
    for (const plugin of ['least-request', 'prefix-cache']) expect(count(plugin, 'score')).toBe(2);
    // gpu-usage and least-latency ran only in the 1st: the 5th reused their result (no scrape since).
    for (const plugin of ['gpu-usage', 'least-latency']) expect(count(plugin, 'score')).toBe(1);
    writeSlot(ep, 1, { kv: 0.5 }); // a scrape: the next sampled decision (9th) recomputes them
    decide();
    json = scheduler.metricsJSON();
    for (const plugin of ['gpu-usage', 'least-latency']) expect(count(plugin, 'score')).toBe(2);
    const buckets = family(json, PLUGIN_DURATION).values.filter((v) => v.metricName === PLUGIN_DURATION + '_bucket' && v.labels.plugin === 'gpu-usage');
    expect(buckets.map((v) => v.labels.le)).toEqual([...PLUGIN_DURATION_BUCKETS, '+Inf']);
  });

  it('observes the best match ratio once per prefix-cache run', () => {
    const { endpoints, scheduler } = env([{}, {}]);
    const p = scheduler.compile(DEFAULT_SCHEDULER, ['llama'], [0]);
    const prompt = 'x'.repeat(64 * 4);
    scheduler.schedule(p, endpoints, request({ prompt }), new Int32Array(5), null); // miss: 0
    scheduler.postSchedule(p, scheduler.takePrefixHashes(), endpoints[0], 0);
    scheduler.schedule(p, endpoints, request({ prompt: prompt.slice(0, 128) + 'y'.repeat(128) }), new Int32Array(5), null); // 2 of 4
    scheduler.schedule(p, endpoints, request({ prompt: '' }), new Int32Array(5), null); // not run: no observation
    const json = scheduler.metricsJSON();
    const bucket = (le: number | string) => sample(json, PREFIX_MATCH_RATIO, PREFIX_MATCH_RATIO + '_bucket', { model: 'llama', le });
    expect(sample(json, PREFIX_MATCH_RATIO, PREFIX_MATCH_RATIO + '_count', { model: 'llama' })).toBe(2);
    expect(sample(json, PREFIX_MATCH_RATIO, PREFIX_MATCH_RATIO + '_sum', { model: 'llama' })).toBe(0.5);
    expect(bucket(0)).toBe(1);
    expect(bucket(0.25)).toBe(1);
    expect(bucket(0.5)).toBe(2);
    expect(bucket('+Inf')).toBe(2);
    expect(family(json, PREFIX_MATCH_RATIO).values.filter((v) => v.metricName?.endsWith('_bucket')).map((v) => v.labels.le)).toEqual([...MATCH_RATIO_BUCKETS, '+Inf']);
  });

  it('counts evictions per model name through the compiled id table', () => {
    // A one-bucket index (8 ways): the 9th distinct block evicts.
    const { endpoints, scheduler } = env([{}], { prefixEntries: 8 });
    const p = scheduler.compile(profileIR({ filters: [], scores: [{ name: 'prefix-cache', weight: 1 }] }), ['llama', 'mistral'], [3, 5]);
    for (let t = 0; t < 40; t++) {
      scheduler.schedule(p, endpoints, request({ model: 'mistral', modelId: 5, prompt: `prompt number ${t}` }), new Int32Array(1), null);
      scheduler.postSchedule(p, scheduler.takePrefixHashes(), endpoints[0], 5);
    }
    const values = family(scheduler.metricsJSON(), PREFIX_EVICTIONS).values;
    expect(values.map((v) => v.labels)).toEqual([{ model: 'mistral' }]);
    expect(values[0].value).toBeGreaterThan(0);

    // The id changes hands: the count stays with the old name, the new owner starts from zero.
    const before = values[0].value;
    scheduler.compile(profileIR({}), ['gemma'], [5]);
    const after = family(scheduler.metricsJSON(), PREFIX_EVICTIONS).values;
    expect(after).toEqual([{ value: before, labels: { model: 'mistral' } }]);
  });

  it('is accepted by prom-client AggregatorRegistry.aggregate and renders valid exposition text', async () => {
    const a = env([{}, {}], { sampleEvery: 1 });
    const b = env([{}, {}], { sampleEvery: 1 });
    for (const { scheduler, endpoints } of [a, b]) {
      const p = scheduler.compile(DEFAULT_SCHEDULER, ['llama'], [0]);
      for (let t = 0; t < 3; t++) scheduler.schedule(p, endpoints, request({ prompt: 'hi there' }), new Int32Array(5), null);
    }
    const registry = AggregatorRegistry.aggregate([a.scheduler.metricsJSON(), b.scheduler.metricsJSON()] as never);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE kthena_router_scheduler_plugin_duration_seconds histogram');
    expect(text).toContain('kthena_router_scheduler_plugin_duration_seconds_count{model="llama",plugin="prefix-cache",type="score"} 6');
    expect(text).toContain('kthena_router_prefix_cache_match_ratio_count{model="llama"} 6');
    expect(text).toContain('kthena_router_prefix_cache_match_ratio_bucket{le="0",model="llama"} 6');
    expect(text).toContain('# TYPE kthena_router_prefix_cache_evictions_total counter');
    const sampleLine = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? [-+]?[0-9.e+-]+$/;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line).toMatch(sampleLine);
    }
  });
});

describe('allocation', () => {
  it('allocates (almost) nothing per decision once warm: default profile, 64 endpoints, 1 KB prompt', () => {
    const pods = Array.from({ length: 64 }, (_, i) => ({ inflight: i % 7, waiting: i % 12, running: i % 5, kv: (i % 10) / 10, ttftMs: 50 + i, tpotMs: 10 + (i % 9) }));
    const { endpoints, scheduler } = env(pods);
    const p = scheduler.compile(DEFAULT_SCHEDULER, ['llama'], [0]);
    const out = new Int32Array(5);
    const reqs = Array.from({ length: 16 }, (_, i) => request({ prompt: JSON.parse(JSON.stringify(`system prompt ${i % 4} `.repeat(40) + `question ${i}`)) as string }));
    for (let i = 0; i < 8000; i++) scheduler.schedule(p, endpoints, reqs[i & 15], out, null);
    // New-space growth over a window; a scavenge inside the window (usage drops) voids that try.
    const newSpace = () => v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;
    const decisions = 2000;
    let perDecision = -1;
    for (let attempt = 0; attempt < 5 && perDecision < 0; attempt++) {
      const before = newSpace();
      for (let i = 0; i < decisions; i++) scheduler.schedule(p, endpoints, reqs[i & 15], out, null);
      const after = newSpace();
      if (after >= before) perDecision = (after - before) / decisions;
    }
    // Only sampled plugin timing allocates (a few numbers, 1 decision in 64); a Map, an array or a
    // closure per decision would be well above this bound.
    if (perDecision >= 0) expect(perDecision).toBeLessThan(48);
  });
});
