/**
 * The error catalogue end to end (docs/errors.md): every client-visible failure of the request
 * path, its status, body `{"error":{"message","type","code"}}`, and the router still serving
 * afterwards. Pods are simulated on 127.0.12.x; one router (`--max-body-bytes 4096`) for the file.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import {
  chat, cleanup, docs, freePort, modelRouteYaml, podYaml, postJson, rawRequest, serverYaml, startPods, startRouter, tempDir,
  writeFile, type RouterProc,
} from './harness.js';

const IP = (n: number): string => `127.0.12.${n}`;
const MAX_BODY = 4096;

let dir: string;
let fleet: SimFleet;
let router: RouterProc;
let url: string;

const good = { model: 'ok-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 };

function expectError(r: { status: number; headers: Headers | Record<string, unknown>; text: string }, status: number, code: string, type: string, message?: string | RegExp): void {
  expect(r.status, r.text).toBe(status);
  const ct = r.headers instanceof Headers ? r.headers.get('content-type') : r.headers['content-type'];
  expect(ct).toMatch(/^application\/json/);
  const body = JSON.parse(r.text) as { error: { message: string; type: string; code: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'type']);
  expect(body.error.code).toBe(code);
  expect(body.error.type).toBe(type);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  if (typeof message === 'string') expect(body.error.message).toBe(message);
  else if (message) expect(body.error.message).toMatch(message);
}

async function expectStillServing(): Promise<void> {
  const r = await chat(url, good);
  expect(r.status, r.text).toBe(200);
  expect(r.headers.get('x-sim-pod')).toBe('ok-1');
}

const post = (body: string, headers: Record<string, string> = {}, p = '/v1/chat/completions') =>
  fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
    .then(async (res) => ({ status: res.status, headers: res.headers, text: await res.text() }));

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-errors-');
  const port = await freePort();
  const sim = (name: string, ip: string, model: string, failStatus?: number) =>
    ({ name, ip, port, models: [model], ttftMs: 0, itlMs: 0, outputTokens: 2, ...(failStatus ? { failStatus } : {}) });
  fleet = await startPods([
    sim('ok-1', IP(1), 'org/ok'),
    sim('fail-1', IP(3), 'org/fail', 500),
    sim('fail-2', IP(4), 'org/fail', 500),
    sim('four-1', IP(5), 'org/four', 400),
    sim('mixed-bad', IP(6), 'org/mixed', 500),
    sim('mixed-good', IP(7), 'org/mixed'),
  ]);
  const server = (name: string, app: string, model: string) => serverYaml(name, { port, model, labels: { app } });
  await writeFile(path.join(dir, 'servers.yaml'), docs(
    server('ok-ms', 'ok', 'org/ok'),
    podYaml('ok-1', IP(1), { labels: { app: 'ok' } }),
    // Selects only a pod that is not Ready.
    server('unready-ms', 'unready', 'org/unready'),
    podYaml('unready-1', IP(2), { labels: { app: 'unready' }, ready: false }),
    // Selects nothing at all.
    server('empty-ms', 'nobody', 'org/empty'),
    server('fail-ms', 'fail', 'org/fail'),
    podYaml('fail-1', IP(3), { labels: { app: 'fail' } }),
    podYaml('fail-2', IP(4), { labels: { app: 'fail' } }),
    server('four-ms', 'four', 'org/four'),
    podYaml('four-1', IP(5), { labels: { app: 'four' } }),
    server('mixed-ms', 'mixed', 'org/mixed'),
    podYaml('mixed-bad', IP(6), { labels: { app: 'mixed' } }),
    podYaml('mixed-good', IP(7), { labels: { app: 'mixed' } }),
    // A Ready pod whose address nothing listens on.
    server('dead-ms', 'dead', 'org/dead'),
    podYaml('dead-1', IP(9), { labels: { app: 'dead' } }),
  ));
  const route = (name: string, model: string, target: string) => modelRouteYaml(name, { modelName: model, rules: [{ targets: [{ server: target }] }] });
  await writeFile(path.join(dir, 'routes.yaml'), docs(
    route('ok', 'ok-model', 'ok-ms'),
    route('missing-server', 'missing-server-model', 'x'),
    route('unready', 'unready-model', 'unready-ms'),
    route('empty', 'empty-model', 'empty-ms'),
    route('fail', 'fail-model', 'fail-ms'),
    route('four', 'four-model', 'four-ms'),
    route('mixed', 'mixed-model', 'mixed-ms'),
    route('dead', 'dead-model', 'dead-ms'),
  ));
  router = await startRouter({ dir, workers: 2, args: ['--max-body-bytes', String(MAX_BODY)] });
  await router.waitReady();
  url = router.url;
  await expectStillServing();
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('body parsing', () => {
  it('malformed JSON: 400 RTR_ERR_BAD_JSON with the parser error', async () => {
    for (const body of ['{"model": "ok-model",', '{model: ok-model}', 'not json', '{"model":"ok-model","messages":[}']) {
      expectError(await post(body), 400, 'RTR_ERR_BAD_JSON', 'invalid_request_error');
    }
  });

  it('empty body: 400 "EOF"', async () => {
    expectError(await post(''), 400, 'RTR_ERR_BAD_JSON', 'invalid_request_error', 'EOF');
    expectError(await post('   \n'), 400, 'RTR_ERR_BAD_JSON', 'invalid_request_error', 'EOF');
    // No body at all (a GET has none).
    const g = await fetch(`${url}/v1/chat/completions`);
    expectError({ status: g.status, headers: g.headers, text: await g.text() }, 400, 'RTR_ERR_BAD_JSON', 'invalid_request_error', 'EOF');
  });

  it('valid JSON that is not one object: 400 "invalid request body"', async () => {
    for (const body of ['[]', JSON.stringify([good]), '"ok-model"', '42', 'true']) {
      expectError(await post(body), 400, 'RTR_ERR_INVALID_BODY', 'invalid_request_error', 'invalid request body');
    }
  });

  it('more than one JSON value: 400 "invalid request body"', async () => {
    expectError(await post(JSON.stringify(good) + JSON.stringify(good)), 400, 'RTR_ERR_INVALID_BODY', 'invalid_request_error', 'invalid request body');
  });

  it('trailing whitespace after the object is fine', async () => {
    const r = await post(JSON.stringify(good) + '\n\n');
    expect(r.status, r.text).toBe(200);
  });
});

describe('body size limit (--max-body-bytes 4096)', () => {
  const padded = (size: number): string => {
    const base = JSON.stringify({ ...good, messages: [{ role: 'user', content: '' }] });
    const body = JSON.stringify({ ...good, messages: [{ role: 'user', content: 'x'.repeat(size - base.length) }] });
    expect(Buffer.byteLength(body)).toBe(size);
    return body;
  };

  it('a body over the limit with content-length: 413', async () => {
    expectError(await post(padded(MAX_BODY + 1)), 413, 'RTR_ERR_BODY_TOO_LARGE', 'invalid_request_error', `request body too large: limit is ${MAX_BODY} bytes`);
    expectError(await post(padded(3 * MAX_BODY)), 413, 'RTR_ERR_BODY_TOO_LARGE', 'invalid_request_error', `request body too large: limit is ${MAX_BODY} bytes`);
  });

  it('a chunked body over the limit: 413', async () => {
    const body = padded(MAX_BODY + 1000);
    const r = await rawRequest(url, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: [body.slice(0, 2000), body.slice(2000, 4000), body.slice(4000)],
    });
    expectError(r as never, 413, 'RTR_ERR_BODY_TOO_LARGE', 'invalid_request_error', `request body too large: limit is ${MAX_BODY} bytes`);
  });

  it('a body of exactly the limit is accepted, with content-length or chunked', async () => {
    const body = padded(MAX_BODY);
    const r = await post(body);
    expect(r.status, r.text).toBe(200);
    const c = await rawRequest(url, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: [body.slice(0, 1000), body.slice(1000)],
    });
    expect(c.status, c.text).toBe(200);
    expect(c.headers['x-sim-pod']).toBe('ok-1');
  });
});

describe('model and prompt', () => {
  it('missing, empty, blank or non-string model: 404 "model not found"', async () => {
    const msgs = good.messages;
    for (const body of [{ messages: msgs }, { model: '', messages: msgs }, { model: '   ', messages: msgs }, { model: 42, messages: msgs },
      { model: null, messages: msgs }, { model: ['ok-model'], messages: msgs }, { model: { name: 'ok-model' }, messages: msgs }, {}]) {
      expectError(await post(JSON.stringify(body)), 404, 'RTR_ERR_MODEL_NOT_FOUND', 'invalid_request_error', 'model not found');
    }
  });

  it('no prompt, messages or input (or the wrong type): 404 "prompt not found"', async () => {
    for (const body of [{ model: 'ok-model' }, { model: 'ok-model', max_tokens: 3 }, { model: 'ok-model', prompt: [1, 2, 3] },
      { model: 'ok-model', messages: 'hello' }, { model: 'ok-model', input: 42 }]) {
      expectError(await post(JSON.stringify(body)), 404, 'RTR_ERR_PROMPT_NOT_FOUND', 'invalid_request_error', 'prompt not found');
    }
    // The prompt is checked before the route.
    expectError(await post(JSON.stringify({ model: 'no-such-model' })), 404, 'RTR_ERR_PROMPT_NOT_FOUND', 'invalid_request_error', 'prompt not found');
    const r = await postJson(url, '/v1/completions', { model: 'ok-model' });
    expectError(r, 404, 'RTR_ERR_PROMPT_NOT_FOUND', 'invalid_request_error', 'prompt not found');
  });
});

describe('routing failures', () => {
  it('unknown model: 404 "route not found"', async () => {
    const r = await chat(url, { ...good, model: 'no-such-model' });
    expectError(r, 404, 'RTR_ERR_NO_ROUTE', 'not_found_error', 'route not found');
    expect(r.json()).toEqual({ error: { message: 'route not found', type: 'not_found_error', code: 'RTR_ERR_NO_ROUTE' } });
    // Model names are case-sensitive.
    expectError(await chat(url, { ...good, model: 'OK-MODEL' }), 404, 'RTR_ERR_NO_ROUTE', 'not_found_error', 'route not found');
  });

  it('a route to a ModelServer that does not exist: 404 "can\'t find model server: default/x"', async () => {
    expectError(await chat(url, { ...good, model: 'missing-server-model' }), 404, 'RTR_ERR_MODEL_SERVER_NOT_FOUND', 'not_found_error', "can't find model server: default/x");
  });

  it('a ModelServer with no ready pods: 503 "no available pods for model server"', async () => {
    expectError(await chat(url, { ...good, model: 'unready-model' }), 503, 'RTR_ERR_NO_ENDPOINT', 'service_unavailable_error', 'no available pods for model server: default/unready-ms');
    expectError(await chat(url, { ...good, model: 'empty-model' }), 503, 'RTR_ERR_NO_ENDPOINT', 'service_unavailable_error', 'no available pods for model server: default/empty-ms');
  });
});

describe('upstream failures', () => {
  it('every pod answering 500: 503 "request to all pods failed", after trying each pod', async () => {
    const pods = [fleet.pod('fail-1'), fleet.pod('fail-2')];
    for (const p of pods) p.clearRequests();
    const r = await chat(url, { ...good, model: 'fail-model' });
    expectError(r, 503, 'RTR_ERR_UPSTREAM_ALL_FAILED', 'service_unavailable_error', 'request to all pods failed');
    // The engine's 5xx body is not forwarded.
    expect(r.text).not.toContain('simulated failure');
    expect(pods.map((p) => p.requests.length)).toEqual([1, 1]);
    // Streaming requests fail the same way: nothing had reached the client yet.
    expectError(await chat(url, { ...good, model: 'fail-model', stream: true }), 503, 'RTR_ERR_UPSTREAM_ALL_FAILED', 'service_unavailable_error', 'request to all pods failed');
  });

  it('a pod address that refuses connections: 503 "request to all pods failed"', async () => {
    expectError(await chat(url, { ...good, model: 'dead-model' }), 503, 'RTR_ERR_UPSTREAM_ALL_FAILED', 'service_unavailable_error', 'request to all pods failed');
  });

  it('a failing pod is skipped when another pod of the ModelServer answers', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await chat(url, { ...good, model: 'mixed-model' });
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-sim-pod')).toBe('mixed-good');
    }
  });

  it('an engine 4xx is passed through with the engine\'s status and body', async () => {
    const four = fleet.pod('four-1');
    four.clearRequests();
    const r = await chat(url, { ...good, model: 'four-model' });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({ object: 'error', message: 'simulated failure of pod four-1', type: 'BadRequestError', param: null, code: 400 });
    expect(four.requests).toHaveLength(1);
    // A request the engine itself refuses (vLLM validation) is answered with the engine's words.
    const bad = await chat(url, { ...good, max_tokens: 0 });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ object: 'error', message: 'max_tokens must be at least 1, got 0.', code: 400 });
  });
});

describe('paths and probes', () => {
  it('a path outside /v1/: 404 "404 page not found"', async () => {
    for (const [method, p] of [['GET', '/'], ['GET', '/foo'], ['POST', '/v2/chat/completions'], ['POST', '/chat/completions'], ['GET', '/v1']] as const) {
      const res = await fetch(`${url}${p}`, { method, ...(method === 'POST' ? { body: JSON.stringify(good), headers: { 'content-type': 'application/json' } } : {}) });
      expectError({ status: res.status, headers: res.headers, text: await res.text() }, 404, 'RTR_ERR_PATH_NOT_FOUND', 'not_found_error', '404 page not found');
    }
  });

  it('/healthz answers 200 {"message":"ok"}', async () => {
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: 'ok' });
  });

  it('/readyz answers 200 once the routing snapshot is published', async () => {
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(200);
  });
});

describe('resilience', () => {
  it('after every error above the router still serves good requests', async () => {
    expect(router.proc.exitCode).toBeNull();
    for (let i = 0; i < 5; i++) await expectStillServing();
    const s = await chat(url, { ...good, stream: true });
    expect(s.status).toBe(200);
    expect(s.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    // No worker crashed on the way.
    expect(router.stderr.filter((l) => /request handler threw|worker crashed|request pipeline failed/.test(l))).toEqual([]);
  });
});
