/**
 * A strict HTTP/1.1 response parser for the upstream client (workers/upstream/h1-client.ts).
 *
 * It reads bytes from any buffer slice (the client hands it the thread's shared read buffer) and
 * keeps only what a split read needs between calls: a head or trailer section that spans reads is
 * copied into a per-parser buffer of at most `maxHeaderBytes`; body bytes are reported as slices of
 * the caller's buffer, never copied here.
 *
 * Framing is decided once, from the final head, and never guessed (RFC 9112 section 6):
 * - HEAD requests, 204 and 304 have no body whatever their headers say; a 204 or 304 that also
 *   announces a body (Transfer-Encoding, or a 204 with a non-zero Content-Length) is delivered but
 *   its connection is not reused, since the server may be about to send that body;
 * - Transfer-Encoding must be exactly `chunked`, once, and never beside Content-Length;
 * - Content-Length must be one run of digits, once (llhttp rejects a repeated one, so do we);
 * - with neither, the body runs to the end of the connection (read until close), which is
 *   then not reused;
 * - 1xx interim heads (100, 102, 103, ...) are skipped, at most 8 of them; 101 is an error (we never
 *   ask to upgrade).
 * Anything else that llhttp (Node's parser, strict mode) rejects is rejected too; a differential
 * test holds the two parsers to the same verdicts on the same bytes split at every offset, and lists
 * the few places where this parser is deliberately stricter (see `ParseError`).
 */

/** Why a response was refused: one stable token per rule (logged in the error's detail). */
export type ParseError =
  | 'head-too-large' // head or trailer section longer than maxHeaderBytes
  | 'bare-lf' // a line ended with LF without CR
  | 'bad-status-line'
  | 'bad-version' // only HTTP/1.0 and HTTP/1.1 (stricter: llhttp also takes 0.9 and 2.0)
  | 'bad-status-code' // outside 100-599 (stricter: llhttp takes any three digits)
  | 'leading-empty-line' // stricter: llhttp skips CRLFs before the status line
  | 'bad-header-name'
  | 'bad-header-value'
  | 'obs-fold' // a header line continued on the next line
  | 'bad-content-length'
  | 'duplicate-content-length'
  | 'content-length-and-transfer-encoding'
  | 'unsupported-transfer-encoding' // stricter: anything but exactly `chunked` (llhttp reads `gzip` to EOF and takes `chunked, chunked`)
  | 'upgrade' // 101 Switching Protocols (stricter: llhttp hands the socket over)
  | 'too-many-interim' // more than 8 1xx heads
  | 'bad-chunk-size'
  | 'chunk-size-overflow'
  | 'bad-chunk-extension'
  | 'bad-chunk-end' // chunk data not followed by CRLF
  | 'incomplete'; // the connection ended before the end of the response

/** Response headers as undici hands them over: lower-case names, repeated names as arrays. */
export type ResponseHeaders = Record<string, string | string[]>;

/** What the parser reports; the client implements it on its connection object (no closures). */
export interface ResponseSink {
  /**
   * The final (non-1xx) head. Return false to stop `execute` right after the head (the consumer
   * paused); the caller keeps the rest of its buffer and calls `execute` again later.
   */
  onHead(status: number, reason: string, headers: ResponseHeaders): boolean;
  /** Body bytes, a slice of the buffer given to `execute` (valid only during the call). */
  onBody(buf: Buffer, start: number, end: number): void;
  /** The response is complete (trailers of a chunked body, else an empty object). */
  onComplete(trailers: ResponseHeaders): void;
}

// Framing of the current message.
export const FRAME_NONE = 0;
export const FRAME_LENGTH = 1;
export const FRAME_CHUNKED = 2;
export const FRAME_EOF = 3;

// Parser states.
const S_HEAD = 0;
const S_LENGTH = 1;
const S_EOF = 2;
const S_CHUNK_SIZE_FIRST = 3;
const S_CHUNK_SIZE = 4;
const S_EXT_NAME_FIRST = 5;
const S_EXT_NAME = 6;
const S_EXT_VALUE_FIRST = 7;
const S_EXT_TOKEN = 8;
const S_EXT_QUOTED = 9;
const S_EXT_QUOTED_ESC = 10;
const S_EXT_AFTER_QUOTE = 11;
const S_CHUNK_SIZE_LF = 12;
const S_CHUNK_DATA = 13;
const S_CHUNK_DATA_CR = 14;
const S_CHUNK_DATA_LF = 15;
const S_TRAILERS = 16;
const S_DONE = 17;
const S_ERROR = 18;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** tchar (RFC 9110 section 5.6.2). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** field-vchar / SP / HTAB (obs-text included, as llhttp does); no other control byte, no DEL. */
const VALUE_OK = new Uint8Array(256);
VALUE_OK[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) VALUE_OK[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE_OK[c] = 1;

/** qdtext and quoted-pair's second byte in a chunk extension's quoted string. */
const QDTEXT = new Uint8Array(256);
QDTEXT[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) if (c !== 0x22 && c !== 0x5c) QDTEXT[c] = 1;
for (let c = 0x80; c <= 0xff; c++) QDTEXT[c] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) { HEX[0x41 + c] = 10 + c; HEX[0x61 + c] = 10 + c; }

const MAX_INTERIM = 8;
/** 13 significant hex digits stay below 2^53: exact in a double. */
const MAX_CHUNK_DIGITS = 13;
const EMPTY: ResponseHeaders = Object.freeze(Object.create(null)) as ResponseHeaders;

export class ResponseParser {
  readonly maxHeaderBytes: number;
  /** Set when `execute` returned -1 or `finish` returned false. */
  error: ParseError | null = null;
  status = 0;
  reason = '';
  headers: ResponseHeaders = EMPTY;
  /** The connection may carry another request after this response (HTTP/1.1, no `close`, no anomaly). */
  keepAlive = false;
  framing = FRAME_NONE;
  /** Bytes of this response seen so far (0: nothing arrived yet; a stale connection's tell). */
  received = 0;

  #sink: ResponseSink;
  #state = S_HEAD;
  #noBody = false;
  #interim = 0;
  #remaining = 0;
  #digits = 0;
  // A head or trailer section that spans reads: its bytes so far, and where the line being read starts.
  #acc: Buffer | null = null;
  #accLen = 0;
  #lineStart = 0;
  #trailers: ResponseHeaders = EMPTY;

  constructor(sink: ResponseSink, maxHeaderBytes = 16 * 1024) {
    this.#sink = sink;
    this.maxHeaderBytes = maxHeaderBytes;
  }

  /** Prepares for the response to the next request (`noBody`: the request was HEAD). */
  reset(noBody: boolean): void {
    this.#noBody = noBody;
    this.#state = S_HEAD;
    this.#interim = 0;
    this.#accLen = 0;
    this.#lineStart = 0;
    this.error = null;
    this.status = 0;
    this.reason = '';
    this.headers = EMPTY;
    this.#trailers = EMPTY;
    this.keepAlive = false;
    this.framing = FRAME_NONE;
    this.received = 0;
  }

  get complete(): boolean {
    return this.#state === S_DONE;
  }

  /** After the final head and before the end of the body. */
  get inBody(): boolean {
    return this.#state !== S_HEAD && this.#state !== S_DONE && this.#state !== S_ERROR;
  }

  /**
   * Parses buf[start, end). Returns where it stopped: `end`, or earlier when the response completed
   * (bytes after it are the caller's business: on a connection with one request at a time they are
   * an anomaly) or the sink paused after the head; -1 on a framing error (`error` says which).
   */
  execute(buf: Buffer, start: number, end: number): number {
    let p = start;
    this.received += end - start;
    while (p < end) {
      const st = this.#state;
      if (st === S_HEAD) {
        // Incomplete: q === end and the loop ends; a 1xx head: still S_HEAD, the final head follows.
        const q = this.#section(buf, p, end, true);
        if (q < 0) return -1;
        p = q;
        if (this.#stopped) { this.#stopped = false; return p; }
        continue;
      }
      if (st === S_LENGTH) {
        const n = Math.min(this.#remaining, end - p);
        this.#sink.onBody(buf, p, p + n);
        p += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#done(EMPTY);
        if (this.#state === S_DONE) return p;
        continue;
      }
      if (st === S_EOF) {
        this.#sink.onBody(buf, p, end);
        return end;
      }
      if (st === S_CHUNK_DATA) {
        const n = Math.min(this.#remaining, end - p);
        this.#sink.onBody(buf, p, p + n);
        p += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = S_CHUNK_DATA_CR;
        continue;
      }
      if (st === S_TRAILERS) {
        const q = this.#section(buf, p, end, false);
        if (q < 0) return -1;
        p = q;
        if (this.#state === S_DONE) return p;
        continue;
      }
      if (st === S_DONE) return p;
      if (st === S_ERROR) return -1;
      // Chunk framing, one byte at a time (sizes, extensions and CRLFs are a few bytes each).
      if (!this.#chunkByte(buf[p])) return -1;
      p++;
    }
    return p;
  }

  /**
   * The connection ended (EOF). True when that completes the response (a body read until close);
   * false when the response is incomplete (`error` is set), including when nothing arrived.
   */
  finish(): boolean {
    if (this.#state === S_EOF) { this.#done(EMPTY); return true; }
    if (this.#state === S_DONE) return true;
    if (this.#state !== S_ERROR) this.#fail('incomplete');
    return false;
  }

  /** The sink paused in onHead: execute returns right after the head. */
  #stopped = false;

  #fail(e: ParseError): false {
    this.error = e;
    this.#state = S_ERROR;
    return false;
  }

  #done(trailers: ResponseHeaders): void {
    this.#state = S_DONE;
    this.#sink.onComplete(trailers);
  }

  /**
   * Reads a head (`head`) or trailer section up to and including its empty line. Returns the
   * position after the consumed bytes, or -1 on error. When the section completes it is parsed and
   * the state moves on; otherwise its bytes so far are kept in #acc.
   */
  #section(buf: Buffer, p: number, end: number, head: boolean): number {
    const max = this.maxHeaderBytes;
    if (this.#accLen === 0) {
      const r = this.#scan(buf, p, end, p);
      if (r === -1) return -1;
      if (r > 0) {
        if (r - p > max) { this.#fail('head-too-large'); return -1; }
        return this.#parseSection(buf, p, r, head) ? r : -1;
      }
      // Incomplete: keep what there is.
      if (end - p > max) { this.#fail('head-too-large'); return -1; }
      const acc = this.#acc ??= Buffer.allocUnsafe(max);
      buf.copy(acc, 0, p, end);
      this.#lineStart -= p;
      this.#accLen = end - p;
      return end;
    }
    const acc = this.#acc!;
    const old = this.#accLen;
    const n = Math.min(end - p, max - old);
    buf.copy(acc, old, p, p + n);
    const r = this.#scan(acc, this.#lineStart, old + n, 0);
    if (r === -1) return -1;
    if (r > 0) {
      this.#accLen = 0;
      return this.#parseSection(acc, 0, r, head) ? p + (r - old) : -1;
    }
    if (old + n >= max) { this.#fail('head-too-large'); return -1; }
    this.#accLen = old + n;
    return end;
  }

  /**
   * Finds the empty line that ends a section in b[from, to), starting at a line start. Returns the
   * index after it, 0 when incomplete (#lineStart then holds the start of the unfinished line),
   * -1 on a bare LF. `sectionStart` is where the section began (an empty first line ends it).
   */
  #scan(b: Buffer, from: number, to: number, sectionStart: number): number {
    let line = from;
    for (let i = from; i < to; i++) {
      if (b[i] !== LF) continue;
      if (i === line || b[i - 1] !== CR) { this.#fail('bare-lf'); return -1; }
      if (i - 1 === line) {
        // An empty line: the end of the section, unless it is the very first line of a head.
        if (line === sectionStart && this.#state === S_HEAD) { this.#fail('leading-empty-line'); return -1; }
        return i + 1;
      }
      line = i + 1;
    }
    this.#lineStart = line;
    return 0;
  }

  /** Parses a complete section b[s, e) (e is after its empty line). */
  #parseSection(b: Buffer, s: number, e: number, head: boolean): boolean {
    if (!head) {
      const t = this.#parseFields(b, s, e - 2);
      if (t === null) return false;
      this.#done(t);
      return true;
    }
    // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF
    let eol = s;
    while (b[eol] !== CR) eol++;
    if (b[eol + 1] !== LF) return this.#fail('bad-status-line');
    if (eol - s < 12 || b[s] !== 0x48 || b[s + 1] !== 0x54 || b[s + 2] !== 0x54 || b[s + 3] !== 0x50 || b[s + 4] !== 0x2f) {
      return this.#fail('bad-status-line');
    }
    if (HEX[b[s + 5]] < 0 || HEX[b[s + 5]] > 9 || b[s + 6] !== 0x2e || HEX[b[s + 7]] < 0 || HEX[b[s + 7]] > 9) return this.#fail('bad-status-line');
    const major = b[s + 5] - 0x30;
    const minor = b[s + 7] - 0x30;
    if (major !== 1 || minor > 1) return this.#fail('bad-version');
    if (b[s + 8] !== SP) return this.#fail('bad-status-line');
    const d0 = b[s + 9] - 0x30, d1 = b[s + 10] - 0x30, d2 = b[s + 11] - 0x30;
    if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return this.#fail('bad-status-line');
    const status = d0 * 100 + d1 * 10 + d2;
    let reason = '';
    if (eol > s + 12) {
      if (b[s + 12] !== SP) return this.#fail('bad-status-line');
      // The reason phrase is informative only; like llhttp, any byte but CR and LF.
      reason = b.toString('latin1', s + 13, eol);
    }
    if (status < 100 || status > 599) return this.#fail('bad-status-code');
    const headers = this.#parseFields(b, eol + 2, e - 2);
    if (headers === null) return false;
    if (status < 200) {
      if (status === 101) return this.#fail('upgrade');
      if (++this.#interim > MAX_INTERIM) return this.#fail('too-many-interim');
      return true; // state stays S_HEAD: the final head follows
    }
    return this.#frame(status, reason, headers, minor);
  }

  /** Decides the body's framing from the final head and reports the head. */
  #frame(status: number, reason: string, headers: ResponseHeaders, minor: number): boolean {
    const cl = headers['content-length'];
    const te = headers['transfer-encoding'];
    let length = -1;
    if (cl !== undefined) {
      if (typeof cl !== 'string') return this.#fail('duplicate-content-length');
      length = parseLength(cl);
      if (length < 0) return this.#fail('bad-content-length');
    }
    if (te !== undefined && cl !== undefined) return this.#fail('content-length-and-transfer-encoding');
    const chunked = te !== undefined;
    if (chunked && (typeof te !== 'string' || te.toLowerCase() !== 'chunked')) return this.#fail('unsupported-transfer-encoding');
    let keepAlive = minor === 1 && !hasCloseToken(headers['connection']);
    this.status = status;
    this.reason = reason;
    this.headers = headers;
    if (this.#noBody || status === 204 || status === 304) {
      if (chunked || (status === 204 && length > 0)) keepAlive = false;
      this.framing = FRAME_NONE;
      this.keepAlive = keepAlive;
      this.#state = S_DONE;
      const go = this.#sink.onHead(status, reason, headers);
      if (this.#state === S_DONE) this.#sink.onComplete(EMPTY);
      this.#stopped = !go;
      return true;
    }
    if (chunked) {
      this.framing = FRAME_CHUNKED;
      this.#state = S_CHUNK_SIZE_FIRST;
      this.#remaining = 0;
      this.#digits = 0;
    } else if (length >= 0) {
      this.framing = FRAME_LENGTH;
      this.#remaining = length;
      this.#state = length === 0 ? S_DONE : S_LENGTH;
    } else {
      this.framing = FRAME_EOF;
      keepAlive = false;
      this.#state = S_EOF;
    }
    this.keepAlive = keepAlive;
    const go = this.#sink.onHead(status, reason, headers);
    if (this.#state === S_DONE && this.framing === FRAME_LENGTH) this.#sink.onComplete(EMPTY);
    this.#stopped = !go;
    return true;
  }

  /** Header (or trailer) fields in b[s, e): lines ending in CRLF. Null on error. */
  #parseFields(b: Buffer, s: number, e: number): ResponseHeaders | null {
    if (s >= e) return Object.create(null) as ResponseHeaders;
    const out = Object.create(null) as ResponseHeaders;
    let p = s;
    while (p < e) {
      let eol = p;
      while (b[eol] !== CR) eol++;
      if (b[eol + 1] !== LF) { this.#fail('bad-header-value'); return null; }
      const c0 = b[p];
      if (c0 === SP || c0 === HTAB) { this.#fail('obs-fold'); return null; }
      let colon = p;
      while (colon < eol && TCHAR[b[colon]] === 1) colon++;
      if (colon === p || colon === eol || b[colon] !== 0x3a) { this.#fail('bad-header-name'); return null; }
      let vs = colon + 1;
      let ve = eol;
      for (let i = vs; i < ve; i++) if (VALUE_OK[b[i]] === 0) { this.#fail('bad-header-value'); return null; }
      while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
      while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
      const name = b.toString('latin1', p, colon).toLowerCase();
      const value = b.toString('latin1', vs, ve);
      const prev = out[name];
      if (prev === undefined) out[name] = value;
      else if (typeof prev === 'string') out[name] = [prev, value];
      else prev.push(value);
      p = eol + 2;
    }
    return out;
  }

  /** One byte of chunk framing (everything but the data itself). False on error. */
  #chunkByte(c: number): boolean {
    switch (this.#state) {
      case S_CHUNK_SIZE_FIRST:
      case S_CHUNK_SIZE: {
        const h = HEX[c];
        if (h >= 0) {
          if (this.#digits > 0 || h > 0) {
            if (++this.#digits > MAX_CHUNK_DIGITS) return this.#fail('chunk-size-overflow');
          }
          this.#remaining = this.#remaining * 16 + h;
          this.#state = S_CHUNK_SIZE;
          return true;
        }
        if (this.#state === S_CHUNK_SIZE_FIRST) return this.#fail('bad-chunk-size');
        if (c === CR) { this.#state = S_CHUNK_SIZE_LF; return true; }
        if (c === 0x3b) { this.#state = S_EXT_NAME_FIRST; return true; }
        return this.#fail('bad-chunk-size');
      }
      case S_EXT_NAME_FIRST:
        if (TCHAR[c] === 1) { this.#state = S_EXT_NAME; return true; }
        return this.#fail('bad-chunk-extension');
      case S_EXT_NAME:
        if (TCHAR[c] === 1) return true;
        if (c === 0x3d) { this.#state = S_EXT_VALUE_FIRST; return true; }
        if (c === 0x3b) { this.#state = S_EXT_NAME_FIRST; return true; }
        if (c === CR) { this.#state = S_CHUNK_SIZE_LF; return true; }
        return this.#fail('bad-chunk-extension');
      case S_EXT_VALUE_FIRST:
        if (TCHAR[c] === 1) { this.#state = S_EXT_TOKEN; return true; }
        if (c === 0x22) { this.#state = S_EXT_QUOTED; return true; }
        // An empty value (`;a=`): llhttp takes it, and the chunk's size is not in doubt.
        if (c === 0x3b) { this.#state = S_EXT_NAME_FIRST; return true; }
        if (c === CR) { this.#state = S_CHUNK_SIZE_LF; return true; }
        return this.#fail('bad-chunk-extension');
      case S_EXT_TOKEN:
        if (TCHAR[c] === 1) return true;
        if (c === 0x3b) { this.#state = S_EXT_NAME_FIRST; return true; }
        if (c === CR) { this.#state = S_CHUNK_SIZE_LF; return true; }
        return this.#fail('bad-chunk-extension');
      case S_EXT_QUOTED:
        if (c === 0x22) { this.#state = S_EXT_AFTER_QUOTE; return true; }
        if (c === 0x5c) { this.#state = S_EXT_QUOTED_ESC; return true; }
        if (QDTEXT[c] === 1) return true;
        return this.#fail('bad-chunk-extension');
      case S_EXT_QUOTED_ESC:
        if (c === HTAB || (c >= 0x20 && c !== 0x7f)) { this.#state = S_EXT_QUOTED; return true; }
        return this.#fail('bad-chunk-extension');
      case S_EXT_AFTER_QUOTE:
        if (c === 0x3b) { this.#state = S_EXT_NAME_FIRST; return true; }
        if (c === CR) { this.#state = S_CHUNK_SIZE_LF; return true; }
        return this.#fail('bad-chunk-extension');
      case S_CHUNK_SIZE_LF:
        if (c !== LF) return this.#fail('bad-chunk-size');
        if (this.#remaining === 0) {
          this.#state = S_TRAILERS;
          this.#lineStart = 0;
        } else {
          this.#state = S_CHUNK_DATA;
        }
        this.#digits = 0;
        return true;
      case S_CHUNK_DATA_CR:
        if (c !== CR) return this.#fail('bad-chunk-end');
        this.#state = S_CHUNK_DATA_LF;
        return true;
      case S_CHUNK_DATA_LF:
        if (c !== LF) return this.#fail('bad-chunk-end');
        this.#state = S_CHUNK_SIZE_FIRST;
        this.#remaining = 0;
        return true;
      default:
        return this.#fail('bad-chunk-size');
    }
  }
}

/** Content-Length: digits only (after OWS trim), at most 2^53 - 1; -1 otherwise. */
function parseLength(v: string): number {
  const n = v.length;
  if (n === 0 || n > 16) return -1;
  let x = 0;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return -1;
    x = x * 10 + c;
  }
  return x <= Number.MAX_SAFE_INTEGER ? x : -1;
}

function hasCloseToken(v: string | string[] | undefined): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'string') {
    for (const x of v) if (hasCloseToken(x)) return true;
    return false;
  }
  if (v.length === 5) return v.toLowerCase() === 'close';
  for (const t of v.split(',')) if (t.trim().toLowerCase() === 'close') return true;
  return false;
}
