/**
 * Issue 18: what a hostile or broken client can do to the router without any credentials.
 * Defect 2: every distinct URL path became a `path` label value (20,000 paths: /metrics 90 MB).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, httpRequest, modelRouteYaml, scrape } from '../e2e/harness.js';
import { faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;

beforeAll(async () => {
  env = await faultEnv({
    block: 183, pods: 2, engineModel: 'fault-model',
    extra: [modelRouteYaml('regex-route', {
      modelName: 'regex-model',
      rules: [
        // Valid RE2 (Kthena accepts it); catastrophic on a backtracking engine.
        { name: 'nested', match: { headers: { 'x-tier': { regex: '^(a+)+$' } } }, targets: [{ server: 'ms' }] },
        { name: 'insensitive', match: { headers: { 'x-tier': { regex: '(?i)^premium$' } } }, targets: [{ server: 'ms' }] },
      ],
    })],
  });
});

afterAll(async () => {
  await env?.close();
});

/** Runs `n` tasks with `concurrency` in flight. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < n) await task(next++); }));
}

describe('metrics cardinality', () => {
  it('2,000 distinct /v1 paths add no path label values and keep /metrics small', async () => {
    const before = await scrape(env.router.metricsPort);
    await pool(2000, 16, (i) => httpRequest(env.router.url, { path: `/v1/probe-${i}/x`, body: { model: 'fault-model' }, timeoutMs: 10_000 }));
    const after = await scrape(env.router.metricsPort);
    const paths = new Set(after.samples.filter((s) => s.name.startsWith('kthena_router_request')).map((s) => s.labels.path).filter((p) => p !== undefined));
    expect([...paths].sort()).toEqual(['other']);
    expect(after.text.length - before.text.length).toBeLessThan(20_000);
  });
});

describe('route regexes', () => {
  it('a header built against a nested-quantifier regex is answered at once, and other clients are served meanwhile', async () => {
    const body = { model: 'regex-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
    const t0 = performance.now();
    // 2^32 backtracking steps on V8's RegExp (minutes); linear under RE2.
    const evil = await Promise.all(Array.from({ length: 4 }, () => chat(env.router.url, body, { 'x-tier': 'a'.repeat(32) + 'b' })));
    for (const r of evil) expect(r.status).toBe(404);
    const ok = await chat(env.router.url, { ...body, model: 'fault-model' });
    expect(ok.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(5000);
    const fine = await chat(env.router.url, body, { 'x-tier': 'a'.repeat(32) });
    expect(fine.status, fine.text).toBe(200);
  });

  it('RE2 syntax means what it means in Go: (?i) matches case-insensitively', async () => {
    const r = await chat(env.router.url, { model: 'regex-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }, { 'x-tier': 'PREMIUM' });
    expect(r.status).toBe(200);
  });
});

/** Writes raw bytes on a fresh connection; resolves with the status line's code and the rest. */
function raw(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(bytes));
    let buf = '';
    const done = (): void => {
      s.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m === null) { reject(new Error(`no HTTP answer: ${JSON.stringify(buf.slice(0, 200))}`)); return; }
      resolve({ status: Number(m[1]), text: buf });
    };
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      // One complete response is enough (the body is JSON and short).
      const head = buf.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(buf.slice(0, head));
      if (head >= 0 && len !== null && buf.length >= head + 4 + Number(len[1])) done();
    });
    s.on('end', done);
    s.on('error', reject);
    s.setTimeout(timeoutMs, () => { s.destroy(); reject(new Error(`no answer within ${timeoutMs} ms`)); });
  });
}

/**
 * Writes `parts` on a fresh connection, 200 ms apart (each one reaches the server as its own
 * read), and collects everything until the server closes the connection (or 3 s pass).
 */
function readAll(port: number, parts: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      void (async () => {
        for (const p of parts) {
          if (s.destroyed) return;
          s.write(p);
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
    });
    let buf = '';
    s.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
    s.on('close', () => resolve(buf));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(buf) : reject(err)));
    s.setTimeout(3000, () => { s.destroy(); });
  });
}

const SMUGGLED = 'GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
const CHAT_BODY = JSON.stringify({ model: 'fault-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
const post = (headers: string, body = CHAT_BODY, path = '/v1/chat/completions'): string =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;

describe('request bytes the upstream client refuses are client errors', () => {
  const podRequests = (): number => env.fleet.pods.reduce((n, p) => n + p.requests.length, 0);

  it.each([
    ['a duplicate Host', post('Host: 127.0.0.2\r\n'), 'RTR_ERR_BAD_HEADER'],
    ['0x7f in a header value', post('X-Note: a\x7fb\r\n'), 'RTR_ERR_BAD_HEADER'],
    ['raw UTF-8 in the path', Buffer.from(post('', CHAT_BODY, '/v1/chat/completions/\u00e9t\u00e9'), 'utf8'), 'RTR_ERR_BAD_PATH'],
  ])('%s: 400 before any pod is tried', async (_what, bytes, code) => {
    const before = podRequests();
    const r = await raw(env.router.port, bytes);
    expect(r.status, r.text).toBe(400);
    expect(r.text).toContain(code);
    expect(podRequests()).toBe(before);
  });

  it('Transfer-Encoding beside Content-Length never reaches a pod (uWS closes the connection)', async () => {
    const before = podRequests();
    const r = await raw(env.router.port, post('Transfer-Encoding: chunked\r\n')).catch((e: Error) => ({ status: 0, text: e.message }));
    // The pinned uWS build drops this shape before JS sees it (docs/runtime.md); were it passed
    // on, framing.ts answers 400 RTR_ERR_BAD_FRAMING.
    if (r.status !== 0) expect(r.text).toContain('RTR_ERR_BAD_FRAMING');
    else expect(r.text).toContain('no HTTP answer');
    expect(podRequests()).toBe(before);
  });

  it('a non-chunked Transfer-Encoding is refused (smuggling shape)', async () => {
    const body = CHAT_BODY;
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const r = await raw(env.router.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${chunked}`);
    expect(r.status, r.text).toBe(400);
    expect(r.text).toContain('RTR_ERR_BAD_FRAMING');
  });

  // RFC 9112 §6.3: after a framing error the server cannot know where the body ends, so it must
  // close the connection. Kept open, the pinned uWS build reads on with its own choice (the first
  // of two Content-Lengths): a front proxy that took the other one (or framed two Transfer-Encoding
  // headers differently) sees a body where the router serves a second, smuggled request.
  it.each([
    ['two different Content-Length values', ['Content-Length: 5\r\nContent-Length: 50\r\n\r\nabcde']],
    ['two Transfer-Encoding headers', ['Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', '0\r\n\r\n']],
  ])('after %s the router answers 400 and closes the connection: what follows is never read as a request', async (_what, parts) => {
    const text = await readAll(env.router.port, [`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n${parts[0]}`, ...parts.slice(1), SMUGGLED]);
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(text).toContain('RTR_ERR_BAD_FRAMING');
    expect(text.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    expect(text).not.toContain('"object":"list"');
  });

  it('a smuggled request in the same read as the ambiguous one is never served (the connection is dropped)', async () => {
    const text = await readAll(env.router.port, [`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nabcde${SMUGGLED}`]);
    // uWS aborts a connection whose response is pending when another request is parsed: no 400
    // either (docs/runtime.md), but above all no answer to the smuggled request.
    expect(text).not.toContain('"object":"list"');
    expect((text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length).toBeLessThanOrEqual(1);
  });

  it('a duplicate Host (framing intact) keeps the connection: the next request is served', async () => {
    const text = await readAll(env.router.port, [
      'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.2\r\nContent-Length: 5\r\n\r\nabcde',
      'GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    ]);
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(text).toContain('"object":"list"');
  });

  it('100,000 nested arrays answer a catalogued 400, not a stack overflow', async () => {
    const deep = `{"model":"fault-model","messages":[{"role":"user","content":"hi"}],"stream_options":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const r = await httpRequest(env.router.url, { path: '/v1/chat/completions', body: deep, timeoutMs: 10_000 });
    expect(r.status, r.text.slice(0, 200)).toBe(400);
    expect(r.text).toContain('RTR_ERR_JSON_TOO_DEEP');
    expect(env.router.stderr.some((l) => l.includes('Maximum call stack size exceeded'))).toBe(false);
  });

  it('a declared content-length reserves no memory before the bytes arrive', async () => {
    const m0 = await scrape(env.router.metricsPort);
    // Buffer.allocUnsafe of a large size maps memory without touching it: virtual, not resident.
    const vm = (m: typeof m0): number => m.samples.find((s) => s.name === 'process_virtual_memory_bytes')!.value;
    // 40 connections each declaring 30 MiB and sending 10 bytes: with preallocation +1.2 GB.
    const socks = await Promise.all(Array.from({ length: 40 }, () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: env.router.port }, () => {
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${30 * 1024 * 1024}\r\n\r\n{"model":"`);
        resolve(s);
      });
      s.on('error', reject);
    })));
    try {
      await new Promise((r) => setTimeout(r, 500));
      const m1 = await scrape(env.router.metricsPort);
      expect(vm(m1) - vm(m0)).toBeLessThan(400 * 1024 * 1024);
    } finally {
      for (const s of socks) s.destroy();
    }
  });
});
