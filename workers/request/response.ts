/**
 * The response writer: one per upstream response that may reach the client (a fresh one for each
 * try, so a retried try leaves nothing behind). It writes the status line and headers together
 * with the first body bytes, streams the body with backpressure in both directions, drops the
 * usage-only chunk the router injected, and collects the engine's usage for the access log.
 */
import { HOP_BY_HOP_RESPONSE } from './forward.js';
import { applyHeaderModifier } from '../gateway-match.js';
import { OPENAI_USAGE, type StreamUsageScanner, type Usage, type UsageShape } from '../sse.js';
import { internalError, statusLine } from './finish.js';
import type { RequestState } from './state.js';
import type { UpstreamController, UpstreamHeaders } from './upstream.js';

/** Non-streaming bodies up to this size are parsed for usage after being forwarded. */
const kMaxUsageBodyBytes = 4 * 1024 * 1024;

export const enum Mode { Length, Chunked }

export class ResponseWriter {
  /** The upstream is paused on client backpressure (no byte can arrive: not an idle upstream). */
  paused = false;
  readonly #st: RequestState;
  readonly #flow: UpstreamController;
  readonly mode: Mode;
  /** Content-Length of a Length response. */
  readonly total: number;
  readonly #status: number;
  /** Upstream headers not yet written to the client (see #writeHead). */
  #head: UpstreamHeaders | null;
  /** Bytes tryEnd could not take yet, and the write offset they start at. */
  #pending: Buffer | null = null;
  #pendingOffset = 0;
  /** The client's response is complete. */
  #ended = false;
  /** The try this writer belongs to failed before anything reached the client. */
  #discarded = false;
  /** Upstream body chunks received in this event-loop turn, written together (see data()). */
  #out: Buffer[] = [];
  #outBytes = 0;
  #flushQueued = false;
  /** Body bytes received from upstream (Length mode: a chunk that completes them is written at once). */
  #received = 0;
  /** onWritable is registered (only once a write met backpressure). */
  #watching = false;
  readonly #sse: StreamUsageScanner | null = null;
  readonly #shape: UsageShape;
  #usageChunks: Buffer[] | null = null;
  #usageBytes = 0;

  /** `shape`: how the response reports usage (in-cluster engines: OpenAI's; providers: their API's). */
  constructor(st: RequestState, flow: UpstreamController, status: number, headers: UpstreamHeaders, shape: UsageShape = OPENAI_USAGE) {
    this.#st = st;
    this.#shape = shape;
    this.#flow = flow;
    this.#status = status;
    this.#head = headers;
    const cl = headers['content-length'];
    const ct = headers['content-type'];
    const ctype = typeof ct === 'string' ? ct : '';
    if (typeof cl === 'string') { this.mode = Mode.Length; this.total = Number(cl); } else { this.mode = Mode.Chunked; this.total = 0; }
    if (ctype.startsWith('text/event-stream')) this.#sse = shape.stream(st.injectedUsage);
    else if (ctype.includes('json')) this.#usageChunks = [];
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The try failed before any byte reached the client: this response is never written. */
  discard(): void {
    this.#discarded = true;
    this.#out.length = 0;
  }

  /**
   * Chunks are queued and written once per event-loop turn: one upstream socket read often
   * carries many SSE events (one undici callback each with chunked framing), and one corked
   * write per event costs a send() each (measured 3x slower than coalesced writes).
   */
  data(chunk: Buffer): void {
    if (this.#usageChunks !== null) {
      this.#usageBytes += chunk.length;
      if (this.#usageBytes <= kMaxUsageBodyBytes) this.#usageChunks.push(chunk);
      else this.#usageChunks = null;
    }
    this.#received += chunk.length;
    this.#out.push(chunk);
    this.#outBytes += chunk.length;
    // A chunk that completes a Content-Length body (usually the whole JSON answer in one read) is
    // written by end(), which both upstream clients call in the same parser pass, right after
    // this: head and body in one corked tryEnd without a microtask, and only after the try gave
    // back its in-flight slot. Written here instead, the client could hold the whole answer and
    // send its next request (to the other worker thread) while this one still counts in flight:
    // a closed-loop client then sees its own finished request as load on the pod it came from.
    if (this.mode === Mode.Length && this.#received >= this.total) return;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushLater);
    }
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    if (this.#discarded || this.#out.length === 0) return;
    try {
      this.#flush(false);
    } catch (err) {
      // A microtask is a re-entry into the request path: finish.ts's boundary.
      internalError(this.#st, err);
    }
  };

  /** The upstream body ended: write what is left, end the client's response, collect usage. */
  end(): void {
    const st = this.#st;
    this.#flush(true);
    // A body shorter than its content-length is never passed off as complete.
    if (this.mode === Mode.Length && !this.#ended && this.#pending === null && !st.aborted) { st.aborted = true; st.res.close(); }
    let usage: Usage | null = null;
    if (this.#sse !== null) usage = this.#sse.usage;
    else if (this.#usageChunks !== null && this.#usageChunks.length > 0) {
      usage = this.#shape.body(this.#usageChunks.length === 1 ? this.#usageChunks[0] : Buffer.concat(this.#usageChunks));
    }
    if (usage !== null) {
      st.usage = usage;
      if (usage.prompt > 0) st.rec.inputTokens = usage.prompt;
      st.rec.outputTokens = usage.completion;
    }
  }

  /**
   * Ends a streaming (SSE) response that already reached the client with a final error event
   * (`errorJson`); false when the response cannot carry one (length-framed or plain chunked).
   */
  endWithError(errorJson: string): boolean {
    const st = this.#st;
    if (this.mode !== Mode.Chunked || this.#sse === null || this.#ended || st.aborted) return false;
    const res = st.res;
    const queued = this.#takeOut();
    const out = queued !== null ? this.#sse.push(queued) : null;
    res.cork(() => {
      if (this.#head !== null) this.#writeHead();
      if (out !== null && out.length > 0) res.write(out);
      res.end('data: ' + errorJson + '\n\n');
    });
    this.#ended = true;
    return true;
  }

  #takeOut(): Buffer | null {
    const out = this.#out;
    let buf: Buffer | null = null;
    if (out.length === 1) buf = out[0];
    else if (out.length > 1) buf = Buffer.concat(out, this.#outBytes);
    out.length = 0;
    this.#outBytes = 0;
    return buf;
  }

  /** Writes the pending status line and headers; call inside res.cork(). */
  #writeHead(): void {
    const st = this.#st;
    const res = st.res;
    const headers = this.#head!;
    this.#head = null;
    st.responded = true;
    res.writeStatus(statusLine(this.#status));
    if (st.respMods !== null) this.#writeModifiedHeaders(headers);
    else {
      for (const name in headers) {
        if (HOP_BY_HOP_RESPONSE.has(name)) continue;
        const v = headers[name];
        if (v === undefined) continue;
        if (typeof v === 'string') res.writeHeader(name, v);
        else for (let i = 0; i < v.length; i++) res.writeHeader(name, v[i]);
      }
    }
  }

  /** Backpressure: the rest waits for onWritable (registered only now: most responses never need it). */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.#st.res.onWritable((offset) => this.#onWritable(offset));
  }

  /** ResponseHeaderModifier filters (Gateway API) applied to the upstream's headers. */
  #writeModifiedHeaders(headers: UpstreamHeaders): void {
    const st = this.#st;
    let pairs: [string, string][] = [];
    for (const name in headers) {
      if (HOP_BY_HOP_RESPONSE.has(name)) continue;
      const v = headers[name];
      if (v === undefined) continue;
      if (typeof v === 'string') pairs.push([name, v]);
      else for (let i = 0; i < v.length; i++) pairs.push([name, v[i]]);
    }
    for (const mod of st.respMods!) pairs = applyHeaderModifier(mod, pairs);
    for (const [k, v] of pairs) if (!HOP_BY_HOP_RESPONSE.has(k.toLowerCase())) st.res.writeHeader(k, v);
  }

  #onWritable(offset: number): boolean {
    const st = this.#st;
    try {
      // Not gated on `finished`: the upstream may have ended while our last chunk still waits here.
      if (st.aborted || this.#ended && this.#pending === null) return true;
      if (this.mode === Mode.Length && this.#pending !== null) {
        const chunk = this.#pending.subarray(offset - this.#pendingOffset);
        const [ok, done] = st.res.tryEnd(chunk, this.total);
        if (done) this.#ended = true;
        if (!ok) return false;
        this.#pending = null;
      }
      this.paused = false;
      this.#flow.resume();
      return true;
    } catch (err) {
      internalError(st, err);
      return true;
    }
  }

  #flush(end: boolean): void {
    const st = this.#st;
    const buf = this.#takeOut();
    if (st.aborted || this.#discarded) return;
    const res = st.res;
    if (this.mode === Mode.Length) {
      if (this.#ended) return;
      if (buf === null) {
        if (end && this.#head !== null) {
          res.cork(() => { this.#writeHead(); res.endWithoutBody(0); });
          this.#ended = true;
        }
        return;
      }
      if (this.#pending !== null) {
        // Still waiting for onWritable: keep bytes in order behind the pending ones.
        this.#pending = Buffer.concat([this.#pending, buf]);
        return;
      }
      let ok = true;
      res.cork(() => {
        if (this.#head !== null) this.#writeHead();
        this.#pendingOffset = res.getWriteOffset();
        const [written, done] = res.tryEnd(buf, this.total);
        ok = written;
        if (done) this.#ended = true;
      });
      if (!ok && !this.#ended) { this.#pending = buf; this.paused = true; this.#watch(); this.#flow.pause(); }
      return;
    }
    if (this.#ended) return;
    const out = buf !== null && this.#sse !== null ? this.#sse.push(buf) : buf;
    const tail = end && this.#sse !== null ? this.#sse.flush() : null;
    let ok = true;
    res.cork(() => {
      if (this.#head !== null) this.#writeHead();
      if (out !== null && out.length > 0) ok = res.write(out);
      if (end) {
        if (tail !== null) res.write(tail);
        res.end();
        this.#ended = true;
      }
    });
    if (!ok && !end) { this.paused = true; this.#watch(); this.#flow.pause(); }
  }
}
