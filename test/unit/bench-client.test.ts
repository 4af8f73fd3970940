import { describe, expect, it } from 'vitest';

import { Exchange, RequestTimeoutError } from '../../native-bench/src/client.js';

const ctrl = (): any => ({ aborted: false, paused: false, reason: null, abort() { this.aborted = true; }, pause() {}, resume() {} });
const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;

function feed(ex: Exchange, parts: string[], headers: Record<string, string> = { 'content-type': 'text/event-stream', 'x-sim-time-scale': '10' }): void {
  const c = ctrl();
  ex.onRequestStart(c);
  ex.onResponseStart(c, 200, headers);
  for (const p of parts) ex.onResponseData(c, Buffer.from(p));
  ex.onResponseEnd();
}

describe('bench SSE client', () => {
  it('parses events split anywhere, CRLF framing included, and reads sim_t, usage and text', () => {
    const stream =
      ev({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }], sim_t: 1 }) +
      ev({ choices: [{ index: 0, delta: { content: ' héllo' } }], sim_t: 300 }).replace(/\n/g, '\r\n') +
      ev({ choices: [{ index: 0, delta: { content: ' wörld' } }], sim_t: 325 }) +
      ev({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 8 } }, sim_t: 325 }) +
      'data: [DONE]\n\n';
    const bytes = Buffer.from(stream);
    // Cut inside a multi-byte character and inside the CRLF pairs.
    const cuts = [5, 70, 71, 150, bytes.indexOf(Buffer.from('ö')) + 1, bytes.length - 3];
    const parts: Buffer[] = [];
    let at = 0;
    for (const c of cuts) {
      parts.push(bytes.subarray(at, c));
      at = c;
    }
    parts.push(bytes.subarray(at));
    let done = 0;
    const ex = new Exchange(10, 0, true, () => done++);
    const c = ctrl();
    ex.onRequestStart(c);
    ex.onResponseStart(c, 200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-sim-time-scale': '10', 'x-sim-pod': 'p1' });
    for (const p of parts) ex.onResponseData(c, p);
    ex.onResponseEnd();
    expect(done).toBe(1);
    expect(ex.timeScale).toBe(10);
    expect(ex.backend).toBe('p1');
    expect(ex.done).toBe(true);
    expect(ex.streamError).toBeNull();
    expect(ex.answer).toBe(' héllo wörld');
    expect(ex.usage).toEqual({ prompt: 12, completion: 2, cached: 8 });
    expect(ex.clock.chunks).toBe(2);
    expect(ex.clock.simFirst).toBe(300);
    expect(ex.clock.itls).toEqual([25]);
  });

  it('reports a stream error event and a missing [DONE]', () => {
    const a = new Exchange(1, 0, false, () => undefined);
    feed(a, [ev({ error: { message: 'boom' } })]);
    expect(a.streamError).toBe('boom');
    const b = new Exchange(1, 0, false, () => undefined);
    feed(b, [ev({ choices: [{ delta: { content: 'x' } }] })]);
    expect(b.done).toBe(false);
    expect(b.clock.chunks).toBe(1);
  });

  it('keeps the body of an error status for the error sample', () => {
    const ex = new Exchange(1, 0, false, () => undefined);
    const c = ctrl();
    ex.onRequestStart(c);
    ex.onResponseStart(c, 429, { 'content-type': 'application/json' });
    ex.onResponseData(c, Buffer.from('{"error":{"message":"rate limit"}}'));
    ex.onResponseEnd();
    expect(ex.status).toBe(429);
    expect(ex.body).toContain('rate limit');
  });

  it('times a non-streaming answer from sim_timing', () => {
    const ex = new Exchange(10, 0, true, () => undefined);
    const body = JSON.stringify({ choices: [{ message: { content: 'hi there' } }], usage: { prompt_tokens: 3, completion_tokens: 2 }, sim_timing: { ttft_ms: 200, e2e_ms: 400, queue_ms: 0 } });
    feed(ex, [body], { 'content-type': 'application/json' });
    expect(ex.done).toBe(true);
    expect(ex.answer).toBe('hi there');
    expect(ex.clock.simFirst).toBe(200);
    expect(ex.clock.simLast).toBe(400);
  });

  it('finishes once on abort and ignores whatever arrives afterwards', () => {
    let done = 0;
    const ex = new Exchange(1, 0, false, () => done++);
    ex.abort(new RequestTimeoutError(5)); // before the request even started
    const c = ctrl();
    ex.onRequestStart(c);
    expect(c.aborted).toBe(true);
    ex.onResponseStart(c, 200, { 'content-type': 'text/event-stream' });
    ex.onResponseData(c, Buffer.from(ev({ choices: [{ delta: { content: 'late' } }] })));
    ex.onResponseEnd();
    ex.onResponseError(c, new Error('x'));
    expect(done).toBe(1);
    expect((ex.error as { code?: string }).code).toBe('BENCH_REQUEST_TIMEOUT');
    expect(ex.clock.chunks).toBe(0);
  });
});
