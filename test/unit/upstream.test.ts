/**
 * The upstream stage's client choice (workers/request/upstream.ts): --upstream-client picks the
 * router's HTTP/1.1 client or undici; the h1 side hands undici what it does not handle; both own
 * their pools (sweep closes those of origins that left the snapshot, destroy ends them all).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createUpstream, H1Upstream, UndiciUpstream, type Upstream, type UpstreamController, type UpstreamHandler, type UpstreamHeaders } from '../../workers/request/upstream.js';

let server: http.Server;
let origin = '';
const seen: { method: string; connection: number }[] = [];

beforeAll(async () => {
  let conns = 0;
  server = http.createServer((req, res) => {
    seen.push({ method: req.method!, connection: (req.socket as unknown as { n: number }).n });
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ method: req.method })));
  });
  server.on('connection', (s) => { (s as unknown as { n: number }).n = conns++; });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function call(u: Upstream, method = 'POST', o = origin): Promise<{ status: number; body: string; headers: UpstreamHeaders; error: Error | null }> {
  return new Promise((resolve) => {
    let status = 0;
    let headers: UpstreamHeaders = {};
    const chunks: Buffer[] = [];
    const h: UpstreamHandler = {
      onRequestStart(_c: UpstreamController) { /* nothing to keep */ },
      onResponseStart(_c, s, hd) { status = s; headers = hd; },
      onResponseData(_c, chunk) { chunks.push(chunk); },
      onResponseEnd() { resolve({ status, body: Buffer.concat(chunks).toString(), headers, error: null }); },
      onResponseError(_c, error) { resolve({ status, body: '', headers, error }); },
    };
    u.dispatch({ origin: o, path: '/v1/x', method, headers: ['content-type', 'application/json'], body: method === 'GET' ? null : '{}' }, h);
  });
}

describe('upstream client choice', () => {
  it('defaults to the HTTP/1.1 client; --upstream-client undici selects undici; anything else is refused', () => {
    const cfg = (argv: string[]) => loadConfig('serve', ['--config', '/m', ...argv], {});
    expect(cfg([]).upstreamClient).toBe('h1');
    expect(createUpstream(cfg([]))).toBeInstanceOf(H1Upstream);
    expect(createUpstream(cfg(['--upstream-client', 'undici']))).toBeInstanceOf(UndiciUpstream);
    expect(() => cfg(['--upstream-client=h2'])).toThrow(/expected h1 or undici/);
  });

  it('both clients answer the same request the same way; h1 reuses its kept-alive connection', async () => {
    for (const client of ['h1', 'undici'] as const) {
      const u = createUpstream({ upstreamConnections: 4, upstreamClient: client });
      seen.length = 0;
      const a = await call(u);
      const b = await call(u, 'GET');
      expect([a.status, a.body, a.headers['content-type'] ?? null]).toEqual([200, '{"method":"POST"}', null]);
      expect(b.body).toBe('{"method":"GET"}');
      // undici's Pool may pick another of its clients for a request that follows at once.
      if (client === 'h1') expect(seen[0].connection).toBe(seen[1].connection);
      await u.destroy();
    }
  });

  it('the h1 side hands an origin that is not http:// to undici (which fails it with its own error)', async () => {
    const u = createUpstream({ upstreamConnections: 4, upstreamClient: 'h1' });
    const r = await call(u, 'POST', origin.replace('http:', 'https:'));
    // undici tried TLS against a plain-HTTP server: an error from undici, not a refusal by h1.
    expect(r.error).not.toBeNull();
    expect((r.error as { code?: string }).code ?? '').not.toBe('RTR_ERR_INTERNAL');
    await u.destroy();
  });

  it('sweep closes the pools of origins no longer in the snapshot; the next request opens a new connection', async () => {
    const u = createUpstream({ upstreamConnections: 4, upstreamClient: 'h1' });
    seen.length = 0;
    await call(u);
    u.sweep(new Set([origin]));
    await call(u);
    expect(seen[1].connection).toBe(seen[0].connection);
    u.sweep(new Set());
    await call(u);
    expect(seen[2].connection).not.toBe(seen[1].connection);
    await u.destroy();
  });
});
