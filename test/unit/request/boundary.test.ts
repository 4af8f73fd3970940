/**
 * The error boundary: a throw at any re-entry into the request path answers RTR_ERR_INTERNAL
 * (or closes a response already under way), releases what the request holds, and runs finish()
 * so that drain never waits for a request nobody will end.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CompiledSnapshot } from '../../../workers/compile.js';
import type { Profile } from '../../../workers/scheduler/framework.js';
import { pipelineEnv, settle } from '../../helpers/pipeline-env.js';
import { serve } from '../../helpers/fake-uws.js';

afterEach(() => { vi.useRealTimers(); });

function throwingSnapshot(): CompiledSnapshot<Profile> {
  return new Proxy({}, { get: () => { throw new Error('boom'); } }) as CompiledSnapshot<Profile>;
}

function expectInternal(env: ReturnType<typeof pipelineEnv>, res: { status: string; body: string }): void {
  expect(res.status).toBe('500 Internal Server Error');
  expect(JSON.parse(res.body).error.code).toBe('RTR_ERR_INTERNAL');
  expect(env.ctx.active).toBe(0);
  expect(env.allReleased()).toBe(true);
  expect(env.logs.some((l) => l.level === 'error' && l.msg === 'request pipeline failed')).toBe(true);
}

describe('error boundary', () => {
  it('the empty-body path', () => {
    const env = pipelineEnv();
    env.setSnapshot(throwingSnapshot());
    const { res } = serve(env.handler, 'POST', '/v1/chat/completions');
    expectInternal(env, res);
  });

  it('the body callback (onData)', () => {
    const env = pipelineEnv();
    env.setSnapshot(throwingSnapshot());
    const res = env.chat();
    expectInternal(env, res);
  });

  it('the retry timer', () => {
    vi.useFakeTimers();
    const env = pipelineEnv({ server: { retryAttempts: 1, retryIntervalMs: 10 } });
    const res = env.chat();
    env.upstream.next().start().error(new Error('reset'));
    env.upstream.dispatch = () => { throw new Error('dispatch blew up'); };
    vi.advanceTimersByTime(10);
    expectInternal(env, res);
  });

  it('an upstream callback before anything reached the client: the upstream leg is aborted too', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    x.respond(200, new Proxy({}, { get: () => { throw new Error('bad headers'); } }));
    expectInternal(env, res);
    expect(x.controller.aborted).not.toBeNull();
  });

  it('an upstream callback after bytes reached the client: the connection is closed and the request finished', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] }));
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'text/event-stream' }).data('data: {}\n\n');
    await settle();
    expect(res.status).toBe('200 OK');
    x.handler.onResponseData(x.controller, { get length(): number { throw new Error('bad chunk'); } } as unknown as Buffer);
    expect(res.closed).toBe(true);
    expect(env.ctx.active).toBe(0);
    expect(env.allReleased()).toBe(true);
    expect(env.access[0]).toMatch(/" 200 error=proxy:/);
  });

  it('a throw while ending the response still finishes the request', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'application/json', 'content-length': '2' }).data('{}');
    const finishedBefore = env.ctx.active;
    env.ctx.metrics.upstreamFinished = () => { throw new Error('metrics broke'); };
    x.end();
    expect(finishedBefore).toBe(1);
    expect(env.ctx.active).toBe(0);
    expect(res.done).toBe(true);
  });
});
