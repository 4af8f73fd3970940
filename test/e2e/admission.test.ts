/**
 * Kthena's fairness scheduling and session boost over the real CLI with two worker threads: one
 * queue per model for the whole router (the control thread orders it), so the concurrency limit,
 * the order and the timeouts hold whichever worker a connection landed on. Simulated vLLM pods on
 * 127.0.57.x (fairness) and 127.0.58.x (session boost).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docs, eventually, podYaml, routeYaml, serverYaml, startPods, startRouter, tempDir, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';

const body = (model: string): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 1 });

function post(url: string, model: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  return fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body(model), signal })
    .then(async (r) => ({ status: r.status, text: await r.text() }));
}

async function metric(r: RouterProc, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
  for (const l of text.split('\n')) if (l.startsWith(line + ' ')) return Number(l.slice(line.length + 1));
  return 0;
}

describe('fairness scheduling (ENABLE_FAIRNESS_SCHEDULING, FAIRNESS_MAX_CONCURRENT=1)', () => {
  let dir = '';
  let fleet: SimFleet;
  let router: RouterProc;

  beforeAll(async () => {
    dir = await tempDir();
    fleet = await startPods([
      { name: 'fair-0', ip: '127.0.57.1', port: 8000, models: ['fair'], ttftMs: 100, outputTokens: 1 },
      { name: 'slow-0', ip: '127.0.57.2', port: 8000, models: ['slow'], ttftMs: 4000, outputTokens: 1 },
    ]);
    await writeFile(path.join(dir, 'all.yaml'), docs(
      serverYaml('fair', { port: 8000, labels: { app: 'fair' } }), routeYaml('fair', 'fair', 'fair'), podYaml('fair-0', '127.0.57.1', { labels: { app: 'fair' } }),
      serverYaml('slow', { port: 8000, labels: { app: 'slow' } }), routeYaml('slow', 'slow', 'slow'), podYaml('slow-0', '127.0.57.2', { labels: { app: 'slow' } }),
    ));
    router = await startRouter({ dir, workers: 2, env: { ENABLE_FAIRNESS_SCHEDULING: 'true', FAIRNESS_MAX_CONCURRENT: '1', FAIRNESS_QUEUE_TIMEOUT: '2s' } });
    await router.waitReady();
  }, 30_000);

  afterAll(async () => {
    await router?.stop();
    await fleet?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lets one request of a model reach its pods at a time, across both workers, and serves all', async () => {
    const pod = fleet.pod('fair-0');
    let maxInflight = 0;
    const sampler = setInterval(() => { maxInflight = Math.max(maxInflight, pod.inflight); }, 5);
    // Separate connections: the kernel spreads them over both workers' sockets.
    const results = await Promise.all(Array.from({ length: 5 }, () => post(router.url, 'fair', { connection: 'close' })));
    clearInterval(sampler);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(maxInflight).toBe(1);
    expect(await metric(router, 'kthena_router_fairness_queue_dequeue_total{model="fair",user_id="_all"}')).toBeGreaterThanOrEqual(5);
    expect(await metric(router, 'kthena_router_fairness_queue_size{model="fair",user_id="_all"}')).toBe(0);
  });

  it('answers 504 "Request processing timed out in queue" after FAIRNESS_QUEUE_TIMEOUT', async () => {
    const first = post(router.url, 'slow');
    await eventually(() => fleet.pod('slow-0').inflight === 1, 5000, 'first request at the pod');
    const second = await post(router.url, 'slow');
    expect(second.status).toBe(504);
    expect(JSON.parse(second.text).error).toMatchObject({ message: 'Request processing timed out in queue', code: 'RTR_ERR_FAIRNESS_QUEUE_TIMEOUT' });
    expect((await first).status).toBe(200);
    expect(fleet.pod('slow-0').requests.length).toBe(1);
  }, 15_000);

  it('gives the place of a client that disconnects while queued back, without reaching the pod', async () => {
    const pod = fleet.pod('fair-0');
    pod.set({ ttftMs: 1500 });
    try {
      pod.clearRequests();
      const first = post(router.url, 'fair');
      await eventually(() => pod.inflight === 1, 5000, 'first request at the pod');
      const before = await metric(router, 'kthena_router_fairness_queue_cancelled_total{model="fair",user_id="_all"}');
      const ac = new AbortController();
      const gone = post(router.url, 'fair', {}, ac.signal).catch((e: Error) => e);
      await eventually(async () => (await metric(router, 'kthena_router_fairness_queue_size{model="fair",user_id="_all"}')) === 1, 5000, 'second request queued');
      ac.abort();
      expect(await gone).toBeInstanceOf(Error);
      await eventually(async () => (await metric(router, 'kthena_router_fairness_queue_size{model="fair",user_id="_all"}')) === 0, 5000, 'queue empty again');
      expect(await metric(router, 'kthena_router_fairness_queue_cancelled_total{model="fair",user_id="_all"}')).toBe(before + 1);
      expect((await first).status).toBe(200);
      // The next request is admitted as soon as the first one ends: nothing leaked a place.
      expect((await post(router.url, 'fair')).status).toBe(200);
      expect(pod.requests.length).toBe(2);
      await router.waitForLog((l) => l.includes('" 499') && l.includes('model_name=fair'));
    } finally {
      pod.set({ ttftMs: 100 });
    }
  }, 20_000);

  // Last in this describe: it stops the router.
  it('refuses requests still queued at shutdown with 503 (queue closed) and drains the admitted one', async () => {
    const first = post(router.url, 'slow');
    await eventually(() => fleet.pod('slow-0').inflight === 1, 5000, 'first request at the pod');
    const queued = post(router.url, 'slow');
    await eventually(async () => (await metric(router, 'kthena_router_fairness_queue_size{model="slow",user_id="_all"}')) === 1, 5000, 'second request queued');
    const stopped = router.stop();
    const q = await queued;
    expect(q.status).toBe(503);
    expect(JSON.parse(q.text).error.code).toBe('RTR_ERR_FAIRNESS_QUEUE_CLOSED');
    expect((await first).status).toBe(200);
    expect(await stopped).toBe(0);
  }, 20_000);
});

describe('session boost (ENABLE_SESSION_BOOST, SESSION_BOOST_INFLIGHT_PER_POD=1)', () => {
  let dir = '';
  let fleet: SimFleet;
  let router: RouterProc;

  beforeAll(async () => {
    dir = await tempDir();
    fleet = await startPods([{ name: 'boost-0', ip: '127.0.58.1', port: 8000, models: ['chat'], ttftMs: 400, outputTokens: 1 }]);
    await writeFile(path.join(dir, 'all.yaml'), docs(
      serverYaml('chat', { port: 8000 }), routeYaml('chat', 'chat', 'chat'), podYaml('boost-0', '127.0.58.1'),
    ));
    router = await startRouter({ dir, workers: 2, env: { ENABLE_SESSION_BOOST: 'true', SESSION_BOOST_INFLIGHT_PER_POD: '1' } });
    await router.waitReady();
  }, 30_000);

  afterAll(async () => {
    await router?.stop();
    await fleet?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the follow-up of a session that just completed before requests that arrived earlier', async () => {
    const pod = fleet.pod('boost-0');
    const queued = (): Promise<number> => metric(router, 'kthena_router_session_boost_queue_size{model="chat"}');
    expect((await post(router.url, 'chat', { 'x-session-id': 'returning' })).status).toBe(200);
    pod.clearRequests();
    // The blocker holds the only place long enough for the others to queue behind it.
    pod.set({ ttftMs: 2500 });
    const blocker = post(router.url, 'chat', { 'x-session-id': 'blocker' });
    await eventually(() => pod.inflight === 1, 5000, 'blocker at the pod');
    const waiting: Promise<{ status: number }>[] = [];
    for (const [i, s] of ['new-a', 'new-b', 'returning'].entries()) {
      waiting.push(post(router.url, 'chat', { 'x-session-id': s }));
      await eventually(async () => (await queued()) === i + 1, 5000, `${s} queued`);
    }
    pod.set({ ttftMs: 50 });
    expect((await blocker).status).toBe(200);
    expect((await Promise.all(waiting)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(pod.requests.map((r) => r.headers['x-session-id'])).toEqual(['blocker', 'returning', 'new-a', 'new-b']);
  }, 20_000);
});
