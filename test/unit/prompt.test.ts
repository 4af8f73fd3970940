import { describe, it, expect } from 'vitest';
import { estimateTokens, extractPrompt } from '../../workers/prompt.js';

describe('extractPrompt and estimateTokens (Kthena §2.2)', () => {
  it('renders chat messages as ChatML and estimates ceil(runes/4)', () => {
    const p = extractPrompt({ messages: [{ role: 'user', content: 'hello world' }] })!;
    expect(p).toBe('<|im_start|>user\nhello world<|im_end|>\n');
    expect(estimateTokens(p)).toBe(10);
    expect(estimateTokens(extractPrompt({ messages: [{ role: 'user', content: 'Hello' }] })!)).toBe(9);
    expect(estimateTokens(extractPrompt({ messages: [{ role: 'user', content: 'hi' }] })!)).toBe(8);
  });

  it('joins text parts, skips non-text parts and adds a top-level system', () => {
    const p = extractPrompt({
      system: [{ type: 'text', text: 'be brief' }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: {} }, { type: 'input_text', text: 'b' }] }, { role: 'assistant' }],
    });
    expect(p).toBe('<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n');
  });

  it('accepts a string prompt and rejects a token-list prompt', () => {
    expect(extractPrompt({ prompt: 'abc' })).toBe('abc');
    expect(extractPrompt({ prompt: [1, 2, 3] })).toBeNull();
  });

  it('handles Responses-style input with instructions', () => {
    expect(extractPrompt({ instructions: 'x', input: 'y' })).toBe('<|im_start|>developer\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n');
    expect(extractPrompt({ input: [{ type: 'function_call' }, { role: 'user', content: 'q' }] })).toBe('<|im_start|>user\nq<|im_end|>\n');
    expect(extractPrompt({ input: 3 })).toBeNull();
  });

  it('answers null when there is no prompt at all', () => {
    expect(extractPrompt({ model: 'm' })).toBeNull();
    expect(extractPrompt({ messages: 'nope' })).toBeNull();
  });

  it('counts a surrogate pair as one rune', () => {
    expect(estimateTokens('😀😀😀😀')).toBe(1);
  });
});
