/**
 * ExternalModelProvider end to end (docs/traffic-policy.md#external-model-providers): the real CLI
 * against local HTTPS mock providers with certificates made at test time. Provider A's CA is
 * trusted by the router (NODE_EXTRA_CA_CERTS), provider B's is not. Checks Kthena's request
 * rules (URL joining, header allow-list, static headers, credential from a labelled Secret,
 * spec.model, include_usage), usage accounting per API shape, the status codes of every failure,
 * TLS verification and insecureSkipVerify, redirects not followed, and that the credential never
 * leaves the router.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup, docs, findSamples, openStream, within, freePort, httpRequest, parseAccessLogText, podYaml, postJson, sampleValue, scrape, serverYaml, sseEvents, startPods, startRouter,
  tempDir, type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { createTestCa, sse, startMockProvider, type MockProvider, type ProviderCall } from '../helpers/mock-provider.js';

const SECRET = 'sk-SECRET-7f3a9c21e5';
const B64 = (s: string): string => Buffer.from(s).toString('base64');

let dir: string;
let router: RouterProc;
let a: MockProvider;
let b: MockProvider;
let downPort: number;
let fleet: SimFleet;
/** Concurrent 'slow' calls at the provider, now and at most. */
let inFlight = 0;
let maxInFlight = 0;
/** The provider saw the router close a stream the client had abandoned. */
let lingerClosed = false;
const IP = (n: number): string => `127.0.91.${n}`;

const ROUTES: [string, string, string?][] = [
  ['m-openai', 'openai'], ['m-anth', 'anth'], ['m-untrusted', 'untrusted'], ['m-insecure', 'insecure'], ['m-down', 'down'],
  ['m-nosecret', 'nosecret'], ['m-unlabelled', 'unlabelled'], ['m-noprovider', 'absent'], ['m-plain', 'plain'],
];

function chatJson(res: ServerResponse, model: string, usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }): void {
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'a' });
  res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', model, choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage }));
}

/** Provider A: behaviour chosen by the request's `user` field (forwarded as is). */
function handlerA(call: ProviderCall, res: ServerResponse): void {
  const body = call.body === '' ? {} : call.json();
  const scenario = body.user ?? '';
  const u = call.url;
  if (scenario === 'err429') { res.writeHead(429, { 'content-type': 'application/json' }); res.end('{"error":{"message":"slow down from provider"}}'); return; }
  if (scenario === 'err500') { res.writeHead(500, { 'content-type': 'application/json' }); res.end('{"error":{"message":"provider exploded"}}'); return; }
  if (scenario === 'redirect') { res.writeHead(302, { location: `${a.url}/elsewhere`, 'content-type': 'text/plain' }); res.end('moved'); return; }
  if (scenario === 'hang') return;
  if (scenario === 'slow') {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => { inFlight--; chatJson(res, body.model); }, 200);
    return;
  }
  if (scenario === 'cut' || scenario === 'linger') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ id: 'c1', choices: [{ index: 0, delta: { content: 'partial' } }] })}\n\n`);
    if (scenario === 'cut') setTimeout(() => res.socket?.destroy(), 50);
    else res.on('close', () => { lingerClosed = true; });
    return;
  }
  if (u.startsWith('/v1/messages')) {
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const ev = (name: string, data: object): void => { res.write(`event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`); };
      ev('message_start', { message: { id: 'm1', usage: { input_tokens: 20, cache_creation_input_tokens: 4, cache_read_input_tokens: 6, output_tokens: 1 } } });
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'hello' } });
      ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 9 } });
      ev('message_stop', {});
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'm1', type: 'message', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: 10, cache_creation_input_tokens: 2, cache_read_input_tokens: 3, output_tokens: 5 } }));
    return;
  }
  if (u.includes('/responses')) {
    if (body.stream === true) {
      sse(res, [
        { type: 'response.created', response: { id: 'r1', usage: null } },
        { type: 'response.output_text.delta', delta: 'hi' },
        { type: 'response.completed', response: { id: 'r1', usage: { input_tokens: 13, output_tokens: 4, total_tokens: 17 } } },
      ], false);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'r1', object: 'response', output: [], usage: { input_tokens: 12, output_tokens: 3, total_tokens: 15 } }));
    return;
  }
  if (body.stream === true) {
    const events: object[] = [
      { id: 'c1', choices: [{ index: 0, delta: { content: 'hel' } }] },
      { id: 'c1', choices: [{ index: 0, delta: { content: 'lo' }, finish_reason: 'stop' }] },
    ];
    if (body.stream_options?.include_usage === true) events.push({ id: 'c1', choices: [], usage: { prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 } });
    sse(res, events);
    return;
  }
  chatJson(res, body.model);
}

const provider = (name: string, spec: string[]): string => [
  'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ExternalModelProvider', 'metadata:', `  name: ${name}`, '  namespace: default', 'spec:', ...spec.map((l) => `  ${l}`),
].join('\n');

const route = (model: string, target: string, extra: string[] = []): string => [
  'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', 'metadata:', `  name: r-${model}`, '  namespace: default', 'spec:', `  modelName: ${model}`,
  ...extra, '  rules:', '  - targetModels:', `    - externalModelProviderName: ${target}`,
].join('\n');

/** A route whose rule targets a ModelServer (weight 100) and a provider (weight 0): the provider only serves as fallback. */
const mixedRoute = (model: string, server: string, fallback: boolean): string => [
  'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', 'metadata:', `  name: r-${model}`, '  namespace: default',
  ...(fallback ? ['  annotations:', '    kthena-router.volcano.sh/provider-fallback: "true"'] : []),
  'spec:', `  modelName: ${model}`, '  rules:', '  - targetModels:', `    - modelServerName: ${server}`, '      weight: 100',
  '    - externalModelProviderName: plain', '      weight: 0',
].join('\n');

const secret = (name: string, data: Record<string, string>, labelled = true): string => [
  'apiVersion: v1', 'kind: Secret', 'metadata:', `  name: ${name}`, '  namespace: default',
  ...(labelled ? ['  labels:', '    networking.serving.volcano.sh/external-model-provider-credential: "true"'] : []),
  'type: Opaque', 'data:', ...Object.entries(data).map(([k, v]) => `  ${k}: ${B64(v)}`),
].join('\n');

const auth = (name: string, key = 'apiKey'): string[] => ['auth:', '  secretRef:', `    name: ${name}`, `    key: ${key}`];

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-provider-');
  const trusted = createTestCa('trusted-test-ca');
  const untrusted = createTestCa('untrusted-test-ca');
  a = await startMockProvider(trusted.issue(['127.0.0.1']), handlerA);
  b = await startMockProvider(untrusted.issue(['127.0.0.1']), (call, res) => chatJson(res, call.json().model));
  downPort = await freePort();
  const simPort = await freePort();
  const sim = (name: string, ip: string, model: string, failStatus?: number) =>
    ({ name, ip, port: simPort, models: [model], ttftMs: 0, itlMs: 0, outputTokens: 2, ...(failStatus ? { failStatus } : {}) });
  fleet = await startPods([sim('fail-1', IP(1), 'org/fail', 500), sim('fail-2', IP(2), 'org/fail', 500), sim('ok-1', IP(3), 'org/ok')]);
  const caFile = path.join(dir, 'ca.pem.txt');
  writeFileSync(caFile, trusted.caPem);
  const manifests = docs(
    secret('cred', { apiKey: `  ${SECRET}\n` }),
    secret('plaincred', { apiKey: SECRET }, false),
    provider('openai', [`baseURL: ${a.url}/api/v1/`, 'model: upstream-model', 'headers:', '  X-Static: s1', '  Accept: application/x-static', ...auth('cred')]),
    provider('plain', [`baseURL: ${a.url}`]),
    provider('anth', ['providerType: Anthropic', `baseURL: ${a.url}`, 'headers:', '  anthropic-version: "2023-06-01"', ...auth('cred')]),
    provider('untrusted', [`baseURL: ${b.url}`]),
    provider('insecure', [`baseURL: ${b.url}`, 'insecureSkipVerify: true']),
    provider('down', [`baseURL: https://127.0.0.1:${downPort}`]),
    provider('nosecret', [`baseURL: ${a.url}`, ...auth('missing')]),
    provider('unlabelled', [`baseURL: ${a.url}`, ...auth('plaincred')]),
    ...ROUTES.map(([m, t]) => route(m, t)),
    route('m-limited', 'openai', ['  rateLimit:', '    outputTokensPerUnit: 5', '    unit: hour']),
    podYaml('fail-1', IP(1), { labels: { app: 'fail' } }), podYaml('fail-2', IP(2), { labels: { app: 'fail' } }), podYaml('ok-1', IP(3), { labels: { app: 'ok' } }),
    serverYaml('srv-fail', { labels: { app: 'fail' }, port: simPort, model: 'org/fail' }),
    serverYaml('srv-ok', { labels: { app: 'ok' }, port: simPort, model: 'org/ok' }),
    serverYaml('srv-none', { labels: { app: 'none' }, port: simPort, model: 'org/none' }),
    mixedRoute('fb-fail', 'srv-fail', true), mixedRoute('fb-none', 'srv-none', true), mixedRoute('fb-ok', 'srv-ok', true), mixedRoute('nofb-fail', 'srv-fail', false),
  );
  await (await import('node:fs/promises')).writeFile(path.join(dir, 'all.yaml'), manifests);
  router = await startRouter({ dir, workers: 2, env: { NODE_EXTRA_CA_CERTS: caFile }, args: ['--upstream-timeout', '1500ms'] });
  await router.waitReady();
}, 60_000);

afterAll(async () => {
  await router?.stop();
  await Promise.all([a?.close(), b?.close(), fleet?.close()]);
  if (dir) await cleanup(dir);
});

const post = (p: string, body: object, headers: Record<string, string> = {}) => postJson(router.url, p, body, headers);
const lastCall = (m: MockProvider): ProviderCall => m.calls[m.calls.length - 1]!;
const errorCode = (text: string): string => JSON.parse(text).error.code;
/** kthena_router_tokens_total summed over the series matching `labels`. */
const tokens = (samples: Parameters<typeof findSamples>[0], labels: Record<string, string>): number =>
  findSamples(samples, 'kthena_router_tokens_total', labels).reduce((n, s) => n + s.value, 0);

describe('ExternalModelProvider requests', () => {
  it('OpenAI: URL joined, allow-listed headers, static headers, trimmed credential, spec.model', async () => {
    const n = a.calls.length;
    const r = await post('/v1/chat/completions?api-version=2&x=1', { model: 'm-openai', messages: [{ role: 'user', content: 'hello' }] }, {
      authorization: 'Bearer client-token', 'x-api-key': 'client-key', cookie: 'session=1', 'x-custom': 'no', accept: 'application/json',
      'x-request-id': 'req-provider-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'anthropic-beta': 'no',
    });
    expect(r.status, r.text).toBe(200);
    expect(r.json().model).toBe('upstream-model');
    expect(r.headers.get('x-upstream')).toBe('a');
    expect(a.calls.length).toBe(n + 1);
    const c = lastCall(a);
    expect(c.url).toBe('/api/v1/chat/completions?api-version=2&x=1');
    expect(c.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(c.headers['x-api-key']).toBeUndefined();
    expect(c.headers.cookie).toBeUndefined();
    expect(c.headers['x-custom']).toBeUndefined();
    expect(c.headers['anthropic-beta']).toBeUndefined();
    expect(c.headers['x-static']).toBe('s1');
    expect(c.headers.accept).toBe('application/x-static');
    expect(c.headers['x-request-id']).toBe('req-provider-1');
    expect(c.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(c.headers['content-type']).toBe('application/json');
    expect(c.headers.host).toBe(`127.0.0.1:${a.port}`);
    expect(c.json()).toEqual({ model: 'upstream-model', messages: [{ role: 'user', content: 'hello' }] });
    const line = await router.waitForLog((l) => l.includes('request_id=req-provider-1'));
    const log = parseAccessLogText(line)!;
    expect(log.fields.backend_type).toBe('external_provider');
    expect(log.fields.backend_name).toBe('default/openai');
    expect(log.fields.upstream_model).toBe('upstream-model');
    expect(log.fields.model_route).toBe('default/r-m-openai');
  });

  it('no spec.model and no auth: the body goes byte for byte, no auth header', async () => {
    const raw = '{"model":"m-plain",  "messages":[{"role":"user","content":"x"}], "seed": 12345678901234567890}';
    const res = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer mine' }, body: raw });
    expect(res.status).toBe(200);
    const c = lastCall(a);
    expect(c.url).toBe('/v1/chat/completions');
    expect(c.body).toBe(raw);
    expect(c.headers.authorization).toBeUndefined();
  });

  it('streaming: include_usage injected, the usage-only event withheld, usage counted with backend_type=external_provider', async () => {
    const before = await scrape(router.metricsPort);
    const labels = { model: 'm-openai', token_type: 'output', backend_type: 'external_provider', backend_name: 'default/openai' };
    const was = tokens(before.samples, labels);
    const r = await post('/v1/chat/completions', { model: 'm-openai', stream: true, stream_options: { continuous_usage_stats: false }, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status, r.text).toBe(200);
    expect(lastCall(a).json().stream_options).toEqual({ continuous_usage_stats: false, include_usage: true });
    const events = sseEvents(r.text);
    expect(events.map((e) => e.data)).toContain('[DONE]');
    expect(events.some((e) => e.json?.usage !== undefined)).toBe(false);
    const after = await scrape(router.metricsPort);
    expect(tokens(after.samples, labels)).toBe(was + 6);
  });

  it('the Responses API: no include_usage injected; usage from response.completed (stream) and the body', async () => {
    const labels = { model: 'm-openai', path: '/v1/responses', token_type: 'output', backend_type: 'external_provider' };
    const was = tokens((await scrape(router.metricsPort)).samples, labels);
    let r = await post('/v1/responses', { model: 'm-openai', stream: true, input: 'hi' });
    expect(r.status, r.text).toBe(200);
    expect(lastCall(a).json().stream_options).toBeUndefined();
    expect(lastCall(a).url).toBe('/api/v1/responses');
    expect(sseEvents(r.text).some((e) => e.json?.type === 'response.completed')).toBe(true);
    r = await post('/v1/responses', { model: 'm-openai', input: 'hi' });
    expect(r.status, r.text).toBe(200);
    expect(tokens((await scrape(router.metricsPort)).samples, labels)).toBe(was + 4 + 3);
  });

  it('Anthropic: /v1/messages with x-api-key, protocol headers forwarded, cache tokens counted as input (stream and not)', async () => {
    const base = { model: 'm-anth', backend_type: 'external_provider', backend_name: 'default/anth' };
    const before = (await scrape(router.metricsPort)).samples;
    const inWas = tokens(before, { ...base, token_type: 'input' });
    const outWas = tokens(before, { ...base, token_type: 'output' });
    let r = await post('/v1/messages', { model: 'm-anth', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'anthropic-beta': 'tools-1', authorization: 'Bearer client' });
    expect(r.status, r.text).toBe(200);
    const c = lastCall(a);
    expect(c.url).toBe('/v1/messages');
    expect(c.headers['x-api-key']).toBe(SECRET);
    expect(c.headers.authorization).toBeUndefined();
    expect(c.headers['anthropic-version']).toBe('2023-06-01');
    expect(c.headers['anthropic-beta']).toBe('tools-1');
    r = await post('/v1/messages', { model: 'm-anth', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status, r.text).toBe(200);
    expect(lastCall(a).json().stream_options).toBeUndefined();
    expect(r.text).toContain('event: message_stop');
    const after = (await scrape(router.metricsPort)).samples;
    expect(tokens(after, { ...base, token_type: 'input' })).toBe(inWas + (10 + 2 + 3) + (20 + 4 + 6));
    expect(tokens(after, { ...base, token_type: 'output' })).toBe(outWas + 5 + 9);
  });

  it('the provider\'s usage is charged to the route\'s output token budget', async () => {
    const first = await post('/v1/chat/completions', { model: 'm-limited', messages: [{ role: 'user', content: 'hi' }] });
    expect(first.status, first.text).toBe(200);
    const second = await post('/v1/chat/completions', { model: 'm-limited', messages: [{ role: 'user', content: 'hi' }] });
    expect(second.status, second.text).toBe(429);
    expect(errorCode(second.text)).toBe('RTR_ERR_OUTPUT_RATE_LIMIT');
  });
});

describe('ExternalModelProvider answers', () => {
  it('4xx and 5xx from the provider are passed through verbatim', async () => {
    let r = await post('/v1/chat/completions', { model: 'm-openai', user: 'err429', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status).toBe(429);
    expect(r.text).toBe('{"error":{"message":"slow down from provider"}}');
    const n = a.calls.length;
    r = await post('/v1/chat/completions', { model: 'm-openai', user: 'err500', messages: [{ role: 'user', content: 'x' }] }, { 'x-request-id': 'req-provider-500' });
    expect(r.status).toBe(500);
    expect(r.text).toBe('{"error":{"message":"provider exploded"}}');
    expect(a.calls.length).toBe(n + 1);
    const log = parseAccessLogText(await router.waitForLog((l) => l.includes('request_id=req-provider-500')))!;
    expect(log.fields.error_origin).toBe('upstream');
    expect(log.fields.error).toMatch(/^upstream_response:/);
  });

  it('a provider that fails mid-stream: the client gets what arrived and a final error event', async () => {
    const r = await post('/v1/chat/completions', { model: 'm-openai', user: 'cut', stream: true, messages: [{ role: 'user', content: 'x' }] }, { 'x-request-id': 'req-provider-cut' });
    expect(r.status).toBe(200);
    const events = sseEvents(r.text);
    expect(events[0]!.json.choices[0].delta.content).toBe('partial');
    expect(events[events.length - 1]!.json.error.code).toBe('RTR_ERR_UPSTREAM_MIDSTREAM');
    const log = parseAccessLogText(await router.waitForLog((l) => l.includes('request_id=req-provider-cut')))!;
    expect(log.fields.error_origin).toBe('upstream');
  });

  it('a client that goes away: the provider call is aborted and the request logged as 499', async () => {
    lingerClosed = false;
    const s = await openStream(router.url, { model: 'm-openai', user: 'linger', messages: [{ role: 'user', content: 'x' }] }, { 'x-request-id': 'req-provider-gone' });
    expect(s.status).toBe(200);
    await within(s.firstEvent, 5000, 'first event');
    s.abort();
    const log = parseAccessLogText(await router.waitForLog((l) => l.includes('request_id=req-provider-gone')))!;
    expect(log.status).toBe(499);
    await within((async () => { while (!lingerClosed) await new Promise((res) => setTimeout(res, 20)); })(), 5000, 'provider connection closed');
  });

  it('a redirect is passed through, not followed', async () => {
    const n = a.calls.length;
    const r = await httpRequest(router.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: { model: 'm-openai', user: 'redirect', messages: [{ role: 'user', content: 'x' }] } });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe(`${a.url}/elsewhere`);
    expect(a.calls.length).toBe(n + 1);
  });

  it('no response headers within --upstream-timeout: 504', async () => {
    const r = await post('/v1/chat/completions', { model: 'm-openai', user: 'hang', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(504);
    expect(JSON.parse(r.text).error).toEqual({ message: 'external provider default/openai request failed', type: 'timeout_error', code: 'RTR_ERR_PROVIDER_TIMEOUT' });
  });

  it('TLS: an untrusted certificate fails (502); insecureSkipVerify accepts it', async () => {
    const n = b.calls.length;
    let r = await post('/v1/chat/completions', { model: 'm-untrusted', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(502);
    expect(errorCode(r.text)).toBe('RTR_ERR_PROVIDER_TRANSPORT');
    expect(b.calls.length).toBe(n);
    r = await post('/v1/chat/completions', { model: 'm-insecure', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(200);
    expect(b.calls.length).toBe(n + 1);
  });

  it('unreachable provider 502; missing provider 404; unresolved credential 503; unsupported path 400', async () => {
    let r = await post('/v1/chat/completions', { model: 'm-down', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(502);
    expect(JSON.parse(r.text).error.message).toBe('external provider default/down request failed');
    r = await post('/v1/chat/completions', { model: 'm-noprovider', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(404);
    expect(JSON.parse(r.text).error).toEqual({ message: "can't find external model provider: default/absent", type: 'not_found_error', code: 'RTR_ERR_PROVIDER_NOT_FOUND' });
    for (const m of ['m-nosecret', 'm-unlabelled']) {
      r = await post('/v1/chat/completions', { model: m, messages: [{ role: 'user', content: 'x' }] });
      expect(r.status, r.text).toBe(503);
      expect(errorCode(r.text)).toBe('RTR_ERR_PROVIDER_NOT_READY');
    }
    r = await post('/v1/embeddings', { model: 'm-openai', input: 'x' });
    expect(r.status, r.text).toBe(400);
    expect(JSON.parse(r.text).error.message).toBe('provider type "OpenAI" does not support path "/v1/embeddings"');
    r = await post('/v1/chat/completions', { model: 'm-anth', messages: [{ role: 'user', content: 'x' }] });
    expect(r.status, r.text).toBe(400);
    expect(JSON.parse(r.text).error.message).toBe('provider type "Anthropic" does not support path "/v1/chat/completions"');
  });
});

describe('fallback to the provider (route annotation kthena-router.volcano.sh/provider-fallback)', () => {
  const ask = (model: string, id: string) => post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { 'x-request-id': id });
  const fallbacks = async (reason: string) => sampleValue((await scrape(router.metricsPort)).samples, 'kthena_router_provider_fallbacks_total', { model_route: `default/r-${reason === 'no_ready_pod' ? 'fb-none' : 'fb-fail'}`, provider: 'default/plain', reason }) ?? 0;

  it('every pod failed: the provider answers instead of 503, with the client\'s body', async () => {
    const n = a.calls.length;
    const r = await ask('fb-fail', 'req-fb-1');
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('x-upstream')).toBe('a');
    expect(a.calls.length).toBe(n + 1);
    expect(lastCall(a).json().model).toBe('fb-fail');
    const log = parseAccessLogText(await router.waitForLog((l) => l.includes('request_id=req-fb-1')))!;
    expect(log.fields.backend_type).toBe('external_provider');
    expect(log.fields.backend_name).toBe('default/plain');
    expect(Number(log.fields.upstream_attempts)).toBeGreaterThan(1);
    expect(await fallbacks('all_pods_failed')).toBe(1);
  });

  it('no ready pod: the provider answers instead of 503', async () => {
    const r = await ask('fb-none', 'req-fb-2');
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('x-upstream')).toBe('a');
    expect(await fallbacks('no_ready_pod')).toBe(1);
  });

  it('healthy pods serve; without the annotation failures stay 503 and the provider is never called', async () => {
    const n = a.calls.length;
    let r = await ask('fb-ok', 'req-fb-3');
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('x-sim-pod')).toBe('ok-1');
    r = await ask('nofb-fail', 'req-fb-4');
    expect(r.status, r.text).toBe(503);
    expect(errorCode(r.text)).toBe('RTR_ERR_UPSTREAM_ALL_FAILED');
    expect(a.calls.length).toBe(n);
  });
});

describe('an egress proxy (HTTPS_PROXY, NO_PROXY)', () => {
  it('tunnels provider calls through the proxy with its credentials, the provider TLS still verified; NO_PROXY bypasses it', async () => {
    const connects: { target: string; auth: string }[] = [];
    const proxy = http.createServer((_req, res) => { res.writeHead(405); res.end(); });
    proxy.on('connect', (req, client: net.Socket, head: Buffer) => {
      connects.push({ target: req.url ?? '', auth: String(req.headers['proxy-authorization'] ?? '') });
      const [host, port] = (req.url ?? '').split(':');
      const up = net.connect(Number(port), host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    const caFile = path.join(dir, 'ca.pem.txt');
    const via = await startRouter({ dir, workers: 1, env: { NODE_EXTRA_CA_CERTS: caFile, HTTPS_PROXY: `http://pxuser:pxSECRETpass@127.0.0.1:${proxyPort}` } });
    const direct = await startRouter({ dir, workers: 1, env: { NODE_EXTRA_CA_CERTS: caFile, https_proxy: `127.0.0.1:${proxyPort}`, no_proxy: '127.0.0.1' } });
    try {
      await via.waitReady();
      await direct.waitReady();
      const body = { model: 'm-openai', messages: [{ role: 'user', content: 'x' }] };
      let r = await postJson(via.url, '/v1/chat/completions', body);
      expect(r.status, r.text).toBe(200);
      expect(connects.map((c) => c.target)).toEqual([`127.0.0.1:${a.port}`]);
      expect(connects[0]!.auth).toBe(`Basic ${Buffer.from('pxuser:pxSECRETpass').toString('base64')}`);
      expect(lastCall(a).headers.authorization).toBe(`Bearer ${SECRET}`);
      // Certificate verification still applies through the tunnel.
      r = await postJson(via.url, '/v1/chat/completions', { ...body, model: 'm-untrusted' });
      expect(r.status, r.text).toBe(502);
      r = await postJson(direct.url, '/v1/chat/completions', body);
      expect(r.status, r.text).toBe(200);
      expect(connects.length).toBe(2);
      const dumped = (await httpRequest(`http://127.0.0.1:${via.debugPort}`, { path: '/debug/config_dump/initial_config' })).text;
      expect(dumped).toContain(`127.0.0.1:${proxyPort}`);
      expect([...via.stderr, ...via.stdout, dumped].join('\n')).not.toContain('pxSECRETpass');
    } finally {
      await Promise.all([via.stop(), direct.stop()]);
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  }, 60_000);
});

describe('the fairness queue in front of a provider', () => {
  it('admits provider requests one at a time (FAIRNESS_MAX_CONCURRENT=1) and releases each when its response ended', async () => {
    const fair = await startRouter({ dir, workers: 2, env: { NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem.txt'), ENABLE_FAIRNESS_SCHEDULING: 'true', FAIRNESS_MAX_CONCURRENT: '1', FAIRNESS_QUEUE_TIMEOUT: '10s' } });
    try {
      await fair.waitReady();
      maxInFlight = 0;
      const rs = await Promise.all([1, 2, 3].map((i) => postJson(fair.url, '/v1/chat/completions', { model: 'm-openai', user: 'slow', messages: [{ role: 'user', content: `q${i}` }] })));
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(maxInFlight).toBe(1);
    } finally {
      await fair.stop();
    }
  }, 60_000);
});

describe('ExternalModelProvider status and secrecy', () => {
  const dump = async (p: string): Promise<{ status: number; text: string }> => httpRequest(`http://127.0.0.1:${router.debugPort}`, { path: `/debug/config_dump/${p}` });

  it('the debug dump shows the conditions and the credential reference, never its value', async () => {
    const r = await dump('externalmodelproviders');
    expect(r.status).toBe(200);
    const list = JSON.parse(r.text).externalmodelproviders as { name: string; credential?: object; status: { conditions: { type: string; status: string; reason: string }[] } }[];
    const by = Object.fromEntries(list.map((p) => [p.name, p]));
    const conds = (n: string) => by[n]!.status.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`);
    expect(conds('openai')).toEqual(['CredentialsResolved=True/CredentialResolved', 'Ready=True/Ready']);
    expect(conds('plain')).toEqual(['CredentialsResolved=True/CredentialNotRequired', 'Ready=True/Ready']);
    expect(conds('nosecret')).toEqual(['CredentialsResolved=False/CredentialNotFound', 'Ready=False/CredentialNotFound']);
    expect(conds('unlabelled')).toEqual(['CredentialsResolved=False/CredentialNotFound', 'Ready=False/CredentialNotFound']);
    expect(by.openai!.credential).toEqual({ secretName: 'cred', key: 'apiKey', resolved: true, reason: 'CredentialResolved' });
    const one = await dump('namespaces/default/externalmodelproviders/anth');
    expect(JSON.parse(one.text).spec.providerType).toBe('Anthropic');
    const snap = await dump('snapshot');
    expect(snap.text).toContain('<redacted>');
  });

  it('the credential appears in no log line, metric, debug dump or error body', async () => {
    const texts: string[] = [...router.stdout, ...router.stderr, (await scrape(router.metricsPort)).text];
    for (const p of ['modelroutes', 'modelservers', 'pods', 'problems', 'snapshot', 'initial_config', 'externalmodelproviders']) texts.push((await dump(p)).text);
    for (const m of ['m-openai', 'm-anth', 'm-nosecret', 'm-unlabelled']) {
      texts.push((await post('/v1/embeddings', { model: m, input: 'x' })).text);
    }
    const all = texts.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(B64(SECRET));
    expect(all).not.toContain(B64(`  ${SECRET}\n`));
  });
});
