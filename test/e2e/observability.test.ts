/**
 * Observability end to end: Prometheus metrics summed across worker threads, the access log (text
 * and JSON, one line per request), ACCESS_LOG_ENABLED, and the debug and metrics servers. Simulated
 * vLLM pods on 127.0.21.x; the real CLI with 2 workers.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCESS_LOG_TEXT_FIELDS, accessLinesFor, cleanup, connectionRefused, docs, eventually, findSamples, httpRequest,
  parseAccessLogText, podYaml, routeYaml, sampleValue, scrape, serverYaml, startPods, startRouter, tempDir, writeFile,
  type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PORT = 8000;
const ip = (n: number): string => `127.0.21.${n}`;
const CHAT = '/v1/chat/completions';

let dir = '';
let fleet: SimFleet;
let router: RouterProc;

const OK_LABELS = {
  model_route: 'default/obs-route', backend_type: 'model_server', backend_name: 'default/obs-server', upstream_model: 'obs-upstream',
};
const COUNT_LABELS = { ...OK_LABELS, model_route: 'default/count-route' };

/** Kthena's JSON access-log fields in struct order (§8.2). */
const JSON_FIELDS = [
  'timestamp', 'method', 'path', 'protocol', 'status_code', 'error', 'model_name', 'model_route', 'model_server', 'selected_pod',
  'request_id', 'backend_type', 'backend_name', 'upstream_model', 'upstream_status_code', 'upstream_attempts', 'error_origin',
  'gateway', 'http_route', 'inference_pool', 'input_tokens', 'output_tokens', 'duration_total', 'duration_request_processing',
  'duration_upstream_processing', 'duration_response_processing',
];

/** Kthena's input-token estimate for one user message: ceil(runes of the ChatML rendering / 4) (§2.2 step 8). */
const estimate = (content: string): number => Math.ceil([...`<|im_start|>user\n${content}<|im_end|>\n`].length / 4);

const RFC3339NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

function expectOrdered(keys: string[], reference: readonly string[]): void {
  const idx = keys.map((k) => reference.indexOf(k));
  expect(idx.every((i) => i >= 0), `unknown field in ${keys.join(',')}`).toBe(true);
  for (let i = 1; i < idx.length; i++) expect(idx[i], `field order ${keys.join(',')}`).toBeGreaterThan(idx[i - 1]);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-observability-');
  fleet = await startPods([
    { name: 'o-1', ip: ip(1), port: PORT, models: ['obs-upstream'], ttftMs: 1, itlMs: 1, outputTokens: 8 },
    { name: 'o-2', ip: ip(2), port: PORT, models: ['obs-upstream'], ttftMs: 1, itlMs: 1, outputTokens: 8 },
  ]);
  await writeFile(path.join(dir, 'obs.yaml'), docs(
    routeYaml('obs-route', 'obs-model', 'obs-server'),
    routeYaml('count-route', 'count-model', 'obs-server'),
    serverYaml('obs-server', { port: PORT, labels: { app: 'obs' }, model: 'obs-upstream' }),
    podYaml('o-1', ip(1), { labels: { app: 'obs' } }),
    podYaml('o-2', ip(2), { labels: { app: 'obs' } }),
    // Selected by the server but not Ready: never an endpoint.
    podYaml('o-3', ip(3), { labels: { app: 'obs' }, ready: false }),
  ));
  router = await startRouter({ dir, workers: 2 });
  await router.waitReady();
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('Prometheus metrics summed across 2 workers', () => {
  const N = 200;
  const E = 10;
  let completionSum = 0;
  let promptSum = 0;
  const ids: string[] = [];

  it('counts every request exactly once in kthena_router_requests_total, with Kthena labels', async () => {
    // A fresh connection per request (connection: close) so that both workers take traffic.
    const results = await pool(Array.from({ length: N }, (_, i) => i), 8, async (i) => {
      const id = randomUUID();
      ids.push(id);
      const stream = i % 4 === 0;
      const body = {
        model: 'count-model', messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 1 + (i % 7),
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      };
      const r = await httpRequest(router.url, { path: CHAT, body, headers: { 'x-request-id': id } });
      expect(r.status).toBe(200);
      if (stream) {
        const usage = r.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6))).find((e) => e.usage)?.usage;
        expect(usage, r.text).toBeDefined();
        promptSum += usage.prompt_tokens as number;
        return usage.completion_tokens as number;
      }
      const usage = JSON.parse(r.text).usage;
      promptSum += usage.prompt_tokens as number;
      return usage.completion_tokens as number;
    });
    completionSum = results.reduce((a, b) => a + b, 0);
    expect(completionSum).toBe(Array.from({ length: N }, (_, i) => 1 + (i % 7)).reduce((a, b) => a + b, 0));

    for (let i = 0; i < E; i++) {
      const r = await httpRequest(router.url, { path: '/v1/completions', body: { model: 'nope', prompt: 'hello' } });
      expect(r.status).toBe(404);
      expect(JSON.parse(r.text).error.message).toBe('route not found');
    }

    const m = await scrape(router.metricsPort);
    expect(m.status).toBe(200);
    expect(sampleValue(m.samples, 'kthena_router_requests_total', {
      model: 'count-model', path: CHAT, status_code: '200', error_type: 'successful_request', ...COUNT_LABELS,
    })).toBe(N);
    // No other series for this model: nothing was counted twice or under other labels.
    const all = findSamples(m.samples, 'kthena_router_requests_total', { model: 'count-model' });
    expect(all.reduce((a, s) => a + s.value, 0)).toBe(N);

    expect(sampleValue(m.samples, 'kthena_router_requests_total', {
      model: 'unknown', path: '/v1/completions', status_code: '404', error_type: 'route_not_found',
      model_route: 'none', backend_type: 'unresolved', backend_name: 'none', upstream_model: 'none',
    })).toBe(E);
  });

  it('observes every request once in kthena_router_request_duration_seconds', async () => {
    const m = await scrape(router.metricsPort);
    const labels = { model: 'count-model', path: CHAT, status_code: '200', ...COUNT_LABELS };
    expect(sampleValue(m.samples, 'kthena_router_request_duration_seconds_count', labels)).toBe(N);
    const buckets = findSamples(m.samples, 'kthena_router_request_duration_seconds_bucket', labels);
    const les = buckets.map((b) => b.labels.le);
    expect(les).toEqual(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '60', '+Inf']);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
    expect(buckets[buckets.length - 1].value).toBe(N);
    const sum = sampleValue(m.samples, 'kthena_router_request_duration_seconds_sum', labels)!;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(N * 10);
    // The histogram has no error_type label (Kthena's label set).
    expect(buckets.every((b) => !('error_type' in b.labels))).toBe(true);
    expect(sampleValue(m.samples, 'kthena_router_request_duration_seconds_count', {
      model: 'unknown', path: '/v1/completions', status_code: '404',
      model_route: 'none', backend_type: 'unresolved', backend_name: 'none', upstream_model: 'none',
    })).toBe(E);
  });

  it('adds the completion tokens of every response to kthena_router_tokens_total{token_type="output"}', async () => {
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_tokens_total', {
      model: 'count-model', path: CHAT, token_type: 'output', ...COUNT_LABELS,
    })).toBe(completionSum);
  });

  it('adds the engine\'s prompt tokens of every request to kthena_router_tokens_total{token_type="input"} (docs/compat.md #9)', async () => {
    // Kthena records its ceil(runes/4) estimate; we record the engine's usage.prompt_tokens when
    // the response carries usage (a deliberate difference), so the sum is the engine's.
    expect(promptSum).toBeGreaterThan(0);
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_tokens_total', {
      model: 'count-model', path: CHAT, token_type: 'input', ...COUNT_LABELS,
    })).toBe(promptSum);
  });

  it('brings kthena_router_active_requests and the in-flight gauges back to 0 at rest', async () => {
    await eventually(async () => {
      const m = await scrape(router.metricsPort);
      return sampleValue(m.samples, 'kthena_router_active_requests') === 0;
    }, 5000, 'active_requests 0');
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_active_downstream_requests', { model: 'count-model' })).toBe(0);
    expect(sampleValue(m.samples, 'kthena_router_active_upstream_requests', { model_server: 'default/obs-server', ...COUNT_LABELS })).toBe(0);
  });

  it('writes exactly one access-log line per request across workers', async () => {
    await eventually(() => ids.every((id) => accessLinesFor(router, id).length >= 1), 10_000, 'an access-log line for every request');
    // Give a duplicate (e.g. from the other worker) time to show up.
    await new Promise((r) => setTimeout(r, 300));
    const counts = ids.map((id) => accessLinesFor(router, id).length);
    expect(counts.filter((c) => c !== 1)).toEqual([]);
    for (const id of ids.slice(0, 20)) {
      const line = parseAccessLogText(accessLinesFor(router, id)[0])!;
      expect(line.status).toBe(200);
      expect(line.fields.model_name).toBe('count-model');
      expect(line.fields.upstream_attempts).toBe('1');
    }
  });

  it('counts a body that cannot be parsed as request_parsing with model "unknown" (docs/compat.md #10)', async () => {
    const bad = await httpRequest(router.url, { path: '/v1/embeddings', body: '{"model": "obs-model", ' });
    expect(bad.status).toBe(400);
    const noModel = await httpRequest(router.url, { path: '/v1/embeddings', body: { input: 'hello' } });
    expect(noModel.status).toBe(404);
    expect(JSON.parse(noModel.text).error.message).toBe('model not found');
    await router.waitForLog((l) => l.includes('"POST /v1/embeddings HTTP/1.1" 404 error=request_parsing:model not found'));
    await router.waitForLog((l) => l.includes('"POST /v1/embeddings HTTP/1.1" 400 error=request_parsing:'));
    const m = await scrape(router.metricsPort);
    const unresolved = { model: 'unknown', path: '/v1/embeddings', model_route: 'none', backend_type: 'unresolved', backend_name: 'none', upstream_model: 'none' };
    expect(sampleValue(m.samples, 'kthena_router_requests_total', { ...unresolved, status_code: '400', error_type: 'request_parsing' })).toBe(1);
    expect(sampleValue(m.samples, 'kthena_router_requests_total', { ...unresolved, status_code: '404', error_type: 'request_parsing' })).toBe(1);
  });
});

describe('text access log (Kthena format)', () => {
  it('writes a success line with every field in Kthena order', async () => {
    const id = randomUUID();
    const t0 = Date.now();
    const r = await httpRequest(router.url, { path: CHAT, body: { model: 'obs-model', messages: [{ role: 'user', content: 'hello world' }], max_tokens: 5 }, headers: { 'x-request-id': id } });
    const t1 = Date.now();
    expect(r.status).toBe(200);
    const completion = JSON.parse(r.text).usage.completion_tokens as number;
    const prompt = JSON.parse(r.text).usage.prompt_tokens as number;
    const raw = await router.waitForLog((l) => l.includes(` request_id=${id} `));
    expect(raw).toMatch(new RegExp(
      '^\\[[^\\]]+\\] "POST /v1/chat/completions HTTP/1\\.1" 200 model_name=obs-model model_route=default/obs-route ' +
      'model_server=default/obs-server selected_pod=o-[12] request_id=' + id + ' backend_type=model_server ' +
      'backend_name=default/obs-server upstream_model=obs-upstream upstream_status_code=200 upstream_attempts=1 ' +
      'tokens=' + prompt + '/' + completion + ' timings=\\d+ms\\(\\d+\\+\\d+\\+\\d+\\)$'));
    const line = parseAccessLogText(raw)!;
    expect(line.timestamp).toMatch(RFC3339NANO);
    const ts = Date.parse(line.timestamp);
    expect(ts).toBeGreaterThanOrEqual(t0 - 1000);
    expect(ts).toBeLessThanOrEqual(t1 + 1000);
    expect(line.fields.selected_pod).toBe(r.headers['x-sim-pod']);
    const t = /^(\d+)ms\((\d+)\+(\d+)\+(\d+)\)$/.exec(line.fields.timings)!;
    const [total, req, up, resp] = t.slice(1).map(Number);
    expect(Math.abs(total - (req + up + resp))).toBeLessThanOrEqual(3);
    expect(total).toBeLessThanOrEqual(t1 - t0 + 5);
    expectOrdered(line.order, ACCESS_LOG_TEXT_FIELDS);
  });

  it('writes an error line: error=route_not_found:route not found, no routing fields', async () => {
    const id = randomUUID();
    const r = await httpRequest(router.url, { path: CHAT, body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }, headers: { 'x-request-id': id } });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.text)).toEqual({ error: { message: 'route not found', type: 'not_found_error', code: 'RTR_ERR_NO_ROUTE' } });
    const raw = await router.waitForLog((l) => l.includes(` request_id=${id} `));
    // Kthena's line for this case: no routing fields and no error_origin (Kthena sets it only on
    // external-provider failures); the input estimate is known, the output is 0.
    expect(raw).toMatch(new RegExp('^\\[[^\\]]+\\] "POST /v1/chat/completions HTTP/1\\.1" 404 error=route_not_found:route not found ' +
      'model_name=no-such-model request_id=' + id + ' tokens=' + estimate('hi') + '/0 timings=\\d+ms\\(\\d+\\+\\d+\\+\\d+\\)$'));
    const line = parseAccessLogText(raw)!;
    expect(line.fields.error).toBe('route_not_found:route not found');
    expect(line.fields.model_name).toBe('no-such-model');
    expect(line.fields.request_id).toBe(id);
    for (const absent of ['model_route', 'model_server', 'selected_pod', 'backend_type', 'backend_name', 'upstream_model', 'upstream_status_code', 'upstream_attempts']) {
      expect(line.fields[absent], absent).toBeUndefined();
    }
    expectOrdered(line.order, ACCESS_LOG_TEXT_FIELDS);
  });

  it('generates a request id when the client sends none and forwards it upstream', async () => {
    const r = await httpRequest(router.url, { path: CHAT, body: { model: 'obs-model', messages: [{ role: 'user', content: 'no id here' }], max_tokens: 1 } });
    expect(r.status).toBe(200);
    const podName = r.headers['x-sim-pod'] as string;
    const upstream = fleet.pod(podName).requests.filter((q) => JSON.stringify(q.body).includes('no id here'));
    expect(upstream).toHaveLength(1);
    const id = upstream[0].headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await router.waitForLog((l) => l.includes(` request_id=${id} `));
  });
});

describe('debug server (127.0.0.1 only) and metrics server', () => {
  const debug = (p: string, host = '127.0.0.1') => httpRequest(`http://${host}:${router.debugPort}${p}`);

  it('runs least-request + prefix-cache without a filter when no --router-config is given', async () => {
    const r = await debug('/debug/config_dump/snapshot');
    const scheduler = JSON.parse(r.text).ir.scheduler as { filters: string[]; scores: { name: string; weight: number }[] };
    expect(scheduler.filters).toEqual([]);
    expect(scheduler.scores).toEqual([{ name: 'least-request', weight: 1 }, { name: 'prefix-cache', weight: 1 }]);
  });

  it('dumps ModelRoutes', async () => {
    const r = await debug('/debug/config_dump/modelroutes');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    const routes = JSON.parse(r.text).modelroutes as { name: string; namespace: string; spec: { modelName: string } }[];
    expect(routes.map((x) => x.name).sort()).toEqual(['count-route', 'obs-route']);
    const obs = routes.find((x) => x.name === 'obs-route')!;
    expect(obs.namespace).toBe('default');
    expect(obs.spec.modelName).toBe('obs-model');
  });

  it('dumps ModelServers with their associated (Ready) pods', async () => {
    const r = await debug('/debug/config_dump/modelservers');
    expect(r.status).toBe(200);
    const servers = JSON.parse(r.text).modelservers as { name: string; namespace: string; spec: { model: string }; associatedPods: string[] }[];
    expect(servers).toHaveLength(1);
    expect(servers[0].name).toBe('obs-server');
    expect(servers[0].namespace).toBe('default');
    expect(servers[0].spec.model).toBe('obs-upstream');
    expect([...servers[0].associatedPods].sort()).toEqual(['default/o-1', 'default/o-2']);
  });

  it('dumps pods with their model servers', async () => {
    const r = await debug('/debug/config_dump/pods');
    expect(r.status).toBe(200);
    const pods = JSON.parse(r.text).pods as { name: string; namespace: string; engine: string; metrics: object; models: string[]; modelServers: string[] }[];
    expect(pods.map((p) => p.name).sort()).toEqual(['o-1', 'o-2']);
    for (const p of pods) {
      expect(p.namespace).toBe('default');
      expect(p.engine).toBe('vLLM');
      expect(p.modelServers).toEqual(['default/obs-server']);
      expect(Object.keys(p.metrics).sort()).toEqual(['gpuCacheUsage', 'requestRunningNum', 'requestWaitingNum', 'tpot', 'ttft']);
    }
  });

  it('dumps one resource by namespace and name, and answers 404 for an unknown one', async () => {
    const r = await debug('/debug/config_dump/namespaces/default/modelroutes/obs-route');
    expect(r.status).toBe(200);
    const route = JSON.parse(r.text);
    expect(route.name).toBe('obs-route');
    expect(route.namespace).toBe('default');
    expect(route.spec.modelName).toBe('obs-model');

    const pod = await debug('/debug/config_dump/namespaces/default/pods/o-1');
    expect(pod.status).toBe(200);
    expect(JSON.parse(pod.text).podInfo.podIP).toBe(ip(1));

    const missing = await debug('/debug/config_dump/namespaces/default/modelroutes/does-not-exist');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toEqual({ error: 'ModelRoute not found' });
    const otherNs = await debug('/debug/config_dump/namespaces/other/modelroutes/obs-route');
    expect(otherNs.status).toBe(404);
  });

  it('is not reachable on another local address', async () => {
    expect(await connectionRefused('127.0.0.2', router.debugPort)).toBe(true);
    expect(await connectionRefused('127.0.0.1', router.debugPort)).toBe(false);
  });

  it('serves /metrics in the Prometheus text format on the metrics port, and 404 elsewhere', async () => {
    const m = await scrape(router.metricsPort);
    expect(m.status).toBe(200);
    expect(m.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(m.text).toContain('# HELP kthena_router_requests_total ');
    expect(m.text).toContain('# TYPE kthena_router_requests_total counter');
    expect(m.text).toContain('# TYPE kthena_router_request_duration_seconds histogram');
    expect(m.text).toContain('# TYPE kthena_router_active_requests gauge');
    expect(sampleValue(m.samples, 'kthena_router_workers', { state: 'running' })).toBe(2);
    // Every sample line parsed (parsePrometheus throws otherwise) and HELP/TYPE precede samples.
    expect(m.samples.length).toBeGreaterThan(10);
    const other = await httpRequest(`http://127.0.0.1:${router.metricsPort}/not-metrics`);
    expect(other.status).toBe(404);
    expect(other.text).toBe('404 page not found\n');
    // Not on the router port unless --expose-metrics-on-router-port.
    const onRouter = await httpRequest(`${router.url}/metrics`);
    expect(onRouter.status).toBe(404);
  });
});

describe('ACCESS_LOG_FORMAT=json', () => {
  let jr: RouterProc;
  beforeAll(async () => {
    jr = await startRouter({ dir, workers: 2, env: { ACCESS_LOG_FORMAT: 'json' } });
    await jr.waitReady();
  });
  afterAll(async () => { await jr?.stop(); });

  it('writes Kthena JSON fields in struct order for a success and an error', async () => {
    const okId = randomUUID();
    const r = await httpRequest(jr.url, { path: CHAT, body: { model: 'obs-model', messages: [{ role: 'user', content: 'hello world' }], max_tokens: 3 }, headers: { 'x-request-id': okId } });
    expect(r.status).toBe(200);
    const completion = JSON.parse(r.text).usage.completion_tokens as number;
    const prompt = JSON.parse(r.text).usage.prompt_tokens as number;
    const errId = randomUUID();
    const e = await httpRequest(jr.url, { path: CHAT, body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }, headers: { 'x-request-id': errId } });
    expect(e.status).toBe(404);

    const ok = JSON.parse(await jr.waitForLog((l) => l.includes(`"request_id":"${okId}"`)));
    expect(Object.keys(ok)).toEqual([
      'timestamp', 'method', 'path', 'protocol', 'status_code', 'model_name', 'model_route', 'model_server', 'selected_pod',
      'request_id', 'backend_type', 'backend_name', 'upstream_model', 'upstream_status_code', 'upstream_attempts',
      'input_tokens', 'output_tokens', 'duration_total', 'duration_request_processing', 'duration_upstream_processing',
      'duration_response_processing',
    ]);
    expect(ok).toMatchObject({
      method: 'POST', path: CHAT, protocol: 'HTTP/1.1', status_code: 200, model_name: 'obs-model',
      model_route: 'default/obs-route', model_server: 'default/obs-server', selected_pod: r.headers['x-sim-pod'],
      request_id: okId, backend_type: 'model_server', backend_name: 'default/obs-server', upstream_model: 'obs-upstream',
      upstream_status_code: 200, upstream_attempts: 1, input_tokens: prompt, output_tokens: completion,
    });
    expect(ok.timestamp).toMatch(RFC3339NANO);
    for (const k of ['duration_total', 'duration_request_processing', 'duration_upstream_processing', 'duration_response_processing']) {
      expect(Number.isInteger(ok[k]) && ok[k] >= 0, k).toBe(true);
    }

    const err = JSON.parse(await jr.waitForLog((l) => l.includes(`"request_id":"${errId}"`)));
    expectOrdered(Object.keys(err), JSON_FIELDS);
    expect(err.status_code).toBe(404);
    expect(err.error).toEqual({ type: 'route_not_found', message: 'route not found' });
    expect(err.model_name).toBe('no-such-model');
    for (const absent of ['model_route', 'model_server', 'selected_pod', 'backend_type', 'backend_name', 'upstream_model', 'upstream_status_code', 'upstream_attempts']) {
      expect(err[absent], absent).toBeUndefined();
    }
    // Every access line of this router is JSON.
    for (const l of jr.stdout.filter((x) => x !== '')) expect(() => JSON.parse(l)).not.toThrow();
  });
});

describe('ACCESS_LOG_ENABLED=false', () => {
  it('prints no access-log line', async () => {
    const dr = await startRouter({ dir, workers: 2, env: { ACCESS_LOG_ENABLED: 'false' } });
    try {
      await dr.waitReady();
      for (let i = 0; i < 5; i++) {
        const ok = await httpRequest(dr.url, { path: CHAT, body: { model: 'obs-model', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 } });
        expect(ok.status).toBe(200);
        const nf = await httpRequest(dr.url, { path: CHAT, body: { model: 'nope', messages: [{ role: 'user', content: 'x' }] } });
        expect(nf.status).toBe(404);
      }
      // Metrics still count with the access log off.
      const m = await scrape(dr.metricsPort);
      expect(sampleValue(m.samples, 'kthena_router_requests_total', {
        model: 'obs-model', path: CHAT, status_code: '200', error_type: 'successful_request', ...OK_LABELS,
      })).toBe(5);
      expect(findSamples(m.samples, 'kthena_router_requests_total', { model: 'unknown', status_code: '404' }).reduce((a, x) => a + x.value, 0)).toBe(5);
    } finally {
      // Stopping flushes whatever would have been written.
      expect(await dr.stop()).toBe(0);
    }
    expect(dr.stdout.filter((l) => l.trim() !== '')).toEqual([]);
  });
});

describe('--expose-metrics-on-router-port', () => {
  it('answers GET /metrics on the router port with the same summed counters as the metrics port', async () => {
    const mr = await startRouter({ dir, workers: 2, args: ['--expose-metrics-on-router-port'] });
    try {
      await mr.waitReady();
      for (let i = 0; i < 3; i++) {
        const ok = await httpRequest(mr.url, { path: CHAT, body: { model: 'obs-model', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 } });
        expect(ok.status).toBe(200);
      }
      const res = await fetch(`${mr.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toContain('# TYPE kthena_router_requests_total counter');
      const line = text.split('\n').find((l) => l.startsWith('kthena_router_requests_total{model="obs-model"') && l.includes('status_code="200"'));
      expect(line, text.slice(0, 2000)).toBeDefined();
      expect(Number(line!.split(' ').pop())).toBe(3);
    } finally {
      expect(await mr.stop()).toBe(0);
    }
  });
});
