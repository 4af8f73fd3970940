import { describe, expect, it } from 'vitest';
import {
  allocatePrefixIndex,
  epIndex,
  kEndpointStride,
  kEpInflight,
  kEpLoraActiveBits,
  kEpModelBits,
  kEpScrapeState,
  kEpSeq,
  kEpWaiting,
  kScrapeFailing,
  kScrapeNever,
  kScrapeStale,
} from '../../src/shared/layout.js';
import { kVInflight, kVKnown, kVKv, kVRunning, kVTpotUs, kVTtftUs, kVWaiting } from '../../workers/scheduler/endpoint-view.js';
import { DecisionContext, kNoScores, kScoredSome, type ScorePlugin } from '../../workers/scheduler/plugin-api.js';
import { SchedulerMetrics } from '../../workers/scheduler/metrics.js';
import { GpuUsageScore } from '../../workers/scheduler/plugins/gpu-usage.js';
import { KvcacheAwareScore } from '../../workers/scheduler/plugins/kvcache-aware.js';
import { LeastLatencyScore } from '../../workers/scheduler/plugins/least-latency.js';
import { LeastRequestFilter, LeastRequestScore } from '../../workers/scheduler/plugins/least-request.js';
import { LoraAffinityFilter } from '../../workers/scheduler/plugins/lora-affinity.js';
import { PrefixCacheScore } from '../../workers/scheduler/plugins/prefix-cache.js';
import { RandomScore } from '../../workers/scheduler/plugins/random.js';
import { PLUGIN_IDENTITIES } from '../../workers/scheduler/registry.js';
import { PrefixHasher } from '../../workers/scheduler/prefix-hash.js';
import { PrefixIndex } from '../../workers/scheduler/prefix-index.js';
import type { ScheduleRequest, SchedEndpoint } from '../../workers/scheduler/types.js';
import { writeSlot, type SlotMetrics } from '../helpers/slots.js';

type Pod = SlotMetrics;

/** Endpoint slots 0..pods.length-1 written with the scraper's seqlock protocol. */
function slots(pods: Pod[]): { ep: Int32Array; endpoints: SchedEndpoint[] } {
  const ep = new Int32Array(new SharedArrayBuffer(Math.max(pods.length, 1) * kEndpointStride * 4));
  const endpoints = pods.map((p, slot) => {
    writeSlot(ep, slot, p);
    return { slot, gen: 1, podName: `pod-${slot}`, namespace: 'ns', ip: `127.0.0.${slot + 2}`, startedAtSec: 0 };
  });
  return { ep, endpoints };
}

function request(fields: Partial<ScheduleRequest> = {}): ScheduleRequest {
  return { model: 'llama', modelId: 0, prompt: '', body: {}, engine: 'vLLM', ...fields };
}

/** A decision context over `pods` with every endpoint a candidate, as after zero filters. */
function context(pods: Pod[], req: ScheduleRequest = request()): DecisionContext {
  const { ep, endpoints } = slots(pods);
  const ctx = new DecisionContext(ep);
  ctx.ensure(endpoints.length);
  ctx.view.load(ep, endpoints, true);
  ctx.req = req;
  for (let i = 0; i < endpoints.length; i++) ctx.cand[i] = i;
  ctx.m = endpoints.length;
  return ctx;
}

/** The scores of one plugin (weight 1 onto zero totals); NaN = not scored; null = no scores at all. */
function scores(plugin: ScorePlugin, ctx: DecisionContext): number[] | null {
  const total = new Float64Array(ctx.m);
  ctx.scored.fill(0);
  const r = plugin.score(ctx, total, 1);
  if (r === kNoScores) return null;
  return Array.from(total, (v, k) => (r === kScoredSome && ctx.scored[k] === 0 ? NaN : v));
}

function kept(plugin: { filter(ctx: DecisionContext): number }, ctx: DecisionContext): number[] {
  const m = plugin.filter(ctx);
  return Array.from(ctx.cand.subarray(0, m));
}

/** Field `f` (kV*) of endpoint i's record in the view. */
function field(ctx: DecisionContext, i: number, f: number): number {
  return ctx.view.data[ctx.view.base[i] + f];
}

describe('endpoint view', () => {
  it('reads every scraped field of a fresh slot once, converting KV ppm to a fraction', () => {
    const ctx = context([{ inflight: 3, waiting: 4, running: 5, kv: 0.25, ttftMs: 120, tpotMs: 15 }]);
    const got = [kVKnown, kVInflight, kVWaiting, kVRunning, kVKv, kVTtftUs, kVTpotUs].map((f) => field(ctx, 0, f));
    expect(got).toEqual([1, 3, 4, 5, 0.25, 120_000, 15_000]);
  });

  it('treats never-scraped, failing and stale slots as metrics-unknown but still reads in-flight', () => {
    const ctx = context([{ state: kScrapeNever, inflight: 1 }, { state: kScrapeFailing, inflight: 2 }, { state: kScrapeStale, inflight: 3 }]);
    expect([0, 1, 2].map((i) => field(ctx, i, kVKnown))).toEqual([0, 0, 0]);
    expect([0, 1, 2].map((i) => field(ctx, i, kVInflight))).toEqual([1, 2, 3]);
  });

  it('gives up after the bounded retries on a slot whose write never completes (odd seqlock)', () => {
    const { ep, endpoints } = slots([{ waiting: 1, inflight: 7 }]);
    Atomics.add(ep, epIndex(0, kEpSeq), 1); // writer stuck halfway
    const ctx = new DecisionContext(ep);
    ctx.view.load(ep, endpoints, true);
    expect(field(ctx, 0, kVKnown)).toBe(0);
    expect(field(ctx, 0, kVInflight)).toBe(7);
    // The writer finishes: the next decision reads the slot.
    Atomics.add(ep, epIndex(0, kEpSeq), 1);
    ctx.view.load(ep, endpoints, true);
    expect([field(ctx, 0, kVKnown), field(ctx, 0, kVWaiting)]).toEqual([1, 1]);
  });

  it('re-reads a slot only when its seqlock moved, and always re-reads in-flight', () => {
    const { ep, endpoints } = slots([{ waiting: 1, inflight: 1 }]);
    const ctx = new DecisionContext(ep);
    ctx.view.load(ep, endpoints, true);
    // A write that bypasses the seqlock is not seen (proves the cached record is used) ...
    Atomics.store(ep, epIndex(0, kEpWaiting), 9);
    Atomics.store(ep, epIndex(0, kEpInflight), 4);
    ctx.view.load(ep, endpoints, true);
    expect([field(ctx, 0, kVWaiting), field(ctx, 0, kVInflight)]).toEqual([1, 4]);
    // ... a scrape through the seqlock is.
    Atomics.add(ep, epIndex(0, kEpSeq), 1);
    Atomics.store(ep, epIndex(0, kEpWaiting), 5);
    Atomics.store(ep, epIndex(0, kEpScrapeState), kScrapeStale);
    Atomics.add(ep, epIndex(0, kEpSeq), 1);
    ctx.view.load(ep, endpoints, true);
    expect([field(ctx, 0, kVKnown), field(ctx, 0, kVWaiting)]).toEqual([0, 5]);
  });

  it('grows its arrays when a server has more endpoints than before', () => {
    const pods = Array.from({ length: 300 }, (_, i) => ({ inflight: i }));
    const ctx = context(pods);
    expect(ctx.view.capacity).toBeGreaterThanOrEqual(300);
    expect(field(ctx, 299, kVInflight)).toBe(299);
  });
});

describe('least-request filter', () => {
  it('keeps pods whose queue is below maxWaitingRequests and drops a pod exactly at the limit', () => {
    const ctx = context([{ waiting: 0 }, { waiting: 9 }, { waiting: 10 }, { waiting: 11 }]);
    expect(kept(new LeastRequestFilter(10), ctx)).toEqual([0, 1]);
  });

  it('keeps pods whose metrics are unknown (never scraped, failing, stale)', () => {
    const ctx = context([{ state: kScrapeNever, waiting: 50 }, { state: kScrapeFailing, waiting: 50 }, { state: kScrapeStale, waiting: 50 }, { waiting: 50 }]);
    expect(kept(new LeastRequestFilter(10), ctx)).toEqual([0, 1, 2]);
  });

  it('filters an already filtered list, keeping its order', () => {
    const ctx = context([{ waiting: 0 }, { waiting: 20 }, { waiting: 1 }, { waiting: 2 }]);
    ctx.cand.set([3, 1, 0]);
    ctx.m = 3;
    expect(kept(new LeastRequestFilter(10), ctx)).toEqual([3, 0]);
  });
});

describe('lora-affinity filter', () => {
  function withBits(modelWords: Record<number, number>[], loraWords: Record<number, number>[], req: ScheduleRequest): DecisionContext {
    const ctx = context(modelWords.map(() => ({})), req);
    modelWords.forEach((words, slot) => {
      for (const [w, bits] of Object.entries(words)) Atomics.store(ctx.ep, epIndex(slot, kEpModelBits + Number(w)), bits);
    });
    loraWords.forEach((words, slot) => {
      for (const [w, bits] of Object.entries(words)) Atomics.store(ctx.ep, epIndex(slot, kEpLoraActiveBits + Number(w)), bits);
    });
    return ctx;
  }

  it('keeps pods listing the model in /v1/models or running it as an active adapter', () => {
    // model id 37: word 1, bit 5
    const ctx = withBits([{ 1: 1 << 5 }, { 0: 1 << 5 }, {}, { 1: ~0 }], [{}, {}, { 1: 1 << 5 }, {}], request({ modelId: 37 }));
    expect(kept(new LoraAffinityFilter(), ctx)).toEqual([0, 2, 3]);
  });

  it('filters every pod out when the request model has no id', () => {
    const ctx = withBits([{ 0: ~0 }, { 0: ~0 }], [], request({ modelId: -1 }));
    expect(new LoraAffinityFilter().filter(ctx)).toBe(0);
  });
});

describe('score plugins', () => {
  it('add score x weight to the running totals', () => {
    const ctx = context([{ kv: 0.25 }, { kv: 0.5 }]);
    const total = Float64Array.from([7, 1]);
    new GpuUsageScore().score(ctx, total, 3);
    expect(Array.from(total)).toEqual([7 + 75 * 3, 1 + 50 * 3]);
    new LeastLatencyScore(0.5).score(ctx, total, 0);
    expect(Array.from(total)).toEqual([7 + 75 * 3, 1 + 50 * 3]);
  });
});

describe('least-request score', () => {
  it('weighs in-flight requests the engine does not report running 100x', () => {
    // bases: 0; 2 + 100*0 = 2; 5 + 100*(5-1) = 405
    const ctx = context([{ inflight: 0, running: 0 }, { inflight: 2, running: 2 }, { inflight: 5, running: 1 }]);
    expect(scores(new LeastRequestScore(), ctx)).toEqual([100, Math.trunc((403 / 405) * 100), 0]);
  });

  it('never lets running beyond in-flight lower the base (max(inflight - running, 0))', () => {
    const ctx = context([{ inflight: 2, running: 10 }, { inflight: 4, running: 10 }]);
    expect(scores(new LeastRequestScore(), ctx)).toEqual([50, 0]);
  });

  it('gives every pod 100 when nothing is in flight anywhere', () => {
    const ctx = context([{}, {}, { running: 7 }]);
    expect(scores(new LeastRequestScore(), ctx)).toEqual([100, 100, 100]);
  });

  it('scores a pod with unknown metrics by its in-flight count alone', () => {
    // pod 0 unknown: base = 3 (not 3 + 300); pod 1 known: base = 3 + 100*3 = 303
    const ctx = context([{ state: kScrapeStale, inflight: 3, running: 0 }, { inflight: 3, running: 0 }]);
    expect(scores(new LeastRequestScore(), ctx)).toEqual([Math.trunc((300 / 303) * 100), 0]);
  });
});

describe('gpu-usage score', () => {
  it('is int((1 - kvUsage) * 100)', () => {
    const ctx = context([{ kv: 0 }, { kv: 0.25 }, { kv: 0.999 }, { kv: 1 }, { kv: 0.57 }]);
    expect(scores(new GpuUsageScore(), ctx)).toEqual([100, 75, 0, 0, Math.trunc((1 - 0.57) * 100)]);
  });

  it('assumes a pod with unknown metrics is full (0)', () => {
    const ctx = context([{ state: kScrapeNever }, { state: kScrapeFailing, kv: 0.1 }, { state: kScrapeStale, kv: 0.1 }]);
    expect(scores(new GpuUsageScore(), ctx)).toEqual([0, 0, 0]);
  });
});

describe('least-latency score', () => {
  it('normalizes TTFT and TPOT over the measured pods and blends them with alpha', () => {
    const pods = [{ ttftMs: 100, tpotMs: 30 }, { ttftMs: 200, tpotMs: 20 }, { ttftMs: 300, tpotMs: 10 }];
    expect(scores(new LeastLatencyScore(0.5), context(pods))).toEqual([50, 50, 50]);
    expect(scores(new LeastLatencyScore(1), context(pods))).toEqual([100, 50, 0]);
    expect(scores(new LeastLatencyScore(0), context(pods))).toEqual([0, 50, 100]);
    expect(scores(new LeastLatencyScore(0.25), context(pods))).toEqual([25, 50, 75]);
  });

  it('gives 100 for a metric whose max equals its min', () => {
    const pods = [{ ttftMs: 100, tpotMs: 10 }, { ttftMs: 100, tpotMs: 30 }];
    // sTTFT = 100 for both; sTPOT = 100, 0
    expect(scores(new LeastLatencyScore(0.5), context(pods))).toEqual([100, 50]);
    expect(scores(new LeastLatencyScore(0.5), context([{ ttftMs: 80, tpotMs: 8 }]))).toEqual([100]);
  });

  it('gives 50 to pods without a measurement and leaves them out of min/max', () => {
    const pods: Pod[] = [
      { ttftMs: 100, tpotMs: 10 },
      { ttftMs: 300, tpotMs: 30 },
      { ttftMs: 0, tpotMs: 5 }, // TTFT absent
      { ttftMs: 50, tpotMs: 0 }, // TPOT absent
      { ttftMs: -1, tpotMs: 1 }, // negative
      { state: kScrapeStale, ttftMs: 1, tpotMs: 1 }, // unknown: its (fast) numbers do not count
    ];
    expect(scores(new LeastLatencyScore(0.5), context(pods))).toEqual([100, 0, 50, 50, 50, 50]);
  });

  it('gives every pod 50 when none is measured', () => {
    expect(scores(new LeastLatencyScore(0.5), context([{}, { state: kScrapeNever }]))).toEqual([50, 50]);
  });
});

describe('prefix-cache score', () => {
  function plugin(prefixSab = allocatePrefixIndex(4096), ep: Int32Array = new Int32Array(new SharedArrayBuffer(4 * kEndpointStride * 4))) {
    const metrics = new SchedulerMetrics(PLUGIN_IDENTITIES);
    // DecisionContext types its endpoint array loosely; every one here is over a SharedArrayBuffer.
    const deps = { hasher: new PrefixHasher(), index: new PrefixIndex(prefixSab, ep as Int32Array<SharedArrayBuffer>), metrics, random: Math.random };
    return { p: new PrefixCacheScore(deps, 4, 128, 5), deps };
  }

  it('gives no scores for an empty prompt', () => {
    const { p } = plugin();
    const ctx = context([{}, {}], request({ prompt: '' }));
    expect(scores(p, ctx)).toBeNull();
    expect(ctx.hashCount).toBe(0);
  });

  it('scores int(matchLen / blocks * 100), 0 for pods without a hit', () => {
    const ctx = context([{}, {}, {}], request({ prompt: 'aaaabbbbccccdddd' })); // 4 blocks of 4 bytes
    const { p, deps } = plugin(allocatePrefixIndex(4096), ctx.ep);
    // pod 1 served "aaaabbbbcccc" (3 blocks), pod 2 "aaaa" (1 block)
    const count = deps.hasher.hash('llama', 'aaaabbbbcccc', 4, 128);
    deps.index.insert(deps.hasher.lo, deps.hasher.hi, count, 1, 1, 0, 1000);
    const c1 = deps.hasher.hash('llama', 'aaaa', 4, 128);
    deps.index.insert(deps.hasher.lo, deps.hasher.hi, c1, 2, 1, 0, 1000);
    expect(scores(p, ctx)).toEqual([0, 75, 25]);
    expect(ctx.hashCount).toBe(4);
  });

  it('with promptShare, scores a partial match by the share of the whole prompt it saves; a full window keeps 100', () => {
    // 8 blocks of 4 bytes, of which only the first 4 are hashed (maxBlocksToMatch 4).
    const prompt = 'aaaabbbbccccddddeeeeffffgggghhhh';
    const ctx = context([{}, {}, {}], request({ prompt }));
    const metrics = new SchedulerMetrics(PLUGIN_IDENTITIES);
    const deps = { hasher: new PrefixHasher(), index: new PrefixIndex(allocatePrefixIndex(4096), ctx.ep), metrics, random: Math.random };
    // pod 1 holds the first 2 blocks, pod 2 the whole hashed window.
    let n = deps.hasher.hash('llama', 'aaaabbbb', 4, 4);
    deps.index.insert(deps.hasher.lo, deps.hasher.hi, n, 1, 1, 0, 1000);
    n = deps.hasher.hash('llama', prompt, 4, 4);
    deps.index.insert(deps.hasher.lo, deps.hasher.hi, n, 2, 1, 0, 1000);
    // Kthena's formula: 2 of the 4 hashed blocks. promptShare: 2 of the prompt's 8 blocks.
    expect(scores(new PrefixCacheScore(deps, 4, 4, 5), ctx)).toEqual([0, 50, 100]);
    expect(scores(new PrefixCacheScore(deps, 4, 4, 5, 50_000, true), ctx)).toEqual([0, 25, 100]);
  });

  it('keys the hashes on the request model', () => {
    const ctx = context([{}, {}], request({ model: 'other', prompt: 'aaaabbbb' }));
    const { p, deps } = plugin(allocatePrefixIndex(4096), ctx.ep);
    const count = deps.hasher.hash('llama', 'aaaabbbb', 4, 128);
    deps.index.insert(deps.hasher.lo, deps.hasher.hi, count, 0, 1, 0, 1000);
    expect(scores(p, ctx)).toEqual([0, 0]);
  });
});

describe('kvcache-aware score', () => {
  it('contributes nothing without the scorer output', () => {
    expect(scores(new KvcacheAwareScore(), context([{}, {}]))).toBeNull();
  });

  it('reads the scorer output by endpoint index, NaN meaning no entry, truncating to integers', () => {
    const ctx = context([{}, {}, {}, {}]);
    ctx.extra = Float64Array.from([10, NaN, 99.9, 0]);
    ctx.cand.set([3, 2, 1]);
    ctx.m = 3;
    expect(scores(new KvcacheAwareScore(), ctx)).toEqual([0, 99, NaN]);
  });
});

describe('random score', () => {
  it('draws integers 0..100 inclusive, every value reachable, roughly uniformly', () => {
    const ctx = context(Array.from({ length: 200 }, () => ({})));
    ctx.rng[0] = 12345;
    const seen = new Map<number, number>();
    for (let r = 0; r < 505; r++) for (const v of scores(new RandomScore(), ctx)!) seen.set(v, (seen.get(v) ?? 0) + 1);
    // 101 000 draws: 1000 expected per value.
    for (const c of seen.values()) expect(Math.abs(c - 1000)).toBeLessThan(200);
    expect(Math.min(...seen.keys())).toBe(0);
    expect(Math.max(...seen.keys())).toBe(100);
    expect(seen.size).toBe(101);
    expect([...seen.keys()].every(Number.isInteger)).toBe(true);
  });
});
