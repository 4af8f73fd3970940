/**
 * The keep-alive pool of one endpoint, its connections and its requests (see h1-client.ts for the
 * contract). Everything runs on the worker thread's event loop; nothing here blocks.
 *
 * Ownership: a request belongs to the pool's queue, or to exactly one connection (`conn.req` and
 * `req.conn` point at each other), or to nobody once it has ended. A connection is counted in the
 * pool's total from the dial until it is destroyed or closes, and sits in `#idle` only while it
 * has no request.
 */

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { RouterError } from '../../src/errors.js';
import { FRAME_EOF, ResponseParser, type ResponseHeaders, type ResponseSink } from './h1-parser.js';
import { resolvePoolOptions, type H1PoolOptions, type ResolvedPoolOptions, type UpstreamController, type UpstreamHandler, type UpstreamRequest } from './h1-client.js';

// One read buffer per thread (this module is loaded once per worker thread): every socket reads
// into it and the parser consumes it before the read callback returns. Body bytes of one read are
// gathered in `scratch` (chunked framing splits them) and copied out once.
const READ_SIZE = 64 * 1024;
const readBuf = Buffer.allocUnsafe(READ_SIZE);
let scratch = Buffer.allocUnsafe(READ_SIZE);

const EMPTY_TRAILERS: ResponseHeaders = Object.freeze(Object.create(null)) as ResponseHeaders;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;
const BAD_PATH = /[^\u0021-\u00ff]/;
/** Framing and connection management belong to the client. */
const REFUSED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer']);
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/** Our own errors (a connect timeout travels through the socket's 'error' event); matched on code. */
function isRouterError(err: Error | null): err is RouterError {
  return typeof (err as { code?: unknown } | null)?.code === 'string' && (err as RouterError).code.startsWith('RTR_ERR_');
}

function internal(detail: string): RouterError {
  return new RouterError('RTR_ERR_INTERNAL', `upstream request: ${detail}`);
}

/** Builds the request head and body as one buffer (written with one `write`). */
function buildPayload(r: UpstreamRequest, hostHeader: string): Buffer {
  const method = r.method;
  if (!TOKEN.test(method)) throw internal(`invalid method ${JSON.stringify(method)}`);
  if (method === 'CONNECT') throw internal('CONNECT is not supported');
  const path = r.path;
  if (path.length === 0 || path.charCodeAt(0) !== 0x2f || BAD_PATH.test(path)) throw internal(`invalid path ${JSON.stringify(path)}`);
  let head = method + ' ' + path + ' HTTP/1.1\r\n';
  let hasHost = false;
  const h = r.headers;
  if (h != null) {
    if ((h.length & 1) !== 0) throw internal('headers must be name/value pairs');
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      const value = h[i + 1];
      if (typeof name !== 'string' || !TOKEN.test(name)) throw internal(`invalid header name ${JSON.stringify(name)}`);
      if (typeof value !== 'string' || BAD_VALUE.test(value)) throw internal(`invalid value for header ${name}`);
      const lower = name.toLowerCase();
      if (lower === 'host') hasHost = true;
      else if (REFUSED_HEADERS.has(lower)) throw internal(`header ${lower} is set by the client`);
      head += name + ': ' + value + '\r\n';
    }
  }
  if (!hasHost) head += 'host: ' + hostHeader + '\r\n';
  const body = r.body;
  let bodyLen = 0;
  if (body != null) {
    bodyLen = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    head += 'content-length: ' + bodyLen + '\r\n\r\n';
  } else {
    head += BODYLESS_METHODS.has(method) ? '\r\n' : 'content-length: 0\r\n\r\n';
  }
  // latin1: header bytes go out as given (undici does the same); the body as UTF-8.
  const headLen = head.length;
  const out = Buffer.allocUnsafe(headLen + bodyLen);
  out.write(head, 0, 'latin1');
  if (body != null && bodyLen > 0) {
    if (typeof body === 'string') out.write(body, headLen, 'utf8');
    else out.set(body, headLen);
  }
  return out;
}

/** One request and its controller (undici's DispatchController shape). */
export class H1Request implements UpstreamController {
  readonly payload: Buffer;
  readonly noBody: boolean;
  conn: Connection | null = null;
  /** Sent again after a stale kept-alive connection lost it (once). */
  retried = false;
  /** A terminal callback (end or error) was delivered; nothing more will be. */
  done = false;
  readonly #pool: H1Pool;
  readonly #handler: UpstreamHandler;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  #headersSeen = false;
  /** The response ended while the handler had paused: delivered on resume. */
  #endPending: ResponseHeaders | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(pool: H1Pool, handler: UpstreamHandler, payload: Buffer, noBody: boolean) {
    this.#pool = pool;
    this.#handler = handler;
    this.payload = payload;
    this.noBody = noBody;
  }

  get aborted(): boolean { return this.#aborted; }
  get paused(): boolean { return this.#paused; }
  get reason(): Error | null { return this.#reason; }

  abort(reason: Error): void {
    if (this.done) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#endPending = null;
    this.#clearTimer();
    const conn = this.conn;
    if (conn !== null) {
      this.conn = null;
      conn.abandon(this);
    }
    // A queued request is skipped when its turn comes (done below).
    this.done = true;
    this.#handler.onResponseError?.(this, reason);
  }

  pause(): void {
    if (this.done || this.#paused) return;
    this.#paused = true;
    this.conn?.pauseReading();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.done) return;
    const trailers = this.#endPending;
    if (trailers !== null) {
      this.#endPending = null;
      this.done = true;
      this.#handler.onResponseEnd?.(this, trailers);
      return;
    }
    this.conn?.resumeReading();
  }

  // ---- called by the pool and the connection ----

  start(): void {
    this.#handler.onRequestStart?.(this, null);
  }

  /** The request went out on a connection: the header timeout starts. */
  sent(): void {
    const ms = this.#pool.opts.headersTimeoutMs;
    if (ms > 0 && this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#fatal(new RouterError('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', `${ms}ms`));
      }, ms);
    }
  }

  /** Returns false when the handler paused or aborted (the connection stops reading). */
  head(status: number, reason: string, headers: ResponseHeaders): boolean {
    if (this.done) return false;
    this.#headersSeen = true;
    this.#clearTimer();
    this.#handler.onResponseStart?.(this, status, headers, reason);
    return !this.done && !this.#paused;
  }

  get headersSeen(): boolean { return this.#headersSeen; }

  data(chunk: Buffer): void {
    if (this.done) return;
    this.#handler.onResponseData?.(this, chunk);
  }

  end(trailers: ResponseHeaders): void {
    if (this.done) return;
    this.#clearTimer();
    if (this.#paused) { this.#endPending = trailers; return; }
    this.done = true;
    this.#handler.onResponseEnd?.(this, trailers);
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.#clearTimer();
    this.#handler.onResponseError?.(this, err);
  }

  /** Fails the request and destroys its connection (its state is unknown). */
  #fatal(err: Error): void {
    const conn = this.conn;
    if (conn !== null) {
      this.conn = null;
      conn.abandon(this);
    }
    this.fail(err);
  }

  #clearTimer(): void {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
  }
}

/** One TCP connection to the endpoint, carrying one request at a time. */
export class Connection implements ResponseSink {
  readonly socket: net.Socket;
  readonly parser: ResponseParser;
  req: H1Request | null;
  /** Responses completed on this connection (> 0: it was reused, so a silent close may be staleness). */
  served = 0;
  idleSince = 0;
  keepAliveMs: number;
  connected = false;
  dead = false;
  /** Still counted in the pool's total. */
  counted = true;
  readonly #pool: H1Pool;
  #error: Error | null = null;
  #eof = false;
  #connectTimer: NodeJS.Timeout | null = null;
  // Bytes held back because the handler paused right after the head (same read).
  #stash: Buffer | null = null;
  #processing = false;
  #completed = false;
  #trailers: ResponseHeaders = EMPTY_TRAILERS;
  // Body bytes of the current read: one slice kept by reference, or several gathered in `scratch`.
  #piece: Buffer | null = null;
  #pieceStart = 0;
  #pieceEnd = 0;
  #scratchLen = 0;

  constructor(pool: H1Pool, req: H1Request) {
    this.#pool = pool;
    this.req = req;
    req.conn = this;
    this.keepAliveMs = pool.opts.keepAliveTimeoutMs;
    this.parser = new ResponseParser(this, pool.opts.maxHeaderBytes);
    const socket = net.connect({
      host: pool.host,
      port: pool.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 60_000,
      onread: { buffer: readBuf, callback: (n: number) => this.#onRead(n) },
    });
    this.socket = socket;
    socket.on('connect', () => this.#onConnect());
    socket.on('error', (err) => { this.#error ??= err; });
    // An idle connection the server closed leaves the pool at once (no request may be written to it).
    socket.on('end', () => { this.#eof = true; if (this.req === null) this.destroy(); });
    socket.on('close', () => this.#onClose());
    const ms = pool.opts.connectTimeoutMs;
    if (ms > 0) {
      this.#connectTimer = setTimeout(() => {
        this.#connectTimer = null;
        if (!this.connected) socket.destroy(new RouterError('RTR_ERR_UPSTREAM_CONNECT', `connect timeout after ${ms}ms`));
      }, ms);
    }
  }

  /** Sends `req` on this (connected, idle) connection. */
  start(req: H1Request): void {
    this.req = req;
    req.conn = this;
    this.parser.reset(req.noBody);
    this.#completed = false;
    this.socket.write(req.payload);
    req.sent();
  }

  /** The request gave up (abort, header timeout): a connection mid-response cannot be reused. */
  abandon(req: H1Request): void {
    if (this.req !== req) return;
    this.req = null;
    this.#stash = null;
    // A dial still under way is kept: it becomes idle (or serves the queue) when it connects.
    if (this.connected) this.destroy();
  }

  pauseReading(): void {
    if (!this.dead) this.socket.pause();
  }

  resumeReading(): void {
    // Inside #process the loop itself looks at `paused` after each callback.
    if (this.#processing || this.dead) return;
    const stash = this.#stash;
    if (stash !== null) {
      this.#stash = null;
      this.#process(stash, 0, stash.length);
      if (this.dead) return;
    }
    const req = this.req;
    if (req === null || !req.paused) this.socket.resume();
  }

  destroy(err?: Error): void {
    if (this.dead) return;
    this.dead = true;
    if (err !== undefined) this.#error ??= err;
    this.#pool.remove(this);
    this.socket.destroy();
  }

  // ---- ResponseSink (called by the parser inside #process) ----

  onHead(status: number, reason: string, headers: ResponseHeaders): boolean {
    const req = this.req;
    if (req === null) return false;
    return req.head(status, reason, headers);
  }

  onBody(buf: Buffer, start: number, end: number): void {
    if (end === start) return;
    if (this.#piece === null && this.#scratchLen === 0) {
      this.#piece = buf;
      this.#pieceStart = start;
      this.#pieceEnd = end;
      return;
    }
    if (this.#piece !== null) {
      this.#gather(this.#piece, this.#pieceStart, this.#pieceEnd);
      this.#piece = null;
    }
    this.#gather(buf, start, end);
  }

  onComplete(trailers: ResponseHeaders): void {
    this.#completed = true;
    this.#trailers = trailers;
  }

  #gather(buf: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.#scratchLen + n > scratch.length) {
      // Cannot happen while reads are at most READ_SIZE; kept correct regardless.
      const bigger = Buffer.allocUnsafe(Math.max(scratch.length * 2, this.#scratchLen + n));
      scratch.copy(bigger, 0, 0, this.#scratchLen);
      scratch = bigger;
    }
    buf.copy(scratch, this.#scratchLen, start, end);
    this.#scratchLen += n;
  }

  // ---- socket events ----

  #onConnect(): void {
    this.connected = true;
    if (this.#connectTimer !== null) { clearTimeout(this.#connectTimer); this.#connectTimer = null; }
    const req = this.req;
    if (req === null) this.#pool.release(this);
    else this.start(req);
  }

  #onRead(n: number): boolean {
    if (n <= 0 || this.dead) return true;
    if (this.req === null) {
      // Bytes nobody asked for (idle connection): the stream is out of step; never reuse it.
      this.destroy();
      return false;
    }
    this.#process(readBuf, 0, n);
    return true;
  }

  /** Parses buf[start, end) for the current request and delivers what it yields. */
  #process(buf: Buffer, start: number, end: number): void {
    const req = this.req!;
    this.#processing = true;
    const p = this.parser.execute(buf, start, end);
    this.#processing = false;
    if (this.req !== req) { this.#dropBody(); return; } // aborted in onResponseStart
    if (p < 0) {
      this.#dropBody();
      this.req = null;
      req.conn = null;
      this.destroy();
      req.fail(new RouterError('RTR_ERR_UPSTREAM_PROTOCOL', this.parser.error!));
      return;
    }
    const chunk = this.#takeBody();
    if (chunk !== null) {
      req.data(chunk);
      if (this.req !== req || req.done) return; // aborted in onResponseData
    }
    if (this.#completed) {
      this.#completed = false;
      this.#finished(req, p < end);
      return;
    }
    if (p < end) {
      // The handler paused in onResponseStart: keep the rest of this read for resume().
      this.#stash = Buffer.from(buf.subarray(p, end));
      this.socket.pause();
      return;
    }
    if (req.paused) this.socket.pause();
  }

  #takeBody(): Buffer | null {
    let out: Buffer | null = null;
    if (this.#piece !== null) {
      const n = this.#pieceEnd - this.#pieceStart;
      out = Buffer.allocUnsafe(n);
      this.#piece.copy(out, 0, this.#pieceStart, this.#pieceEnd);
      this.#piece = null;
    } else if (this.#scratchLen > 0) {
      out = Buffer.allocUnsafe(this.#scratchLen);
      scratch.copy(out, 0, 0, this.#scratchLen);
      this.#scratchLen = 0;
    }
    return out;
  }

  #dropBody(): void {
    this.#piece = null;
    this.#scratchLen = 0;
  }

  /** The response is complete: the connection goes back to the pool (or closes), then the end. */
  #finished(req: H1Request, extraBytes: boolean): void {
    const parser = this.parser;
    let reusable = parser.keepAlive && !extraBytes && !this.dead && !this.#eof && this.socket.writableLength === 0;
    if (reusable) {
      const hint = parser.headers['keep-alive'];
      if (hint !== undefined) {
        const ms = keepAliveHint(hint);
        if (ms === 0) reusable = false;
        else if (ms > 0) this.keepAliveMs = Math.min(this.#pool.opts.keepAliveTimeoutMs, ms);
      }
    }
    const trailers = this.#trailers;
    this.#trailers = EMPTY_TRAILERS;
    this.req = null;
    req.conn = null;
    this.served++;
    if (reusable) this.#pool.release(this);
    else this.destroy();
    req.end(trailers);
  }

  #onClose(): void {
    this.dead = true;
    if (this.#connectTimer !== null) { clearTimeout(this.#connectTimer); this.#connectTimer = null; }
    const pool = this.#pool;
    pool.remove(this);
    const req = this.req;
    this.req = null;
    this.#stash = null;
    if (req !== null && !req.done) {
      req.conn = null;
      const err = this.#error;
      const code = (err as NodeJS.ErrnoException | null)?.code;
      if (!this.connected) {
        req.fail(isRouterError(err) ? err : new RouterError('RTR_ERR_UPSTREAM_CONNECT', err?.message ?? 'connection closed while connecting', { cause: err }));
      } else if (this.#eof && err === null && this.parser.framing === FRAME_EOF && this.parser.inBody) {
        // A body delimited by the close: this close is its end.
        this.parser.finish();
        this.#completed = false;
        this.served++;
        req.end(EMPTY_TRAILERS);
      } else if (this.parser.received === 0 && this.served > 0 && !req.retried && !req.aborted) {
        // A kept-alive connection the server closed as we wrote: it never read the request.
        req.retried = true;
        pool.retry(req);
      } else if (this.parser.received === 0) {
        req.fail(new RouterError('RTR_ERR_UPSTREAM_CONNECT', `connection closed before the response (${code ?? 'EOF'})`, { cause: err }));
      } else {
        const what = req.headersSeen ? 'before the end of the body' : 'in the middle of the response head';
        req.fail(new RouterError('RTR_ERR_UPSTREAM_PROTOCOL', `connection closed ${what} (${code ?? 'EOF'})`, { cause: err }));
      }
    }
    pool.drain();
  }
}

/** `Keep-Alive: timeout=N` → N s less a 1 s margin, in ms; 0 = do not reuse; -1 = no hint. */
function keepAliveHint(v: string | string[]): number {
  const s = typeof v === 'string' ? v : v.join(',');
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(s);
  if (m === null) return -1;
  const ms = Number(m[1]) * 1000 - 1000;
  return ms > 0 ? ms : 0;
}

/** The connection pool of one plain-HTTP origin. */
export class H1Pool {
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly opts: ResolvedPoolOptions;
  #total = 0;
  readonly #idle: Connection[] = [];
  readonly #conns = new Set<Connection>();
  #queue: H1Request[] = [];
  #qHead = 0;
  #sweep: NodeJS.Timeout | null = null;
  #closed = false;
  #closeWaiters: (() => void)[] = [];

  constructor(origin: string, opts: H1PoolOptions = {}) {
    const u = new URL(origin);
    if (u.protocol !== 'http:') throw new TypeError(`H1Pool serves plain http:// origins only, got ${origin}`);
    if (u.pathname !== '/' || u.search !== '' || u.username !== '') throw new TypeError(`H1Pool origin must be scheme://host[:port], got ${origin}`);
    this.host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.port = u.port === '' ? 80 : Number(u.port);
    this.hostHeader = u.host;
    this.opts = resolvePoolOptions(opts);
  }

  /** Connections open or being dialled, idle ones, and requests waiting for one (for tests and metrics). */
  get stats(): { connections: number; idle: number; queued: number } {
    let queued = 0;
    for (let i = this.#qHead; i < this.#queue.length; i++) if (!this.#queue[i].done) queued++;
    return { connections: this.#total, idle: this.#idle.length, queued };
  }

  /**
   * Sends a request (undici's `dispatch` contract). Throws a RouterError (RTR_ERR_INTERNAL) for
   * arguments it cannot send (invalid header, framing header, bad path) before any callback.
   */
  dispatch(r: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.#closed) throw new RouterError('RTR_ERR_INTERNAL', 'upstream pool is closed');
    const req = new H1Request(this, handler, buildPayload(r, this.hostHeader), r.method === 'HEAD');
    req.start();
    if (!req.done) this.#assign(req);
    return true;
  }

  #assign(req: H1Request): void {
    if (!req.retried) {
      const idle = this.#idle;
      while (idle.length > 0) {
        const c = idle.pop()!;
        if (!c.dead) { c.start(req); return; }
      }
    }
    if (this.#total < this.opts.connections) { this.#dial(req); return; }
    this.#queue.push(req);
  }

  #dial(req: H1Request): void {
    this.#total++;
    this.#conns.add(new Connection(this, req));
  }

  #dequeue(): H1Request | null {
    const q = this.#queue;
    while (this.#qHead < q.length) {
      const r = q[this.#qHead++];
      if (!r.done) {
        if (this.#qHead > 1024 && this.#qHead * 2 > q.length) { this.#queue = q.slice(this.#qHead); this.#qHead = 0; }
        return r;
      }
    }
    q.length = 0;
    this.#qHead = 0;
    return null;
  }

  /** A connection finished a response and can carry another. */
  release(c: Connection): void {
    if (this.#closed) { c.destroy(); return; }
    const next = this.#dequeue();
    if (next !== null) { c.start(next); return; }
    c.idleSince = performance.now();
    this.#idle.push(c);
    if (this.#sweep === null) {
      const every = Math.max(100, Math.min(1000, this.opts.keepAliveTimeoutMs >> 1));
      this.#sweep = setInterval(() => this.#sweepIdle(), every);
      this.#sweep.unref();
    }
  }

  /** A connection is gone (destroyed or closed); idempotent. */
  remove(c: Connection): void {
    if (!c.counted) return;
    c.counted = false;
    this.#total--;
    this.#conns.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#closed && this.#total === 0) for (const w of this.#closeWaiters.splice(0)) w();
  }

  /** A request a stale connection lost: again, on a new connection. */
  retry(req: H1Request): void {
    if (this.#closed) { req.fail(new RouterError('RTR_ERR_UPSTREAM_CONNECT', 'upstream pool closed')); return; }
    this.#assign(req);
  }

  /** Dials for queued requests while there is room (after a connection went away). */
  drain(): void {
    while (this.#total < this.opts.connections && !this.#closed) {
      const next = this.#dequeue();
      if (next === null) return;
      this.#dial(next);
    }
  }

  #sweepIdle(): void {
    const now = performance.now();
    const idle = this.#idle;
    // Oldest first: idle connections are pushed and popped at the end.
    for (let i = 0; i < idle.length;) {
      const c = idle[i];
      if (now - c.idleSince >= c.keepAliveMs) c.destroy();
      else i++;
    }
    if (idle.length === 0 && this.#sweep !== null) { clearInterval(this.#sweep); this.#sweep = null; }
  }

  /** Stops taking requests; resolves when requests in flight have ended and every connection closed. */
  close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep !== null) { clearInterval(this.#sweep); this.#sweep = null; }
    for (const r of this.#queue.splice(0)) r.fail(new RouterError('RTR_ERR_UPSTREAM_CONNECT', 'upstream pool closed'));
    this.#qHead = 0;
    for (const c of [...this.#idle]) c.destroy();
    for (const c of this.#conns) if (c.req === null && !c.connected) c.destroy();
    if (this.#total === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closeWaiters.push(resolve));
  }

  /** Ends everything now: requests in flight fail. */
  destroy(): Promise<void> {
    const p = this.close();
    for (const c of [...this.#conns]) {
      const req = c.req;
      if (req !== null) { c.req = null; req.conn = null; c.destroy(); req.fail(new RouterError('RTR_ERR_UPSTREAM_CONNECT', 'upstream pool destroyed')); }
      else c.destroy();
    }
    return p;
  }
}
