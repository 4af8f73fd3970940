/**
 * A uWS HttpRequest/HttpResponse pair for unit tests of the request stages, enforcing the native
 * rules whose violation crashes or corrupts a real worker:
 * - `req` is valid only while the handler runs (uWS reuses it for the next request);
 * - a handler that returns without responding must have attached onAborted;
 * - nothing may touch `res` after it was ended, closed or aborted;
 * - writeStatus comes before any writeHeader, at most once;
 * - the ArrayBuffer given to onData is neutered when the callback returns;
 * - writes made outside a uWS callback (timers, promises, microtasks) must be corked (counted in
 *   `uncorkedWrites`: uWS warns and sends one packet per write).
 * Backpressure: `room` bytes are accepted before write()/tryEnd() report false; drain() opens
 * the room again and calls the onWritable handler with the current write offset.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

export class NativeRuleViolation extends Error {}

export class FakeRequest {
  #valid = true;
  constructor(
    readonly method: string,
    readonly url: string,
    readonly query: string,
    readonly headers: [string, string][],
  ) {}

  invalidate(): void { this.#valid = false; }

  #check(): void {
    if (!this.#valid) throw new NativeRuleViolation('uWS.HttpRequest used after the handler returned');
  }

  getUrl(): string { this.#check(); return this.url; }
  getMethod(): string { this.#check(); return this.method.toLowerCase(); }
  getCaseSensitiveMethod(): string { this.#check(); return this.method; }
  getQuery(): string | undefined { this.#check(); return this.query === '' ? undefined : this.query; }
  getHeader(name: string): string { this.#check(); return this.headers.find(([k]) => k === name)?.[1] ?? ''; }
  forEach(cb: (k: string, v: string) => void): void { this.#check(); for (const [k, v] of this.headers) cb(k, v); }
}

export class FakeResponse {
  status = '';
  headers: [string, string][] = [];
  readonly chunks: Buffer[] = [];
  /** end()/tryEnd() completed the response. */
  ended = false;
  /** The connection was closed (res.close(), or end(..., true)). */
  closed = false;
  aborted = false;
  /** Writes (status, header, body) made outside cork() and outside a uWS callback. */
  uncorkedWrites = 0;
  /** Bytes accepted before backpressure; Infinity = never. */
  room = Infinity;
  #offset = 0;
  #inCallback = 0;
  #corked = 0;
  #onAborted: (() => void) | null = null;
  #onData: ((ab: ArrayBuffer, last: boolean) => void) | null = null;
  #onWritable: ((offset: number) => boolean) | null = null;

  get body(): string { return Buffer.concat(this.chunks).toString('utf8'); }
  get done(): boolean { return this.ended || this.closed || this.aborted; }
  get hasAbortHandler(): boolean { return this.#onAborted !== null; }
  get hasWritableHandler(): boolean { return this.#onWritable !== null; }
  header(name: string): string | undefined { return this.headers.find(([k]) => k.toLowerCase() === name)?.[1]; }

  #check(): void {
    if (this.done) throw new NativeRuleViolation('uWS.HttpResponse accessed after it ended or was aborted');
  }

  #write(): void {
    this.#check();
    if (this.#corked === 0 && this.#inCallback === 0) this.uncorkedWrites++;
  }

  /** Runs `fn` as a uWS callback (handler, onData, onWritable): writes need no cork there. */
  callback<T>(fn: () => T): T {
    this.#inCallback++;
    try { return fn(); } finally { this.#inCallback--; }
  }

  cork(fn: () => void): this {
    this.#check();
    this.#corked++;
    try { fn(); } finally { this.#corked--; }
    return this;
  }

  writeStatus(s: string): this {
    this.#write();
    if (this.status !== '') throw new NativeRuleViolation('writeStatus called twice');
    if (this.headers.length > 0) throw new NativeRuleViolation('writeStatus after writeHeader');
    this.status = s;
    return this;
  }

  writeHeader(k: string, v: string): this {
    this.#write();
    this.headers.push([k, v]);
    return this;
  }

  #accept(data: Buffer): number {
    const n = Math.min(data.length, Math.max(0, this.room));
    if (n > 0) this.chunks.push(Buffer.from(data.subarray(0, n)));
    this.room -= n;
    this.#offset += n;
    return n;
  }

  write(chunk: string | Buffer | Uint8Array): boolean {
    this.#write();
    const data = Buffer.from(chunk as Buffer);
    // uWS buffers what the socket does not take and reports backpressure.
    const n = this.#accept(data);
    if (n < data.length) { this.chunks.push(Buffer.from(data.subarray(n))); this.#offset += data.length - n; return false; }
    return this.room > 0;
  }

  end(body: string | Buffer = '', closeConnection = false): this {
    this.#write();
    const data = Buffer.from(body as Buffer);
    if (data.length > 0) this.chunks.push(data);
    this.#offset += data.length;
    this.ended = true;
    if (closeConnection) this.closed = true;
    return this;
  }

  endWithoutBody(_reportedContentLength?: number): this {
    this.#write();
    this.ended = true;
    return this;
  }

  tryEnd(chunk: Buffer | Uint8Array, total: number): [boolean, boolean] {
    this.#write();
    const data = Buffer.from(chunk as Buffer);
    const n = this.#accept(data);
    const done = this.#offset >= total;
    if (done) this.ended = true;
    return [n === data.length, done];
  }

  getWriteOffset(): number { this.#check(); return this.#offset; }

  close(): this {
    this.#check();
    this.closed = true;
    this.#fireAborted();
    return this;
  }

  onAborted(cb: () => void): this { this.#onAborted = cb; return this; }
  onData(cb: (ab: ArrayBuffer, last: boolean) => void): this { this.#onData = cb; return this; }
  onWritable(cb: (offset: number) => boolean): this { this.#onWritable = cb; return this; }

  #fireAborted(): void {
    this.aborted = true;
    const cb = this.#onAborted;
    if (cb !== null) this.callback(cb);
  }

  // ---- driven by the test ---------------------------------------------------------------------

  /** The client disconnects. */
  abort(): void {
    if (this.done) return;
    this.#fireAborted();
  }

  /** One body chunk from the client; its ArrayBuffer is neutered afterwards, as uWS does. */
  data(bytes: string | Buffer, last: boolean): void {
    if (this.#onData === null) throw new Error('no onData handler attached');
    const src = Buffer.from(bytes as Buffer);
    const ab = new ArrayBuffer(src.length);
    new Uint8Array(ab).set(src);
    this.callback(() => this.#onData!(ab, last));
    structuredClone(ab, { transfer: [ab] });
  }

  /** The socket drained: room again, and onWritable with the current offset. */
  drain(room = Infinity): boolean {
    this.room = room;
    if (this.#onWritable === null || this.done) return true;
    return this.callback(() => this.#onWritable!(this.#offset));
  }
}

/** Calls a uWS handler the way the native server does, and checks what it must have done. */
export function serve(
  handler: (res: HttpResponse, req: HttpRequest) => void,
  method: string, url: string, headers: [string, string][] = [], query = '',
): { res: FakeResponse; req: FakeRequest } {
  const req = new FakeRequest(method, url, query, headers);
  const res = new FakeResponse();
  res.callback(() => handler(res as unknown as HttpResponse, req as unknown as HttpRequest));
  req.invalidate();
  if (!res.done && !res.hasAbortHandler) throw new NativeRuleViolation('returned from the handler without responding or attaching onAborted');
  return { res, req };
}
