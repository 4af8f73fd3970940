import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { startSimulatedPods } from '../../native-bench/src/sim/engine.js';
import type { SimFleet, SimPodSpec } from '../../native-bench/src/sim/engine.js';
import { loadFleetFile, runSimCommand, simSpecsFromArgs } from '../../native-bench/src/sim/cli.js';
import { eventually } from '../e2e/harness.js';

const BASE = 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B';
const FAST = { ttftMs: 2, itlMs: 1, outputTokens: 4 };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Set when the connection failed before or during the response. */
  error?: NodeJS.ErrnoException;
  /** The body ended without its terminating chunk. */
  truncated: boolean;
}

/** One request on a fresh connection (no agent), so no pooled socket outlives a test. */
function call(url: string, method = 'GET', body?: unknown): Promise<Reply> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(url, {
      method,
      agent: false,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = (truncated: boolean, error?: NodeJS.ErrnoException) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), truncated, error });
      res.on('end', () => done(false));
      res.on('aborted', () => done(true));
      res.on('error', (err) => done(true, err));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, headers: {}, text: '', truncated: true, error: err }));
    req.end(payload);
  });
}

function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      return e.slice('data: '.length);
    });
}

function pod(name: string, ip: string, extra: Partial<SimPodSpec> = {}): SimPodSpec {
  return { name, ip, port: 0, models: [BASE, 'lora-A', 'lora-B'], ...FAST, ...extra };
}

let fleet: SimFleet | null = null;

async function start(specs: SimPodSpec[], opts?: { requestLogSize?: number }): Promise<SimFleet> {
  fleet = await startSimulatedPods(specs, opts);
  return fleet;
}

afterEach(async () => {
  await fleet?.close();
  fleet = null;
});

const chat = (extra: Record<string, unknown> = {}) => ({
  model: BASE,
  messages: [{ role: 'user', content: 'Hello, how are you today?' }],
  ...extra,
});

describe('binding', () => {
  it('serves distinct 127.0.0.x addresses on one port and closes every socket', async () => {
    const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    const before = servers();
    const f = await start([pod('a', '127.0.0.31', { port: 18431 }), pod('b', '127.0.0.32', { port: 18431 })]);
    expect(servers()).toBe(before + 2);
    const [ra, rb] = await Promise.all([call('http://127.0.0.31:18431/health'), call('http://127.0.0.32:18431/health')]);
    expect(ra.headers['x-sim-pod']).toBe('a');
    expect(rb.headers['x-sim-pod']).toBe('b');
    expect(f.pod('b').url).toBe('http://127.0.0.32:18431');
    await f.close();
    // The listening handle finishes closing a loop turn after the close callback.
    for (let i = 0; i < 20 && servers() !== before; i++) await new Promise((r) => setTimeout(r, 5));
    expect(servers()).toBe(before);
    const after = await call('http://127.0.0.31:18431/health');
    expect(after.error?.code).toBe('ECONNREFUSED');
  });

  it('rejects bad specs and releases what it bound when an address is taken', async () => {
    await expect(startSimulatedPods([pod('a', 'localhost')])).rejects.toThrow(/ip must be an IPv4/);
    await expect(startSimulatedPods([pod('a', '127.0.0.33'), pod('a', '127.0.0.34')])).rejects.toThrow(/duplicate pod name/);
    await expect(startSimulatedPods([pod('a', '127.0.0.33', { models: [] })])).rejects.toThrow(/models/);
    const f = await start([pod('holder', '127.0.0.35', { port: 18435 })]);
    await expect(
      startSimulatedPods([pod('free', '127.0.0.36', { port: 18436 }), pod('clash', '127.0.0.35', { port: 18435 })]),
    ).rejects.toThrow(/clash.*127\.0\.0\.35:18435/);
    const reuse = await startSimulatedPods([pod('free-again', '127.0.0.36', { port: 18436 })]);
    await reuse.close();
    expect(() => f.pod('nope')).toThrow(/no simulated pod named "nope"/);
  });

  it('closes promptly with streams, hangs and queued requests in flight', async () => {
    const f = await start([pod('busy', '127.0.0.37', { ttftMs: 50, itlMs: 50, outputTokens: 1000, maxRunning: 1 })]);
    const p = f.pods[0];
    const streams = [call(`${p.url}/v1/chat/completions`, 'POST', chat({ stream: true })), call(`${p.url}/v1/chat/completions`, 'POST', chat({ stream: true }))];
    p.set({ hangMs: 60_000 });
    const hung = call(`${p.url}/v1/completions`, 'POST', { model: BASE, prompt: 'x' });
    // All three are in the pod (a fixed sleep lost that race on a loaded machine).
    await eventually(() => p.inflight === 3, 10_000, 'three requests in flight');
    const t0 = Date.now();
    await f.close();
    // Promptly: against a 60 s hang and 50 s streams, not a stopwatch.
    expect(Date.now() - t0).toBeLessThan(10_000);
    const replies = await Promise.all([...streams, hung]);
    for (const r of replies) expect(r.truncated).toBe(true);
    expect(p.inflight).toBe(0);
  });
});

describe('completions', () => {
  it('answers a non-streaming chat completion like vLLM', async () => {
    const f = await start([pod('p0', '127.0.0.41')]);
    const r = await call(`${f.pods[0].url}/v1/chat/completions`, 'POST', chat());
    expect(r.status).toBe(200);
    expect(r.headers['x-sim-pod']).toBe('p0');
    expect(r.headers['content-type']).toBe('application/json');
    const body = JSON.parse(r.text);
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: BASE,
      choices: [{ index: 0, message: { role: 'assistant' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: Math.ceil('Hello, how are you today?'.length / 4), completion_tokens: 4, total_tokens: 7 + 4 },
    });
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(typeof body.created).toBe('number');
    expect(body.choices[0].message.content.length).toBeGreaterThan(0);
  });

  it('caps text completions at max_tokens with finish_reason length and echoes a LoRA model', async () => {
    const f = await start([pod('p0', '127.0.0.42', { outputTokens: 10 })]);
    const r = await call(`${f.pods[0].url}/v1/completions`, 'POST', { model: 'lora-B', prompt: 'abcdefgh', max_tokens: 3 });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    expect(body).toMatchObject({
      object: 'text_completion',
      model: 'lora-B',
      choices: [{ index: 0, finish_reason: 'length' }],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
    expect(body.id).toMatch(/^cmpl-/);
  });

  it('streams one event per token, a usage-only chunk with include_usage, then [DONE]', async () => {
    const f = await start([pod('p0', '127.0.0.43', { ttftMs: 30, itlMs: 10, outputTokens: 5 })]);
    const t0 = Date.now();
    const r = await call(
      `${f.pods[0].url}/v1/chat/completions`,
      'POST',
      chat({ model: 'lora-A', stream: true, stream_options: { include_usage: true } }),
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30 + 4 * 10 - 5);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(r.headers['x-sim-pod']).toBe('p0');
    const events = sseEvents(r.text);
    // role chunk + 5 tokens + usage chunk + [DONE]
    expect(events).toHaveLength(8);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    for (const c of chunks.slice(0, -1)) {
      expect(c).toMatchObject({ object: 'chat.completion.chunk', model: 'lora-A', usage: null });
      expect(c.choices).toHaveLength(1);
    }
    expect(chunks[5].choices[0].finish_reason).toBe('stop');
    expect(chunks[4].choices[0].finish_reason).toBeNull();
    expect(chunks[6]).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } });
  });

  it('omits usage from chunks without include_usage and streams text completions', async () => {
    const f = await start([pod('p0', '127.0.0.44')]);
    const r = await call(`${f.pods[0].url}/v1/completions`, 'POST', { model: BASE, prompt: 'hi', stream: true });
    const events = sseEvents(r.text);
    expect(events).toHaveLength(4 + 1);
    expect(events.at(-1)).toBe('[DONE]');
    for (const e of events.slice(0, -1)) {
      const c = JSON.parse(e);
      expect(c.object).toBe('text_completion');
      expect(c).not.toHaveProperty('usage');
      expect(typeof c.choices[0].text).toBe('string');
    }
  });

  it('rejects unknown models and malformed bodies with vLLM error bodies', async () => {
    const f = await start([pod('p0', '127.0.0.45')]);
    const url = `${f.pods[0].url}/v1/chat/completions`;
    const unknown = await call(url, 'POST', chat({ model: 'gpt-4' }));
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.text)).toEqual({
      object: 'error',
      message: 'The model `gpt-4` does not exist.',
      type: 'BadRequestError',
      param: null,
      code: 400,
    });
    for (const bad of ['{"model":', '[1,2]', { model: BASE }, chat({ stream_options: { include_usage: true } }), chat({ max_tokens: 0 })]) {
      const r = await call(url, 'POST', bad);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text)).toMatchObject({ object: 'error', type: 'BadRequestError', code: 400 });
    }
    expect((await call(url, 'GET')).status).toBe(405);
    expect((await call(`${f.pods[0].url}/nope`)).status).toBe(404);
  });
});

describe('discovery endpoints', () => {
  it('lists the base model and LoRA adapters in /v1/models', async () => {
    const f = await start([pod('p0', '127.0.0.51')]);
    const r = await call(`${f.pods[0].url}/v1/models`);
    const body = JSON.parse(r.text);
    expect(body.object).toBe('list');
    expect(body.data.map((m: { id: string }) => m.id)).toEqual([BASE, 'lora-A', 'lora-B']);
    for (const m of body.data) expect(m).toMatchObject({ object: 'model', owned_by: 'vllm' });
    expect(body.data[1].parent).toBe(BASE);
  });

  it('exposes vLLM metric names with a model_name label, tracking running and waiting requests', async () => {
    const f = await start([pod('p0', '127.0.0.52', { ttftMs: 20, itlMs: 20, outputTokens: 50, maxRunning: 1 })]);
    const p = f.pods[0];
    const streams = [0, 1].map(() => call(`${p.url}/v1/chat/completions`, 'POST', chat({ stream: true })));
    await new Promise((r) => setTimeout(r, 80));
    const text = (await call(`${p.url}/metrics`)).text;
    const label = `model_name="${BASE}"`;
    expect(text).toContain(`vllm:num_requests_running{${label}} 1.0`);
    expect(text).toContain(`vllm:num_requests_waiting{${label}} 1.0`);
    expect(text).toMatch(new RegExp(`vllm:kv_cache_usage_perc\\{${label.replace(/[.]/g, '\\.')}\\} 0\\.\\d+`));
    expect(text).toContain('# TYPE vllm:time_to_first_token_seconds histogram');
    expect(text).toMatch(/vllm:time_to_first_token_seconds_count\{model_name="[^"]+"\} 1\.0/);
    expect(text).toContain(`vllm:time_to_first_token_seconds_bucket{${label},le="+Inf"} 1.0`);
    expect(text).toContain('# TYPE vllm:inter_token_latency_seconds histogram');
    expect(text).toMatch(/vllm:inter_token_latency_seconds_sum\{model_name="[^"]+"\} \d/);
    p.set({ metricsOverride: { waiting: 7, kvCacheUsage: 0.5 } });
    const forced = (await call(`${p.url}/metrics`)).text;
    expect(forced).toContain(`vllm:num_requests_waiting{${label}} 7.0`);
    expect(forced).toContain(`vllm:kv_cache_usage_perc{${label}} 0.5`);
    await f.close();
    await Promise.all(streams);
  });

  it('uses SGLang metric names for an SGLang pod', async () => {
    const f = await start([pod('s0', '127.0.0.53', { engine: 'SGLang' })]);
    await call(`${f.pods[0].url}/v1/chat/completions`, 'POST', chat());
    const text = (await call(`${f.pods[0].url}/metrics`)).text;
    for (const name of ['sglang:num_running_reqs', 'sglang:num_queue_reqs', 'sglang:token_usage']) {
      expect(text).toContain(`${name}{model_name="${BASE}"} `);
    }
    expect(text).toMatch(/sglang:time_to_first_token_seconds_count\{model_name="[^"]+"\} 1\.0/);
    expect(text).toMatch(/sglang:inter_token_latency_seconds_count\{model_name="[^"]+"\} 3\.0/);
    expect(text).not.toContain('vllm:');
    const models = JSON.parse((await call(`${f.pods[0].url}/v1/models`)).text);
    expect(models.data[0].owned_by).toBe('sglang');
  });

  it('records requests in a bounded ring, readable over HTTP', async () => {
    const f = await start([pod('p0', '127.0.0.54')], { requestLogSize: 3 });
    const p = f.pods[0];
    await call(`${p.url}/v1/completions?x=1`, 'POST', 'first');
    await call(`${p.url}/health`);
    await call(`${p.url}/v1/models`);
    await call(`${p.url}/metrics`);
    await call(`${p.url}/v1/completions?x=2`, 'POST', 'second');
    await call(`${p.url}/v1/chat/completions`, 'POST', chat());
    await call(`${p.url}/v1/completions`, 'POST', 'not json');
    // Probes (the scraper's GETs, health checks) are counted, not recorded.
    expect(p.probes).toBe(3);
    expect(p.requests.map((r) => r.path)).toEqual(['/v1/completions?x=2', '/v1/chat/completions', '/v1/completions']);
    expect(p.requests[1]).toMatchObject({ method: 'POST', body: chat(), headers: { 'content-type': 'application/json' } });
    expect(p.requests[2].body).toBe('not json');
    const viaHttp = JSON.parse((await call(`${p.url}/sim/requests`)).text);
    expect(viaHttp.pod).toBe('p0');
    expect(viaHttp.requests.map((r: { seq: number }) => r.seq)).toEqual([2, 3, 4]);
    await call(`${p.url}/sim/requests`, 'DELETE');
    expect(p.requests).toEqual([]);
  });
});

describe('failure controls', () => {
  it('answers with failStatus, set directly or over /sim/control, and recovers', async () => {
    const f = await start([pod('p0', '127.0.0.61', { failStatus: 500 })]);
    const p = f.pods[0];
    const url = `${p.url}/v1/chat/completions`;
    const r1 = await call(url, 'POST', chat());
    expect(r1.status).toBe(500);
    expect(JSON.parse(r1.text)).toMatchObject({ object: 'error', type: 'InternalServerError', code: 500 });
    expect(r1.headers['x-sim-pod']).toBe('p0');
    const ctl = await call(`${p.url}/sim/control`, 'POST', { failStatus: 503 });
    expect(JSON.parse(ctl.text).control.failStatus).toBe(503);
    expect((await call(url, 'POST', chat({ stream: true }))).status).toBe(503);
    p.set({ failStatus: null });
    expect((await call(url, 'POST', chat())).status).toBe(200);
    expect((await call(`${p.url}/health`)).status).toBe(200);
    const bad = await call(`${p.url}/sim/control`, 'POST', { failstatus: 1 });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).message).toMatch(/unknown control field "failstatus"/);
    expect(() => p.set({ outputTokens: 0 })).toThrow(TypeError);
  });

  it('resets the connection without answering when resetBeforeHeaders is set', async () => {
    const f = await start([pod('p0', '127.0.0.62')]);
    const p = f.pods[0];
    await call(`${p.url}/sim/control`, 'POST', { resetBeforeHeaders: true });
    const r = await call(`${p.url}/v1/chat/completions`, 'POST', chat());
    expect(r.status).toBe(0);
    expect(r.error?.code).toBe('ECONNRESET');
    expect(p.requests.at(-1)?.path).toBe('/v1/chat/completions');
    expect(p.inflight).toBe(0);
    p.set({ resetBeforeHeaders: false });
    expect((await call(`${p.url}/v1/chat/completions`, 'POST', chat())).status).toBe(200);
  });

  it('cuts the next stream after dieMidStreamAfter events, once', async () => {
    const f = await start([pod('p0', '127.0.0.63', { outputTokens: 8 })]);
    const p = f.pods[0];
    p.set({ dieMidStreamAfter: 3 });
    const r = await call(`${p.url}/v1/chat/completions`, 'POST', chat({ stream: true }));
    expect(r.status).toBe(200);
    expect(r.truncated).toBe(true);
    const events = sseEvents(r.text);
    expect(events).toHaveLength(3);
    expect(events).not.toContain('[DONE]');
    expect(p.control.dieMidStreamAfter).toBeNull();
    const again = await call(`${p.url}/v1/chat/completions`, 'POST', chat({ stream: true }));
    expect(again.truncated).toBe(false);
    expect(sseEvents(again.text).at(-1)).toBe('[DONE]');
    expect(p.inflight).toBe(0);
  });

  it('delays the headers by hangMs', async () => {
    const f = await start([pod('p0', '127.0.0.64', { ttftMs: 0, itlMs: 0, outputTokens: 1 })]);
    const p = f.pods[0];
    p.set({ hangMs: 150 });
    const t0 = Date.now();
    const r = await call(`${p.url}/v1/chat/completions`, 'POST', chat());
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});

describe('cli and demo fleet', () => {
  const examples = fileURLToPath(new URL('../../examples/', import.meta.url));

  it('builds pods on consecutive addresses from flags', async () => {
    const { specs } = await simSpecsFromArgs(['--pods', '3', '--base-ip', '127.0.0.254', '--port', '0', '--lora', 'a, b']);
    expect(specs.map((s) => s.ip)).toEqual(['127.0.0.254', '127.0.0.255', '127.0.1.0']);
    expect(specs[0].models).toEqual([BASE, 'a', 'b']);
    await expect(simSpecsFromArgs(['--engine', 'trt'])).rejects.toThrow(/--engine/);
    await expect(simSpecsFromArgs(['--bogus'])).rejects.toThrow();
  });

  it('starts and prints a fleet without installing signal handlers when asked', async () => {
    let out = '';
    const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true }, handleSignals: false };
    fleet = await runSimCommand(['--pods', '2', '--base-ip', '127.0.0.71', '--port', '0', '--json'], io);
    const printed = JSON.parse(out);
    expect(printed.pods.map((p: { ip: string }) => p.ip)).toEqual(['127.0.0.71', '127.0.0.72']);
    expect(printed.pods[0].port).toBe(fleet?.pods[0].port);
    expect(printed.pods[0].port).toBeGreaterThan(0);
  });

  it('matches the example Pod manifests, ModelServer and LoRA route', async () => {
    const specs = await loadFleetFile(`${examples}demo-fleet.json`);
    const docs = (name: string) =>
      readFile(`${examples}${name}`, 'utf8').then((t) => parseAllDocuments(t).map((d) => d.toJS()));
    const pods = await docs('pods.yaml');
    const [server] = await docs('model-server.yaml');
    const routes = await docs('model-routes.yaml');
    expect(pods).toHaveLength(3);
    expect(specs.map((s) => [s.name, s.ip, s.port])).toEqual(
      pods.map((p) => [p.metadata.name, p.status.podIP, server.spec.workloadPort.port]),
    );
    for (const p of pods) {
      expect(p.metadata.labels).toMatchObject(server.spec.workloadSelector.matchLabels);
      expect(p.status.conditions).toContainEqual({ type: 'Ready', status: 'True' });
    }
    const adapters = routes.flatMap((r) => r.spec.loraAdapters ?? []);
    for (const s of specs) expect(s.models).toEqual([server.spec.model, ...adapters]);
    // The demo runs the engine model, not fixed delays.
    for (const s of specs) expect(s.model).toEqual({});
    expect(routes.map((r) => r.spec.modelName).filter(Boolean)).toEqual(['deepseek-r1']);
  });
});
