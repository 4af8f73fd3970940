/**
 * One request/response exchange, written as a raw undici dispatch handler (no fetch, no streams):
 * it timestamps every body chunk on arrival, parses the SSE events incrementally, and feeds token
 * chunks to a `StreamClock`. The runner owns the lifecycle: it builds the exchange, dispatches it,
 * arms the timeout, and hears exactly once, through `onDone`, that the exchange finished.
 */

import { StringDecoder } from 'node:string_decoder';

import type { Dispatcher } from 'undici';

import { StreamClock } from './timing.js';

export const TIME_SCALE_HEADER = 'x-sim-time-scale';
/** The response header naming the pod that answered (the simulator sets it); tallied per value. */
export const BACKEND_HEADER = 'x-sim-pod';

export interface Usage {
  prompt: number;
  completion: number;
  /** `usage.prompt_tokens_details.cached_tokens`, when the server reports it. */
  cached: number | null;
}

/** Why an exchange failed, as counted in results (`errors` keys). */
export type FailureKind = string;

/** A timeout raised by the generator (kind `timeout`). */
export class RequestTimeoutError extends Error {
  readonly code = 'BENCH_REQUEST_TIMEOUT';
  constructor(ms: number) {
    super(`no complete response within ${ms} ms`);
    this.name = 'RequestTimeoutError';
  }
}

/** The run was stopped (signal) while the request was in flight (kind `aborted`). */
export class RunAbortedError extends Error {
  readonly code = 'BENCH_RUN_ABORTED';
  constructor() {
    super('run aborted');
    this.name = 'RunAbortedError';
  }
}

const ERROR_BODY_LIMIT = 2048;

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function usageFrom(u: unknown): Usage | null {
  if (u === null || typeof u !== 'object') return null;
  const o = u as { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: unknown };
  const prompt = num(o.prompt_tokens);
  const completion = num(o.completion_tokens);
  if (prompt === null || completion === null) return null;
  const det = o.prompt_tokens_details as { cached_tokens?: unknown } | null | undefined;
  return { prompt, completion, cached: det && typeof det === 'object' ? num(det.cached_tokens) : null };
}

/** Text a choice carries: chat delta content (and reasoning), or a completion's text. */
function choiceText(ch: unknown): { text: string; token: boolean } {
  if (ch === null || typeof ch !== 'object') return { text: '', token: false };
  const c = ch as { delta?: unknown; text?: unknown; message?: unknown };
  if (c.delta !== null && typeof c.delta === 'object') {
    const d = c.delta as { content?: unknown; reasoning_content?: unknown; tool_calls?: unknown };
    const text = (typeof d.reasoning_content === 'string' ? d.reasoning_content : '') + (typeof d.content === 'string' ? d.content : '');
    return { text, token: text !== '' || (Array.isArray(d.tool_calls) && d.tool_calls.length > 0) };
  }
  if (typeof c.text === 'string') return { text: c.text, token: c.text !== '' };
  return { text: '', token: false };
}

export class Exchange implements Dispatcher.DispatchHandler {
  readonly clock: StreamClock;
  status = 0;
  /** The `x-sim-time-scale` header value, if any. */
  timeScale: number | null = null;
  /** The value of the backend header (which pod answered), if any. */
  backend: string | null = null;
  streaming = false;
  /** Saw `data: [DONE]`. */
  done = false;
  /** The SSE stream carried an error event (its message), or unparsable data. */
  streamError: string | null = null;
  usage: Usage | null = null;
  answer = '';
  /** Body of a non-200 response (truncated), or of a non-streaming JSON response. */
  body = '';
  error: Error | null = null;
  finished = false;
  /** Wall time the exchange finished. */
  tEnd = NaN;

  readonly #wantAnswer: boolean;
  readonly #onDone: (ex: Exchange) => void;
  readonly #backendHeader: string;
  #controller: Dispatcher.DispatchController | null = null;
  #pendingAbort: Error | null = null;
  readonly #decoder = new StringDecoder('utf8');
  #buf = '';

  constructor(k: number, t0: number, wantAnswer: boolean, onDone: (ex: Exchange) => void, backendHeader = BACKEND_HEADER) {
    this.clock = new StreamClock(k, t0);
    this.#wantAnswer = wantAnswer;
    this.#onDone = onDone;
    this.#backendHeader = backendHeader;
  }

  /** Ends the exchange now with `reason` (a timeout or the run's abort) and cancels the request. */
  abort(reason: Error): void {
    if (this.finished) return;
    this.#finish(reason);
    if (this.#controller !== null) this.#controller.abort(reason);
    else this.#pendingAbort = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort !== null) controller.abort(this.#pendingAbort);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.finished) return;
    this.status = statusCode;
    const ts = headers[TIME_SCALE_HEADER];
    const v = Number(Array.isArray(ts) ? ts[0] : ts);
    if (ts !== undefined && v > 0 && Number.isFinite(v)) this.timeScale = v;
    const be = headers[this.#backendHeader];
    if (be !== undefined) this.backend = Array.isArray(be) ? be[0] : be;
    const ct = headers['content-type'];
    this.streaming = statusCode === 200 && String(Array.isArray(ct) ? ct[0] : (ct ?? '')).includes('text/event-stream');
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    const now = performance.now();
    if (!this.streaming) {
      if (this.status === 200) this.body += this.#decoder.write(chunk);
      else if (this.body.length < ERROR_BODY_LIMIT) this.body += this.#decoder.write(chunk).slice(0, ERROR_BODY_LIMIT - this.body.length);
      return;
    }
    let buf = this.#buf + this.#decoder.write(chunk);
    if (buf.includes('\r')) buf = buf.replace(/\r\n?/g, '\n');
    let start = 0;
    for (;;) {
      const end = buf.indexOf('\n\n', start);
      if (end === -1) break;
      this.#event(buf.slice(start, end), now);
      start = end + 2;
    }
    this.#buf = start === 0 ? buf : buf.slice(start);
  }

  onResponseEnd(): void {
    if (this.finished) return;
    const now = performance.now();
    if (this.streaming) {
      const rest = this.#buf + this.#decoder.end();
      this.#buf = '';
      if (rest.trim() !== '') this.#event(rest, now);
    } else if (this.status === 200) {
      this.body += this.#decoder.end();
      this.#json(now);
    }
    this.#finish(null, now);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.finished) return;
    this.#finish(err);
  }

  #finish(err: Error | null, now = performance.now()): void {
    this.finished = true;
    this.error = err;
    this.tEnd = now;
    this.#onDone(this);
  }

  /** One SSE event block (lines up to a blank line). */
  #event(block: string, now: number): void {
    let data = '';
    let any = false;
    for (const line of block.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = any ? data + '\n' + v : v;
      any = true;
    }
    if (!any) return;
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    let o: { sim_t?: unknown; choices?: unknown; usage?: unknown; error?: unknown };
    try {
      o = JSON.parse(data);
    } catch {
      this.streamError ??= 'unparsable SSE data';
      return;
    }
    if (o === null || typeof o !== 'object') return;
    if (o.error !== undefined && o.error !== null) {
      const e = o.error as { message?: unknown };
      this.streamError = typeof e === 'object' && typeof e.message === 'string' ? e.message : JSON.stringify(o.error);
      return;
    }
    const simT = num(o.sim_t) ?? undefined;
    const ch = Array.isArray(o.choices) ? o.choices[0] : undefined;
    const { text, token } = choiceText(ch);
    if (token) {
      this.clock.token(now, simT);
      if (this.#wantAnswer) this.answer += text;
    } else {
      this.clock.chunk(simT);
    }
    const u = usageFrom(o.usage);
    if (u !== null) this.usage = u;
  }

  /**
   * A non-streaming 200 answer (a server that ignored `stream`): one "chunk" at arrival, timed by
   * the body's `sim_timing` when the simulator reports it.
   */
  #json(now: number): void {
    let o: { choices?: unknown; usage?: unknown; sim_timing?: unknown };
    try {
      o = JSON.parse(this.body);
    } catch {
      this.streamError = 'unparsable JSON body';
      return;
    }
    const ch = Array.isArray(o.choices) ? (o.choices[0] as { message?: { content?: unknown }; text?: unknown }) : undefined;
    const text = typeof ch?.message?.content === 'string' ? ch.message.content : typeof ch?.text === 'string' ? ch.text : '';
    const st = o.sim_timing as { ttft_ms?: unknown; e2e_ms?: unknown } | undefined;
    const simTtft = st && typeof st === 'object' ? num(st.ttft_ms) : null;
    const simE2e = st && typeof st === 'object' ? num(st.e2e_ms) : null;
    if (simTtft !== null && simE2e !== null) this.clock.whole(now, simTtft, simE2e);
    // Without timing reports the first token is taken to arrive with the body.
    else this.clock.token(now, undefined);
    if (this.#wantAnswer) this.answer = text;
    this.usage = usageFrom(o.usage);
    this.done = true;
    this.body = '';
  }
}
