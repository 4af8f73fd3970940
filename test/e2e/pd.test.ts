/**
 * Prefill/decode disaggregation end to end: the real CLI (2 workers) in front of simulated prefill
 * and decode pods on 127.0.24.x, one ModelServer per connector, each with two PD groups. What the
 * engines received is read back from the simulator's request log by x-request-id.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accessLinesFor, chat, cleanup, docs, eventually, findSamples, openStream, parseAccessLogText, routeYaml, scrape, sseEvents,
  startPods, startRouter, tempDir, within, writeFile, type RouterProc,
} from './harness.js';
import type { SimFleet, SimPod, SimPodSpec } from '../../native-bench/src/sim/engine.js';
import http from 'node:http';
import path from 'node:path';

const PORT = 8000;
const ip = (n: number): string => `127.0.24.${n}`;
const GROUP_KEY = 'modelserving.volcano.sh/group-name';
const ROLE = 'modelserving.volcano.sh/rolename';

interface Fleet { name: string; connector: string; engine: 'vLLM' | 'SGLang'; base: number; timeout?: string }
// Each connector gets pods <name>-p0, -d0 (group g0) and -p1, -d1 (group g1) at base+0..3.
const FLEETS: Fleet[] = [
  { name: 'http', connector: 'http', engine: 'vLLM', base: 10 },
  { name: 'nixl', connector: 'nixl', engine: 'vLLM', base: 20 },
  { name: 'mooncake', connector: 'mooncake', engine: 'vLLM', base: 30 },
  { name: 'lmcache', connector: 'lmcache', engine: 'vLLM', base: 40 },
  { name: 'sglang', connector: '', engine: 'SGLang', base: 50 },
  { name: 'failp', connector: 'nixl', engine: 'vLLM', base: 60 },
  { name: 'allfail', connector: 'http', engine: 'vLLM', base: 70 },
  { name: 'abort', connector: 'http', engine: 'vLLM', base: 80 },
  { name: 'badreq', connector: 'http', engine: 'vLLM', base: 90 },
  { name: 'slowp', connector: 'http', engine: 'vLLM', base: 100, timeout: '400ms' },
  { name: 'faild', connector: 'nixl', engine: 'vLLM', base: 110 },
  { name: 'sgfail', connector: '', engine: 'SGLang', base: 120 },
  { name: 'ejectp', connector: 'http', engine: 'vLLM', base: 130 },
  { name: 'ejectd', connector: 'nixl', engine: 'vLLM', base: 140 },
];

function fleetYaml(f: Fleet): string {
  const pods: string[] = [];
  for (const [i, g, role] of [[0, 'g0', 'P'], [1, 'g0', 'D'], [2, 'g1', 'P'], [3, 'g1', 'D']] as const) {
    pods.push([
      'apiVersion: v1', 'kind: Pod', 'metadata:', `  name: ${f.name}-${role.toLowerCase()}${g.slice(1)}`, '  namespace: default',
      `  labels: {app: pd-${f.name}, ${GROUP_KEY}: ${g}, ${ROLE}: ${role}-instance}`,
      'status:', '  phase: Running', `  podIP: ${ip(f.base + i)}`, '  conditions:', '  - type: Ready', '    status: "True"',
    ].join('\n'));
  }
  const server = [
    'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelServer', 'metadata:', `  name: ms-${f.name}`, '  namespace: default', 'spec:',
    `  inferenceEngine: ${f.engine}`, `  model: upstream-${f.name}`,
    '  workloadSelector:', '    matchLabels:', `      app: pd-${f.name}`, '    pdGroup:', `      groupKey: ${GROUP_KEY}`,
    '      prefillLabels:', `        ${ROLE}: P-instance`, '      decodeLabels:', `        ${ROLE}: D-instance`,
    '  workloadPort:', `    port: ${PORT}`,
    ...(f.connector !== '' ? ['  kvConnector:', `    type: ${f.connector}`] : []),
    '  trafficPolicy:', `    timeout: ${f.timeout ?? '10s'}`,
  ].join('\n');
  return docs(server, routeYaml(`mr-${f.name}`, `m-${f.name}`, `ms-${f.name}`), ...pods);
}

function podSpecs(f: Fleet): SimPodSpec[] {
  const role = (i: number) => (i % 2 === 0 ? 'prefill' : 'decode') as 'prefill' | 'decode';
  const names = ['p0', 'd0', 'p1', 'd1'];
  return names.map((n, i) => ({
    name: `${f.name}-${n}`, ip: ip(f.base + i), port: PORT, models: [`upstream-${f.name}`], engine: f.engine, role: role(i),
    ttftMs: 5, itlMs: 2, outputTokens: 8,
  }));
}

let dir = '';
let router: RouterProc;
let fleet: SimFleet;
const pod = (name: string): SimPod => fleet.pod(name);

function byId(name: string, id: string) {
  return pod(name).requests.filter((r) => r.headers['x-request-id'] === id);
}

/** The one request with this id that reached any pod of the fleet, per role. */
function legs(f: string, id: string): { prefill: { pod: string; body: any }[]; decode: { pod: string; body: any }[] } {
  const out = { prefill: [] as { pod: string; body: any }[], decode: [] as { pod: string; body: any }[] };
  for (const n of ['p0', 'p1']) for (const r of byId(`${f}-${n}`, id)) out.prefill.push({ pod: `${f}-${n}`, body: r.body });
  for (const n of ['d0', 'd1']) for (const r of byId(`${f}-${n}`, id)) out.decode.push({ pod: `${f}-${n}`, body: r.body });
  return out;
}

const msg = (text: string) => [{ role: 'user', content: text }];

async function accessLine(id: string): Promise<string> {
  return router.waitForLog((l) => l.includes(` request_id=${id} `), 10_000);
}

async function podCounters(): Promise<Map<string, { inflight: number; inflightPrefill: number; inflightDecode: number }>> {
  const res = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/pods`);
  const body = await res.json() as { pods: { name: string; router: { inflight: number; inflightPrefill: number; inflightDecode: number } }[] };
  return new Map(body.pods.map((p) => [p.name, p.router]));
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-pd-');
  const specs = FLEETS.flatMap(podSpecs);
  for (const s of specs) {
    if (s.name === 'failp-p0') s.failStatus = 503;
    if (s.name.startsWith('allfail-p')) s.failStatus = 503;
    if (s.name.startsWith('abort-p')) s.ttftMs = 60_000;
    if (s.name.startsWith('badreq-p')) s.failStatus = 400;
    if (s.name === 'slowp-p0') s.ttftMs = 60_000;
    if (s.name === 'faild-d0') s.failStatus = 503;
    if (s.name === 'sgfail-d0') s.failStatus = 503;
    if (s.name === 'sgfail-p0') s.ttftMs = 60_000;
    if (s.name === 'ejectp-p0') s.failStatus = 503;
    if (s.name === 'ejectd-d0') s.failStatus = 503;
  }
  fleet = await startPods(specs);
  for (const f of FLEETS) await writeFile(path.join(dir, `${f.name}.yaml`), fleetYaml(f));
  router = await startRouter({ dir });
  await router.waitReady();
}, 60_000);

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  await cleanup(dir);
});

describe('prefill/decode disaggregation', () => {
  it('http: prefill gets max_tokens 1 and no stream, then the decode leg gets the request; pairs stay in their group', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const id = randomUUID();
      const r = await chat(router.url, { model: 'm-http', messages: msg(`hello ${i} ${id}`), max_tokens: 5 }, { 'x-request-id': id });
      expect(r.status).toBe(200);
      expect(r.json().choices[0].message.content.length).toBeGreaterThan(0);
      const l = legs('http', id);
      expect(l.prefill).toHaveLength(1);
      expect(l.decode).toHaveLength(1);
      const p = l.prefill[0];
      const d = l.decode[0];
      expect(p.body).toMatchObject({ model: 'upstream-http', max_tokens: 1 });
      expect(p.body).not.toHaveProperty('stream');
      expect(p.body).not.toHaveProperty('stream_options');
      expect(p.body).not.toHaveProperty('kv_transfer_params');
      expect(d.body).toMatchObject({ model: 'upstream-http', max_tokens: 5 });
      // Same group: p0 with d0, p1 with d1.
      expect(p.pod.slice(-1)).toBe(d.pod.slice(-1));
      seen.add(d.pod);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.selected_pod).toBe(d.pod);
      expect(line.fields.prefill_pod).toBe(p.pod);
    }
    expect(seen.size).toBe(2);
  });

  it('nixl: the prefill leg asks for remote decode and its kv_transfer_params reach the decode leg verbatim; the stream arrives intact with usage', async () => {
    const id = randomUUID();
    const s = await openStream(router.url, { model: 'm-nixl', messages: msg(`stream ${id}`), max_tokens: 6 }, { 'x-request-id': id });
    expect(s.status).toBe(200);
    const done = await within(s.done, 10_000, 'nixl stream');
    expect(done.error).toBeNull();
    const events = sseEvents(done.text);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const content = events.filter((e) => e.json?.choices?.[0]?.delta?.content).length;
    expect(content).toBe(6);
    // The usage-only chunk the router asked for is not shown to a client that did not ask.
    expect(events.some((e) => e.json?.usage && e.json.choices?.length === 0)).toBe(false);
    const l = legs('nixl', id);
    expect(l.prefill).toHaveLength(1);
    expect(l.decode).toHaveLength(1);
    expect(l.prefill[0].body.kv_transfer_params).toEqual({ do_remote_decode: true, do_remote_prefill: false });
    expect(l.prefill[0].body).not.toHaveProperty('stream');
    const kv = l.decode[0].body.kv_transfer_params;
    expect(kv).toMatchObject({ do_remote_prefill: true, do_remote_decode: false, remote_host: pod(l.prefill[0].pod).ip });
    expect(Array.isArray(kv.remote_block_ids)).toBe(true);
    expect(l.decode[0].body.stream).toBe(true);
    expect(l.decode[0].body.stream_options).toEqual({ include_usage: true });
    const decodeOutcome = byId(l.decode[0].pod, id)[0].outcome!;
    expect(decodeOutcome.pd).toBe('nixl-decode');
    const line = parseAccessLogText(await accessLine(id))!;
    // Output tokens are counted on PD paths too (Kthena drops them).
    expect(line.fields.tokens).toMatch(/^\d+\/6$/);
  });

  it('mooncake: the same hand-over as nixl', async () => {
    const id = randomUUID();
    const r = await chat(router.url, { model: 'm-mooncake', messages: msg(`mc ${id}`), max_tokens: 3 }, { 'x-request-id': id });
    expect(r.status).toBe(200);
    expect(r.json().usage.completion_tokens).toBe(3);
    const l = legs('mooncake', id);
    expect(l.prefill[0].body.kv_transfer_params).toEqual({ do_remote_decode: true, do_remote_prefill: false });
    expect(l.decode[0].body.kv_transfer_params.remote_host).toBe(pod(l.prefill[0].pod).ip);
  });

  it('lmcache: the prefill leg names the decode pod as LMCache receiver; the decode leg carries no kv_transfer_params', async () => {
    const id = randomUUID();
    const r = await chat(router.url, { model: 'm-lmcache', messages: msg(`lm ${id}`), max_tokens: 2 }, { 'x-request-id': id });
    expect(r.status).toBe(200);
    const l = legs('lmcache', id);
    expect(l.prefill[0].body.kv_transfer_params).toEqual({
      disagg_spec: { req_id: id, receiver_host: pod(l.decode[0].pod).ip, receiver_init_port: [7300], receiver_alloc_port: [7400] },
    });
    expect(l.decode[0].body).not.toHaveProperty('kv_transfer_params');
  });

  it('sglang: both legs share one bootstrap_room and the decode leg names the prefill pod as bootstrap_host', async () => {
    const rooms = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const id = randomUUID();
      const s = await openStream(router.url, { model: 'm-sglang', messages: msg(`sg ${i} ${id}`), max_tokens: 4 }, { 'x-request-id': id });
      expect(s.status).toBe(200);
      const done = await within(s.done, 10_000, 'sglang stream');
      expect(done.error).toBeNull();
      expect(sseEvents(done.text).at(-1)!.data).toBe('[DONE]');
      const l = legs('sglang', id);
      expect(l.prefill).toHaveLength(1);
      expect(l.decode).toHaveLength(1);
      const room = l.prefill[0].body.bootstrap_room as number;
      expect(Number.isInteger(room) && room >= 0).toBe(true);
      expect(l.decode[0].body.bootstrap_room).toBe(room);
      expect(l.decode[0].body.bootstrap_host).toBe(pod(l.prefill[0].pod).ip);
      expect(l.prefill[0].body.max_tokens).toBe(1);
      expect(byId(l.decode[0].pod, id)[0].outcome!.pd).toBe('bootstrap-decode');
      expect(l.prefill[0].pod.slice(-1)).toBe(l.decode[0].pod.slice(-1));
      rooms.add(String(room));
    }
    expect(rooms.size).toBe(4);
  });

  it('a failing prefill pod moves the request to the next pair', async () => {
    let retried = 0;
    for (let i = 0; i < 40 && retried < 2; i++) {
      const id = randomUUID();
      const r = await chat(router.url, { model: 'm-failp', messages: msg(`f ${i} ${id}`), max_tokens: 2 }, { 'x-request-id': id });
      expect(r.status).toBe(200);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.prefill_pod).toBe('failp-p1');
      expect(line.fields.selected_pod).toBe('failp-d1');
      if (line.fields.upstream_attempts === '2') {
        retried++;
        // The failed pair's decode pod never saw the request.
        expect(byId('failp-d0', id)).toHaveLength(0);
        expect(byId('failp-p0', id)).toHaveLength(1);
      }
    }
    expect(retried).toBe(2);
  });

  it('trafficPolicy.timeout bounds the prefill leg: a hung prefill pod moves the request to the next pair', async () => {
    let retried = 0;
    for (let i = 0; i < 40 && retried < 1; i++) {
      const id = randomUUID();
      const t0 = Date.now();
      const r = await chat(router.url, { model: 'm-slowp', messages: msg(`s ${i} ${id}`), max_tokens: 2 }, { 'x-request-id': id });
      expect(r.status).toBe(200);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.prefill_pod).toBe('slowp-p1');
      if (line.fields.upstream_attempts === '2') {
        retried++;
        // Generous bound: the 400 ms timeout fired, the 60 s prefill was not waited for.
        expect(Date.now() - t0).toBeLessThan(30_000);
        expect(byId('slowp-d0', id)).toHaveLength(0);
      }
    }
    expect(retried).toBe(1);
    await eventually(() => pod('slowp-p0').inflight === 0, 5000, 'timed-out prefill leg closed at the pod');
  });

  it('a failing decode pod moves the request to the next pair, whose prefill runs again', async () => {
    let retried = 0;
    for (let i = 0; i < 40 && retried < 1; i++) {
      const id = randomUUID();
      const r = await chat(router.url, { model: 'm-faild', messages: msg(`d ${i} ${id}`), max_tokens: 2 }, { 'x-request-id': id });
      expect(r.status).toBe(200);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.selected_pod).toBe('faild-d1');
      if (line.fields.upstream_attempts === '2') {
        retried++;
        expect(byId('faild-p0', id)).toHaveLength(1);
        expect(byId('faild-d0', id)).toHaveLength(1);
        expect(byId('faild-p1', id)).toHaveLength(1);
        expect(byId('faild-d1', id)[0].body).toMatchObject({ kv_transfer_params: { remote_host: pod('faild-p1').ip } });
      }
    }
    expect(retried).toBe(1);
  });

  it('sglang: a failing decode leg cancels its prefill leg and the next pair serves', async () => {
    let retried = 0;
    for (let i = 0; i < 40 && retried < 1; i++) {
      const id = randomUUID();
      const r = await chat(router.url, { model: 'm-sgfail', messages: msg(`g ${i} ${id}`), max_tokens: 2 }, { 'x-request-id': id });
      expect(r.status).toBe(200);
      const line = parseAccessLogText(await accessLine(id))!;
      expect(line.fields.selected_pod).toBe('sgfail-d1');
      if (line.fields.upstream_attempts === '2') {
        retried++;
        expect(byId('sgfail-p0', id)).toHaveLength(1);
        // The hung prefill leg of the failed pair was cancelled, not left running for 60 s.
        await eventually(() => pod('sgfail-p0').inflight === 0, 5000, 'cancelled prefill leg closed at the pod');
      }
    }
    expect(retried).toBe(1);
    await eventually(async () => [...(await podCounters()).values()].every((v) => v.inflight === 0 && v.inflightPrefill === 0 && v.inflightDecode === 0), 5000, 'in-flight zero');
  });

  // Outlier detection (default: 5 consecutive failures eject for 10 s, at most 50 % of a role's
  // pods): without it the failing pod's pair stays first for about half of the requests (it
  // fails fast, so it never looks busy).
  for (const [fleetName, failing, role] of [['ejectp', 'ejectp-p0', 'prefill'], ['ejectd', 'ejectd-d0', 'decode']] as const) {
    it(`outlier detection: a failing ${role} pod is ejected and its pair goes behind the healthy one`, async () => {
      for (let i = 0; i < 40; i++) {
        const r = await chat(router.url, { model: `m-${fleetName}`, messages: msg(`o ${i} ${randomUUID()}`), max_tokens: 2 });
        expect(r.status, r.text).toBe(200);
      }
      expect(pod(failing).requests.filter((r) => r.path === '/v1/chat/completions').length).toBeLessThanOrEqual(5);
      const dump = await (await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/namespaces/default/pods/${failing}`)).json() as { router?: { ejected: boolean } };
      expect(dump.router).toMatchObject({ ejected: true });
    });
  }

  it('every pair failing answers 503 with Kthena\'s message; no decode leg is sent', async () => {
    const id = randomUUID();
    const r = await chat(router.url, { model: 'm-allfail', messages: msg('x'), max_tokens: 2 }, { 'x-request-id': id });
    expect(r.status).toBe(503);
    expect(r.json().error).toMatchObject({ message: 'all prefill/decode attempts failed', code: 'RTR_ERR_PD_ALL_FAILED' });
    expect(legs('allfail', id).prefill).toHaveLength(2);
    expect(legs('allfail', id).decode).toHaveLength(0);
  });

  it('an engine 4xx on the prefill leg reaches the client as is, without trying other pairs', async () => {
    const id = randomUUID();
    const r = await chat(router.url, { model: 'm-badreq', messages: msg('x'), max_tokens: 2 }, { 'x-request-id': id });
    expect(r.status).toBe(400);
    expect(r.text).toContain('simulated failure');
    expect(legs('badreq', id).prefill).toHaveLength(1);
    expect(legs('badreq', id).decode).toHaveLength(0);
  });

  it('a client abort during the prefill leg cancels it and leaves every in-flight count at zero', async () => {
    const id = randomUUID();
    // No response headers come before the prefill leg ends: the request is aborted from the socket.
    const body = JSON.stringify({ model: 'm-abort', messages: msg('slow'), max_tokens: 2, stream: true });
    const req = http.request(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id } });
    req.on('error', () => undefined);
    req.end(body);
    await eventually(() => pod('abort-p0').inflight + pod('abort-p1').inflight === 1, 5000, 'prefill leg in flight');
    const c = await podCounters();
    expect((c.get('abort-p0')!.inflightPrefill) + (c.get('abort-p1')!.inflightPrefill)).toBe(1);
    req.destroy();
    await eventually(() => pod('abort-p0').inflight + pod('abort-p1').inflight === 0, 5000, 'prefill leg cancelled at the pod');
    await eventually(async () => {
      const now = await podCounters();
      return [...now.values()].every((v) => v.inflight === 0 && v.inflightPrefill === 0 && v.inflightDecode === 0);
    }, 5000, 'in-flight counts back to zero');
    expect(legs('abort', id).decode).toHaveLength(0);
    const line = parseAccessLogText(await accessLine(id))!;
    expect(line.status).toBe(499);
  });

  it('a client abort during an SGLang decode stream cancels the decode leg', async () => {
    pod('sglang-d0').set({ itlMs: 200, outputTokens: 100 });
    pod('sglang-d1').set({ itlMs: 200, outputTokens: 100 });
    try {
      const id = randomUUID();
      const s = await openStream(router.url, { model: 'm-sglang', messages: msg(`long ${id}`) }, { 'x-request-id': id });
      await within(s.firstEvent, 10_000, 'first decode event');
      s.abort();
      await eventually(() => pod('sglang-d0').inflight + pod('sglang-d1').inflight + pod('sglang-p0').inflight + pod('sglang-p1').inflight === 0, 5000, 'both legs ended at the pods');
      await eventually(async () => [...(await podCounters()).values()].every((v) => v.inflight === 0 && v.inflightDecode === 0 && v.inflightPrefill === 0), 5000, 'in-flight zero');
    } finally {
      pod('sglang-d0').set({ itlMs: 2, outputTokens: 8 });
      pod('sglang-d1').set({ itlMs: 2, outputTokens: 8 });
    }
  });

  it('records prefill and decode durations per phase, and the debug dump lists decode and prefill pods', async () => {
    const m = await scrape(router.metricsPort);
    const prefillOk = findSamples(m.samples, 'kthena_router_request_prefill_duration_seconds_count', { model: 'm-http', status_code: '200' });
    expect(prefillOk.length).toBe(1);
    expect(prefillOk[0].value).toBeGreaterThanOrEqual(16);
    expect(findSamples(m.samples, 'kthena_router_request_decode_duration_seconds_count', { model: 'm-http', status_code: '200' })[0].value).toBeGreaterThanOrEqual(16);
    expect(findSamples(m.samples, 'kthena_router_request_prefill_duration_seconds_count', { model: 'm-allfail', status_code: '500' })[0].value).toBeGreaterThanOrEqual(2);
    const tokens = findSamples(m.samples, 'kthena_router_tokens_total', { model: 'm-nixl', token_type: 'output' });
    expect(tokens[0].value).toBeGreaterThanOrEqual(6);
    const res = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/modelservers`);
    const servers = (await res.json() as { modelservers: { name: string; decodePods: string[]; prefillPods: string[] }[] }).modelservers;
    const http = servers.find((s) => s.name === 'ms-http')!;
    expect(http.decodePods.sort()).toEqual(['default/http-d0', 'default/http-d1']);
    expect(http.prefillPods.sort()).toEqual(['default/http-p0', 'default/http-p1']);
    expect(accessLinesFor(router, 'nonexistent')).toHaveLength(0);
  });
});
