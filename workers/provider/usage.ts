/**
 * Token usage of external providers' responses, per API shape (Kthena:
 * volcano-sh/kthena:pkg/kthena-router/providers/openai.go and anthropic.go). OpenAI
 * chat/completions report usage like in-cluster engines (workers/sse.ts OPENAI_USAGE); the
 * Responses API and Anthropic's Messages API count differently:
 *
 *  - Responses: `usage.{input_tokens, output_tokens, total_tokens}` in the body, or in the
 *    `response` object of stream events; a stream counts only once its `response.completed` event
 *    went through, with the last usage seen.
 *  - Anthropic: input = `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`;
 *    in a stream `message_start` carries `message.usage` and `message_delta` the final `usage`
 *    (output tokens are cumulative); a stream counts only once `message_stop` went through.
 *
 * Streams are scanned line by line; a line's JSON is parsed only when its bytes name usage or the
 * completion event, so a long stream of deltas costs a couple of indexOf calls per chunk.
 */
import { OPENAI_USAGE, type StreamUsageScanner, type Usage, type UsageShape } from '../sse.js';

const kNewline = 10;
const kUsage = Buffer.from('"usage"');

/** The JSON of a `data:` line (Kthena's streamDataPayload), or null. */
function dataPayload(line: string): unknown {
  const t = line.trim();
  if (!t.startsWith('data:')) return null;
  const payload = t.slice(5).trim();
  if (payload === '' || payload === '[DONE]') return null;
  try {
    return JSON.parse(payload);
  } catch {
    return null;
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function obj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : null;
}

/** Complete lines of a stream, the partial last line carried to the next chunk; forwards bytes unchanged. */
abstract class LineScanner implements StreamUsageScanner {
  #carry: Buffer | null = null;
  readonly #marker: Buffer;

  constructor(marker: string) {
    this.#marker = Buffer.from(marker);
  }

  abstract get usage(): Usage | null;
  protected abstract line(text: string): void;

  push(chunk: Buffer): Buffer {
    const buf = this.#carry === null ? chunk : Buffer.concat([this.#carry, chunk]);
    this.#carry = null;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(kNewline, start);
      if (nl < 0) break;
      this.#maybe(buf, start, nl);
      start = nl + 1;
    }
    if (start < buf.length) this.#carry = Buffer.from(buf.subarray(start));
    return chunk;
  }

  flush(): Buffer | null {
    const c = this.#carry;
    this.#carry = null;
    if (c !== null) this.#maybe(c, 0, c.length);
    // Nothing was held back from the client: push() forwards every chunk as it came.
    return null;
  }

  #maybe(buf: Buffer, start: number, end: number): void {
    const u = buf.indexOf(kUsage, start);
    const m = buf.indexOf(this.#marker, start);
    if ((u < 0 || u >= end) && (m < 0 || m >= end)) return;
    this.line(buf.toString('utf8', start, end));
  }
}

export class ResponsesStreamUsage extends LineScanner {
  #latest: Usage | null = null;
  #completed = false;

  constructor() {
    super('response.completed');
  }

  get usage(): Usage | null {
    return this.#completed ? this.#latest : null;
  }

  protected line(text: string): void {
    const event = obj(dataPayload(text));
    if (event === null) return;
    if (event.type === 'response.completed') this.#completed = true;
    const u = responsesUsage(obj(event.response) ?? event);
    if (u !== null) this.#latest = u;
  }
}

function responsesUsage(o: Record<string, unknown>): Usage | null {
  const u = obj(o.usage);
  if (u === null) return null;
  const input = num(u.input_tokens);
  const output = num(u.output_tokens);
  const total = num(u.total_tokens) || input + output;
  return total > 0 ? { prompt: input, completion: output } : null;
}

export class AnthropicStreamUsage extends LineScanner {
  #prompt = 0;
  #completion = 0;
  #completed = false;

  constructor() {
    super('message_stop');
  }

  get usage(): Usage | null {
    return this.#completed && this.#prompt + this.#completion > 0 ? { prompt: this.#prompt, completion: this.#completion } : null;
  }

  protected line(text: string): void {
    const event = obj(dataPayload(text));
    if (event === null) return;
    if (event.type === 'message_stop') this.#completed = true;
    const top = obj(event.usage);
    const inner = obj(obj(event.message)?.usage);
    const input = anthropicInput(top) + anthropicInput(inner);
    const output = num(top?.output_tokens) + num(inner?.output_tokens);
    if (input > 0) this.#prompt = input;
    if (output > 0) this.#completion = output;
  }
}

function anthropicInput(u: Record<string, unknown> | null): number {
  if (u === null) return 0;
  return num(u.input_tokens) + num(u.cache_creation_input_tokens) + num(u.cache_read_input_tokens);
}

function parseBody(buf: Buffer): Record<string, unknown> | null {
  try {
    return obj(JSON.parse(buf.toString('utf8')));
  } catch {
    return null;
  }
}

export const RESPONSES_USAGE: UsageShape = Object.freeze({
  stream: (): StreamUsageScanner => new ResponsesStreamUsage(),
  body: (buf: Buffer): Usage | null => {
    const o = parseBody(buf);
    return o === null ? null : responsesUsage(o);
  },
});

export const ANTHROPIC_USAGE: UsageShape = Object.freeze({
  stream: (): StreamUsageScanner => new AnthropicStreamUsage(),
  body: (buf: Buffer): Usage | null => {
    const u = obj(parseBody(buf)?.usage);
    const prompt = anthropicInput(u);
    const completion = num(u?.output_tokens);
    return prompt + completion > 0 ? { prompt, completion } : null;
  },
});

/** The usage shape of a provider request: Anthropic messages, the Responses API, else chat/completions. */
export function usageShapeOf(type: 'OpenAI' | 'Anthropic', path: string): UsageShape {
  if (type === 'Anthropic') return ANTHROPIC_USAGE;
  return path === '/v1/responses' ? RESPONSES_USAGE : OPENAI_USAGE;
}
