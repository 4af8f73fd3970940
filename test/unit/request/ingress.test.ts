import { describe, expect, it } from 'vitest';
import { kHdrDraining, kHdrReady } from '../../../src/shared/layout.js';
import { pipelineEnv } from '../../helpers/pipeline-env.js';
import { serve } from '../../helpers/fake-uws.js';

describe('ingress', () => {
  it('answers /healthz and /readyz on the router port without touching the request state', () => {
    const env = pipelineEnv();
    expect(serve(env.handler, 'GET', '/healthz').res.status).toBe('200 OK');
    expect(serve(env.handler, 'GET', '/readyz').res.status).toBe('200 OK');
    Atomics.store(env.ctx.header, kHdrReady, 0);
    expect(serve(env.handler, 'GET', '/readyz').res.status).toBe('503 Service Unavailable');
    expect(env.ctx.active).toBe(0);
  });

  it('copies everything from req before returning (the fake invalidates it) and forwards headers without hop-by-hop ones', () => {
    const env = pipelineEnv();
    const res = env.chat(undefined, [['x-tier', 'gold'], ['connection', 'keep-alive, x-secret'], ['x-secret', 's'], ['te', 'trailers']]);
    const x = env.upstream.next();
    expect(x.req.method).toBe('POST');
    expect(x.req.path).toBe('/v1/chat/completions');
    const names = x.req.headers.filter((_, i) => i % 2 === 0);
    expect(names).toContain('x-tier');
    expect(names).toContain('x-request-id');
    expect(names).not.toContain('connection');
    expect(names).not.toContain('x-secret');
    expect(names).not.toContain('te');
    expect(names).not.toContain('content-length');
    x.json(200, '{"ok":true}');
    expect(res.status).toBe('200 OK');
    expect(res.body).toBe('{"ok":true}');
  });

  it('keeps a non-empty x-request-id and replaces an empty one with a UUID', () => {
    const env = pipelineEnv();
    env.chat(undefined, [['x-request-id', 'abc']]);
    const a = env.upstream.next().req.headers;
    expect(a[a.indexOf('x-request-id') + 1]).toBe('abc');
    env.chat(undefined, [['x-request-id', '']]);
    const b = env.upstream.next().req.headers;
    expect(b.filter((h) => h === 'x-request-id')).toHaveLength(1);
    expect(b[b.indexOf('x-request-id') + 1]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a content-length above --max-body-bytes with 413 and closes the connection, before reading the body', () => {
    const env = pipelineEnv({ cfg: { maxBodyBytes: 10 } });
    const { res } = serve(env.handler, 'POST', '/v1/chat/completions', [['content-length', '11']]);
    expect(res.status).toBe('413 Payload Too Large');
    expect(JSON.parse(res.body).error.code).toBe('RTR_ERR_BODY_TOO_LARGE');
    expect(res.closed).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('refuses a chunked body that grows past --max-body-bytes with 413 and ignores the rest', () => {
    const env = pipelineEnv({ cfg: { maxBodyBytes: 8 } });
    const res = env.request('POST', '/v1/chat/completions', '{"model":"m","x":"0123456789"}', [['transfer-encoding', 'chunked']], 4);
    expect(res.status).toBe('413 Payload Too Large');
    expect(env.upstream.sent).toHaveLength(0);
    expect(env.ctx.active).toBe(0);
  });

  it('reassembles a body delivered in many chunks (each ArrayBuffer neutered after its callback)', () => {
    const env = pipelineEnv();
    const body = JSON.stringify({ model: 'm', prompt: 'x'.repeat(300) });
    env.request('POST', '/v1/completions', body, [], 7);
    expect(JSON.parse(env.upstream.next().body).prompt).toBe('x'.repeat(300));
  });

  it('answers 503 RTR_ERR_SHUTTING_DOWN while draining and closes the connection', () => {
    const env = pipelineEnv();
    Atomics.store(env.ctx.header, kHdrDraining, 1);
    const res = env.chat();
    expect(res.status).toBe('503 Service Unavailable');
    expect(res.closed).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('answers 503 RTR_ERR_NOT_READY before the first snapshot', () => {
    const env = pipelineEnv();
    env.setSnapshot(null);
    const res = env.chat();
    expect(JSON.parse(res.body).error.code).toBe('RTR_ERR_NOT_READY');
  });

  it('answers 404 off /v1 without Gateway API, without counting a request', () => {
    const env = pipelineEnv();
    const { res } = serve(env.handler, 'GET', '/other');
    expect(res.status).toBe('404 Not Found');
    expect(env.ctx.active).toBe(0);
  });

  it('ends a request whose client leaves while its body is still arriving (499, nothing sent upstream)', () => {
    const env = pipelineEnv();
    const { res } = serve(env.handler, 'POST', '/v1/chat/completions', [['content-length', '100']]);
    res.data('{"model":', false);
    res.abort();
    expect(env.ctx.active).toBe(0);
    expect(env.access[0]).toMatch(/" 499 error=client_aborted/);
    expect(env.upstream.sent).toHaveLength(0);
  });
});
