/**
 * Routing end to end: the real CLI over a directory of Kthena manifests, simulated vLLM pods on
 * 127.0.10.x. One router for the whole file; every test uses its own model names so tests never
 * depend on each other's traffic.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedRequest, SimFleet, SimPod } from '../../native-bench/src/sim/types.js';
import {
  chat, cleanup, docs, freePort, modelRouteYaml, podYaml, postJson, rawRequest, serverYaml, spread, sseEvents, startPods,
  startRouter, tempDir, writeFile, type ModelRouteSpec, type RouterProc,
  LEAST_REQUEST_CONFIG,
} from './harness.js';

const IP = (n: number): string => `127.0.10.${n}`;

/** ModelServers: name -> selector label, spec.model and pods (name, ip). */
const SERVERS = {
  'chat-ms': { app: 'chat', model: 'org/chat-base', pods: [['chat-1', IP(1)], ['chat-2', IP(2)], ['chat-3', IP(3)]] },
  'premium-ms': { app: 'premium', model: 'org/premium', pods: [['premium-1', IP(4)]] },
  'basic-ms': { app: 'basic', model: 'org/basic', pods: [['basic-1', IP(5)]] },
  'extra-ms': { app: 'extra', model: 'org/extra', pods: [['extra-1', IP(6)]] },
  'w70-ms': { app: 'w70', model: 'org/weighted', pods: [['w70-1', IP(7)]] },
  'w30-ms': { app: 'w30', model: 'org/weighted', pods: [['w30-1', IP(8)]] },
  'lora-ms': { app: 'lora', model: 'org/lora-base', pods: [['lora-1', IP(9)]] },
} as const;

const ROUTES: Record<string, ModelRouteSpec> = {
  'chat': { modelName: 'chat-model', rules: [{ targets: [{ server: 'chat-ms' }] }] },
  // Kthena's test/e2e/router/testdata/ModelRouteMultiModels.yaml, with our server names.
  'deepseek-multi-models': {
    modelName: 'deepseek-multi-models',
    rules: [
      { name: 'premium', match: { headers: { 'user-type': { exact: 'premium' } } }, targets: [{ server: 'premium-ms' }] },
      { name: 'default', targets: [{ server: 'basic-ms' }] },
    ],
  },
  'hdr': {
    modelName: 'hdr-model',
    rules: [
      { name: 'prefix', match: { headers: { 'x-tenant': { prefix: 'team-' } } }, targets: [{ server: 'premium-ms' }] },
      { name: 'regex', match: { headers: { 'x-client': { regex: '^sdk-[0-9]+$' } } }, targets: [{ server: 'extra-ms' }] },
      { name: 'and', match: { headers: { 'x-env': { exact: 'prod' }, 'x-region': { exact: 'eu' } } }, targets: [{ server: 'premium-ms' }] },
      { name: 'default', targets: [{ server: 'basic-ms' }] },
    ],
  },
  'uri': {
    modelName: 'uri-model',
    rules: [
      { name: 'completions', match: { uri: { exact: '/v1/completions' } }, targets: [{ server: 'premium-ms' }] },
      { name: 'chat-prefix', match: { uri: { prefix: '/v1/chat/' } }, targets: [{ server: 'extra-ms' }] },
      { name: 'default', targets: [{ server: 'basic-ms' }] },
    ],
  },
  'weighted': { modelName: 'weighted-model', rules: [{ targets: [{ server: 'w70-ms', weight: 70 }, { server: 'w30-ms', weight: 30 }] }] },
  // Kthena's ModelRouteLora.yaml shape.
  'lora': { loraAdapters: ['lora-A', 'lora-B'], rules: [{ name: 'lora-route', targets: [{ server: 'lora-ms' }] }] },
  // A modelName match is tried before any LoRA adapter of the same name.
  'shadow-by-lora': { loraAdapters: ['shadowed'], rules: [{ targets: [{ server: 'lora-ms' }] }] },
  'shadow-by-name': { modelName: 'shadowed', rules: [{ targets: [{ server: 'basic-ms' }] }] },
  // Same modelName: the oldest creationTimestamp wins, whatever the name or file order.
  'aaa-prec-newer': { modelName: 'prec-model', creationTimestamp: '2025-06-01T00:00:00Z', rules: [{ targets: [{ server: 'basic-ms' }] }] },
  'mmm-prec-newest': { modelName: 'prec-model', creationTimestamp: '2026-01-01T00:00:00Z', rules: [{ targets: [{ server: 'extra-ms' }] }] },
  'zzz-prec-older': { modelName: 'prec-model', creationTimestamp: '2024-01-01T00:00:00Z', rules: [{ targets: [{ server: 'premium-ms' }] }] },
  // Routes bound to a Gateway never match with Gateway API off.
  'gw-bound': { modelName: 'gw-model', parentRefs: [{ name: 'default', namespace: 'kthena-system' }], rules: [{ targets: [{ server: 'premium-ms' }] }] },
  'gw-bound-older': {
    modelName: 'gw-mixed', creationTimestamp: '2020-01-01T00:00:00Z', parentRefs: [{ name: 'default', namespace: 'kthena-system' }],
    rules: [{ targets: [{ server: 'premium-ms' }] }],
  },
  'gw-free-newer': { modelName: 'gw-mixed', creationTimestamp: '2025-01-01T00:00:00Z', rules: [{ targets: [{ server: 'basic-ms' }] }] },
};

let dir: string;
let fleet: SimFleet;
let router: RouterProc;
let url: string;

function allPods(): SimPod[] {
  return fleet.pods;
}

/** The request a pod recorded whose first message (or prompt) is `marker`; fails if none or several. */
function recorded(marker: string): { pod: SimPod; req: RecordedRequest } {
  const hits: { pod: SimPod; req: RecordedRequest }[] = [];
  for (const pod of allPods()) {
    for (const req of pod.requests) {
      const b = req.body as { messages?: { content?: unknown }[]; prompt?: unknown } | undefined;
      if (b && typeof b === 'object' && (b.messages?.[0]?.content === marker || b.prompt === marker)) hits.push({ pod, req });
    }
  }
  expect(hits.map((h) => h.pod.name), `pods that recorded ${marker}`).toHaveLength(1);
  return hits[0]!;
}

const marker = (): string => `m-${randomUUID()}`;
const msg = (content: string): { role: string; content: string }[] => [{ role: 'user', content }];

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-routing-');
  const port = await freePort();
  const specs = Object.values(SERVERS).flatMap((s) => s.pods.map(([name, ip]) => ({
    name, ip, port,
    models: s.model === 'org/lora-base' ? ['org/lora-base', 'lora-A', 'lora-B', 'shadowed'] : [s.model],
  })));
  fleet = await startPods(specs);
  // Pods and servers in one multi-document file, each route in its own file (file order must not matter).
  const serverDocs = Object.entries(SERVERS).flatMap(([name, s]) => [
    serverYaml(name, { port, model: s.model, labels: { app: s.app } }),
    ...s.pods.map(([pod, ip]) => podYaml(pod, ip, { labels: { app: s.app } })),
  ]);
  await writeFile(path.join(dir, 'servers.yaml'), docs(...serverDocs));
  for (const [name, spec] of Object.entries(ROUTES)) {
    await writeFile(path.join(dir, `route-${name}.yaml`), docs(modelRouteYaml(name, spec)));
  }
  router = await startRouter({ dir, workers: 2, args: ['--router-config', LEAST_REQUEST_CONFIG] });
  await router.waitReady();
  url = router.url;
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('chat completions', () => {
  it('non-streaming chat reaches a pod of the route with model rewritten to ModelServer spec.model, and usage passes through', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m), max_tokens: 7, temperature: 0.5 });
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/application\/json/);
    const body = r.json();
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0].message.role).toBe('assistant');
    expect(body.choices[0].message.content.length).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBe(7);
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + 7);

    const { pod, req } = recorded(m);
    expect(pod.name).toMatch(/^chat-[123]$/);
    expect(r.headers.get('x-sim-pod')).toBe(pod.name);
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v1/chat/completions');
    const up = req.body as Record<string, unknown>;
    expect(up.model).toBe('org/chat-base');
    expect(up.max_tokens).toBe(7);
    expect(up.temperature).toBe(0.5);
    expect(up.messages).toEqual(msg(m));
    expect(up.stream).toBeUndefined();
    expect(up.stream_options).toBeUndefined();
  });

  it('streaming chat delivers SSE events ending in [DONE], without the router-injected usage-only chunk', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m), stream: true, max_tokens: 4 });
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseEvents(r.text);
    expect(events.at(-1)!.data).toBe('[DONE]');
    expect(events.filter((e) => e.data === '[DONE]')).toHaveLength(1);
    const chunks = events.filter((e) => e.json !== null).map((e) => e.json);
    // role chunk + one chunk per token (max_tokens 4); nothing else.
    expect(chunks).toHaveLength(5);
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.choices).toHaveLength(1);
      expect(c.usage ?? null).toBeNull();
    }
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('').length).toBeGreaterThan(0);
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');

    // The router asked the engine for usage (to count tokens) and hid the answer from this client.
    const { req } = recorded(m);
    const up = req.body as Record<string, unknown>;
    expect(up.model).toBe('org/chat-base');
    expect(up.stream).toBe(true);
    expect(up.stream_options).toEqual({ include_usage: true });
  });

  it('streaming chat is forwarded incrementally: the first event reaches the client while the pod is still generating', async () => {
    const pods = SERVERS['chat-ms'].pods.map(([name]) => fleet.pod(name));
    for (const p of pods) p.set({ itlMs: 300 });
    try {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'chat-model', messages: msg(marker()), stream: true, max_tokens: 5 }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(first.done).toBe(false);
      expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
      // ~1.2 s of generation remain: a buffering proxy would deliver nothing until the pod finished.
      expect(pods.reduce((n, p) => n + p.inflight, 0)).toBe(1);
      let rest = '';
      for (;;) {
        const c = await reader.read();
        if (c.done) break;
        rest += new TextDecoder().decode(c.value);
      }
      expect(rest.trimEnd().endsWith('data: [DONE]')).toBe(true);
    } finally {
      for (const p of pods) p.set({ itlMs: 5 });
    }
  });

  it('streaming chat shows the usage-only chunk to a client that asked for stream_options.include_usage', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m), stream: true, max_tokens: 3, stream_options: { include_usage: true } });
    expect(r.status, r.text).toBe(200);
    const events = sseEvents(r.text);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.filter((e) => e.json !== null).map((e) => e.json);
    const usageOnly = chunks.filter((c) => Array.isArray(c.choices) && c.choices.length === 0);
    expect(usageOnly).toHaveLength(1);
    expect(chunks.at(-1)).toBe(usageOnly[0]);
    expect(usageOnly[0].usage.completion_tokens).toBe(3);
    expect(usageOnly[0].usage.prompt_tokens).toBeGreaterThan(0);
    expect(usageOnly[0].usage.total_tokens).toBe(usageOnly[0].usage.prompt_tokens + 3);
    const { req } = recorded(m);
    expect((req.body as Record<string, unknown>).stream_options).toEqual({ include_usage: true });
  });

  it('streaming chat with stream_options.include_usage=false still hides the usage chunk the router asked for', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m), stream: true, max_tokens: 2, stream_options: { include_usage: false } });
    expect(r.status, r.text).toBe(200);
    const events = sseEvents(r.text);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.filter((e) => e.json !== null).map((e) => e.json);
    expect(chunks.filter((c) => Array.isArray(c.choices) && c.choices.length === 0)).toHaveLength(0);
    expect(chunks.every((c) => (c.usage ?? null) === null)).toBe(true);
    const { req } = recorded(m);
    expect((req.body as { stream_options: { include_usage: unknown } }).stream_options.include_usage).toBe(true);
  });
});

describe('official openai npm client', () => {
  const client = (): OpenAI => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 15_000 });

  it('streams a chat completion through the router', async () => {
    const m = marker();
    const stream = await client().chat.completions.create({ model: 'chat-model', messages: [{ role: 'user', content: m }], stream: true, max_tokens: 5 });
    let content = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.choices).toHaveLength(1);
      content += chunk.choices[0]!.delta.content ?? '';
      if (chunk.choices[0]!.finish_reason) finish = chunk.choices[0]!.finish_reason;
    }
    expect(chunks).toBe(6);
    expect(content.length).toBeGreaterThan(0);
    expect(finish).toBe('length');
    const { req } = recorded(m);
    expect(req.headers.authorization).toBe('Bearer x');
    expect((req.body as Record<string, unknown>).model).toBe('org/chat-base');
  });

  it('streams with include_usage and receives the usage chunk', async () => {
    const stream = await client().chat.completions.create({
      model: 'chat-model', messages: [{ role: 'user', content: marker() }], stream: true, max_tokens: 3, stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).not.toBeNull();
    expect(usage!.completion_tokens).toBe(3);
  });

  it('non-streaming chat completion and text completion', async () => {
    const c = await client().chat.completions.create({ model: 'chat-model', messages: [{ role: 'user', content: marker() }], max_tokens: 6 });
    expect(c.object).toBe('chat.completion');
    expect(c.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(c.usage!.completion_tokens).toBe(6);
    const t = await client().completions.create({ model: 'chat-model', prompt: marker(), max_tokens: 2 });
    expect(t.object).toBe('text_completion');
    expect(t.usage!.completion_tokens).toBe(2);
  });

  it('lists models', async () => {
    const page = await client().models.list();
    const ids = page.data.map((d) => d.id);
    expect(ids).toContain('chat-model');
    expect(ids).toContain('lora-A');
  });
});

describe('completions and models', () => {
  it('/v1/completions with a prompt is routed and rewritten like chat', async () => {
    const m = marker();
    const r = await postJson(url, '/v1/completions', { model: 'chat-model', prompt: m, max_tokens: 3 });
    expect(r.status, r.text).toBe(200);
    const body = r.json();
    expect(body.object).toBe('text_completion');
    expect(typeof body.choices[0].text).toBe('string');
    expect(body.usage.completion_tokens).toBe(3);
    const { req } = recorded(m);
    expect(req.path).toBe('/v1/completions');
    expect((req.body as Record<string, unknown>).model).toBe('org/chat-base');
    expect((req.body as Record<string, unknown>).prompt).toBe(m);
  });

  it('streaming /v1/completions ends with [DONE]', async () => {
    const r = await postJson(url, '/v1/completions', { model: 'chat-model', prompt: marker(), max_tokens: 3, stream: true });
    expect(r.status, r.text).toBe(200);
    const events = sseEvents(r.text);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.filter((e) => e.json !== null).map((e) => e.json);
    expect(chunks).toHaveLength(3);
    expect(chunks.every((c) => c.object === 'text_completion' && c.choices.length === 1)).toBe(true);
  });

  it('GET /v1/models lists every modelName and LoRA adapter once, sorted', async () => {
    const res = await fetch(`${url}/v1/models`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: { id: string; object: string; created: number; owned_by: string }[] };
    expect(body.object).toBe('list');
    const expected = [...new Set(Object.values(ROUTES).flatMap((r) => [...(r.modelName ? [r.modelName] : []), ...(r.loraAdapters ?? [])]))].sort();
    expect(body.data.map((d) => d.id)).toEqual(expected);
    for (const d of body.data) expect(d).toEqual({ id: d.id, object: 'model', created: 0, owned_by: 'kthena' });
  });
});

describe('rule matching', () => {
  it('ModelRouteMultiModels: user-type: premium goes to the premium ModelServer, everything else to the default rule', async () => {
    const prem = await chat(url, { model: 'deepseek-multi-models', messages: msg('hi') }, { 'user-type': 'premium' });
    expect(prem.status, prem.text).toBe(200);
    expect(prem.headers.get('x-sim-pod')).toBe('premium-1');
    expect(prem.json().model).toBe('org/premium');

    for (const h of [{}, { 'user-type': 'basic' }, { 'user-type': 'premium-plus' }, { 'user-type': 'Premium' }, { 'x-user-type': 'premium' }] as Record<string, string>[]) {
      const r = await chat(url, { model: 'deepseek-multi-models', messages: msg('hi') }, h);
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-sim-pod'), JSON.stringify(h)).toBe('basic-1');
    }
  });

  it('header names match case-insensitively', async () => {
    const r = await chat(url, { model: 'deepseek-multi-models', messages: msg('hi') }, { 'User-Type': 'premium' });
    expect(r.headers.get('x-sim-pod')).toBe('premium-1');
  });

  it('prefix header match', async () => {
    const hit = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-tenant': 'team-blue' });
    expect(hit.headers.get('x-sim-pod')).toBe('premium-1');
    const miss = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-tenant': 'ateam-blue' });
    expect(miss.headers.get('x-sim-pod')).toBe('basic-1');
  });

  it('regex header match (RE2 semantics, anchors honoured)', async () => {
    const hit = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-client': 'sdk-42' });
    expect(hit.headers.get('x-sim-pod')).toBe('extra-1');
    const miss = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-client': 'sdk-42b' });
    expect(miss.headers.get('x-sim-pod')).toBe('basic-1');
  });

  it('all header conditions of a rule must match (AND), else the next rule is tried', async () => {
    const both = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-env': 'prod', 'x-region': 'eu' });
    expect(both.headers.get('x-sim-pod')).toBe('premium-1');
    const one = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-env': 'prod' });
    expect(one.headers.get('x-sim-pod')).toBe('basic-1');
  });

  it('rules are evaluated in order: the first matching rule wins', async () => {
    // Matches both the prefix rule (premium) and the regex rule (extra): the prefix rule is first.
    const r = await chat(url, { model: 'hdr-model', messages: msg('hi') }, { 'x-tenant': 'team-x', 'x-client': 'sdk-1' });
    expect(r.headers.get('x-sim-pod')).toBe('premium-1');
  });

  it('uri match on the request path (exact and prefix), query string ignored', async () => {
    const comp = await postJson(url, '/v1/completions?debug=1', { model: 'uri-model', prompt: 'hi' });
    expect(comp.status, comp.text).toBe(200);
    expect(comp.headers.get('x-sim-pod')).toBe('premium-1');
    const ch = await chat(url, { model: 'uri-model', messages: msg('hi') });
    expect(ch.headers.get('x-sim-pod')).toBe('extra-1');
  });

  it('weights 70/30 split traffic about 70/30', async () => {
    const n = 400;
    const counts = await spread(url, { model: 'weighted-model', messages: msg('w'), max_tokens: 1 }, n, { concurrency: 16 });
    expect(Object.keys(counts).sort()).toEqual(['w30-1', 'w70-1']);
    const share = counts['w70-1']! / n;
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.8);
  });

  it('a LoRA adapter name routes to the route\'s ModelServer and is not rewritten to spec.model', async () => {
    for (const adapter of ['lora-A', 'lora-B']) {
      const m = marker();
      const r = await chat(url, { model: adapter, messages: msg(m) });
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('lora-1');
      const { req } = recorded(m);
      expect((req.body as Record<string, unknown>).model).toBe(adapter);
      expect(r.json().model).toBe(adapter);
    }
  });

  it('a modelName match takes precedence over a LoRA adapter of the same name', async () => {
    const m = marker();
    const r = await chat(url, { model: 'shadowed', messages: msg(m) });
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('x-sim-pod')).toBe('basic-1');
    expect((recorded(m).req.body as Record<string, unknown>).model).toBe('org/basic');
  });

  it('of several ModelRoutes with the same modelName the oldest (creationTimestamp) wins', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await chat(url, { model: 'prec-model', messages: msg('hi') });
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('premium-1');
    }
  });

  it('a route with parentRefs never matches with Gateway API off', async () => {
    const r = await chat(url, { model: 'gw-model', messages: msg('hi') });
    expect(r.status).toBe(404);
    expect(r.json()).toEqual({ error: { message: 'route not found', type: 'not_found_error', code: 'RTR_ERR_NO_ROUTE' } });
    // An older Gateway-bound route is skipped; the next candidate serves.
    const mixed = await chat(url, { model: 'gw-mixed', messages: msg('hi') });
    expect(mixed.status, mixed.text).toBe(200);
    expect(mixed.headers.get('x-sim-pod')).toBe('basic-1');
  });
});

describe('request forwarding', () => {
  it('generates an x-request-id when the client sent none and forwards it to the pod', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m) });
    expect(r.status).toBe(200);
    const id = recorded(m).req.headers['x-request-id'];
    expect(typeof id).toBe('string');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('preserves a client x-request-id exactly', async () => {
    const m = marker();
    const id = `client-id-${randomUUID()}`;
    const r = await chat(url, { model: 'chat-model', messages: msg(m) }, { 'x-request-id': id });
    expect(r.status).toBe(200);
    expect(recorded(m).req.headers['x-request-id']).toBe(id);
  });

  it('replaces an empty x-request-id with a generated one (a single value upstream)', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m) }, { 'x-request-id': '' });
    expect(r.status).toBe(200);
    expect(recorded(m).req.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('forwards client headers (authorization, custom headers, original Host)', async () => {
    const m = marker();
    const r = await chat(url, { model: 'chat-model', messages: msg(m) }, { authorization: 'Bearer sk-secret', 'x-custom-thing': 'v1', 'user-agent': 'e2e-agent/1.0' });
    expect(r.status).toBe(200);
    const h = recorded(m).req.headers;
    expect(h.authorization).toBe('Bearer sk-secret');
    expect(h['x-custom-thing']).toBe('v1');
    expect(h['user-agent']).toBe('e2e-agent/1.0');
    expect(h['content-type']).toBe('application/json');
    expect(h.host).toBe(`127.0.0.1:${router.port}`);
  });

  it('does not forward hop-by-hop headers', async () => {
    const m = marker();
    const body = JSON.stringify({ model: 'chat-model', messages: msg(m) });
    const r = await rawRequest(url, {
      path: '/v1/chat/completions',
      headers: {
        'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)),
        connection: 'keep-alive', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-connection': 'keep-alive',
        'proxy-authorization': 'Basic cHJveHk6c2VjcmV0', 'x-end-to-end': 'kept',
      },
      chunks: [body],
    });
    expect(r.status, r.text).toBe(200);
    const h = recorded(m).req.headers;
    expect(h['x-end-to-end']).toBe('kept');
    expect(h['keep-alive']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['proxy-connection']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    // The upstream connection is the router's own: whatever it says, it is not the client's value.
    expect(h.connection === undefined || h.connection === 'keep-alive' || h.connection === 'close').toBe(true);
    // The body was re-framed for the upstream (model rewritten): its length is the new body's.
    expect(Number(h['content-length'])).toBe(Buffer.byteLength(JSON.stringify(recorded(m).req.body)));
  });

  it('does not forward headers the client named in Connection (RFC 9110 §7.6.1)', async () => {
    const m = marker();
    const body = JSON.stringify({ model: 'chat-model', messages: msg(m) });
    const r = await rawRequest(url, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'keep-alive, x-hop-private', 'x-hop-private': 'secret' },
      chunks: [body],
    });
    expect(r.status, r.text).toBe(200);
    expect(recorded(m).req.headers['x-hop-private']).toBeUndefined();
  });

  it('rewrites only the top-level model: nested "model" keys and message text are forwarded untouched', async () => {
    const m = marker();
    const body = {
      metadata: { model: 'chat-model', note: '"model": "chat-model"' },
      messages: [{ role: 'user', content: m }, { role: 'assistant', content: '{"model":"chat-model"}' }],
      model: 'chat-model',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { model: { type: 'string' } } } } }],
    };
    const r = await chat(url, body);
    expect(r.status, r.text).toBe(200);
    expect(recorded(m).req.body).toEqual({ ...body, model: 'org/chat-base' });
  });

  it('response headers are the engine\'s plus only the documented uWS ones (docs/compat.md #13)', async () => {
    const r = await chat(url, { model: 'chat-model', messages: msg(marker()) });
    expect(r.status).toBe(200);
    const names = [...r.headers.keys()];
    // What the simulated engine sends, plus Date (every HTTP/1.1 server writes one), framing, and
    // the `uWebSockets: 20` mark compiled into the pinned native binary (documented difference).
    expect(r.headers.get('uwebsockets')).toBe('20');
    const allowed = new Set(['content-type', 'content-length', 'x-sim-pod', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'uwebsockets']);
    expect(names.filter((n) => !allowed.has(n))).toEqual([]);
    expect(r.headers.get('x-sim-pod')).toMatch(/^chat-/);
  });

  it('forwards the query string verbatim', async () => {
    const m = marker();
    const r = await postJson(url, '/v1/chat/completions?api-version=2024-06-01&q=a%20b&flag', { model: 'chat-model', messages: msg(m) });
    expect(r.status, r.text).toBe(200);
    expect(recorded(m).req.path).toBe('/v1/chat/completions?api-version=2024-06-01&q=a%20b&flag');
  });

  it('spreads concurrent load over the pods of a ModelServer (least in-flight)', async () => {
    const pods = SERVERS['chat-ms'].pods.map(([name]) => fleet.pod(name));
    for (const p of pods) { p.set({ ttftMs: 500 }); p.clearRequests(); }
    try {
      const results = await Promise.all(Array.from({ length: 30 }, () =>
        chat(url, { model: 'chat-model', messages: msg('spread'), stream: true, max_tokens: 2 })));
      expect(results.map((r) => r.status)).toEqual(Array(30).fill(200));
      for (const r of results) expect(sseEvents(r.text).at(-1)!.data).toBe('[DONE]');
      const counts = pods.map((p) => p.requests.length);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
      // Least in-flight gives 10 each; a wide margin keeps this deterministic.
      for (const c of counts) expect(c, `per-pod counts ${counts.join('/')}`).toBeGreaterThanOrEqual(5);
    } finally {
      for (const p of pods) p.set({ ttftMs: 20 });
    }
  });
});
