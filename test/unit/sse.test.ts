import { describe, it, expect } from 'vitest';
import { SseUsageScanner, usageFromBody, usageOf } from '../../workers/sse.js';

const chunk = (s: string): Buffer => Buffer.from(s);
const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const usageEvent = ev({ id: 'x', choices: [], usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } });
const tokenEvent = ev({ id: 'x', choices: [{ index: 0, delta: { content: 'hi' } }], usage: null });

describe('SseUsageScanner', () => {
  it('drops the injected usage-only event and records its usage', () => {
    const s = new SseUsageScanner(true);
    const out = s.push(chunk(tokenEvent + usageEvent + 'data: [DONE]\n\n'));
    expect(out.toString()).toBe(tokenEvent + 'data: [DONE]\n\n');
    expect(s.usage).toEqual({ prompt: 7, completion: 3 });
  });

  it('keeps the usage event when the client asked for usage itself', () => {
    const s = new SseUsageScanner(false);
    const input = tokenEvent + usageEvent + 'data: [DONE]\n\n';
    expect(s.push(chunk(input)).toString()).toBe(input);
    expect(s.usage).toEqual({ prompt: 7, completion: 3 });
  });

  it('finds a usage event split across chunks', () => {
    const s = new SseUsageScanner(true);
    const all = tokenEvent + usageEvent + 'data: [DONE]\n\n';
    const cut = tokenEvent.length + 20;
    const a = s.push(chunk(all.slice(0, cut)));
    const b = s.push(chunk(all.slice(cut)));
    expect(Buffer.concat([a, b, s.flush() ?? Buffer.alloc(0)]).toString()).toBe(tokenEvent + 'data: [DONE]\n\n');
    expect(s.usage?.completion).toBe(3);

    const s2 = new SseUsageScanner(false);
    s2.push(chunk(all.slice(0, cut)));
    s2.push(chunk(all.slice(cut)));
    expect(s2.usage?.completion).toBe(3);
  });

  it('drops the blank separator even when it arrives in the next chunk', () => {
    const s = new SseUsageScanner(true);
    const line = usageEvent.slice(0, -1); // "data: {...}\n"
    const a = s.push(chunk(tokenEvent + line));
    const b = s.push(chunk('\ndata: [DONE]\n\n'));
    expect(Buffer.concat([a, b]).toString()).toBe(tokenEvent + 'data: [DONE]\n\n');
  });

  it('ignores usage: null and zero usage', () => {
    const s = new SseUsageScanner(true);
    const zero = ev({ choices: [], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } });
    expect(s.push(chunk(tokenEvent + zero)).toString()).toBe(tokenEvent);
    expect(s.usage).toBeNull();
  });
});

describe('usageOf', () => {
  it('reads a non-streaming body usage', () => {
    expect(usageOf({ usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } })).toEqual({ prompt: 5, completion: 2 });
    expect(usageOf({ usage: null })).toBeNull();
    expect(usageOf('x')).toBeNull();
  });
});

describe('usageFromBody', () => {
  it('reads the top-level usage of a completion body', () => {
    const body = { id: 'x', choices: [{ message: { content: 'the key "usage": {"prompt_tokens": 99} appears in text' } }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }, prompt_logprobs: null };
    expect(usageFromBody(Buffer.from(JSON.stringify(body)))).toEqual({ prompt: 5, completion: 2 });
  });

  it('answers null without usage, with usage null, or on a truncated body', () => {
    expect(usageFromBody(Buffer.from('{"id":"x"}'))).toBeNull();
    expect(usageFromBody(Buffer.from('{"usage":null}'))).toBeNull();
    expect(usageFromBody(Buffer.from('{"usage":{"prompt_tokens":1,'))).toBeNull();
  });
});
