/**
 * Datasets read from files: the prompts of real conversations (ShareGPT), a JSONL of prompts with
 * optional output lengths, and traces with arrival timestamps (replayed as recorded).
 *
 * - ShareGPT JSON (`--dataset-name sharegpt`): an array of `{"conversations": [{"from", "value"},
 *   ...]}`, as vLLM's and SGLang's benchmarks read it: the first turn is the prompt, the second the
 *   reference answer whose token count is the output length (unless fixed with
 *   `--sharegpt-output-len`). Entries are shuffled with the seed, and vLLM's filter applies: a
 *   prompt or answer under 4 tokens, a prompt over 1,024 tokens or a pair over 2,048 is skipped
 *   (a fixed output length lifts the last two bounds, as in vLLM).
 * - JSONL (`--dataset-name jsonl`): one object per line, taken in file order. The prompt is
 *   `prompt` (a string, sent as one user message), `messages` (an OpenAI chat array), or
 *   `input_length` (tokens of generated text; with `hash_ids`, Mooncake's trace format, each id
 *   names one block of `blockTokens` tokens that every line with that id shares, so a trace's
 *   prefix sharing is replayed). The output length is `output_tokens`, `output_length` or
 *   `max_tokens` (else the `--output-len` default). `timestamp` (milliseconds, Mooncake's unit)
 *   makes it a trace: without `--request-rate` requests are sent at those offsets from the first.
 *
 * Token counts: with a `tokenizer.json` (`--tokenizer FILE`, Hugging Face's format, read by the
 * pure-JS @huggingface/tokenizers, no download) they are that tokenizer's; otherwise the ~4
 * characters per token estimate. Which one was used is recorded in the result (`tokenizer`).
 */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { Rng } from './rng.js';
import { indexedText, randomWords } from './text.js';
import type { ChatMessage, RequestSpec, Workload } from './workloads.js';

/** Counts the tokens of a text. */
export interface TokenCounter {
  /** `estimate (4 characters per token)` or `tokenizer.json: <path>`. */
  readonly id: string;
  readonly exact: boolean;
  count(text: string): number;
}

export const ESTIMATE_COUNTER: TokenCounter = Object.freeze({
  id: 'estimate (4 characters per token)',
  exact: false,
  count: (text: string) => Math.ceil(text.length / 4),
});

export class DatasetError extends Error {
  readonly code = 'BENCH_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

interface HfTokenizer { encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] } }

/**
 * A counter over a Hugging Face `tokenizer.json` (and the `tokenizer_config.json` beside it, if
 * any). Special tokens are not added: lengths are of the text, as vLLM's dataset sampling counts.
 */
export async function loadTokenizer(file: string): Promise<TokenCounter> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DatasetError(`--tokenizer ${file}: ${(err as Error).message}`);
  }
  const cfgFile = path.join(path.dirname(file), 'tokenizer_config.json');
  const cfg = existsSync(cfgFile) ? (JSON.parse(readFileSync(cfgFile, 'utf8')) as object) : {};
  const { Tokenizer } = (await import('@huggingface/tokenizers')) as unknown as { Tokenizer: new (json: unknown, cfg: object) => HfTokenizer };
  let tok: HfTokenizer;
  try {
    tok = new Tokenizer(json, cfg);
    tok.encode('probe');
  } catch (err) {
    throw new DatasetError(`--tokenizer ${file}: not a usable tokenizer.json (${(err as Error).message})`);
  }
  return { id: `tokenizer.json: ${file}`, exact: true, count: (text) => tok.encode(text, { add_special_tokens: false }).ids.length };
}

/** One request of a dataset, before the run gives it an index. */
export interface DatasetItem {
  messages: ChatMessage[];
  inputTokens: number;
  outputTokens: number;
  /** Trace arrival time, ms (as recorded; the runner uses offsets from the first). */
  timestampMs?: number;
}

export interface ShareGptOptions {
  /** Requests wanted (the sample stops there; fewer when the file has fewer valid entries). */
  numPrompts: number;
  /** Fixed output length (vLLM's --sharegpt-output-len); default: the reference answer's tokens. */
  outputLen?: number;
  seed: number;
  counter: TokenCounter;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DatasetError(`--dataset-path ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DatasetError(`--dataset-path ${file}: not JSON (${(err as Error).message})`);
  }
}

/** vLLM's sample_sharegpt_requests, over a parsed file. */
export function sampleShareGpt(data: unknown, o: ShareGptOptions, file = 'dataset'): DatasetItem[] {
  if (!Array.isArray(data)) throw new DatasetError(`${file}: a ShareGPT file is a JSON array of {"conversations": [...]}`);
  const pairs: Array<[string, string]> = [];
  for (const entry of data) {
    const conv = (entry as { conversations?: unknown })?.conversations;
    if (!Array.isArray(conv) || conv.length < 2) continue;
    const a = (conv[0] as { value?: unknown })?.value;
    const b = (conv[1] as { value?: unknown })?.value;
    if (typeof a === 'string' && typeof b === 'string') pairs.push([a, b]);
  }
  if (pairs.length === 0) throw new DatasetError(`${file}: no entry has a "conversations" array with two turns`);
  Rng.stream(o.seed, 'sharegpt').shuffle(pairs);
  const out: DatasetItem[] = [];
  for (const [prompt, answer] of pairs) {
    if (out.length >= o.numPrompts) break;
    const inputTokens = o.counter.count(prompt);
    const outputTokens = o.outputLen ?? o.counter.count(answer);
    if (inputTokens < 4 || outputTokens < 4) continue;
    if (o.outputLen === undefined && (inputTokens > 1024 || inputTokens + outputTokens > 2048)) continue;
    out.push({ messages: [{ role: 'user', content: prompt }], inputTokens, outputTokens });
  }
  if (out.length === 0) throw new DatasetError(`${file}: every conversation was filtered out (prompt or answer under 4 tokens, or too long)`);
  return out;
}

export function loadShareGpt(file: string, o: ShareGptOptions): DatasetItem[] {
  return sampleShareGpt(readJson(file), o, file);
}

export interface JsonlOptions {
  /** Output length of lines that give none. */
  outputLen: number;
  /** Tokens per `hash_ids` block (Mooncake traces: 512). */
  blockTokens: number;
  seed: number;
  counter: TokenCounter;
}

const ROLES = new Set(['system', 'user', 'assistant']);

function lineError(file: string, n: number, why: string): DatasetError {
  return new DatasetError(`${file}:${n}: ${why}`);
}

/** Parses JSONL dataset text (blank lines skipped). */
export function parseJsonl(text: string, o: JsonlOptions, file = 'dataset'): DatasetItem[] {
  const out: DatasetItem[] = [];
  const blocks = new Map<number, string>();
  const block = (id: number): string => {
    let s = blocks.get(id);
    if (s === undefined) {
      s = indexedText(Rng.stream(o.seed, 'jsonl-block', id), id, o.blockTokens);
      blocks.set(id, s);
    }
    return s;
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const n = i + 1;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw lineError(file, n, `not JSON (${(err as Error).message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw lineError(file, n, 'each line must be a JSON object');
    let messages: ChatMessage[];
    let inputTokens: number;
    if (typeof v.prompt === 'string') {
      messages = [{ role: 'user', content: v.prompt }];
      inputTokens = o.counter.count(v.prompt);
    } else if (Array.isArray(v.messages)) {
      messages = v.messages.map((m: unknown, k: number) => {
        const r = (m as { role?: unknown })?.role;
        const c = (m as { content?: unknown })?.content;
        if (typeof r !== 'string' || !ROLES.has(r) || typeof c !== 'string') throw lineError(file, n, `messages[${k}] must be {"role": system|user|assistant, "content": string}`);
        return { role: r as ChatMessage['role'], content: c };
      });
      if (messages.length === 0) throw lineError(file, n, 'messages is empty');
      inputTokens = messages.reduce((t, m) => t + o.counter.count(m.content), 0);
    } else if (typeof v.input_length === 'number') {
      const len = v.input_length;
      if (!Number.isInteger(len) || len < 1) throw lineError(file, n, `input_length must be a positive integer, got ${len}`);
      let content = '';
      let used = 0;
      if (v.hash_ids !== undefined) {
        if (!Array.isArray(v.hash_ids) || !v.hash_ids.every((h) => Number.isInteger(h) && h >= 0)) throw lineError(file, n, 'hash_ids must be an array of non-negative integers');
        for (const h of v.hash_ids as number[]) {
          if (used + o.blockTokens > len) break;
          content += block(h);
          used += o.blockTokens;
        }
      }
      content += randomWords(Rng.stream(o.seed, 'jsonl-tail', n), len - used);
      messages = [{ role: 'user', content }];
      // Generated text: 4 characters per token by construction (text.ts).
      inputTokens = o.counter.exact ? o.counter.count(content) : len;
    } else {
      throw lineError(file, n, 'needs "prompt" (string), "messages" (chat array) or "input_length" (tokens)');
    }
    const outRaw = v.output_tokens ?? v.output_length ?? v.max_tokens;
    let outputTokens = o.outputLen;
    if (outRaw !== undefined) {
      if (typeof outRaw !== 'number' || !Number.isInteger(outRaw) || outRaw < 1) throw lineError(file, n, `the output length must be a positive integer, got ${JSON.stringify(outRaw)}`);
      outputTokens = outRaw;
    }
    const item: DatasetItem = { messages, inputTokens, outputTokens };
    if (v.timestamp !== undefined) {
      if (typeof v.timestamp !== 'number' || !Number.isFinite(v.timestamp) || v.timestamp < 0) throw lineError(file, n, `timestamp must be a non-negative number of milliseconds, got ${JSON.stringify(v.timestamp)}`);
      item.timestampMs = v.timestamp;
    }
    out.push(item);
  }
  if (out.length === 0) throw new DatasetError(`${file}: no request in the file`);
  const timed = out.filter((x) => x.timestampMs !== undefined).length;
  if (timed !== 0 && timed !== out.length) throw new DatasetError(`${file}: ${timed} of ${out.length} lines have a timestamp: all or none`);
  for (let i = 1; i < out.length && timed > 0; i++) {
    if (out[i].timestampMs! < out[i - 1].timestampMs!) throw new DatasetError(`${file}: timestamps must not decrease (line ${i + 1} of the requests)`);
  }
  return out;
}

export function loadJsonl(file: string, o: JsonlOptions): DatasetItem[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DatasetError(`--dataset-path ${file}: ${(err as Error).message}`);
  }
  return parseJsonl(text, o, file);
}

/**
 * A workload over dataset items, in order; past the end it starts again (another pass over the
 * same prompts, which a server's prefix cache may then hold: say so in reports).
 */
export class DatasetWorkload implements Workload {
  readonly name: string;
  readonly size: number;
  readonly params: Record<string, unknown>;
  readonly #items: readonly DatasetItem[];
  #i = 0;

  constructor(name: string, items: readonly DatasetItem[], params: Record<string, unknown>) {
    if (items.length === 0) throw new DatasetError(`the ${name} dataset is empty`);
    this.name = name;
    this.#items = items;
    this.size = items.length;
    this.params = params;
  }

  /** Recorded arrival offsets (ms from the first request) when every item has a timestamp. */
  get timestampsMs(): Float64Array | null {
    if (this.#items[0].timestampMs === undefined) return null;
    const t0 = this.#items[0].timestampMs;
    return Float64Array.from(this.#items, (x) => x.timestampMs! - t0);
  }

  request(i: number): RequestSpec {
    const it = this.#items[i % this.size];
    return { index: i, messages: it.messages, inputTokens: it.inputTokens, outputTokens: it.outputTokens };
  }

  next(): RequestSpec {
    return this.request(this.#i++);
  }
}
