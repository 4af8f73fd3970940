/**
 * Resilience end to end: the real CLI (2 workers) in front of simulated vLLM pods on 127.0.20.x,
 * with failures injected through the simulator's live controls. Every scenario has its own
 * ModelRoute/ModelServer/pods so that scenarios never share scheduler state.
 *
 * Where a test needs the *first* attempt to land on the failing pod, it first pins a long stream on
 * the healthy pod: the router schedules by least in-flight requests (ties broken at random), so the
 * failing pod (0 in flight) then always ranks first. Without the pin the order is a coin flip.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accessLinesFor, chat, cleanup, docs, eventually, findSamples, httpRequest, openStream, parseAccessLogText, podYaml,
  routeYaml, sampleValue, scrape, serverYaml, startPods, startRouter, tempDir, within, writeFile,
  type RouterProc, type SseStream,
  LEAST_REQUEST_CONFIG,
} from './harness.js';
import type { SimFleet, SimPod } from '../../native-bench/src/sim/engine.js';
import path from 'node:path';

const PORT = 8000;
const ip = (n: number): string => `127.0.20.${n}`;
const msg = (text = 'hello world') => [{ role: 'user', content: text }];

/** Long streams (pins) run at this pace; short requests cap themselves with max_tokens. */
const LONG = { itlMs: 50, outputTokens: 400 };

let dir = '';
let router: RouterProc;
let fleet: SimFleet;
const pod = (name: string): SimPod => fleet.pod(name);

function requestsWithId(p: SimPod, id: string) {
  return p.requests.filter((r) => r.headers['x-request-id'] === id);
}

async function accessLine(id: string, timeoutMs = 10_000): Promise<string> {
  return router.waitForLog((l) => l.includes(` request_id=${id} `), timeoutMs);
}

/** A long stream pinned on whichever pod answers it; resolves once its first event arrived. */
async function pin(model: string): Promise<SseStream & { pod: string }> {
  const s = await openStream(router.url, { model, messages: msg('pin') });
  expect(s.status).toBe(200);
  await within(s.firstEvent, 10_000, 'first event of the pinning stream');
  return Object.assign(s, { pod: s.headers.get('x-sim-pod') ?? '' });
}

async function unpin(s: SseStream): Promise<void> {
  s.abort();
  await within(s.done, 10_000, 'aborted pinning stream');
}

async function short(model: string, headers: Record<string, string> = {}) {
  return chat(router.url, { model, messages: msg(), max_tokens: 2 }, headers);
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-resilience-');
  fleet = await startPods([
    // connection refused: r-dead has a manifest but no listener
    { name: 'r-live', ip: ip(2), port: PORT, models: ['m-refuse'], ...LONG },
    // 5xx
    { name: 'f-bad', ip: ip(3), port: PORT, models: ['m-5xx'], failStatus: 503 },
    { name: 'f-good', ip: ip(4), port: PORT, models: ['m-5xx'], ...LONG },
    // reset before headers
    { name: 'x-reset', ip: ip(5), port: PORT, models: ['m-reset'] },
    { name: 'x-good', ip: ip(6), port: PORT, models: ['m-reset'], ...LONG },
    // header timeout
    { name: 't-hang', ip: ip(7), port: PORT, models: ['m-timeout'], ttftMs: 1, itlMs: 1 },
    { name: 't-good', ip: ip(8), port: PORT, models: ['m-timeout'], ttftMs: 1, itlMs: 20, outputTokens: 1000 },
    // retry policy on a single failing pod
    { name: 'rt-fail', ip: ip(9), port: PORT, models: ['m-retry'], failStatus: 503 },
    { name: 'rs-fail', ip: ip(15), port: PORT, models: ['m-retry-slow'], failStatus: 503 },
    // dies mid-stream
    { name: 'd-die', ip: ip(10), port: PORT, models: ['m-die'], itlMs: 20, outputTokens: 20 },
    // client aborts
    { name: 'a-1', ip: ip(11), port: PORT, models: ['m-abort'], itlMs: 100, outputTokens: 200 },
    { name: 'a-2', ip: ip(12), port: PORT, models: ['m-abort'], itlMs: 100, outputTokens: 200 },
    // engine 4xx
    { name: 'e-400', ip: ip(13), port: PORT, models: ['engine-only-model'] },
    { name: 'e-429', ip: ip(14), port: PORT, models: ['m-429'], failStatus: 429 },
    // fallback walk over more than five failing pods
    ...[20, 21, 22, 23, 24, 25].map((n) => ({ name: `w-${n}`, ip: ip(n), port: PORT, models: ['m-walk'], failStatus: 500 })),
  ]);
  pod('x-reset').set({ resetBeforeHeaders: true });
  // Far longer than any bound below, so a slow machine cannot blur "gave up at the timeout" with
  // "waited for the hang".
  pod('t-hang').set({ hangMs: 30_000 });

  const manifests = docs(
    routeYaml('refuse', 'm-refuse', 'ms-refuse'),
    serverYaml('ms-refuse', { port: PORT, labels: { app: 'refuse' } }),
    podYaml('r-dead', ip(1), { labels: { app: 'refuse' } }),
    podYaml('r-live', ip(2), { labels: { app: 'refuse' } }),

    routeYaml('fivexx', 'm-5xx', 'ms-5xx'),
    serverYaml('ms-5xx', { port: PORT, labels: { app: 'fivexx' } }),
    podYaml('f-bad', ip(3), { labels: { app: 'fivexx' } }),
    podYaml('f-good', ip(4), { labels: { app: 'fivexx' } }),

    routeYaml('reset', 'm-reset', 'ms-reset'),
    serverYaml('ms-reset', { port: PORT, labels: { app: 'reset' } }),
    podYaml('x-reset', ip(5), { labels: { app: 'reset' } }),
    podYaml('x-good', ip(6), { labels: { app: 'reset' } }),

    routeYaml('timeout', 'm-timeout', 'ms-timeout'),
    // 1 s: long against the 20 ms token gaps below even on a loaded machine (it also bounds the gap
    // between response bytes), short against the 30 s hang.
    serverYaml('ms-timeout', { port: PORT, labels: { app: 'timeout' }, timeout: '1s' }),
    podYaml('t-hang', ip(7), { labels: { app: 'timeout' } }),
    podYaml('t-good', ip(8), { labels: { app: 'timeout' } }),

    routeYaml('retry', 'm-retry', 'ms-retry'),
    serverYaml('ms-retry', { port: PORT, labels: { app: 'retry' }, retry: { attempts: 2, retryInterval: '50ms' } }),
    podYaml('rt-fail', ip(9), { labels: { app: 'retry' } }),
    routeYaml('retry-slow', 'm-retry-slow', 'ms-retry-slow'),
    serverYaml('ms-retry-slow', { port: PORT, labels: { app: 'retry-slow' }, retry: { attempts: 3, retryInterval: '1s' } }),
    podYaml('rs-fail', ip(15), { labels: { app: 'retry-slow' } }),

    routeYaml('die', 'm-die', 'ms-die'),
    serverYaml('ms-die', { port: PORT, labels: { app: 'die' } }),
    podYaml('d-die', ip(10), { labels: { app: 'die' } }),

    routeYaml('abort', 'm-abort', 'ms-abort'),
    serverYaml('ms-abort', { port: PORT, labels: { app: 'abort' } }),
    podYaml('a-1', ip(11), { labels: { app: 'abort' } }),
    podYaml('a-2', ip(12), { labels: { app: 'abort' } }),

    routeYaml('fourxx', 'm-400', 'ms-400'),
    serverYaml('ms-400', { port: PORT, labels: { app: 'fourxx' } }),
    podYaml('e-400', ip(13), { labels: { app: 'fourxx' } }),
    routeYaml('toomany', 'm-429', 'ms-429'),
    serverYaml('ms-429', { port: PORT, labels: { app: 'toomany' } }),
    podYaml('e-429', ip(14), { labels: { app: 'toomany' } }),

    routeYaml('walk', 'm-walk', 'ms-walk'),
    serverYaml('ms-walk', { port: PORT, labels: { app: 'walk' } }),
    ...[20, 21, 22, 23, 24, 25].map((n) => podYaml(`w-${n}`, ip(n), { labels: { app: 'walk' } })),
  );
  await writeFile(path.join(dir, 'resilience.yaml'), manifests);
  router = await startRouter({ dir, workers: 2, args: ['--router-config', LEAST_REQUEST_CONFIG] });
  await router.waitReady();
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('retries before any byte reached the client', () => {
  it('retries on the next pod when the first pod refuses connections (upstream_attempts=2)', async () => {
    const p = await pin('m-refuse');
    try {
      expect(p.pod).toBe('r-live');
      const id = randomUUID();
      const r = await short('m-refuse', { 'x-request-id': id });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('r-live');
      expect(r.json().choices[0].message.content.length).toBeGreaterThan(0);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.status).toBe(200);
      expect(line.fields.upstream_attempts).toBe('2');
      expect(line.fields.selected_pod).toBe('r-live');
      expect(line.fields.error).toBeUndefined();
      expect(requestsWithId(pod('r-live'), id)).toHaveLength(1);
    } finally {
      await unpin(p);
    }
    // Unpinned, whatever the order, every request succeeds on the live pod.
    for (let i = 0; i < 10; i++) {
      const r = await short('m-refuse');
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('r-live');
    }
  });

  it('answers 200 from the healthy pod when the other answers 503', async () => {
    const p = await pin('m-5xx');
    try {
      expect(p.pod).toBe('f-good');
      const id = randomUUID();
      const r = await short('m-5xx', { 'x-request-id': id });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('f-good');
      // The 503 reached the router (first attempt) but never the client.
      expect(requestsWithId(pod('f-bad'), id)).toHaveLength(1);
      expect(requestsWithId(pod('f-good'), id)).toHaveLength(1);
      expect(r.text).not.toContain('simulated failure');
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.status).toBe(200);
      expect(line.fields.upstream_attempts).toBe('2');
      expect(line.fields.selected_pod).toBe('f-good');
      expect(line.fields.upstream_status_code).toBe('200');
    } finally {
      await unpin(p);
    }
    for (let i = 0; i < 10; i++) {
      const r = await short('m-5xx');
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('f-good');
    }
  });

  it('answers 200 from the other pod when one resets the connection before headers', async () => {
    const p = await pin('m-reset');
    try {
      expect(p.pod).toBe('x-good');
      const id = randomUUID();
      const r = await short('m-reset', { 'x-request-id': id });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('x-good');
      expect(requestsWithId(pod('x-reset'), id)).toHaveLength(1);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.upstream_attempts).toBe('2');
      expect(line.fields.selected_pod).toBe('x-good');
    } finally {
      await unpin(p);
    }
    for (let i = 0; i < 10; i++) {
      const r = await short('m-reset');
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('x-good');
    }
  });

  it('gives up on a pod that does not answer within trafficPolicy.timeout and answers from the other', async () => {
    const p = await pin('m-timeout');
    try {
      expect(p.pod).toBe('t-good');
      const id = randomUUID();
      const t0 = performance.now();
      const r = await short('m-timeout', { 'x-request-id': id });
      const elapsed = performance.now() - t0;
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('t-good');
      // 1 s budget + a fast answer; the hanging pod would have taken 30 s. The bound only has to
      // tell the two apart, so it is generous for a loaded machine.
      expect(elapsed).toBeLessThan(10_000);
      expect(requestsWithId(pod('t-hang'), id)).toHaveLength(1);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.upstream_attempts).toBe('2');
      expect(line.fields.selected_pod).toBe('t-good');
    } finally {
      await unpin(p);
    }
    const t0 = performance.now();
    for (let i = 0; i < 6; i++) {
      const r = await short('m-timeout');
      expect(r.status).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('t-good');
    }
    // Six requests, each at most one 1 s timeout + a fast answer: below one 30 s hang.
    expect(performance.now() - t0).toBeLessThan(20_000);
    // The abandoned attempts were cancelled upstream, not left hanging.
    await eventually(() => pod('t-hang').inflight === 0, 5000, 't-hang in-flight back to 0');
  });

  it('bounds only the wait for response headers with trafficPolicy.timeout: a stream longer than it completes', async () => {
    // 200 tokens, 20 ms apart: about 4 s of streaming under a 1 s timeout.
    const s = await openStream(router.url, { model: 'm-timeout', messages: msg(), max_tokens: 200 });
    expect(s.status).toBe(200);
    const done = await within(s.done, 15_000, 'long stream');
    expect(done.error).toBeNull();
    expect(done.text).toContain('data: [DONE]');
    expect(done.text.split('\n\n').filter((e) => e.startsWith('data: {') && e.includes('"content"')).length).toBeGreaterThanOrEqual(200);
  });

  it('honours trafficPolicy.retry: attempts 2 => exactly 3 requests, retryInterval apart, then 503', async () => {
    const id = randomUUID();
    const t0 = performance.now();
    const r = await short('m-retry', { 'x-request-id': id });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.json()).toEqual({ error: { message: 'request to all pods failed', type: 'service_unavailable_error', code: 'RTR_ERR_UPSTREAM_ALL_FAILED' } });
    const seen = requestsWithId(pod('rt-fail'), id);
    expect(seen).toHaveLength(3);
    // Two waits of retryInterval (50 ms) between the three attempts.
    expect(seen[1].receivedAt - seen[0].receivedAt).toBeGreaterThanOrEqual(40);
    expect(seen[2].receivedAt - seen[1].receivedAt).toBeGreaterThanOrEqual(40);
    expect(elapsed).toBeGreaterThanOrEqual(90);
    // Every attempt carries the same request (body and request id).
    for (const a of seen) expect(a.body).toEqual(seen[0].body);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.status).toBe(503);
    expect(line.fields.error).toBe('proxy:request to all pods failed');
    expect(line.fields.upstream_attempts).toBe('3');
    // Nothing else arrives later (no stray retry after the answer).
    await new Promise((res) => setTimeout(res, 300));
    expect(requestsWithId(pod('rt-fail'), id)).toHaveLength(3);
  });

  it('stops retrying when the client goes away during retryInterval', async () => {
    const id = randomUUID();
    const ac = new AbortController();
    const pending = fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: 'm-retry-slow', messages: msg(), max_tokens: 1 }),
    }).catch((e: Error) => e);
    await eventually(() => requestsWithId(pod('rs-fail'), id).length === 1, 5000, 'first attempt');
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.status).toBe(499);
    // Well past the 1 s interval: no attempt was made for a client that is gone.
    await new Promise((res) => setTimeout(res, 1500));
    expect(requestsWithId(pod('rs-fail'), id)).toHaveLength(1);
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_active_requests')).toBe(0);
  });

  it('without a retry policy walks at most five distinct scheduled pods, then 503', async () => {
    const id = randomUUID();
    const r = await short('m-walk', { 'x-request-id': id });
    expect(r.status).toBe(503);
    expect(r.json().error.code).toBe('RTR_ERR_UPSTREAM_ALL_FAILED');
    const walk = [20, 21, 22, 23, 24, 25].map((n) => requestsWithId(pod(`w-${n}`), id).length);
    expect(walk.reduce((a, b) => a + b, 0)).toBe(5);
    expect(Math.max(...walk)).toBe(1);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.fields.upstream_attempts).toBe('5');
    // The engine's 500 body is never forwarded.
    expect(r.text).not.toContain('simulated failure');
  });
});

describe('failures after the response started', () => {
  it('ends the client stream with an error event when the pod dies mid-stream, and keeps serving', async () => {
    pod('d-die').set({ dieMidStreamAfter: 3 });
    const id = randomUUID();
    const s = await openStream(router.url, { model: 'm-die', messages: msg() }, { 'x-request-id': id });
    expect(s.status).toBe(200);
    const { text } = await within(s.done, 10_000, 'stream of a pod that died');
    expect(text).not.toContain('[DONE]');
    // The events the pod did send reached the client, then the router's terminal error event.
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.length).toBeGreaterThanOrEqual(2);
    const last = JSON.parse(events[events.length - 1].slice('data: '.length));
    expect(last.error.code).toBe('RTR_ERR_UPSTREAM_MIDSTREAM');
    expect(last.error.message).toMatch(/^upstream failed after the response started: /);
    // No retry once bytes reached the client.
    expect(requestsWithId(pod('d-die'), id)).toHaveLength(1);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.fields.error).toMatch(/^proxy:upstream failed after the response started: /);
    expect(line.fields.error_origin).toBe('upstream');

    // The same pod (dieMidStreamAfter is one-shot) and the router serve the next streams in full.
    for (let i = 0; i < 3; i++) {
      const ok = await openStream(router.url, { model: 'm-die', messages: msg() });
      const done = await within(ok.done, 10_000, 'stream after the failure');
      expect(done.error).toBeNull();
      expect(done.text).toContain('data: [DONE]');
    }
  });
});

describe('client aborts', () => {
  async function settled(): Promise<void> {
    await eventually(() => pod('a-1').inflight === 0 && pod('a-2').inflight === 0, 8000, 'sim in-flight back to 0');
    await eventually(async () => {
      const m = await scrape(router.metricsPort);
      const active = sampleValue(m.samples, 'kthena_router_active_requests');
      const upstream = findSamples(m.samples, 'kthena_router_active_upstream_requests', { backend_name: 'default/ms-abort' });
      const downstream = findSamples(m.samples, 'kthena_router_active_downstream_requests', { model: 'm-abort' });
      return active === 0 && upstream.every((s) => s.value === 0) && downstream.every((s) => s.value === 0);
    }, 8000, 'router active gauges back to 0');
  }

  /** Both pods take traffic again: a leaked in-flight count would send everything to the other pod. */
  async function bothPodsScheduled(): Promise<void> {
    const served = new Set<string>();
    for (let i = 0; i < 24 && served.size < 2; i++) {
      const r = await chat(router.url, { model: 'm-abort', messages: msg(), max_tokens: 1 });
      expect(r.status).toBe(200);
      served.add(r.headers.get('x-sim-pod') ?? '');
    }
    expect([...served].sort()).toEqual(['a-1', 'a-2']);
  }

  it('aborts the upstream request, frees in-flight accounting and logs 499 when the client goes away mid-stream', async () => {
    const id = randomUUID();
    const s = await openStream(router.url, { model: 'm-abort', messages: msg() }, { 'x-request-id': id });
    expect(s.status).toBe(200);
    const podName = s.headers.get('x-sim-pod')!;
    await within(s.firstEvent, 10_000, 'first event');
    expect(pod(podName).inflight).toBe(1);
    s.abort();
    await within(s.done, 5000, 'aborted stream');
    // The stream would run 20 s; the upstream request is gone long before.
    await eventually(() => pod(podName).inflight === 0, 5000, 'upstream request aborted');
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.status).toBe(499);
    expect(line.fields.error).toBe('client_aborted:client closed the request');
    await settled();
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_requests_total', {
      model: 'm-abort', path: '/v1/chat/completions', status_code: '499', error_type: 'client_aborted',
      model_route: 'default/abort', backend_type: 'model_server', backend_name: 'default/ms-abort', upstream_model: 'm-abort',
    })).toBeGreaterThanOrEqual(1);
    await bothPodsScheduled();
  });

  it('aborts the upstream request when the client goes away before response headers', async () => {
    pod('a-1').set({ hangMs: 20_000 });
    pod('a-2').set({ hangMs: 20_000 });
    try {
      const id = randomUUID();
      const ac = new AbortController();
      const pending = fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST', signal: ac.signal,
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify({ model: 'm-abort', messages: msg(), max_tokens: 1 }),
      }).catch((e: Error) => e);
      await eventually(() => pod('a-1').inflight + pod('a-2').inflight === 1, 5000, 'request reached a pod');
      ac.abort();
      expect(await pending).toBeInstanceOf(Error);
      await eventually(() => pod('a-1').inflight === 0 && pod('a-2').inflight === 0, 5000, 'hanging upstream request aborted');
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.status).toBe(499);
    } finally {
      pod('a-1').set({ hangMs: 0 });
      pod('a-2').set({ hangMs: 0 });
    }
    await settled();
    await bothPodsScheduled();
  });

  it('survives many concurrent clients aborting mid-stream', async () => {
    const N = 40;
    const ids = Array.from({ length: N }, () => randomUUID());
    const streams = await Promise.all(ids.map((id) => openStream(router.url, { model: 'm-abort', messages: msg() }, { 'x-request-id': id })));
    for (const s of streams) expect(s.status).toBe(200);
    await Promise.all(streams.map((s) => within(s.firstEvent, 15_000, 'first event')));
    // Abort in a burst, some right away, some a few events later.
    await Promise.all(streams.map((s, i) => new Promise<void>((res) => setTimeout(() => { s.abort(); res(); }, (i % 4) * 120))));
    await Promise.all(streams.map((s) => within(s.done, 10_000, 'aborted stream')));
    await settled();
    await eventually(() => ids.every((id) => accessLinesFor(router, id).length === 1), 10_000, 'one access-log line per aborted request');
    for (const id of ids) expect(parseAccessLogText(accessLinesFor(router, id)[0])!.status).toBe(499);
    // Still serving, streaming and non-streaming, on both pods.
    await bothPodsScheduled();
    const s = await openStream(router.url, { model: 'm-abort', messages: msg(), max_tokens: 3 });
    const done = await within(s.done, 10_000, 'stream after the aborts');
    expect(done.text).toContain('data: [DONE]');
    await settled();
  });
});

describe('engine client errors', () => {
  it('passes an engine 400 through unchanged (status, body, content-type), without retrying', async () => {
    const body = { model: 'm-400', messages: msg(), max_tokens: 2 };
    const direct = await httpRequest(pod('e-400').url + '/v1/chat/completions', { body });
    expect(direct.status).toBe(400);
    const id = randomUUID();
    const r = await chat(router.url, body, { 'x-request-id': id });
    expect(r.status).toBe(400);
    expect(r.text).toBe(direct.text);
    expect(r.headers.get('content-type')).toBe(direct.headers['content-type']);
    expect(r.headers.get('x-sim-pod')).toBe('e-400');
    expect(requestsWithId(pod('e-400'), id)).toHaveLength(1);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.status).toBe(400);
    expect(line.fields.upstream_status_code).toBe('400');
    expect(line.fields.upstream_attempts).toBe('1');
  });

  it('passes an engine 429 through unchanged', async () => {
    const body = { model: 'm-429', messages: msg(), max_tokens: 2 };
    const id = randomUUID();
    const r = await chat(router.url, body, { 'x-request-id': id });
    expect(r.status).toBe(429);
    expect(r.json()).toEqual({ object: 'error', message: 'simulated failure of pod e-429', type: 'RateLimitError', param: null, code: 429 });
    expect(requestsWithId(pod('e-429'), id)).toHaveLength(1);
  });
});
