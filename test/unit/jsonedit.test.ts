import { describe, it, expect } from 'vitest';
import { applySplices, scanTopLevel } from '../../workers/jsonedit.js';

describe('scanTopLevel', () => {
  it('finds top-level members and ignores nested keys with the same name', () => {
    const text = '{"messages":[{"model":"inner","content":"a \\"model\\": x"}], "model" : "outer", "n":1}';
    const { members, count } = scanTopLevel(text, ['model']);
    const m = members.get('model')!;
    expect(text.slice(m.valueStart, m.valueEnd)).toBe('"outer"');
    expect(count).toBe(3);
  });

  it('takes the last duplicate key, as JSON.parse does', () => {
    const text = '{"model":"a","model":"b"}';
    const m = scanTopLevel(text, ['model']).members.get('model')!;
    expect(text.slice(m.valueStart, m.valueEnd)).toBe('"b"');
    expect(JSON.parse(text).model).toBe('b');
  });

  it('decodes escaped keys', () => {
    const text = '{"mod\\u0065l":"x"}';
    expect(scanTopLevel(text, ['model']).members.has('model')).toBe(true);
  });

  it('spans objects, arrays, literals and numbers', () => {
    const text = '{ "a" : {"b":[1,{"c":"}"}]}, "s":true, "n":-1.5e3, "z":null }';
    const { members, close } = scanTopLevel(text, ['a', 's', 'n', 'z']);
    expect(text.slice(members.get('a')!.valueStart, members.get('a')!.valueEnd)).toBe('{"b":[1,{"c":"}"}]}');
    expect(text.slice(members.get('s')!.valueStart, members.get('s')!.valueEnd)).toBe('true');
    expect(text.slice(members.get('n')!.valueStart, members.get('n')!.valueEnd)).toBe('-1.5e3');
    expect(text.slice(members.get('z')!.valueStart, members.get('z')!.valueEnd)).toBe('null');
    expect(text[close]).toBe('}');
  });

  it('handles strings ending in escaped backslashes', () => {
    const text = '{"p":"a\\\\","model":"m"}';
    const m = scanTopLevel(text, ['model']).members.get('model')!;
    expect(text.slice(m.valueStart, m.valueEnd)).toBe('"m"');
  });
});

describe('applySplices', () => {
  it('replaces and inserts while keeping big integers verbatim', () => {
    const text = '{"model":"a","seed":12345678901234567890}';
    const { members, close } = scanTopLevel(text, ['model']);
    const m = members.get('model')!;
    const out = applySplices(text, [
      { start: close, end: close, text: ',"stream_options":{"include_usage":true}' },
      { start: m.valueStart, end: m.valueEnd, text: '"b"' },
    ]);
    expect(out).toBe('{"model":"b","seed":12345678901234567890,"stream_options":{"include_usage":true}}');
  });
});
