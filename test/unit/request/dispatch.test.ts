import { describe, expect, it } from 'vitest';
import { upstreamHeaders } from '../../../workers/request/forward.js';
import { pipelineEnv, settle } from '../../helpers/pipeline-env.js';

const code = (res: { body: string }): string => JSON.parse(res.body).error.code;

describe('ModelRoute dispatch', () => {
  it.each([
    ['{"model":', 'RTR_ERR_BAD_JSON'],
    ['{"model":"m"} {}', 'RTR_ERR_INVALID_BODY'],
    ['[1]', 'RTR_ERR_INVALID_BODY'],
    ['{"messages":[]}', 'RTR_ERR_MODEL_NOT_FOUND'],
    ['{"model":" "}', 'RTR_ERR_MODEL_NOT_FOUND'],
    ['{"model":"m"}', 'RTR_ERR_PROMPT_NOT_FOUND'],
    ['{"model":"other","prompt":"x"}', 'RTR_ERR_NO_ROUTE'],
  ])('%s → %s, finished, nothing sent upstream', (body, expected) => {
    const env = pipelineEnv();
    const res = env.request('POST', '/v1/completions', body);
    expect(code(res)).toBe(expected);
    expect(env.upstream.sent).toHaveLength(0);
    expect(env.ctx.active).toBe(0);
  });

  it('answers 503 RTR_ERR_NO_ENDPOINT for a ModelServer without ready pods', () => {
    const env = pipelineEnv({ pods: 0 });
    expect(code(env.chat())).toBe('RTR_ERR_NO_ENDPOINT');
  });

  it('replaces `model` with the ModelServer spec.model and keeps the rest of the body byte for byte', () => {
    const env = pipelineEnv({ server: { model: 'upstream-m' } });
    env.request('POST', '/v1/completions', '{"model":"m",  "prompt":"a\\u00e9"}');
    expect(env.upstream.next().body).toBe('{"model":"upstream-m",  "prompt":"a\\u00e9"}');
  });

  it('sends the request path and query upstream', () => {
    const env = pipelineEnv();
    env.request('POST', '/v1/completions', '{"model":"m","prompt":"x"}');
    expect(env.upstream.next().req.path).toBe('/v1/completions');
  });
});

describe('forwarded headers', () => {
  it('drops hop-by-hop headers and the ones Connection names, keeps the rest in order', () => {
    expect(upstreamHeaders(['a', '1', 'connection', 'close, X-Foo', 'x-foo', 'f', 'keep-alive', 't', 'b', '2', 'content-length', '9']))
      .toEqual(['a', '1', 'b', '2']);
  });
});

describe('prefill/decode pairs', () => {
  const pdEnv = () => pipelineEnv({ pods: 4, server: { connector: 'http', pdGroups: [{ name: 'g', decode: [0, 1], prefill: [2, 3] }] } });

  it('http: the prefill leg first (max_tokens 1, stream removed), then the decode leg on the pair\'s decode pod', async () => {
    const env = pdEnv();
    const res = env.chat({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] });
    const prefill = env.upstream.next();
    const pb = JSON.parse(prefill.body);
    expect(pb.max_tokens).toBe(1);
    expect(pb.stream).toBeUndefined();
    expect(env.upstream.pending).toBe(0);
    prefill.json(200, '{"choices":[]}');
    const decode = env.upstream.next();
    expect(JSON.parse(decode.body).stream).toBe(true);
    expect(['127.0.0.2', '127.0.0.3'].some((ip) => decode.req.origin.includes(ip))).toBe(true);
    decode.respond(200, { 'content-type': 'text/event-stream' }).data('data: [DONE]\n\n').end();
    await settle();
    expect(res.ended).toBe(true);
    expect(env.allReleased()).toBe(true);
    expect(env.access[0]).toMatch(/selected_pod=p[01] prefill_pod=p[23]/);
  });

  it('a failed prefill leg moves to the next pair; when every pair failed: 503 RTR_ERR_PD_ALL_FAILED', () => {
    const env = pdEnv();
    const res = env.chat();
    env.upstream.next().start().error(new Error('refused'));
    env.upstream.next().start().error(new Error('refused'));
    expect(code(res)).toBe('RTR_ERR_PD_ALL_FAILED');
    expect(env.allReleased()).toBe(true);
    expect(env.ctx.active).toBe(0);
  });

  it('an engine 4xx from the prefill leg is the client\'s answer, without trying another pair', () => {
    const env = pdEnv();
    const res = env.chat();
    env.upstream.next().json(400, '{"error":"too long"}');
    expect(res.status).toBe('400 Bad Request');
    expect(res.body).toBe('{"error":"too long"}');
    expect(env.upstream.pending).toBe(0);
    expect(env.allReleased()).toBe(true);
  });

  it('the client leaving during the prefill leg cancels it and frees its slot', () => {
    const env = pdEnv();
    const res = env.chat();
    const prefill = env.upstream.next().start();
    res.abort();
    expect(prefill.controller.aborted).not.toBeNull();
    expect(env.allReleased()).toBe(true);
    expect(env.ctx.active).toBe(0);
  });
});
