/**
 * native-bench datasets: ShareGPT sampling as vLLM does it, JSONL prompts and traces, and token
 * counts from a tokenizer.json (the fixtures in native-bench/datasets/, nothing downloaded).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import {
  DatasetWorkload,
  ESTIMATE_COUNTER,
  loadJsonl,
  loadShareGpt,
  loadTokenizer,
  parseJsonl,
  sampleShareGpt,
} from '../../native-bench/src/datasets.js';
import { parseRunArgs } from '../../native-bench/src/cli.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native-bench', 'datasets');
const SHAREGPT = path.join(dir, 'sharegpt-small.json');
const PROMPTS = path.join(dir, 'prompts.jsonl');
const TRACE = path.join(dir, 'trace.jsonl');
const TOKENIZER = path.join(dir, 'tiny-bpe', 'tokenizer.json');
const jsonlOpts = { outputLen: 128, blockTokens: 512, seed: 1, counter: ESTIMATE_COUNTER };

describe('ShareGPT datasets', () => {
  it('takes the first turn as the prompt and the answer length as the output length, skipping what vLLM skips', () => {
    const items = loadShareGpt(SHAREGPT, { numPrompts: 100, seed: 1, counter: ESTIMATE_COUNTER });
    // 13 entries: one has a single turn, one a 2-token answer ("Sure." / "Paris.") and one a
    // prompt under 4 tokens ("ok"): 10 remain.
    expect(items.length).toBe(10);
    for (const it of items) {
      expect(it.messages).toHaveLength(1);
      expect(it.inputTokens).toBe(Math.ceil(it.messages[0].content.length / 4));
      expect(it.inputTokens).toBeGreaterThanOrEqual(4);
      expect(it.outputTokens).toBeGreaterThanOrEqual(4);
    }
    expect(items.some((x) => x.messages[0].content === 'ok')).toBe(false);
  });

  it('samples the requested number in a seeded order, with a fixed output length when asked', () => {
    const a = loadShareGpt(SHAREGPT, { numPrompts: 4, seed: 7, counter: ESTIMATE_COUNTER, outputLen: 33 });
    const b = loadShareGpt(SHAREGPT, { numPrompts: 4, seed: 7, counter: ESTIMATE_COUNTER, outputLen: 33 });
    const c = loadShareGpt(SHAREGPT, { numPrompts: 4, seed: 8, counter: ESTIMATE_COUNTER, outputLen: 33 });
    expect(a).toEqual(b);
    expect(a.map((x) => x.messages[0].content)).not.toEqual(c.map((x) => x.messages[0].content));
    expect(a.every((x) => x.outputTokens === 33)).toBe(true);
  });

  it('refuses a file that is not ShareGPT', () => {
    expect(() => sampleShareGpt({ conversations: [] }, { numPrompts: 1, seed: 1, counter: ESTIMATE_COUNTER })).toThrow(/JSON array/);
    expect(() => sampleShareGpt([{ text: 'x' }], { numPrompts: 1, seed: 1, counter: ESTIMATE_COUNTER })).toThrow(/two turns/);
  });
});

describe('JSONL datasets and traces', () => {
  it('reads prompt, messages and input_length lines with their output lengths', () => {
    const items = loadJsonl(PROMPTS, jsonlOpts);
    expect(items.map((x) => x.outputTokens)).toEqual([64, 32, 128, 40]);
    expect(items[1].messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(items[3].inputTokens).toBe(200);
    expect(items[3].messages[0].content.length).toBe(800);
    expect(new DatasetWorkload('jsonl', items, {}).timestampsMs).toBeNull();
  });

  it('replays Mooncake-style traces: offsets from the first timestamp, shared blocks for shared hash ids', () => {
    const items = loadJsonl(TRACE, jsonlOpts);
    const w = new DatasetWorkload('jsonl', items, {});
    expect([...w.timestampsMs!]).toEqual([0, 40, 90, 150, 400, 420, 700]);
    const text = items.map((x) => x.messages[0].content);
    // Lines 1, 2, 4 and 6 share hash ids [0, 1]: their first 1,024 tokens (4,096 characters) agree.
    expect(text[1].slice(0, 4096)).toBe(text[0].slice(0, 4096));
    expect(text[3].slice(0, 4096)).toBe(text[0].slice(0, 4096));
    expect(text[1].slice(4096, 4200)).not.toBe(text[0].slice(4096, 4200));
    // Line 3 starts with block 2, a different text; its length is input_length tokens.
    expect(text[2].slice(0, 400)).not.toBe(text[0].slice(0, 400));
    expect(items.map((x) => x.inputTokens)).toEqual([1100, 1030, 700, 1200, 600, 1100, 520]);
    expect(text[2].length).toBe(700 * 4);
  });

  it.each([
    ['{"prompt": 1}', /needs "prompt"/],
    ['not json', /:1: not JSON/],
    ['{"prompt": "a", "output_tokens": 0}', /output length must be a positive integer/],
    ['{"messages": [{"role": "bot", "content": "x"}]}', /messages\[0\]/],
    ['{"prompt": "a", "timestamp": 5}\n{"prompt": "b"}', /all or none/],
    ['{"prompt": "a", "timestamp": 5}\n{"prompt": "b", "timestamp": 1}', /must not decrease/],
    ['{"input_length": 10, "hash_ids": [-1]}', /hash_ids/],
    ['\n\n', /no request/],
  ])('refuses %j with the line number', (text, msg) => {
    expect(() => parseJsonl(text, jsonlOpts, 'f.jsonl')).toThrow(msg);
  });
});

describe('tokenizer.json token counts', () => {
  it('counts with the given tokenizer instead of the 4-character estimate', async () => {
    const tok = await loadTokenizer(TOKENIZER);
    expect(tok.exact).toBe(true);
    expect(tok.id).toContain('tiny-bpe/tokenizer.json');
    const s = 'the thing is on the table and it is there';
    // The fixture's byte-level BPE knows few merges: more tokens than the estimate's 11.
    expect(tok.count(s)).toBe(22);
    expect(ESTIMATE_COUNTER.count(s)).toBe(11);
    const items = loadShareGpt(SHAREGPT, { numPrompts: 100, seed: 1, counter: tok });
    for (const it of items) expect(it.inputTokens).toBe(tok.count(it.messages[0].content));
  });

  it('refuses a file that is not a tokenizer', async () => {
    await expect(loadTokenizer(SHAREGPT)).rejects.toThrow(/not a usable tokenizer.json/);
    await expect(loadTokenizer(path.join(dir, 'missing.json'))).rejects.toThrow(/--tokenizer/);
  });
});

describe('run options for datasets', () => {
  it('replays a trace when no rate is given, and uses the rate when one is', () => {
    const trace = parseRunArgs(['--url', 'http://127.0.0.1:1', '--model', 'm', '--dataset-name', 'jsonl', '--dataset-path', TRACE]);
    expect([...trace.load.schedule!]).toEqual([0, 40, 90, 150, 400, 420, 700]);
    expect(trace.load.rate).toBeUndefined();
    const rated = parseRunArgs(['--url', 'http://127.0.0.1:1', '--model', 'm', '--dataset-name', 'jsonl', '--dataset-path', TRACE, '--request-rate', '3']);
    expect(rated.load.schedule).toBeUndefined();
    expect(rated.load.rate).toBe(3);
    const sg = parseRunArgs(['--url', 'http://127.0.0.1:1', '--model', 'm', '--dataset-name', 'sharegpt', '--dataset-path', SHAREGPT, '--num-prompts', '3', '--sharegpt-output-len', '9']);
    expect(sg.load.workload.size).toBe(3);
    expect(sg.load.rate).toBe(Infinity);
    expect(sg.tokenizer).toMatch(/estimate/);
  });
});
