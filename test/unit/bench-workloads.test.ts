import { describe, expect, it } from 'vitest';

import { tokenizeChat, tokenizeText } from '../../native-bench/src/sim/tokenize.js';
import { hashUnit } from '../../native-bench/src/rng.js';
import { indexWord, randomWords } from '../../native-bench/src/text.js';
import { Rng } from '../../native-bench/src/rng.js';
import {
  WAIT,
  generatedSharedPrefix,
  multiTurn,
  parseLoraMix,
  parseRange,
  pickModel,
  randomLengths,
} from '../../native-bench/src/workloads.js';
import type { RequestSpec } from '../../native-bench/src/workloads.js';

/** Token ids of a message content alone, as the simulator counts them. */
const toks = (s: string): number[] => tokenizeText(s, false);

function commonPrefix(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

const SMALL = { numGroups: 4, promptsPerGroup: 5, systemPromptLen: 64, questionLen: 16, outputLen: 8 };

describe('bench workloads: generated text', () => {
  it('makes text of exactly n tokens under the simulator tokenizer, 4 characters per token', () => {
    for (const n of [0, 1, 7, 300]) {
      const t = randomWords(new Rng(n), n);
      expect(t.length).toBe(4 * n);
      expect(toks(t).length).toBe(n);
    }
    expect(toks(indexWord(12345)).length).toBe(1);
    expect(indexWord(0)).not.toBe(indexWord(1));
  });
});

describe('bench workloads: generated-shared-prefix', () => {
  const all = (seed = 1): RequestSpec[] => {
    const w = generatedSharedPrefix(SMALL, seed);
    return Array.from({ length: w.size }, () => w.next());
  };

  it('asks for the designed prompt and output lengths', () => {
    for (const r of all()) {
      expect(r.messages).toHaveLength(1);
      expect(r.messages[0].role).toBe('user');
      expect(toks(r.messages[0].content).length).toBe(SMALL.systemPromptLen + SMALL.questionLen);
      expect(r.inputTokens).toBe(SMALL.systemPromptLen + SMALL.questionLen);
      expect(r.outputTokens).toBe(SMALL.outputLen);
    }
  });

  it('adds a constant chat-template overhead under the simulator tokenizer', () => {
    const overheads = new Set(all().map((r) => tokenizeChat(r.messages).length - r.inputTokens));
    expect(overheads.size).toBe(1);
  });

  it('makes prompts of a group share exactly the system prompt, and groups share nothing', () => {
    const rs = all();
    for (let i = 0; i < rs.length; i++) {
      for (let j = i + 1; j < rs.length; j++) {
        const shared = commonPrefix(toks(rs[i].messages[0].content), toks(rs[j].messages[0].content));
        expect(shared).toBe(rs[i].group === rs[j].group ? SMALL.systemPromptLen : 0);
        // Through the chat template too: the template prefix plus exactly the system prompt,
        // whose first word the template joins to the newline after the role (one token more).
        const chatShared = commonPrefix(tokenizeChat(rs[i].messages), tokenizeChat(rs[j].messages));
        const tmpl = commonPrefix(tokenizeChat([{ role: 'user', content: ' aaa' }]), tokenizeChat([{ role: 'user', content: ' bbb' }]));
        expect(chatShared).toBe(tmpl + (rs[i].group === rs[j].group ? SMALL.systemPromptLen + 1 : 0));
      }
    }
  });

  it('uses every (group, prompt) once per pass, shuffled across groups', () => {
    const rs = all();
    expect(new Set(rs.map((r) => r.messages[0].content)).size).toBe(rs.length);
    const groups = rs.map((r) => r.group!);
    for (let g = 0; g < SMALL.numGroups; g++) expect(groups.filter((x) => x === g)).toHaveLength(SMALL.promptsPerGroup);
    expect(groups).not.toEqual([...groups].sort((a, b) => a - b));
  });

  it('is deterministic for a seed and different for another', () => {
    expect(all(5).map((r) => r.messages[0].content)).toEqual(all(5).map((r) => r.messages[0].content));
    expect(all(5).map((r) => r.messages[0].content)).not.toEqual(all(6).map((r) => r.messages[0].content));
  });

  it('continues past the dataset with the same system prompts and fresh questions', () => {
    const w = generatedSharedPrefix(SMALL, 1);
    const first = Array.from({ length: w.size }, () => w.next());
    const second = Array.from({ length: w.size }, () => w.next());
    const sys = (r: RequestSpec): string => r.messages[0].content.slice(0, SMALL.systemPromptLen * 4);
    expect(new Set(second.map(sys))).toEqual(new Set(first.map(sys)));
    const seen = new Set(first.map((r) => r.messages[0].content));
    for (const r of second) expect(seen.has(r.messages[0].content)).toBe(false);
    expect(second[0].index).toBe(w.size);
  });

  it('matches the request method with random access', () => {
    const w = generatedSharedPrefix(SMALL, 3);
    const seq = Array.from({ length: 25 }, () => w.next());
    const again = generatedSharedPrefix(SMALL, 3);
    expect(again.request(22)).toEqual(seq[22]);
    expect(again.request(3)).toEqual(seq[3]);
  });

  it('rejects parameters it cannot honour', () => {
    expect(() => generatedSharedPrefix({ numGroups: 0 })).toThrow(/gsp-num-groups/);
    expect(() => generatedSharedPrefix({ outputLen: 0 })).toThrow(/gsp-output-len/);
    expect(() => generatedSharedPrefix({ promptsPerGroup: 20_000 })).toThrow(/at most/);
  });
});

describe('bench workloads: random lengths', () => {
  it('draws input and output lengths within their ranges', () => {
    const w = randomLengths({ inputLen: parseRange('in', '10:20'), outputLen: parseRange('out', '3-5') }, 2);
    const ins = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const r = w.next();
      expect(toks(r.messages[0].content).length).toBe(r.inputTokens);
      expect(r.inputTokens).toBeGreaterThanOrEqual(10);
      expect(r.inputTokens).toBeLessThanOrEqual(20);
      expect(r.outputTokens).toBeGreaterThanOrEqual(3);
      expect(r.outputTokens).toBeLessThanOrEqual(5);
      ins.add(r.inputTokens);
    }
    expect(ins.size).toBe(11);
    expect(w.size).toBeNull();
  });

  it('parses N and MIN:MAX ranges', () => {
    expect(parseRange('x', '7')).toEqual({ min: 7, max: 7 });
    expect(parseRange('x', '1:9')).toEqual({ min: 1, max: 9 });
    expect(() => parseRange('x', '9:1')).toThrow(/MIN/);
    expect(() => parseRange('x', 'abc')).toThrow(/MIN:MAX/);
  });
});

describe('bench workloads: multi-turn', () => {
  const P = { sessions: 3, turns: 3, systemLen: 8, questionLen: 5, outputLen: 4 };

  it('interleaves sessions and waits for an answer before the next turn', () => {
    const w = multiTurn(P, 1);
    const firsts = [w.next(), w.next(), w.next()] as RequestSpec[];
    expect(new Set(firsts.map((r) => r.session)).size).toBe(3);
    expect(firsts.every((r) => r.turn === 0)).toBe(true);
    expect(w.next()).toBe(WAIT);
    w.complete(firsts[1], { ok: true, answer: ' one two', outputTokens: 2 });
    const t1 = w.next() as RequestSpec;
    expect(t1.session).toBe(firsts[1].session);
    expect(t1.turn).toBe(1);
    // History: shared system prompt, question 1, the actual answer, question 2.
    expect(t1.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(t1.messages[0].content).toBe(firsts[1].messages[0].content);
    expect(t1.messages[1].content).toBe(firsts[1].messages[1].content);
    expect(t1.messages[2].content).toBe(' one two');
    expect(t1.inputTokens).toBe(8 + 5 + 2 + 5);
    expect(w.next()).toBe(WAIT);
  });

  it('ends after the last turn, and ends a session early when a turn fails', () => {
    const w = multiTurn(P, 4);
    let sent = 0;
    let failedOnce = false;
    for (;;) {
      const r = w.next();
      if (r === null) break;
      expect(r).not.toBe(WAIT); // everything is completed synchronously below
      if (r === WAIT) break;
      sent++;
      const fail = !failedOnce && r.session === 0 && r.turn === 0;
      if (fail) failedOnce = true;
      w.complete(r, { ok: !fail, answer: ' ok', outputTokens: 1 });
    }
    expect(sent).toBe(3 * 3 - 2);
    expect(w.abandoned).toBe(1);
  });

  it('shares the system prompt across sessions and starts sessions differently after it', () => {
    const w = multiTurn(P, 9);
    const a = w.next() as RequestSpec;
    const b = w.next() as RequestSpec;
    expect(a.messages[0]).toEqual(b.messages[0]);
    expect(commonPrefix(toks(a.messages[1].content), toks(b.messages[1].content))).toBe(0);
  });
});

describe('bench workloads: LoRA mix', () => {
  it('parses name:share pairs and refuses shares above 1', () => {
    expect(parseLoraMix('a:0.3,b:0.2')).toEqual([{ model: 'a', share: 0.3 }, { model: 'b', share: 0.2 }]);
    expect(parseLoraMix('org/adapter:v1:0.5')).toEqual([{ model: 'org/adapter:v1', share: 0.5 }]);
    expect(() => parseLoraMix('a:0.7,b:0.4')).toThrow(/more than 1/);
    expect(() => parseLoraMix('a')).toThrow(/NAME:SHARE/);
  });

  it('routes each share of requests to its adapter', () => {
    const mix = parseLoraMix('a:0.3,b:0.2');
    const n = 20_000;
    const count: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const m = pickModel('base', mix, hashUnit(1, 'lora', `r${i}`));
      count[m] = (count[m] ?? 0) + 1;
    }
    expect(count.a / n).toBeCloseTo(0.3, 1);
    expect(count.b / n).toBeCloseTo(0.2, 1);
    expect(count.base / n).toBeCloseTo(0.5, 1);
  });
});
