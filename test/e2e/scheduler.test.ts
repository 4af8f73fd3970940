/**
 * Scheduling end to end: the real CLI with `--router-config` (hot reloaded between scenarios), the
 * scraper polling simulated vLLM pods on 127.0.23.x whose reported metrics are steered, and the
 * plugins' choices observed on the pods. Each scenario has its own ModelServer and model name.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimFleet, SimPod } from '../../native-bench/src/sim/types.js';
import { spawn } from 'node:child_process';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import {
  chat, cleanup, docs, eventually, freePort, modelRouteYaml, podYaml, ROOT, sampleValue, scrape, serverYaml, startPods, startRouter,
  tempDir, writeFile, type RouterProc,
} from './harness.js';

const IP = (n: number): string => `127.0.23.${n}`;

/** scenario -> pods (name, ip, models) */
const GROUPS: Record<string, { model: string; lora?: string[]; pods: [string, string, string[]?][] }> = {
  lr: { model: 'org/lr', pods: [['lr-idle-1', IP(1)], ['lr-idle-2', IP(2)], ['lr-busy-1', IP(3)], ['lr-busy-2', IP(4)]] },
  gpu: { model: 'org/gpu', pods: [['gpu-full-1', IP(5)], ['gpu-full-2', IP(6)], ['gpu-free', IP(7)]] },
  lat: { model: 'org/lat', pods: [['lat-fast-1', IP(8)], ['lat-fast-2', IP(9)], ['lat-slow-1', IP(10)], ['lat-slow-2', IP(11)]] },
  lora: {
    model: 'org/lora', lora: ['adapter-x'],
    pods: [['lora-with-1', IP(12), ['org/lora', 'adapter-x']], ['lora-with-2', IP(13), ['org/lora', 'adapter-x']], ['lora-without', IP(14), ['org/lora']]],
  },
  px: { model: 'org/px', pods: [['px-1', IP(15)], ['px-2', IP(16)], ['px-3', IP(17)], ['px-4', IP(18)]] },
  rnd: { model: 'org/rnd', pods: [['rnd-1', IP(19)], ['rnd-2', IP(20)], ['rnd-3', IP(21)], ['rnd-4', IP(22)]] },
  // kvcache-aware looks KV blocks up under the client's model name, so these pods serve it as is.
  kv: { model: 'kv-model', pods: [['kv-1', IP(23)], ['kv-2', IP(24)], ['kv-3', IP(25)], ['kv-4', IP(26)]] },
  dflt: { model: 'org/dflt', pods: [['dflt-1', IP(27)], ['dflt-2', IP(28)], ['dflt-3', IP(29)]] },
};

let dir: string;
let configFile: string;
let fleet: SimFleet;
let router: RouterProc;
let redis: RedisServer;
let simPort: number;
let scrapedAtReady: { name: string; scrape?: { state: string } }[] = [];

const pod = (name: string): SimPod => fleet.pod(name);
const completions = (p: SimPod): number => p.requests.filter((r) => r.path.startsWith('/v1/chat/completions')).length;

async function useProfile(yaml: string, expectScores: string[]): Promise<void> {
  await writeFile(configFile, yaml);
  await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/snapshot`);
    const ir = (await r.json()).ir as { scheduler: { scores: { name: string }[] } } | null;
    return ir !== null && JSON.stringify(ir.scheduler.scores.map((s) => s.name)) === JSON.stringify(expectScores);
  }, 10_000, `profile ${expectScores.join(',')} live`);
}

async function podMetrics(name: string): Promise<{ metrics: Record<string, number>; models: string[] }> {
  const r = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/namespaces/default/pods/${name}`);
  return r.json();
}

/** Sends `n` requests with at most `concurrency` in flight; fails on any non-200. */
async function send(model: string, n: number, concurrency = 4, content = (): string => `q-${randomUUID()}`): Promise<void> {
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await chat(router.url, { model, messages: [{ role: 'user', content: content() }], max_tokens: 2 });
      expect(r.status, r.text).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, run));
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-sched-');
  configFile = path.join(dir, '..', `${path.basename(dir)}-router.yaml`);
  await writeFile(configFile, 'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n');
  const port = await freePort();
  simPort = port;
  redis = await startRedis();
  fleet = await startPods(Object.entries(GROUPS).flatMap(([group, g]) => g.pods.map(([name, ip, models]) => ({
    name, ip, port, models: models ?? [g.model], ttftMs: 2, itlMs: 1, outputTokens: 2,
    ...(group === 'kv' ? { kvEvents: { redisUrl: redis.url, namespace: 'default' } } : {}),
  }))));
  const manifests: string[] = [];
  for (const [name, g] of Object.entries(GROUPS)) {
    manifests.push(serverYaml(`${name}-ms`, { port, model: name === 'kv' ? undefined : g.model, labels: { app: name } }));
    for (const [p, ip] of g.pods) manifests.push(podYaml(p, ip, { labels: { app: name } }));
    manifests.push(modelRouteYaml(`${name}-route`, { modelName: `${name}-model`, loraAdapters: g.lora, rules: [{ targets: [{ server: `${name}-ms` }] }] }));
  }
  await writeFile(path.join(dir, 'all.yaml'), docs(...manifests));
  router = await startRouter({
    dir, workers: 2, args: ['--router-config', configFile],
    env: { METRICS_SCRAPE_INTERVAL: '100ms', REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port) },
  });
  await router.waitReady();
  scrapedAtReady = (await (await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/pods`)).json()).pods;
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  await redis?.stop();
  if (dir) { await cleanup(dir); await cleanup(configFile); }
});

describe('readiness', () => {
  it('answers /readyz only once the first scrape round has reached every pod', () => {
    expect(scrapedAtReady.length).toBe(Object.values(GROUPS).reduce((n, g) => n + g.pods.length, 0));
    for (const p of scrapedAtReady) expect(p.scrape?.state, p.name).toBe('fresh');
  });
});

describe('scheduler plugins end to end', () => {
  it('least-request filters out pods whose engine queue is at maxWaitingRequests and spreads by in-flight', async () => {
    pod('lr-busy-1').set({ metricsOverride: { waiting: 12, running: 4 } });
    pod('lr-busy-2').set({ metricsOverride: { waiting: 40, running: 8 } });
    await useProfile(`scheduler:
  pluginConfig: [{name: least-request, args: {maxWaitingRequests: 10}}]
  plugins: {Filter: {enabled: [least-request]}, Score: {enabled: [{name: least-request, weight: 1}]}}
`, ['least-request']);
    await eventually(async () => (await podMetrics('lr-busy-2')).metrics.requestWaitingNum === 40, 5000, 'scraped waiting');
    await eventually(async () => (await podMetrics('lr-busy-1')).metrics.requestWaitingNum === 12, 5000, 'scraped waiting');
    await send('lr-model', 40, 8);
    const idle = completions(pod('lr-idle-1')) + completions(pod('lr-idle-2'));
    expect(idle / 40).toBeGreaterThanOrEqual(0.9);
    // In-flight counts are shared: neither idle pod takes everything.
    expect(completions(pod('lr-idle-1'))).toBeGreaterThan(5);
    expect(completions(pod('lr-idle-2'))).toBeGreaterThan(5);
  });

  it('gpu-usage sends requests to the pod with the lowest KV-cache usage', async () => {
    pod('gpu-full-1').set({ metricsOverride: { kvCacheUsage: 0.92 } });
    pod('gpu-full-2').set({ metricsOverride: { kvCacheUsage: 0.85 } });
    pod('gpu-free').set({ metricsOverride: { kvCacheUsage: 0.1 } });
    await useProfile('scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: 1}]}}}\n', ['gpu-usage']);
    await eventually(async () => (await podMetrics('gpu-full-2')).metrics.gpuCacheUsage === 0.85, 5000, 'scraped KV usage');
    await send('gpu-model', 30, 4);
    expect(completions(pod('gpu-free'))).toBe(30);
  });

  it('least-latency prefers the pool with the lower measured TTFT and TPOT', async () => {
    for (const p of ['lat-slow-1', 'lat-slow-2']) pod(p).set({ ttftMs: 60, itlMs: 30 });
    // Warm every pod directly so its engine histograms carry latency samples.
    for (const [name] of GROUPS.lat.pods) {
      const p = pod(name);
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`${p.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'org/lat', messages: [{ role: 'user', content: 'warm' }], max_tokens: 3 }) });
        await r.text();
      }
    }
    await useProfile('scheduler: {plugins: {Score: {enabled: [{name: least-latency, weight: 1}]}}}\n', ['least-latency']);
    await eventually(async () => (await podMetrics('lat-slow-2')).metrics.ttft > 0.05, 5000, 'scraped TTFT');
    await eventually(async () => (await podMetrics('lat-fast-2')).metrics.ttft > 0, 5000, 'scraped TTFT');
    const before = completions(pod('lat-slow-1')) + completions(pod('lat-slow-2'));
    await send('lat-model', 30, 2);
    const slow = completions(pod('lat-slow-1')) + completions(pod('lat-slow-2')) - before;
    expect(slow / 30).toBeLessThanOrEqual(0.1);
  });

  it('lora-affinity never sends an adapter request to a pod that does not list the adapter', async () => {
    await useProfile(`scheduler:
  plugins: {Filter: {enabled: [lora-affinity]}, Score: {enabled: [{name: random, weight: 1}]}}
`, ['random']);
    await eventually(async () => (await podMetrics('lora-with-2')).models.includes('adapter-x'), 5000, 'scraped models');
    await send('adapter-x', 40, 4);
    expect(completions(pod('lora-without'))).toBe(0);
    expect(completions(pod('lora-with-1'))).toBeGreaterThan(5);
    expect(completions(pod('lora-with-2'))).toBeGreaterThan(5);
  });

  it('prefix-cache keeps at least 90% of a repeated long prompt on one pod', async () => {
    await useProfile(`scheduler:
  plugins: {Filter: {enabled: [least-request]}, Score: {enabled: [{name: least-request, weight: 1}, {name: prefix-cache, weight: 1}]}}
`, ['least-request', 'prefix-cache']);
    const system = 'You are a meticulous assistant. '.repeat(120);
    let i = 0;
    await send('px-model', 40, 1, () => `${system}\nQuestion ${i++}: what is ${i} + ${i}?`);
    const counts = GROUPS.px.pods.map(([name]) => completions(pod(name))).sort((a, b) => b - a);
    expect(counts[0] / 40).toBeGreaterThanOrEqual(0.9);
  });

  it('random spreads requests evenly over the pods', async () => {
    await useProfile('scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n', ['random']);
    await send('rnd-model', 400, 8);
    for (const [name] of GROUPS.rnd.pods) {
      // Binomial(400, 1/4): mean 100, sd 8.7; [55, 145] is more than 5 sd either way.
      expect(completions(pod(name))).toBeGreaterThan(55);
      expect(completions(pod(name))).toBeLessThan(145);
    }
  });

  it('kvcache-aware sends a repeated prompt to the pod whose KV blocks Redis lists', async () => {
    await useProfile(`scheduler:
  pluginConfig: [{name: kvcache-aware, args: {vllmTokenizerPort: ${simPort}, sglangTokenizerPort: ${simPort}}}]
  plugins: {Score: {enabled: [{name: least-request, weight: 1}, {name: kvcache-aware, weight: 2}]}}
`, ['least-request', 'kvcache-aware']);
    const prompt = 'Summarise the following contract clause by clause. '.repeat(40);
    await send('kv-model', 1, 1, () => prompt);
    const first = GROUPS.kv.pods.map(([name]) => name).find((name) => completions(pod(name)) === 1)!;
    // The sim publishes the prompt's blocks when prefill is done; wait until Redis has them.
    await eventually(async () => (await redisKeys('matrix:kv:block:kv-model@*')) > 0, 5000, 'KV blocks in Redis');
    await send('kv-model', 20, 1, () => prompt);
    expect(completions(pod(first)) - 1).toBeGreaterThanOrEqual(18);
  });

  it('the default profile (Kthena\'s Helm chart) schedules with every plugin\'s metrics present', async () => {
    await writeFile(configFile, readDefaultProfile());
    await useProfile(readDefaultProfile(), ['least-request', 'gpu-usage', 'least-latency', 'prefix-cache']);
    // 200 decisions: whatever the split over the 2 workers, one of them makes at least 64, so the
    // 1-in-64 plugin timing samples this model at least once.
    await send('dflt-model', 200, 4);
    const total = GROUPS.dflt.pods.reduce((n, [name]) => n + completions(pod(name)), 0);
    expect(total).toBe(200);
    const m = await scrape(router.metricsPort);
    const sampled = m.samples.filter((x) => x.name === 'kthena_router_scheduler_plugin_duration_seconds_count' && x.labels.model === 'dflt-model');
    // gpu-usage and least-latency are reused while scraped metrics are unchanged, so only the
    // plugins that run on every decision are sure to have been timed.
    const timed = new Set(sampled.map((x) => x.labels.plugin));
    expect(timed.has('least-request') && timed.has('prefix-cache')).toBe(true);
    for (const p of timed) expect(['least-request', 'gpu-usage', 'least-latency', 'prefix-cache']).toContain(p);
    expect(sampleValue(m.samples, 'kthena_router_prefix_cache_match_ratio_count', { model: 'dflt-model' })).toBe(200);
    expect(sampleValue(m.samples, 'kthena_router_prefix_cache_entries')).toBeGreaterThan(0);
    expect(sampleValue(m.samples, 'kthena_router_scrape_rounds_total')).toBeGreaterThan(0);
  });

  it('keeps the previous profile live when an edit is invalid, and reports the problem', async () => {
    await writeFile(configFile, 'scheduler: {plugins: {Score: {enabled: [{name: least-cache, weight: 1}]}}}\n');
    await eventually(async () => {
      const r = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/problems`);
      return ((await r.json()).problems as { kind: string; message: string }[]).some((p) => p.kind === 'RouterConfiguration' && p.message.includes('least-cache'));
    }, 10_000, 'router configuration problem reported');
    const r = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/snapshot`);
    expect((await r.json()).ir.scheduler.scores.map((x: { name: string }) => x.name)).toEqual(['least-request', 'gpu-usage', 'least-latency', 'prefix-cache']);
    await send('rnd-model', 4, 2);
  });
});

describe('router configuration at start', () => {
  it('refuses to start (exit 2) with an invalid --router-config, naming the field', async () => {
    const bad = path.join(dir, '..', `${path.basename(dir)}-bad.yaml`);
    await writeFile(bad, 'scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: -1}]}}}\n');
    const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'kthena-router.js'), 'serve', '--config', dir, '--router-config', bad,
      '--host', '127.0.0.1', '--port', String(await freePort()), '--metrics-port', '0', '--debug-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    await cleanup(bad);
    expect(code).toBe(2);
    expect(err).toContain('scheduler.plugins.Score.enabled[0].weight');
  });
});

function readDefaultProfile(): string {
  return readFileSync(path.join(ROOT, 'test', 'unit', 'fixtures', 'routerconfig', 'helm-default.yaml'), 'utf8');
}

async function redisKeys(pattern: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const c = new Redis(redis.port, '127.0.0.1');
  try { return (await c.keys(pattern)).length; } finally { c.disconnect(); }
}
