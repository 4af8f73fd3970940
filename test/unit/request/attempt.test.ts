import { afterEach, describe, expect, it, vi } from 'vitest';
import { pipelineEnv, settle } from '../../helpers/pipeline-env.js';

afterEach(() => { vi.useRealTimers(); });

/** Pod i listens on 127.0.0.(i+2):8000 (pipeline-env). */
const slotOf = (origin: string): number => Number(/127\.0\.0\.(\d+):/.exec(origin)![1]) - 2;

describe('attempts: one object per try', () => {
  it('holds one in-flight slot per try and releases it when the response ends', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    const pod = slotOf(x.req.origin);
    expect(env.inflight(pod)).toBe(1);
    x.json(200, '{}');
    expect(res.ended).toBe(true);
    expect(env.allReleased()).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('moves to the next ranked pod after a 5xx and answers from it; the failed pod is counted', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const first = env.upstream.next();
    first.respond(503, { 'content-length': '0' });
    expect(first.controller.aborted?.message).toContain('503');
    const second = env.upstream.next();
    expect(second.req.origin).not.toBe(first.req.origin);
    second.json(200, '{"x":1}');
    expect(res.status).toBe('200 OK');
    expect(res.body).toBe('{"x":1}');
    expect(env.failures(slotOf(first.req.origin))).toBe(1);
    expect(env.allReleased()).toBe(true);
    expect(env.access[0]).toContain(' upstream_attempts=2');
    expect(env.access[0]).toContain(` selected_pod=p${slotOf(second.req.origin)}`);
  });

  it('answers 503 RTR_ERR_UPSTREAM_ALL_FAILED once every ranked pod failed, and nothing is left in flight', () => {
    const env = pipelineEnv({ pods: 3 });
    const res = env.chat();
    for (let i = 0; i < 3; i++) env.upstream.next().start().error(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(env.upstream.pending).toBe(0);
    expect(res.status).toBe('503 Service Unavailable');
    expect(JSON.parse(res.body).error.code).toBe('RTR_ERR_UPSTREAM_ALL_FAILED');
    expect(env.allReleased()).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('a retried try leaves nothing of its response behind (headers of the failed try never reach the client)', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    const first = env.upstream.next();
    first.respond(200, { 'content-type': 'application/json', 'content-length': '10', 'x-from': 'first' }).data('{"a":');
    first.error(new Error('socket reset'));
    await settle();
    const second = env.upstream.next();
    second.json(200, '{"b":2}');
    await settle();
    expect(res.body).toBe('{"b":2}');
    expect(res.header('x-from')).toBeUndefined();
  });

  it('trafficPolicy.retry: attempts + 1 tries, retryInterval apart', async () => {
    vi.useFakeTimers();
    const env = pipelineEnv({ pods: 3, server: { retryAttempts: 1, retryIntervalMs: 100 } });
    const res = env.chat();
    env.upstream.next().start().error(new Error('reset'));
    expect(env.upstream.pending).toBe(0);
    vi.advanceTimersByTime(99);
    expect(env.upstream.pending).toBe(0);
    vi.advanceTimersByTime(1);
    env.upstream.next().start().error(new Error('reset'));
    vi.advanceTimersByTime(1000);
    expect(env.upstream.pending).toBe(0);
    expect(res.status).toBe('503 Service Unavailable');
  });

  it('ends the request at once when the client leaves during the retry interval (no further try)', () => {
    vi.useFakeTimers();
    const env = pipelineEnv({ pods: 3, server: { retryAttempts: 2, retryIntervalMs: 100 } });
    const res = env.chat();
    env.upstream.next().start().error(new Error('reset'));
    res.abort();
    expect(env.ctx.active).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(env.upstream.pending).toBe(0);
    expect(env.access[0]).toMatch(/" 499 error=client_aborted/);
  });

  it('trafficPolicy.timeout bounds the wait for headers: the try is aborted and the next pod answers', () => {
    vi.useFakeTimers();
    const env = pipelineEnv({ server: { timeoutMs: 50 } });
    const res = env.chat();
    const slow = env.upstream.next().start();
    vi.advanceTimersByTime(50);
    expect(slow.controller.aborted?.message).toContain('50ms');
    env.upstream.next().json(200, '{}');
    expect(res.status).toBe('200 OK');
    expect(env.allReleased()).toBe(true);
  });

  it('a try still queued in the pool when the client leaves is abandoned when the pool starts it', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    res.abort();
    expect(env.ctx.active).toBe(0);
    expect(env.allReleased()).toBe(true);
    x.start();
    expect(x.controller.aborted).not.toBeNull();
  });

  it('the client leaving mid-response aborts the upstream leg and logs 499', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'text/event-stream' }).data('data: {"choices":[]}\n\n');
    await settle();
    res.abort();
    expect(x.controller.aborted?.message).toMatch(/aborted|client/i);
    expect(env.ctx.active).toBe(0);
    expect(env.access[0]).toMatch(/" 499 error=client_aborted/);
    expect(env.allReleased()).toBe(true);
  });

  it('a mid-stream failure of an SSE response ends it with an error event after the bytes already queued', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'text/event-stream' }).data('data: {"n":1}\n\n');
    await settle();
    x.data('data: {"n":2}\n\n');
    x.error(new Error('pod died'));
    await settle();
    expect(res.ended).toBe(true);
    expect(res.body).toMatch(/"n":1[\s\S]*"n":2[\s\S]*RTR_ERR_UPSTREAM_MIDSTREAM/);
    expect(env.ctx.active).toBe(0);
  });

  it('a mid-body failure of a length-framed response closes the connection rather than passing a short body off', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'application/json', 'content-length': '100' }).data('{"partial":');
    await settle();
    x.error(new Error('reset'));
    expect(res.closed).toBe(true);
    expect(env.ctx.active).toBe(0);
    expect(env.allReleased()).toBe(true);
  });
});
