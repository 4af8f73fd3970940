/**
 * The Endpoint Picker client (workers/epp/client.ts) against the in-process ext_proc picker of
 * test/helpers/epp-server.ts: what is sent (headers, body, subset hint, protocol configuration),
 * what is read (destination by header or metadata, fallbacks, header and body mutations,
 * ImmediateResponse), every failure (stream error, timeout, absent, unresolved, no destination),
 * the served report, TLS, and one channel per picker reused by every request.
 */
import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EppClient, prepareSubset, type EppRequest, type EppResult } from '../../workers/epp/client.js';
import type { EndpointPickerIR } from '../../src/ir/gateway.js';
import { startEppServer, type EppServer } from '../helpers/epp-server.js';

const POOL = ['127.0.0.1:8000', '127.0.0.1:8001', '127.0.0.2:8000'];
const SUBSET = prepareSubset(POOL);

function picker(port: number, extra: Partial<EndpointPickerIR> = {}): EndpointPickerIR {
  return { service: 'ns/epp', addresses: [`127.0.0.1:${port}`], dns: '', failOpen: false, unresolved: '', ...extra };
}

function request(body: string | null = '{"model":"m","prompt":"hi"}', headers: string[] = []): EppRequest {
  return {
    headers: ['content-type', 'application/json', 'x-gateway-destination-endpoint', '10.9.9.9:1', ...headers],
    method: 'POST', path: '/v1/completions?x=1', authority: 'gw.example', scheme: 'http',
    body: body === null ? null : Buffer.from(body),
  };
}

function ask(c: EppClient, epp: EndpointPickerIR, req = request(), subset = SUBSET): Promise<EppResult & { call: ReturnType<EppClient['pick']> }> {
  return new Promise((resolve) => {
    const call = c.pick(epp, subset, req, (r) => resolve({ ...r, call }));
  });
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

let epp: EppServer;
let client: EppClient;

beforeAll(async () => {
  epp = await startEppServer();
  client = new EppClient({ timeoutMs: 2000, tls: false });
});

afterAll(async () => {
  client.close();
  await epp.close();
});

describe('EppClient against an ext_proc picker', () => {
  it('sends headers, pseudo-headers, the body, the subset hint and FULL_DUPLEX_STREAMED; routes to the picked endpoint', async () => {
    epp.behaviour = { pick: () => ['127.0.0.1:8001'] };
    const r = await ask(client, picker(epp.port));
    expect([r.kind, r.endpoints]).toEqual(['picked', ['127.0.0.1:8001']]);
    r.call.done('127.0.0.1:8001', 200);
    const seen = epp.seen.at(-1)!;
    expect(seen.headers).toMatchObject({ ':method': 'POST', ':path': '/v1/completions?x=1', ':authority': 'gw.example', ':scheme': 'http', 'content-type': 'application/json' });
    // A client never chooses the destination: its x-gateway-destination-endpoint is not forwarded.
    expect(seen.headers['x-gateway-destination-endpoint']).toBeUndefined();
    expect(seen.body).toBe('{"model":"m","prompt":"hi"}');
    expect(seen.subset).toEqual(POOL);
    expect(seen.requestBodyMode).toBe(4);
  });

  it('reads a destination given only as envoy.lb dynamic metadata, and keeps fallbacks in order', async () => {
    epp.behaviour = { carrier: 'metadata', pick: () => ['127.0.0.2:8000', '127.0.0.1:8000'] };
    const r = await ask(client, picker(epp.port));
    expect(r.endpoints).toEqual(['127.0.0.2:8000', '127.0.0.1:8000']);
    r.call.done(null, 0);
  });

  it('a picker that respects the subset hint picks only among the endpoints sent', async () => {
    epp.behaviour = {};
    const r = await ask(client, picker(epp.port), request(), prepareSubset(['127.0.0.2:8000']));
    expect(r.endpoints).toEqual(['127.0.0.2:8000']);
    r.call.done(null, 0);
  });

  it('reports the served endpoint and status on the response headers', async () => {
    epp.behaviour = { pick: () => ['127.0.0.1:8000'] };
    const r = await ask(client, picker(epp.port));
    const seen = epp.seen.at(-1)!;
    r.call.done('127.0.0.1:8000', 200);
    await expect.poll(() => seen.served, { timeout: 2000 }).toBe('127.0.0.1:8000');
    expect(seen.responseStatus).toBe('200');
  });

  it('returns header mutations and a replacement body (model rewrite), without the destination keys', async () => {
    epp.behaviour = { pick: () => ['127.0.0.1:8000'], setHeaders: { 'x-rewritten': 'yes', 'content-length': '99' }, body: '{"model":"other","prompt":"hi"}' };
    const r = await ask(client, picker(epp.port));
    expect(r.setHeaders).toEqual([['x-rewritten', 'yes']]);
    expect(Buffer.from(r.body!).toString()).toBe('{"model":"other","prompt":"hi"}');
    r.call.done(null, 0);
  });

  it('asks with the headers alone when there is no body', async () => {
    epp.behaviour = { pick: () => ['127.0.0.1:8000'] };
    const r = await ask(client, picker(epp.port), { ...request(null), method: 'GET' });
    expect(r.kind).toBe('picked');
    expect(epp.seen.at(-1)!.body).toBe('');
    r.call.done(null, 0);
  });

  it("passes the picker's ImmediateResponse on (status and body)", async () => {
    epp.behaviour = { immediate: { status: 429, body: 'system saturated' } };
    const r = await ask(client, picker(epp.port));
    expect([r.kind, r.status, r.message]).toEqual(['immediate', 429, 'system saturated']);
  });

  it('fails on a stream error, on no destination, when nothing listens, and when the ref does not resolve', async () => {
    epp.behaviour = { error: grpc.status.INTERNAL };
    const e = await ask(client, picker(epp.port));
    expect([e.kind, e.timedOut]).toEqual(['failed', false]);
    expect(e.message).toContain('INTERNAL');
    epp.behaviour = { noDestination: true };
    const n = await ask(client, picker(epp.port));
    expect([n.kind, n.message]).toEqual(['failed', 'the endpoint picker answered without x-gateway-destination-endpoint']);
    const absent = await ask(client, picker(await closedPort()));
    expect(absent.kind).toBe('failed');
    expect(absent.message).toContain('UNAVAILABLE');
    const streams = epp.streams;
    const u = await ask(client, picker(epp.port, { unresolved: 'endpointPickerRef Service ns/epp not found' }));
    expect([u.kind, u.message]).toEqual(['failed', 'endpointPickerRef Service ns/epp not found']);
    const none = await ask(client, picker(epp.port, { addresses: [] }));
    expect([none.kind, none.message]).toEqual(['failed', 'endpoint picker Service ns/epp has no ready endpoint']);
    expect(epp.streams).toBe(streams);
  });

  it('gives up on a slow picker after the timeout and cancels the stream', async () => {
    const quick = new EppClient({ timeoutMs: 150, tls: false });
    epp.behaviour = { delayMs: 1500, pick: () => ['127.0.0.1:8000'] };
    const t0 = performance.now();
    const r = await ask(quick, picker(epp.port));
    const ms = performance.now() - t0;
    expect([r.kind, r.timedOut]).toEqual(['failed', true]);
    expect(r.message).toContain('did not answer within 150ms');
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(1400);
    quick.close();
  });

  it('reuses one channel per picker for every request, and closes channels of pickers gone from the snapshot', async () => {
    const c = new EppClient({ timeoutMs: 2000, tls: false });
    epp.behaviour = { pick: () => ['127.0.0.1:8000'] };
    const p = picker(epp.port);
    const results = await Promise.all(Array.from({ length: 20 }, () => ask(c, p)));
    expect(results.every((r) => r.kind === 'picked')).toBe(true);
    for (const r of results) r.call.done(null, 0);
    expect(c.channels).toBe(1);
    c.retain([p]);
    expect(c.channels).toBe(1);
    c.retain([]);
    expect(c.channels).toBe(0);
    c.close();
  });

  it('speaks TLS to a picker serving a self-signed certificate', async () => {
    const secure = await startEppServer({ tls: true, behaviour: { pick: () => ['127.0.0.1:8001'] } });
    const c = new EppClient({ timeoutMs: 3000, tls: true });
    try {
      const r = await ask(c, picker(secure.port));
      expect([r.kind, r.endpoints]).toEqual(['picked', ['127.0.0.1:8001']]);
      r.call.done(null, 0);
    } finally {
      c.close();
      await secure.close();
    }
  });
});
