import { describe, expect, it } from 'vitest';
import { pipelineEnv, settle } from '../../helpers/pipeline-env.js';

const streamBody = (extra: object = {}) => JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }], ...extra });

describe('response writer', () => {
  it('writes status, headers and a Content-Length body in corked writes, dropping hop-by-hop and Date headers', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    env.upstream.next().respond(200, {
      'content-type': 'application/json', 'content-length': '7', date: 'x', connection: 'keep-alive', 'transfer-encoding': 'chunked',
      'x-multi': ['a', 'b'], 'x-one': '1',
    }).data('{"a":1}').end();
    await settle();
    expect(res.status).toBe('200 OK');
    expect(res.body).toBe('{"a":1}');
    expect(res.ended).toBe(true);
    expect(res.uncorkedWrites).toBe(0);
    const names = res.headers.map(([k]) => k);
    expect(names).not.toContain('date');
    expect(names).not.toContain('connection');
    expect(names).not.toContain('transfer-encoding');
    expect(names).not.toContain('content-length');
    expect(res.headers.filter(([k]) => k === 'x-multi').map(([, v]) => v)).toEqual(['a', 'b']);
  });

  it('passes an engine 4xx through with its body and records error_origin=upstream', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    env.upstream.next().json(400, '{"error":"bad"}');
    await settle();
    expect(res.status).toBe('400 Bad Request');
    expect(res.body).toBe('{"error":"bad"}');
    expect(env.upstream.pending).toBe(0);
    expect(env.access[0]).toContain('error_origin=upstream');
  });

  it('pauses the upstream while the client is backpressured and resumes from the right offset on onWritable', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    res.room = 5;
    const x = env.upstream.next();
    const body = '{"text":"0123456789abcdef"}';
    // The first part alone is written in the turn's flush and meets the 5-byte room.
    x.respond(200, { 'content-type': 'application/json', 'content-length': String(body.length) }).data(body.slice(0, 12));
    await settle();
    expect(x.controller.paused).toBe(true);
    expect(res.ended).toBe(false);
    expect(res.hasWritableHandler).toBe(true);
    x.data(body.slice(12));
    x.end();
    res.drain();
    expect(res.body).toBe(body);
    expect(res.ended).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('answers an empty Content-Length body without a body write', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    env.upstream.next().respond(200, { 'content-length': '0' }).end();
    expect(res.ended).toBe(true);
    expect(res.body).toBe('');
    expect(res.status).toBe('200 OK');
  });

  it('never passes a body shorter than its Content-Length off as complete: the connection is closed', async () => {
    const env = pipelineEnv();
    const res = env.chat();
    env.upstream.next().respond(200, { 'content-length': '10' }).data('12345').end();
    await settle();
    expect(res.closed).toBe(true);
    expect(res.ended).toBe(false);
    expect(env.ctx.active).toBe(0);
  });

  it('streams SSE, drops the usage-only chunk the router asked for and counts its tokens', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', streamBody());
    const x = env.upstream.next();
    expect(JSON.parse(x.body).stream_options).toEqual({ include_usage: true });
    x.respond(200, { 'content-type': 'text/event-stream' });
    x.data('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n');
    await settle();
    expect(res.status).toBe('200 OK');
    x.data('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\ndata: [DONE]\n\n').end();
    await settle();
    expect(res.body).not.toContain('usage');
    expect(res.body).toContain('[DONE]');
    expect(res.ended).toBe(true);
    expect(env.access[0]).toContain('tokens=3/5');
  });

  it('keeps the usage chunk when the client asked for it itself', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', streamBody({ stream_options: { include_usage: true } }));
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'text/event-stream' })
      .data('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\ndata: [DONE]\n\n').end();
    await settle();
    expect(res.body).toContain('"usage"');
  });

  it('coalesces the chunks of one event-loop turn into one write', async () => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/chat/completions', streamBody());
    const x = env.upstream.next();
    x.respond(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < 5; i++) x.data(`data: {"n":${i}}\n\n`);
    await settle();
    expect(res.chunks).toHaveLength(1);
    x.end();
  });

  it('writes a complete Content-Length answer at the upstream end, in one corked write, after the in-flight slot is released', () => {
    const env = pipelineEnv();
    const res = env.chat();
    const x = env.upstream.next();
    const pod = Number(/127\.0\.0\.(\d+):/.exec(x.req.origin)![1]) - 2;
    let inflightAtWrite = -1;
    const tryEnd = res.tryEnd.bind(res);
    res.tryEnd = (chunk, total) => { inflightAtWrite = env.inflight(pod); return tryEnd(chunk, total); };
    x.respond(200, { 'content-type': 'application/json', 'content-length': '7' }).data('{"a":1}');
    // The body is complete but the upstream has not ended: nothing reached the client yet.
    expect(res.ended).toBe(false);
    x.end();
    // No microtask ran: the answer went out within end(), once the pod's slot was free again.
    expect(res.ended).toBe(true);
    expect(inflightAtWrite).toBe(0);
    expect(res.body).toBe('{"a":1}');
    expect(res.chunks).toHaveLength(1);
    expect(res.uncorkedWrites).toBe(0);
    expect(res.hasWritableHandler).toBe(false);
    expect(env.ctx.active).toBe(0);
  });

  it('forwards the client body bytes unchanged when nothing needs splicing', () => {
    const env = pipelineEnv();
    const body = '{"model":"m", "stream":false,"prompt":"x"}';
    env.request('POST', '/v1/completions', body);
    const sent = env.upstream.next().req.body;
    expect(Buffer.isBuffer(sent)).toBe(true);
    expect(String(sent)).toBe(body);
  });
});
