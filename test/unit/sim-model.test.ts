/**
 * The simulator's engine model (native-bench/src/sim/model.ts), driven step by step in virtual time: every
 * assertion is on simulated milliseconds computed from the step formula, never on the wall clock.
 */
import { describe, expect, it } from 'vitest';

import { EngineModel, ModelReject, resolveModelConfig } from '../../native-bench/src/sim/model.js';
import type { Seq, SimModelSpec, StepOutcome } from '../../native-bench/src/sim/model.js';

/** a = 10 ms, b = 0.1 ms/token, c = 1 ms/sequence: round numbers for hand-computed expectations. */
const COEF: SimModelSpec = { stepMs: 10, prefillMsPerToken: 0.1, decodeMsPerSeq: 1 };

function model(spec: SimModelSpec = {}, kvCacheTokens = 1_000_000): EngineModel {
  return new EngineModel(resolveModelConfig({ ...COEF, ...spec }, kvCacheTokens));
}

/** `n` token ids unique to `seed` (ids never repeat across seeds). */
function toks(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 100_000 * (seed + 1) + i);
}

function ttft(s: Seq): number {
  return s.firstTokenAt - s.arrival;
}

function gaps(s: Seq): number[] {
  return s.tokenTimes.slice(1).map((t, i) => t - s.tokenTimes[i]);
}

describe('engine model: step clock and batching', () => {
  it('charges a + b x prompt for a cold prefill and a + c per decode step', () => {
    const m = model();
    const s = m.submit({ tokens: toks(100, 1), maxTokens: 4, arrival: 5 });
    const steps = m.runUntilIdle();
    expect(steps.map((o) => [o.start, o.prefillTokens, o.decodeSeqs])).toEqual([
      [5, 100, 0],
      [25, 0, 1],
      [36, 0, 1],
      [47, 0, 1],
    ]);
    expect(ttft(s)).toBeCloseTo(10 + 0.1 * 100, 9);
    expect(gaps(s)).toEqual([11, 11, 11]);
    expect(s.status).toBe('finished');
    expect(m.stats()).toMatchObject({ running: 0, waiting: 0, promptTokens: 100, generationTokens: 4, kvUsage: 0 });
  });

  it('a prefix hit shortens TTFT to the uncached tokens', () => {
    const m = model();
    const prefix = toks(320, 0);
    const a = m.submit({ tokens: [...prefix, ...toks(40, 1)], maxTokens: 1, arrival: 0 });
    m.runUntilIdle();
    const b = m.submit({ tokens: [...prefix, ...toks(40, 2)], maxTokens: 1, arrival: 100 });
    m.runUntilIdle();
    expect(a.cachedTokens).toBe(0);
    expect(ttft(a)).toBeCloseTo(10 + 0.1 * 360, 9);
    expect(b.cachedTokens).toBe(320);
    expect(ttft(b)).toBeCloseTo(10 + 0.1 * 40, 9);
    expect(m.stats()).toMatchObject({ prefixQueries: 720, prefixHits: 320 });
    // Blocks are keyed by adapter as well: the same prompt under a LoRA adapter shares nothing.
    expect(m.cachedPrefix([...prefix, ...toks(40, 3)])).toBe(320);
    expect(m.cachedPrefix([...prefix, ...toks(40, 3)], 'lora-A')).toBe(0);
  });

  it('a long prefill delays the decodes co-batched with it', () => {
    const m = model();
    const a = m.submit({ tokens: toks(16, 1), maxTokens: 20, arrival: 0 });
    const b = m.submit({ tokens: toks(2000, 2), maxTokens: 1, arrival: 30 });
    m.runUntilIdle();
    const g = gaps(a);
    // Every inter-token gap of `a` is a + c, except the step that also prefilled `b`'s 2000 tokens.
    const long = 10 + 0.1 * 2000 + 1;
    expect(g.filter((x) => Math.abs(x - 11) < 1e-9)).toHaveLength(g.length - 1);
    expect(Math.max(...g)).toBeCloseTo(long, 9);
    // `b` was admitted at the first step starting after it arrived: 11.6 + 11 + 11 = 33.6.
    expect(b.firstScheduledAt).toBeCloseTo(33.6, 9);
    expect(ttft(b)).toBeCloseTo(33.6 + long - 30, 9);
  });

  it('chunked prefill respects max-num-batched-tokens, sharing the budget with decodes', () => {
    const m = model({ maxNumBatchedTokens: 512 });
    const alone = m.submit({ tokens: toks(1200, 1), maxTokens: 1, arrival: 0 });
    const solo = m.runUntilIdle();
    expect(solo.map((o) => o.prefillTokens)).toEqual([512, 512, 176]);
    expect(alone.tokenTimes).toHaveLength(1);
    expect(alone.firstTokenAt).toBeCloseTo(solo[2].end, 9);

    const d = m.submit({ tokens: toks(16, 2), maxTokens: 30, arrival: 1000 });
    const p = m.submit({ tokens: toks(1200, 3), maxTokens: 1, arrival: 1020 });
    const steps = m.runUntilIdle();
    for (const o of steps) expect(o.prefillTokens + o.decodeSeqs).toBeLessThanOrEqual(512);
    const chunks = steps.filter((o) => o.start >= p.arrival && o.prefillTokens > 0).map((o) => [o.prefillTokens, o.decodeSeqs]);
    expect(chunks).toEqual([
      [511, 1],
      [511, 1],
      [178, 1],
    ]);
    expect(p.firstTokenAt).toBe(steps.find((o) => o.prefillTokens === 178)?.end);
    expect(d.generated).toBe(30);

    const strict = model({ chunkedPrefill: false, maxNumBatchedTokens: 512 });
    expect(() => strict.submit({ tokens: toks(600, 4), maxTokens: 1, arrival: 0 })).toThrow(ModelReject);
  });

  it('admits FCFS under max-num-seqs and reports waiting and running', () => {
    const m = model({ maxNumSeqs: 2 });
    const seqs = [0, 1, 2].map((i) => m.submit({ tokens: toks(16, i), maxTokens: 3, arrival: 0 }));
    const first = m.step() as StepOutcome;
    expect(first.emitted).toEqual([seqs[0], seqs[1]]);
    expect(m.stats()).toMatchObject({ running: 2, waiting: 1 });
    m.runUntilIdle();
    expect(seqs[2].firstScheduledAt).toBeCloseTo(seqs[0].finishedAt, 9);
  });

  it('schedules by arrival time even when requests are submitted out of order', () => {
    const m = model();
    const late = m.submit({ tokens: toks(16, 1), maxTokens: 1, arrival: 500 });
    const early = m.submit({ tokens: toks(16, 2), maxTokens: 1, arrival: 10 });
    m.runUntilIdle();
    expect(early.firstScheduledAt).toBe(10);
    expect(late.firstScheduledAt).toBe(500);
  });

  it('refuses what vLLM refuses: too long for max-model-len, larger than the KV cache', () => {
    const m = model({ maxModelLen: 1000 }, 512);
    expect(() => m.submit({ tokens: toks(990, 1), maxTokens: 20, arrival: 0 })).toThrow(/maximum context length is 1000 tokens/);
    expect(() => m.submit({ tokens: toks(600, 1), maxTokens: 1, arrival: 0 })).toThrow(/more than the 512/);
  });
});

describe('engine model: KV capacity', () => {
  it('evicts unreferenced cached blocks in LRU order when the cache is full', () => {
    // 8 blocks of 16 tokens; a 33-token prompt holds 3 blocks, 2 of them full (cacheable).
    const m = model({}, 8 * 16);
    const evicted: number[] = [];
    m.listener = { stored: () => undefined, evicted: (b) => evicted.push(b) };
    const p1 = toks(33, 1);
    const p2 = toks(33, 2);
    const p3 = toks(33, 3);
    const p4 = toks(33, 4);
    let t = 0;
    const run = (tokens: number[]): Seq => {
      const s = m.submit({ tokens, maxTokens: 1, arrival: (t += 1000) });
      m.runUntilIdle();
      return s;
    };
    run(p1);
    run(p2);
    expect(m.stats()).toMatchObject({ kvBlocksCached: 4, kvUsage: 0, evictions: 0 });
    // Using p1 again makes it more recent than p2.
    expect(run(p1).cachedTokens).toBe(32);
    run(p3);
    expect(evicted).toEqual([]);
    run(p4);
    // p4 needed 3 blocks from the head of the free queue: p2's two cached blocks went, not p1's.
    expect(evicted).toHaveLength(2);
    expect(m.stats().evictions).toBe(2);
    expect(m.cachedPrefix(p2)).toBe(0);
    expect(m.cachedPrefix(p1)).toBe(32);
    expect(m.cachedPrefix(p3)).toBe(32);
    expect(m.cachedPrefix(p4)).toBe(32);
  });

  it('pins blocks of running sequences: a hit on them costs no free block', () => {
    const m = model({}, 6 * 16);
    const shared = toks(64, 1);
    const a = m.submit({ tokens: [...shared, 7], maxTokens: 10, arrival: 0 });
    m.step();
    expect(m.stats().kvBlocksUsed).toBe(5);
    // 64 shared tokens are pinned by `a`; `b` needs only one more block, and it fits.
    const b = m.submit({ tokens: [...shared, 8], maxTokens: 1, arrival: 1 });
    m.step();
    expect(b.cachedTokens).toBe(64);
    expect(b.status).toBe('finished');
    expect(a.status).toBe('running');
  });

  it('preempts the newest running sequence when running sequences outgrow memory, and recomputes it', () => {
    // 8 blocks; two sequences of 30 + 60 tokens need 6 blocks each at the end.
    const m = model({}, 8 * 16);
    const a = m.submit({ tokens: toks(30, 1), maxTokens: 60, arrival: 0 });
    const b = m.submit({ tokens: toks(30, 2), maxTokens: 60, arrival: 0 });
    const steps = m.runUntilIdle();
    const preempting = steps.filter((o) => o.preempted.length > 0);
    expect(preempting.length).toBeGreaterThanOrEqual(1);
    expect(preempting[0].preempted).toEqual([b]);
    expect(a.preemptions).toBe(0);
    expect(b.preemptions).toBeGreaterThanOrEqual(1);
    expect(m.stats().preemptions).toBe(a.preemptions + b.preemptions);
    expect([a.generated, b.generated]).toEqual([60, 60]);
    expect(a.finishedAt).toBeLessThan(b.finishedAt);
    // The recompute prefilled b's prompt and the tokens it had generated, in one step.
    const recompute = steps.find((o) => o.start > preempting[0].start && o.emitted.includes(b) && o.prefillTokens > 1);
    expect(recompute?.prefillTokens).toBeGreaterThan(30);
    for (const o of steps) expect(o.prefillTokens + o.decodeSeqs).toBeGreaterThan(0);
    expect(m.stats().kvUsage).toBe(0);
  });
});

describe('engine model: LoRA and PD', () => {
  it('charges the LoRA load latency once while the adapter stays resident', () => {
    const m = model({ maxLoras: 1, loraLoadMs: 100 });
    const cold = 10 + 0.1 * 16;
    let t = 0;
    const run = (lora: string, seed: number): Seq => {
      const s = m.submit({ tokens: toks(16, seed), maxTokens: 1, arrival: (t += 1000), lora });
      m.runUntilIdle();
      return s;
    };
    const r1 = run('a', 1);
    expect(ttft(r1)).toBeCloseTo(cold + 100, 9);
    expect(r1.loraLoaded).toBe(true);
    const r2 = run('a', 2);
    expect(ttft(r2)).toBeCloseTo(cold, 9);
    expect(r2.loraLoaded).toBe(false);
    expect(ttft(run('b', 3))).toBeCloseTo(cold + 100, 9);
    // One slot: b displaced a, which loads again.
    expect(ttft(run('a', 4))).toBeCloseTo(cold + 100, 9);
    expect(m.stats().residentLoras).toEqual(['a']);

    // At most maxLoras adapters per batch: b waits until a's request is done; base requests pass.
    const la = m.submit({ tokens: toks(16, 5), maxTokens: 5, arrival: 10_000, lora: 'a' });
    const lb = m.submit({ tokens: toks(16, 6), maxTokens: 1, arrival: 10_000, lora: 'b' });
    const base = m.submit({ tokens: toks(16, 7), maxTokens: 1, arrival: 10_000 });
    m.step();
    expect(m.loraUsage()).toEqual({ running: ['a'], waiting: ['b'] });
    m.runUntilIdle();
    expect(base.firstScheduledAt).toBe(10_000);
    expect(lb.firstScheduledAt).toBeCloseTo(la.finishedAt, 9);
  });

  it('a PD decode leg pays the KV transfer instead of the prefill', () => {
    const m = model({ kvTransferMsPerKToken: 5 });
    const prompt = toks(2000, 1);
    const local = m.submit({ tokens: prompt, maxTokens: 2, arrival: 0 });
    m.runUntilIdle();
    expect(ttft(local)).toBeCloseTo(10 + 0.1 * 2000, 9);

    const remote = m.submit({ tokens: toks(2000, 2), maxTokens: 2, arrival: 1000, remoteKv: { start: 'now' } });
    expect(m.stats().waiting).toBe(1);
    const steps = m.runUntilIdle();
    expect(remote.transferTokens).toBe(2000);
    expect(remote.transferMs).toBeCloseTo(10, 9);
    // Transfer (10 ms), then one step recomputing the last prompt token: a + b x 1.
    expect(ttft(remote)).toBeCloseTo(10 + 10 + 0.1, 9);
    expect(steps[0].prefillTokens).toBe(1);
    expect(remote.generated).toBe(2);

    // Locally cached blocks are not transferred.
    const again = m.submit({ tokens: [...prompt.slice(0, 1600), ...toks(400, 3)], maxTokens: 1, arrival: 2000, remoteKv: { start: 'now' } });
    m.runUntilIdle();
    expect(again.cachedTokens).toBe(1600);
    expect(again.transferTokens).toBe(400);
  });

  it('a decode leg waiting for its prefill signal starts its transfer when released', () => {
    const m = model({ kvTransferMsPerKToken: 5 });
    const s = m.submit({ tokens: toks(1000, 1), maxTokens: 1, arrival: 0, remoteKv: { start: 'signal' } });
    expect(m.runUntilIdle()).toEqual([]);
    expect(s.status).toBe('transfer');
    expect(m.nextStart()).toBeNull();
    m.release(s, 300);
    m.runUntilIdle();
    expect(s.firstTokenAt).toBeCloseTo(300 + 5 + 10 + 0.1, 9);
    expect(s.firstScheduledAt).toBe(0);
  });

  it('frees an aborted sequence wherever it is', () => {
    const m = model({}, 4 * 16);
    const a = m.submit({ tokens: toks(40, 1), maxTokens: 10, arrival: 0 });
    const b = m.submit({ tokens: toks(40, 2), maxTokens: 10, arrival: 0 });
    m.step();
    expect(m.stats()).toMatchObject({ running: 1, waiting: 1 });
    m.abort(a);
    m.abort(b);
    expect(m.stats()).toMatchObject({ running: 0, waiting: 0, kvBlocksUsed: 0 });
    expect(m.nextStart()).toBeNull();
  });
});
