/**
 * Usage accounting on the response path. For SSE we look at complete lines only, and parse a
 * line's JSON only when its bytes contain a usage object, so a 1,000-event stream costs a
 * handful of indexOf calls per chunk.
 */

import { skipValue } from './jsonedit.js';

export interface Usage {
  prompt: number;
  completion: number;
}

const kUsageKey = Buffer.from('"usage":');
const kDataPrefix = Buffer.from('data:');
const kNewline = 10;

/** Reads `usage` from a parsed OpenAI response object; null when absent or all zero (as Kthena). */
export function usageOf(obj: unknown): Usage | null {
  if (obj === null || typeof obj !== 'object') return null;
  const u = (obj as { usage?: unknown }).usage;
  if (u === null || typeof u !== 'object') return null;
  const usage = u as { prompt_tokens?: unknown; completion_tokens?: unknown; total_tokens?: unknown };
  const prompt = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  const completion = typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0;
  const total = typeof usage.total_tokens === 'number' ? usage.total_tokens : 0;
  if (total <= 0 && prompt + completion <= 0) return null;
  return { prompt, completion };
}

/**
 * Usage of a non-streaming response body without parsing the whole body: the last `"usage":`
 * key is the top-level one (OpenAI and vLLM write it after `choices`; a `"usage":` inside generated
 * text is escaped as `\"usage\":` and cannot match).
 */
export function usageFromBody(buf: Buffer): Usage | null {
  const at = buf.lastIndexOf(kUsageKey);
  if (at < 0) return null;
  const text = buf.toString('utf8', at + kUsageKey.length);
  let i = 0;
  while (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9 || text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13) i++;
  if (text.charCodeAt(i) !== 123) return null;
  try {
    return usageOf({ usage: JSON.parse(text.slice(i, skipValue(text, i))) });
  } catch {
    return null;
  }
}

function isUsageObjectAt(buf: Buffer, at: number, end: number): boolean {
  let i = at + kUsageKey.length;
  while (i < end && (buf[i] === 32 || buf[i] === 9)) i++;
  return i < end && buf[i] === 123; // '{', not null
}

/** What a response writer needs to count a response's tokens, per API shape. */
export interface StreamUsageScanner {
  /** The usage to record once the stream ended (null: none). */
  readonly usage: Usage | null;
  /** Bytes to forward for `chunk` (the chunk itself unless something is withheld). */
  push(chunk: Buffer): Buffer;
  /** Bytes held back at the end of the stream. */
  flush(): Buffer | null;
}

export interface UsageShape {
  /** `suppressInjected`: the router asked for usage the client did not (drop the usage-only event). */
  stream(suppressInjected: boolean): StreamUsageScanner;
  body(buf: Buffer): Usage | null;
}

/**
 * Scans SSE bytes. Call `push(chunk)` for each upstream chunk; it returns the bytes to forward
 * (the chunk itself when nothing is dropped) and records usage. When `suppressUsageOnly` is set,
 * a `data:` line whose JSON has `choices: []` and a usage object (the chunk the router asked for
 * by injecting include_usage) is dropped together with its blank separator line.
 */
export class SseUsageScanner implements StreamUsageScanner {
  usage: Usage | null = null;
  readonly #suppress: boolean;
  /** Incomplete trailing line from the previous chunk (held back only when suppressing). */
  #carry: Buffer | null = null;
  #dropNextBlank = false;

  constructor(suppressUsageOnly: boolean) {
    this.#suppress = suppressUsageOnly;
  }

  push(chunk: Buffer): Buffer {
    let buf = chunk;
    if (this.#carry !== null) {
      buf = Buffer.concat([this.#carry, chunk]);
      this.#carry = null;
    }
    if (!this.#suppress) {
      // Nothing is ever dropped: forward as is, scan only for usage (a usage line split across
      // chunks is rare; keep the tail so it is still counted).
      this.#scanForUsage(buf, null);
      return chunk;
    }
    const lastNl = buf.lastIndexOf(kNewline);
    if (lastNl < buf.length - 1) {
      this.#carry = Buffer.from(buf.subarray(lastNl + 1));
      buf = buf.subarray(0, lastNl + 1);
    }
    const drops: number[] = [];
    this.#scanForUsage(buf, drops);
    if (drops.length === 0 && !this.#dropNextBlank) return buf;
    return this.#without(buf, drops);
  }

  /** Remaining held-back bytes at end of stream. */
  flush(): Buffer | null {
    const c = this.#carry;
    this.#carry = null;
    return c;
  }

  #tail: Buffer | null = null;

  #scanForUsage(buf: Buffer, drops: number[] | null): void {
    let scan = buf;
    if (drops === null && this.#tail !== null) scan = Buffer.concat([this.#tail, buf]);
    let from = 0;
    for (;;) {
      const u = scan.indexOf(kUsageKey, from);
      if (u < 0) break;
      const lineStart = scan.lastIndexOf(kNewline, u) + 1;
      const lineEnd = scan.indexOf(kNewline, u);
      if (lineEnd < 0) break;
      from = lineEnd + 1;
      if (!isUsageObjectAt(scan, u, lineEnd)) continue;
      if (scan.compare(kDataPrefix, 0, kDataPrefix.length, lineStart, lineStart + kDataPrefix.length) !== 0) continue;
      let obj: unknown;
      try { obj = JSON.parse(scan.toString('utf8', lineStart + kDataPrefix.length, lineEnd)); } catch { continue; }
      const usage = usageOf(obj);
      if (usage !== null) this.usage = usage;
      if (drops !== null) {
        const choices = (obj as { choices?: unknown }).choices;
        if (Array.isArray(choices) && choices.length === 0) drops.push(lineStart, lineEnd + 1);
      }
    }
    if (drops === null) {
      const lastNl = scan.lastIndexOf(kNewline);
      this.#tail = lastNl < scan.length - 1 ? Buffer.from(scan.subarray(lastNl + 1)) : null;
    }
  }

  #without(buf: Buffer, drops: number[]): Buffer {
    const parts: Buffer[] = [];
    let pos = 0;
    if (this.#dropNextBlank) {
      // The blank line ending a dropped event arrived at the start of this chunk.
      if (buf[0] === kNewline) pos = 1;
      else if (buf[0] === 13 && buf[1] === kNewline) pos = 2;
      this.#dropNextBlank = false;
    }
    for (let i = 0; i < drops.length; i += 2) {
      if (drops[i] > pos) parts.push(buf.subarray(pos, drops[i]));
      pos = drops[i + 1];
      if (pos >= buf.length) this.#dropNextBlank = true;
      else if (buf[pos] === kNewline) pos += 1;
      else if (buf[pos] === 13 && buf[pos + 1] === kNewline) pos += 2;
    }
    if (pos < buf.length) parts.push(buf.subarray(pos));
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

/** OpenAI chat/completions (and every in-cluster engine): `usage` with prompt_tokens/completion_tokens. */
export const OPENAI_USAGE: UsageShape = Object.freeze({
  stream: (suppressInjected: boolean): StreamUsageScanner => new SseUsageScanner(suppressInjected),
  body: usageFromBody,
});
