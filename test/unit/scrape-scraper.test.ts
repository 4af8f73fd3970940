import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';

import { Scraper } from '../../src/scrape/scraper.js';
import type { ScrapeTarget, ScraperOptions } from '../../src/scrape/scraper.js';
import {
  kEndpointStride, kEpKvUsagePpm, kEpLastScrapeSec, kEpLoraActiveBits, kEpModelBits, kEpPrefixHitPpm, kEpRunning,
  kEpScrapeFailures, kEpScrapeState, kEpSeq, kEpTpotUs, kEpTtftUs, kEpWaiting, kModelBitWords,
  kScrapeFailing, kScrapeFresh, kScrapeNever, kScrapeStale,
} from '../../src/shared/layout.js';
import { startSimulatedPods } from '../../native-bench/src/sim/engine.js';
import type { SimFleet, SimPodSpec } from '../../native-bench/src/sim/engine.js';

// Addresses 127.0.30.0/24 belong to this suite.
const M = 'meta-llama/Llama-3.1-8B-Instruct';
const HANG_BOUND_MS = 15_000;

interface SlotView {
  state: number;
  waiting: number;
  running: number;
  kvPpm: number;
  ttftUs: number;
  tpotUs: number;
  hitPpm: number;
  lastSec: number;
  failures: number;
  modelBits: number[];
  loraBits: number[];
}

/** The seqlock read of layout.ts. */
function readSlot(ep: Int32Array, slot: number): SlotView {
  const b = slot * kEndpointStride;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const s1 = Atomics.load(ep, b + kEpSeq);
    if ((s1 & 1) !== 0) continue;
    const v: SlotView = {
      state: Atomics.load(ep, b + kEpScrapeState),
      waiting: Atomics.load(ep, b + kEpWaiting),
      running: Atomics.load(ep, b + kEpRunning),
      kvPpm: Atomics.load(ep, b + kEpKvUsagePpm),
      ttftUs: Atomics.load(ep, b + kEpTtftUs),
      tpotUs: Atomics.load(ep, b + kEpTpotUs),
      hitPpm: Atomics.load(ep, b + kEpPrefixHitPpm),
      lastSec: Atomics.load(ep, b + kEpLastScrapeSec),
      failures: Atomics.load(ep, b + kEpScrapeFailures),
      modelBits: [],
      loraBits: [],
    };
    for (let w = 0; w < kModelBitWords; w++) {
      v.modelBits.push(Atomics.load(ep, b + kEpModelBits + w));
      v.loraBits.push(Atomics.load(ep, b + kEpLoraActiveBits + w));
    }
    if (Atomics.load(ep, b + kEpSeq) === s1) return v;
  }
  throw new Error('seqlock read kept failing');
}

function bitsOf(words: number[]): number[] {
  const ids: number[] = [];
  words.forEach((w, i) => {
    for (let b = 0; b < 32; b++) if ((w >>> b) & 1) ids.push(i * 32 + b);
  });
  return ids;
}

/** Polls `fn` until it returns something truthy; fails after a generous bound (never a timing assertion). */
async function until<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string,
  boundMs = HANG_BOUND_MS,
): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function counterValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const data = await metric.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

/** A hand-driven engine for failure modes the simulator has no switch for. */
interface FakeEngine {
  ip: string;
  port: number;
  metricsText: string;
  modelsStatus: number;
  /** While true, /metrics requests are held until release(). */
  hold: boolean;
  inFlight: number;
  maxInFlight: number;
  metricsRequests: number;
  release(): void;
  close(): Promise<void>;
}

async function fakeEngine(ip: string): Promise<FakeEngine> {
  const held: (() => void)[] = [];
  const fake: FakeEngine = {
    ip, port: 0, metricsText: `vllm:num_requests_waiting{model_name="${M}"} 4.0\n`, modelsStatus: 200, hold: false,
    inFlight: 0, maxInFlight: 0, metricsRequests: 0,
    release() {
      for (const r of held.splice(0)) r();
    },
    async close() {
      fake.release();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      fake.metricsRequests++;
      fake.inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
      const answer = () => {
        fake.inFlight--;
        if (!res.destroyed) res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(fake.metricsText);
      };
      res.on('close', () => {
        if (!res.writableFinished) fake.inFlight--;
      });
      if (fake.hold) held.push(answer);
      else answer();
      return;
    }
    if (req.url === '/v1/models') {
      if (fake.modelsStatus !== 200) {
        res.writeHead(fake.modelsStatus, { 'content-type': 'application/json' }).end('{"error":"nope"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: M }, { id: 'lora-a' }] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, ip, resolve));
  fake.port = (server.address() as { port: number }).port;
  return fake;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function newEp(slots = 16): Int32Array {
  return new Int32Array(new SharedArrayBuffer(slots * kEndpointStride * 4));
}

function scraper(opts: Partial<ScraperOptions> & { ep: Int32Array }): { s: Scraper; registry: Registry } {
  const registry = new Registry();
  const s = new Scraper({
    intervalMs: 50,
    modelIds: () => new Map(),
    log: pino({ level: 'silent' }),
    registry,
    ...opts,
  });
  cleanups.push(() => s.stop());
  return { s, registry };
}

async function fleet(specs: SimPodSpec[]): Promise<SimFleet> {
  const f = await startSimulatedPods(specs);
  cleanups.push(() => f.close());
  return f;
}

function target(key: string, slot: number, pod: { ip: string; port: number }, extra: Partial<ScrapeTarget> = {}): ScrapeTarget {
  return { key, slot, ip: pod.ip, port: pod.port, engine: 'vLLM', models: [M], ...extra };
}

describe('Scraper against simulated engines', () => {
  it('writes load, latency, model and LoRA bits of a vLLM pod into its slot under the seqlock', async () => {
    const f = await fleet([{ name: 'p0', ip: '127.0.30.1', port: 0, models: [M, 'lora-a', 'lora-b'] }]);
    const pod = f.pods[0];
    pod.set({
      metricsOverride: {
        running: 3, waiting: 2, kvCacheUsage: 0.42, ttftSeconds: 0.25, tpotSeconds: 0.02,
        loraRunning: ['lora-a'], loraWaiting: ['lora-b', 'not-routed'],
      },
    });
    const ep = newEp();
    const ids = new Map([[M, 0], ['lora-a', 5], ['lora-b', 40]]);
    const { s } = scraper({ ep, modelIds: () => ids });
    s.setTargets([target('default/p0', 3, pod)]);
    s.start();
    await s.firstRound;
    const v = await until(() => {
      const x = readSlot(ep, 3);
      return x.ttftUs > 0 && x.tpotUs > 0 ? x : null;
    }, 'TTFT and TPOT in the slot');
    expect(v).toMatchObject({ state: kScrapeFresh, waiting: 2, running: 3, kvPpm: 420_000, ttftUs: 250_000, tpotUs: 20_000, failures: 0, hitPpm: -1 });
    expect(Math.abs(v.lastSec - Date.now() / 1000)).toBeLessThan(60);
    expect(bitsOf(v.modelBits)).toEqual([0, 5, 40]);
    expect(bitsOf(v.loraBits)).toEqual([5, 40]);
    // Nothing leaked into the neighbours.
    expect(readSlot(ep, 2)).toMatchObject({ state: kScrapeNever, waiting: 0 });
    expect(readSlot(ep, 4)).toMatchObject({ state: kScrapeNever, waiting: 0 });

    const view = s.view('default/p0')!;
    expect(view).toMatchObject({
      gpuCacheUsage: 0.42, requestWaitingNum: 2, requestRunningNum: 3, ttft: 0.25, scrapeState: 'fresh',
      consecutiveFailures: 0, lastError: null, prefixCacheHitRate: null,
      models: [M, 'lora-a', 'lora-b'], loraRunning: ['lora-a'], loraWaiting: ['lora-b', 'not-routed'],
    });
    expect(view.tpot).toBeCloseTo(0.02, 9);
    expect(new Date(view.lastScrapeTime!).toISOString()).toBe(view.lastScrapeTime);
    expect(s.view('default/nobody')).toBeUndefined();

    // A publish gives a name an id after the scrape: refreshModelBits() sets the bit without waiting.
    ids.set('lora-late', 70);
    pod.set({ metricsOverride: { loraRunning: ['lora-late'] } });
    await until(() => s.view('default/p0')!.loraRunning.includes('lora-late'), 'lora-late scraped');
    ids.set('lora-late', 71);
    s.refreshModelBits();
    expect(bitsOf(readSlot(ep, 3).loraBits)).toContain(71);
  });

  it('reads SGLang and legacy vLLM pods, and the prefix hit rate from counter deltas', async () => {
    const f = await fleet([
      { name: 'sg', ip: '127.0.30.2', port: 0, models: [M], engine: 'SGLang', metricNames: 'legacy' },
      { name: 'old', ip: '127.0.30.3', port: 0, models: [M], metricNames: 'legacy' },
    ]);
    f.pod('sg').set({ metricsOverride: { running: 4, waiting: 1, kvCacheUsage: 0.5, prefixCacheHits: 1, prefixCacheQueries: 4, tpotSeconds: 0.03 } });
    f.pod('old').set({ metricsOverride: { running: 1, waiting: 6, kvCacheUsage: 0.75, prefixCacheHits: 0, prefixCacheQueries: 0, tpotSeconds: 0.04 } });
    const ep = newEp();
    const { s } = scraper({ ep });
    s.setTargets([
      target('ns/sg', 0, f.pod('sg'), { engine: 'SGLang' }),
      target('ns/old', 1, f.pod('old')),
    ]);
    s.start();
    const sg = await until(() => { const x = readSlot(ep, 0); return x.tpotUs > 0 ? x : null; }, 'SGLang TPOT');
    expect(sg).toMatchObject({ state: kScrapeFresh, running: 4, waiting: 1, kvPpm: 500_000, hitPpm: 250_000, tpotUs: 30_000 });
    const old = await until(() => { const x = readSlot(ep, 1); return x.tpotUs > 0 ? x : null; }, 'legacy vLLM TPOT');
    expect(old).toMatchObject({ state: kScrapeFresh, running: 1, waiting: 6, kvPpm: 750_000, tpotUs: 40_000, hitPpm: -1 });
    // vLLM counters: the rate is the delta over the interval in which they moved.
    f.pod('old').set({ metricsOverride: { prefixCacheHits: 30, prefixCacheQueries: 100 } });
    await until(() => readSlot(ep, 1).hitPpm === 300_000, 'hit rate 0.3');
    expect(s.view('ns/old')!.prefixCacheHitRate).toBeCloseTo(0.3, 9);
    // No new queries: the last known rate stays.
    f.pod('old').set({ metricsOverride: { prefixCacheHits: 30, prefixCacheQueries: 100, waiting: 9 } });
    await until(() => readSlot(ep, 1).waiting === 9, 'next scrape');
    expect(readSlot(ep, 1).hitPpm).toBe(300_000);
  });

  it('selects the series of the target models and sums the others when none matches', async () => {
    const f = await fleet([{
      name: 'multi', ip: '127.0.30.4', port: 0, models: [M],
      extraMetricSeries: [{ labels: { model_name: 'other' }, running: 10, waiting: 100, kvCacheUsage: 0.9 }],
    }]);
    f.pods[0].set({ metricsOverride: { running: 1, waiting: 2, kvCacheUsage: 0.1 } });
    const ep = newEp();
    const { s } = scraper({ ep });
    // Two targets on the same engine, as two ModelServers with different spec.model would see it.
    s.setTargets([target('ns/mine', 0, f.pods[0]), target('ns/unmatched', 1, f.pods[0], { models: ['unrelated'] })]);
    s.start();
    await s.firstRound;
    expect(readSlot(ep, 0)).toMatchObject({ state: kScrapeFresh, running: 1, waiting: 2, kvPpm: 100_000 });
    expect(readSlot(ep, 1)).toMatchObject({ state: kScrapeFresh, running: 11, waiting: 102, kvPpm: 900_000 });
  });

  it('marks a pod that dies failing (values kept), then stale past the bound, and fresh again when it returns', async () => {
    const f = await fleet([{ name: 'mortal', ip: '127.0.30.5', port: 0, models: [M] }]);
    const pod = f.pods[0];
    const port = pod.port;
    pod.set({ metricsOverride: { waiting: 5, kvCacheUsage: 0.3 } });
    let skew = 0;
    const ep = newEp();
    const { s, registry } = scraper({ ep, now: () => Date.now() + skew });
    s.setTargets([target('ns/mortal', 2, pod)]);
    s.start();
    await s.firstRound;
    expect(readSlot(ep, 2)).toMatchObject({ state: kScrapeFresh, waiting: 5 });
    const lastSec = readSlot(ep, 2).lastSec;

    await pod.close();
    const failing = await until(() => { const x = readSlot(ep, 2); return x.state === kScrapeFailing ? x : null; }, 'failing');
    expect(failing).toMatchObject({ waiting: 5, kvPpm: 300_000, lastSec });
    expect(failing.failures).toBeGreaterThanOrEqual(1);
    expect(s.view('ns/mortal')).toMatchObject({ scrapeState: 'failing', requestWaitingNum: 5 });
    expect(s.view('ns/mortal')!.lastError).toMatch(/^metrics: /);
    expect(await counterValue(registry, 'kthena_router_scrape_errors_total', { stage: 'metrics' })).toBeGreaterThanOrEqual(1);

    skew = 10_000; // past max(3 x 50 ms, 3000 ms) without waiting for it
    const stale = await until(() => { const x = readSlot(ep, 2); return x.state === kScrapeStale ? x : null; }, 'stale');
    expect(stale).toMatchObject({ waiting: 5, lastSec });
    expect(await counterValue(registry, 'kthena_router_scrape_pods', { state: 'stale' })).toBe(1);

    const back = await fleet([{ name: 'mortal', ip: '127.0.30.5', port, models: [M] }]);
    back.pods[0].set({ metricsOverride: { waiting: 1 } });
    await until(() => readSlot(ep, 2).state === kScrapeFresh, 'fresh again');
    expect(readSlot(ep, 2)).toMatchObject({ waiting: 1, failures: 0 });
    expect(s.view('ns/mortal')).toMatchObject({ scrapeState: 'fresh', consecutiveFailures: 0, lastError: null });
  });

  it('keeps a never-answering pod in state never, counting failures, and still completes the first round', async () => {
    const ep = newEp();
    const { s } = scraper({ ep });
    // Nothing listens on 127.0.30.99: connection refused.
    s.setTargets([target('ns/ghost', 6, { ip: '127.0.30.99', port: 9 })]);
    s.start();
    await s.firstRound;
    const v = await until(() => { const x = readSlot(ep, 6); return x.failures >= 2 ? x : null; }, 'two failures');
    expect(v).toMatchObject({ state: kScrapeNever, lastSec: 0, hitPpm: -1 });
    expect(s.view('ns/ghost')).toMatchObject({ scrapeState: 'never', lastScrapeTime: null });
    expect(s.view('ns/ghost')!.lastError).toMatch(/ECONNREFUSED/);
  });

  it('scrapes a new target at once instead of waiting for the next round', async () => {
    const f = await fleet([{ name: 'late', ip: '127.0.30.6', port: 0, models: [M] }]);
    f.pods[0].set({ metricsOverride: { waiting: 8 } });
    const ep = newEp();
    const { s, registry } = scraper({ ep, intervalMs: 600_000 });
    s.setTargets([]);
    s.start();
    await s.firstRound; // zero targets: resolves at once
    s.setTargets([target('ns/late', 7, f.pods[0])]);
    // The only round ran before the target existed, and the next is ten minutes away.
    await until(() => readSlot(ep, 7).state === kScrapeFresh, 'immediate scrape');
    expect(readSlot(ep, 7).waiting).toBe(8);
    expect(await counterValue(registry, 'kthena_router_scrape_rounds_total')).toBeLessThanOrEqual(1);
  });

  it('never writes a removed target again, even when its scrape was in flight', async () => {
    const fake = await fakeEngine('127.0.30.7');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s, registry } = scraper({ ep });
    s.setTargets([target('ns/gone', 9, fake)]);
    s.start();
    await s.firstRound;
    expect(readSlot(ep, 9)).toMatchObject({ state: kScrapeFresh, waiting: 4 });

    fake.hold = true;
    const seen = fake.metricsRequests;
    await until(() => fake.inFlight > 0 && fake.metricsRequests > seen, 'a held /metrics request');
    s.setTargets([]);
    // The slot now belongs to someone else (what SlotAllocator.assign does to a reused slot).
    const b = 9 * kEndpointStride;
    for (let i = 0; i < kEndpointStride; i++) Atomics.store(ep, b + i, 0);
    Atomics.store(ep, b + kEpWaiting, 777);
    fake.metricsText = `vllm:num_requests_waiting{model_name="${M}"} 1.0\n`;
    fake.release();
    fake.hold = false;
    await until(() => fake.inFlight === 0, 'held request answered');
    // Let several more rounds run: the scraper has no target, so nothing may touch slot 9.
    const r0 = await counterValue(registry, 'kthena_router_scrape_rounds_total');
    await until(async () => (await counterValue(registry, 'kthena_router_scrape_rounds_total')) >= r0 + 3, 'three more rounds');
    expect(Atomics.load(ep, b + kEpWaiting)).toBe(777);
    expect(Atomics.load(ep, b + kEpSeq)).toBe(0);
    expect(s.view('ns/gone')).toBeUndefined();
  });

  it('moves a target whose slot changed, leaving the old slot alone', async () => {
    const fake = await fakeEngine('127.0.30.8');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s } = scraper({ ep });
    s.setTargets([target('ns/moved', 10, fake)]);
    s.start();
    await s.firstRound;
    expect(readSlot(ep, 10).state).toBe(kScrapeFresh);
    s.setTargets([target('ns/moved', 11, fake)]);
    const seq10 = Atomics.load(ep, 10 * kEndpointStride + kEpSeq);
    await until(() => readSlot(ep, 11).state === kScrapeFresh, 'new slot written');
    const rounds = fake.metricsRequests;
    await until(() => fake.metricsRequests >= rounds + 3, 'three more scrapes');
    expect(Atomics.load(ep, 10 * kEndpointStride + kEpSeq)).toBe(seq10);
  });

  it('keeps the previous model bits when /v1/models fails and counts a "models" error', async () => {
    const fake = await fakeEngine('127.0.30.9');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s, registry } = scraper({ ep, modelIds: () => new Map([[M, 1], ['lora-a', 2]]) });
    s.setTargets([target('ns/m', 12, fake)]);
    s.start();
    await s.firstRound;
    expect(bitsOf(readSlot(ep, 12).modelBits)).toEqual([1, 2]);
    fake.modelsStatus = 503;
    fake.metricsText = `vllm:num_requests_waiting{model_name="${M}"} 3.0\n`;
    await until(() => readSlot(ep, 12).waiting === 3, 'metrics after the models failure');
    await until(() => s.view('ns/m')!.lastError !== null, 'models error recorded');
    expect(readSlot(ep, 12)).toMatchObject({ state: kScrapeFresh, failures: 0 });
    expect(bitsOf(readSlot(ep, 12).modelBits)).toEqual([1, 2]);
    expect(s.view('ns/m')!.lastError).toMatch(/^models: .*HTTP 503/);
    expect(await counterValue(registry, 'kthena_router_scrape_errors_total', { stage: 'models' })).toBeGreaterThanOrEqual(1);
    expect(await counterValue(registry, 'kthena_router_scrape_errors_total', { stage: 'metrics' })).toBe(0);
  });

  it('never overlaps rounds: a slow pod delays the next round instead of piling requests up', async () => {
    const fake = await fakeEngine('127.0.30.10');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s } = scraper({ ep, intervalMs: 50 });
    fake.hold = true;
    s.setTargets([target('ns/slow', 13, fake)]);
    s.start();
    for (let i = 0; i < 3; i++) {
      await until(() => fake.inFlight === 1, 'a held request');
      // Several intervals pass while the request is held; no second request may start.
      await new Promise((r) => setTimeout(r, 150));
      expect(fake.inFlight).toBe(1);
      fake.release();
      await until(() => fake.inFlight === 0, 'released');
    }
    expect(fake.maxInFlight).toBe(1);
    await s.firstRound;
  });

  it('fails a scrape that exceeds its deadline', async () => {
    const fake = await fakeEngine('127.0.30.11');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s } = scraper({ ep, timeoutMs: 100 });
    fake.hold = true;
    s.setTargets([target('ns/hung', 0, fake)]);
    s.start();
    await s.firstRound;
    expect(s.view('ns/hung')!.lastError).toMatch(/^metrics: timed out after 100 ms/);
    expect(readSlot(ep, 0)).toMatchObject({ state: kScrapeNever, failures: 1 });
  });

  it('fails a scrape whose body exceeds the cap', async () => {
    const f = await fleet([{ name: 'big', ip: '127.0.30.12', port: 0, models: [M] }]);
    const ep = newEp();
    const { s } = scraper({ ep, maxBodyBytes: 1000 });
    s.setTargets([target('ns/big', 1, f.pods[0])]);
    s.start();
    await s.firstRound;
    expect(s.view('ns/big')!.lastError).toMatch(/^metrics: GET \/metrics: body .*exceeds 1000/);
    expect(readSlot(ep, 1).state).toBe(kScrapeNever);
  });

  it('resolves firstRound only once every initial target was tried, and publishes its own metrics', async () => {
    const fake = await fakeEngine('127.0.30.13');
    cleanups.push(() => fake.close());
    const ep = newEp();
    const { s, registry } = scraper({ ep });
    fake.hold = true;
    s.setTargets([target('ns/a', 0, fake), target('ns/b', 1, { ip: '127.0.30.99', port: 9 })]);
    s.start();
    let done = false;
    void s.firstRound.then(() => { done = true; });
    await until(() => fake.inFlight === 1 && s.view('ns/b')!.consecutiveFailures >= 1, 'b failed, a held');
    expect(done).toBe(false);
    fake.hold = false;
    fake.release();
    await s.firstRound;
    expect(readSlot(ep, 0).state).toBe(kScrapeFresh);
    const text = await registry.metrics();
    for (const name of [
      'kthena_router_scrape_rounds_total', 'kthena_router_scrape_errors_total{stage="metrics"}',
      'kthena_router_scrape_errors_total{stage="models"}', 'kthena_router_scrape_round_duration_seconds_bucket',
      'kthena_router_scrape_pods{state="fresh"} 1', 'kthena_router_scrape_pods{state="never"} 1',
    ]) {
      expect(text).toContain(name);
    }
  });

  it('stop() aborts in-flight requests, closes its sockets and leaves no timer running', async () => {
    const fake = await fakeEngine('127.0.30.14');
    cleanups.push(() => fake.close());
    const before = resources();
    const ep = newEp();
    const { s, registry } = scraper({ ep, timeoutMs: 60_000 });
    s.setTargets([target('ns/x', 0, fake)]);
    s.start();
    await s.firstRound;
    fake.hold = true;
    await until(() => fake.inFlight === 1, 'a held request');
    const seq = Atomics.load(ep, kEpSeq);
    await s.stop();
    await s.firstRound;
    await until(() => fake.inFlight === 0, 'server saw the abort');
    fake.release();
    await until(() => {
      const now = resources();
      return (now.Timeout ?? 0) <= (before.Timeout ?? 0) && (now.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0);
    }, 'no timers or sockets left by the scraper');
    expect(Atomics.load(ep, kEpSeq)).toBe(seq);
    s.setTargets([target('ns/y', 1, fake)]);
    expect(Atomics.load(ep, kEndpointStride + kEpSeq)).toBe(0); // a stopped scraper writes nothing
    await s.stop(); // idempotent
    expect(() => s.start()).toThrow(/after stop/);
    // Its families are unregistered: a replacement can use the same registry.
    expect(registry.getSingleMetric('kthena_router_scrape_rounds_total')).toBeUndefined();
    const again = new Scraper({ ep, intervalMs: 50, modelIds: () => new Map(), log: pino({ level: 'silent' }), registry });
    await again.stop();
  });

  it('validates its options and targets with precise messages', () => {
    const ep = newEp(4);
    const base = { ep, modelIds: () => new Map<string, number>(), log: pino({ level: 'silent' }) };
    expect(() => new Scraper({ ...base, intervalMs: 10 })).toThrow(/intervalMs must be a number >= 50/);
    expect(() => new Scraper({ ...base, intervalMs: 100, concurrency: 0 })).toThrow(/concurrency/);
    const s = new Scraper({ ...base, intervalMs: 100 });
    expect(() => s.setTargets([target('ns/a', 4, { ip: '127.0.30.1', port: 1 })])).toThrow(/slot must be an integer 0\.\.3/);
    expect(() => s.setTargets([target('ns/a', 0, { ip: '127.0.30.1', port: 0 })])).toThrow(/port/);
    expect(() => s.setTargets([target('ns/a', 0, { ip: '127.0.30.1', port: 1 }), target('ns/a', 1, { ip: '127.0.30.1', port: 1 })]))
      .toThrow(/duplicate key "ns\/a"/);
    expect(() => s.setTargets([target('ns/a', 0, { ip: '127.0.30.1', port: 1 }, { engine: 'TRT' as 'vLLM' })])).toThrow(/engine/);
    return s.stop();
  });
});

function resources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}
