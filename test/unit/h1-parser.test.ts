/**
 * The upstream client's response parser against llhttp, byte for byte.
 *
 * The oracle is Node's own HTTP parser (`HTTPParser` from `_http_common`: the native llhttp build
 * that node:http uses, strict mode, no lenient flags). It runs in vitest's forked workers as in
 * plain Node, needs no wasm glue (undici's lib/llhttp/llhttp-wasm.js would need its whole
 * callback table re-implemented around the instance), and it is the parser every Node HTTP stack
 * on this machine trusts.
 *
 * Each byte stream goes through both parsers whole and split at every offset. The rules:
 * - whatever llhttp rejects (or cannot complete), ours rejects;
 * - whatever llhttp accepts, ours accepts with the same status, headers, body and trailers, or
 *   rejects for one of the deliberate strictness reasons in STRICTER (each names why);
 * - our verdict does not depend on where the stream was split;
 * - ours only keeps a connection alive when llhttp would.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ResponseParser, type ParseError, type ResponseHeaders, type ResponseSink } from '../../workers/upstream/h1-parser.js';

const require = createRequire(import.meta.url);
const { HTTPParser } = require('_http_common') as { HTTPParser: any };

/** Where we refuse what llhttp takes, on purpose (see h1-parser.ts). */
const STRICTER: ReadonlySet<ParseError> = new Set<ParseError>([
  'unsupported-transfer-encoding', // `gzip` read to EOF, `chunked, chunked`: we never guess a body's end
  'bad-status-code', // outside 100-599
  'leading-empty-line', // CRLF before the status line: a desynchronised stream on a reused connection
  'bad-version', // HTTP/0.9 and HTTP/2.0 status lines
  'duplicate-content-length', // only reachable where llhttp also refuses, listed for completeness
  'content-length-and-transfer-encoding', // on 204/304/HEAD answers, where llhttp ignores the conflict
  'bad-content-length', // on 204/304/HEAD answers, which llhttp does not check
  'too-many-interim', // more than 8 1xx heads
]);

interface Verdict {
  ok: boolean;
  error?: string;
  status?: number;
  headers?: string[]; // lower-case name, value, ...
  body?: string; // latin1
  trailers?: string[];
  keepAlive?: boolean;
}

function flat(h: ResponseHeaders): string[] {
  const out: string[] = [];
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (typeof v === 'string') out.push(k, v);
    else for (const x of v) out.push(k, x);
  }
  return out;
}

/** Headers in arrival order, grouped by name the way ours reports them (first-seen name order). */
function grouped(raw: string[]): string[] {
  const order: string[] = [];
  const by = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (!by.has(k)) { by.set(k, []); order.push(k); }
    by.get(k)!.push(raw[i + 1]);
  }
  const out: string[] = [];
  for (const k of order) for (const v of by.get(k)!) out.push(k, v);
  return out;
}

function viaLlhttp(pieces: Buffer[], head: boolean): Verdict {
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {}, 1 << 20, 0);
  let raw: string[] = [];
  let final: Verdict | null = null;
  let body: Buffer[] = [];
  let done = false;
  let upgrade = false;
  let inFinal = false;
  let trailers: string[] = [];
  p[HTTPParser.kOnHeaders] = (h: string[]) => { if (inFinal) trailers.push(...h); else raw.push(...h); };
  p[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, h: string[] | undefined, _m: unknown, _u: unknown, status: number, _r: string, up: boolean, keepAlive: boolean) => {
    if (h) raw.push(...h);
    if (up) upgrade = true;
    if (status >= 200 && final === null) {
      final = { ok: true, status, headers: grouped(raw), keepAlive };
      inFinal = true;
      body = [];
      trailers = [];
    }
    raw = [];
    return head && status >= 200 ? 1 : 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => { if (inFinal && !done) body.push(Buffer.from(b)); };
  p[HTTPParser.kOnMessageComplete] = () => { if (inFinal && !done) done = true; };
  for (const piece of pieces) {
    if (done || upgrade) break;
    const r = p.execute(piece);
    if (r instanceof Error) {
      if (done) break;
      return { ok: false, error: (r as any).code };
    }
  }
  if (!done && !upgrade) {
    const r = p.finish();
    if (r instanceof Error) return { ok: false, error: (r as any).code };
  }
  if (upgrade) return { ok: false, error: 'upgrade' };
  if (!done || final === null) return { ok: false, error: 'incomplete' };
  const f = final as Verdict;
  return { ...f, body: Buffer.concat(body).toString('latin1'), trailers: grouped(trailers) };
}

class Collect implements ResponseSink {
  head: { status: number; headers: ResponseHeaders } | null = null;
  body: Buffer[] = [];
  trailers: ResponseHeaders | null = null;
  onHead(status: number, _reason: string, headers: ResponseHeaders): boolean { this.head = { status, headers }; return true; }
  onBody(buf: Buffer, s: number, e: number): void { this.body.push(Buffer.from(buf.subarray(s, e))); }
  onComplete(t: ResponseHeaders): void { this.trailers = t; }
}

function viaOurs(pieces: Buffer[], head: boolean, maxHeaderBytes = 1 << 20): Verdict {
  const sink = new Collect();
  const p = new ResponseParser(sink, maxHeaderBytes);
  p.reset(head);
  for (const piece of pieces) {
    // Pieces sit inside a larger buffer, as reads do in the client's shared read buffer.
    const host = Buffer.alloc(piece.length + 8, 0x41);
    piece.copy(host, 4);
    const r = p.execute(host, 4, 4 + piece.length);
    if (r < 0) return { ok: false, error: p.error! };
    if (p.complete) break;
  }
  if (!p.complete && !p.finish()) return { ok: false, error: p.error! };
  return {
    ok: true,
    status: sink.head!.status,
    headers: flat(sink.head!.headers),
    body: Buffer.concat(sink.body).toString('latin1'),
    trailers: flat(sink.trailers!),
    keepAlive: p.keepAlive,
  };
}

function splits(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [[buf]];
  for (let k = 0; k <= buf.length; k++) out.push([buf.subarray(0, k), buf.subarray(k)]);
  return out;
}

let compared = 0;
let stricter = 0;

/** Checks one byte stream under every two-piece split. */
function agree(bytes: Buffer, head = false): void {
  const whole = viaOurs([bytes], head);
  for (const pieces of splits(bytes)) {
    const ours = viaOurs(pieces, head);
    const ref = viaLlhttp(pieces, head);
    const label = `${JSON.stringify(bytes.toString('latin1'))} split at ${pieces[0].length}${head ? ' (HEAD)' : ''}`;
    compared++;
    // The split never changes our verdict.
    expect(ours, `${label}: verdict depends on the split`).toEqual(whole);
    if (!ref.ok) {
      expect(ours.ok, `${label}: llhttp rejects (${ref.error}) but we accept`).toBe(false);
      continue;
    }
    if (!ours.ok) {
      expect(STRICTER.has(ours.error as ParseError), `${label}: we reject (${ours.error}) what llhttp accepts`).toBe(true);
      stricter++;
      continue;
    }
    expect(ours.status, label).toBe(ref.status);
    expect(ours.headers, label).toEqual(ref.headers);
    expect(ours.body, label).toBe(ref.body);
    expect(ours.trailers, label).toEqual(ref.trailers);
    // llhttp decides keep-alive before it learns the request was HEAD (a HEAD answer without
    // framing headers looks read-until-close to it); RFC 9112 section 6.3 ends it at the head.
    if (ours.keepAlive && !head) expect(ref.keepAlive, `${label}: we would reuse a connection llhttp would not`).toBe(true);
  }
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const CASES: string[] = [
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: application/json\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n',
  'HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx',
  'HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx',
  'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX:  padded  \r\nX:\r\n\r\nno',
  'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX-Obs: caf\xe9\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n6\r\ndata: \r\nA\r\n0123456789\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b;c="d\\"e";f\r\nabc\r\n0\r\nT: v\r\nU: w\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000001\r\nx\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nbad trailer\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
  'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab',
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\n\r\nread until close',
  'HTTP/1.0 200 OK\r\n\r\nhttp/1.0 until close',
  'HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok',
  'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n',
  'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n',
  'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
  'HTTP/1.1 200 OK\nContent-Length: 0\n\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n',
  'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\n X: a\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX a\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\x7fb\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\tb\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 Ok\x01\r\nContent-Length: 0\r\n\r\n',
  '\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n',
  'http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1200 OK\r\nContent-Length: 0\r\n\r\n',
  'ICY 200 OK\r\nContent-Length: 0\r\n\r\n',
  'garbage\r\n\r\n',
  '',
  'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n',
];

describe('ResponseParser agrees with llhttp', () => {
  it('on hand-written framing cases, split at every offset', () => {
    for (const c of CASES) agree(b(c));
    expect(compared).toBeGreaterThan(CASES.length * 20);
    // The deliberate strictness is exercised, not just declared.
    expect(stricter).toBeGreaterThan(0);
  });

  it('on responses to HEAD (no body whatever the headers say)', () => {
    agree(b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'), true);
    agree(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), true);
    agree(b('HTTP/1.1 404 Not Found\r\n\r\n'), true);
  });

  it('reports the deliberate strictness on the cases that need it', () => {
    const reason = (s: string): string | undefined => viaOurs([b(s)], false).error;
    expect(reason('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc')).toBe('unsupported-transfer-encoding');
    expect(reason('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n')).toBe('unsupported-transfer-encoding');
    expect(reason('\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')).toBe('leading-empty-line');
    expect(reason('HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n')).toBe('bad-status-code');
    expect(reason('HTTP/1.1 101 Switching Protocols\r\n\r\n')).toBe('upgrade');
    expect(reason('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc')).toBe('duplicate-content-length');
    expect(reason('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab')).toBe('incomplete');
    expect(reason('HTTP/1.1 102 P\r\n\r\n'.repeat(9) + 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')).toBe('too-many-interim');
  });

  it('refuses a head longer than maxHeaderBytes, whole or split', () => {
    const big = b(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(300)}\r\nContent-Length: 0\r\n\r\n`);
    expect(viaOurs([big], false, 256).error).toBe('head-too-large');
    for (let k = 1; k < big.length; k += 7) expect(viaOurs([big.subarray(0, k), big.subarray(k)], false, 256).error).toBe('head-too-large');
    expect(viaOurs([big], false, 512).ok).toBe(true);
    // A trailer section counts against the same limit.
    const trailer = b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: ${'b'.repeat(300)}\r\n\r\n`);
    expect(viaOurs([trailer], false, 256).error).toBe('head-too-large');
  });

  it('feeds one byte at a time with the same result', () => {
    for (const c of CASES) {
      const bytes = b(c);
      const pieces: Buffer[] = [];
      for (let i = 0; i < bytes.length; i++) pieces.push(bytes.subarray(i, i + 1));
      expect(viaOurs(pieces, false), JSON.stringify(c)).toEqual(viaOurs([bytes], false));
    }
  });
});

// ---- seeded fuzzing -------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(rnd: () => number): { bytes: Buffer; head: boolean } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (n: number): number => Math.floor(rnd() * n);
  const head = rnd() < 0.08;
  let s = '';
  if (rnd() < 0.1) s += pick(['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n']);
  const version = rnd() < 0.85 ? 'HTTP/1.1' : pick(['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1.x']);
  const status = rnd() < 0.7 ? pick(['200', '201', '404', '500']) : pick(['204', '304', '101', '099', '600', '2x0', '100']);
  s += `${version} ${status}${pick([' OK', '', ' ', ' Some Reason', ' \xe9t\xe9'])}\r\n`;
  const body = 'x'.repeat(int(40)) + pick(['', 'data: {"a":1}\n\n', '\r\n', '0\r\n\r\n']);
  const fields: string[] = [];
  for (let i = int(4); i > 0; i--) {
    fields.push(pick(['Content-Type: application/json', 'X-Request-Id: 7', 'Set-Cookie: a=b', 'Connection: close', 'Connection: keep-alive',
      'Keep-Alive: timeout=5', 'X-Pad:   v  ', 'X-Obs: \xfc', 'Date: Mon, 07 Dec 2026 16:00:00 GMT', 'Server: uvicorn', 'X-Empty:']));
  }
  const framing = int(10);
  let payload = '';
  if (framing <= 3) {
    const delta = rnd() < 0.8 ? 0 : pick([-3, -1, 1, 2]);
    fields.push(`Content-Length: ${Math.max(0, body.length + delta)}`);
    payload = body;
  } else if (framing <= 6) {
    fields.push(pick(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked', 'Transfer-Encoding: Chunked', 'transfer-encoding: chunked, chunked', 'Transfer-Encoding: gzip, chunked']));
    let rest = body;
    while (rest.length > 0) {
      const n = 1 + int(rest.length);
      payload += n.toString(16) + pick(['', '', '', ';ext', ';e="q"', ';e=v;f']) + '\r\n' + rest.slice(0, n) + '\r\n';
      rest = rest.slice(n);
    }
    payload += '0\r\n' + (rnd() < 0.2 ? 'X-Trailer: t\r\n' : '') + '\r\n';
  } else if (framing === 7) {
    fields.push('Content-Length: ' + body.length, 'Transfer-Encoding: chunked');
    payload = body;
  } else if (framing === 8) {
    fields.push('Content-Length: ' + body.length, 'Content-Length: ' + pick([body.length, body.length + 1]));
    payload = body;
  } else {
    payload = body; // read until close
  }
  // Shuffle the header order.
  for (let i = fields.length - 1; i > 0; i--) { const j = int(i + 1); [fields[i], fields[j]] = [fields[j], fields[i]]; }
  s += fields.map((f) => f + '\r\n').join('') + '\r\n' + payload;
  const bytes = Buffer.from(s, 'latin1');
  // Mutations: a byte replaced, inserted or removed (bare LF, control bytes, broken CRLFs ...).
  const mutations = rnd() < 0.5 ? 0 : 1 + int(2);
  let out = bytes;
  for (let m = 0; m < mutations && out.length > 0; m++) {
    const at = int(out.length);
    const byte = pick([0x0a, 0x0d, 0x20, 0x09, 0x00, 0x7f, 0x3a, 0x3b, 0x30, 0x41, 0xff, 0x22, int(256)]);
    const kind = int(3);
    if (kind === 0) { out = Buffer.from(out); out[at] = byte; }
    else if (kind === 1) out = Buffer.concat([out.subarray(0, at), Buffer.from([byte]), out.subarray(at)]);
    else out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
  }
  return { bytes: out, head };
}

describe('ResponseParser fuzzed against llhttp (seeded, deterministic)', () => {
  it('agrees on 400 generated and mutated responses, each split at every offset', () => {
    const rnd = mulberry32(0x13c11e7);
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      const { bytes, head } = generate(rnd);
      agree(bytes, head);
      if (viaOurs([bytes], head).ok) accepted++;
    }
    // The generator must exercise both sides: plenty of valid responses and plenty of broken ones.
    expect(accepted).toBeGreaterThan(80);
    expect(accepted).toBeLessThan(360);
  });

  it('never throws and always ends in a verdict on random bytes after a valid status line', () => {
    const rnd = mulberry32(42);
    for (let i = 0; i < 3000; i++) {
      const n = Math.floor(rnd() * 120);
      const junk = Buffer.alloc(n);
      for (let j = 0; j < n; j++) junk[j] = rnd() < 0.3 ? [0x0d, 0x0a, 0x3a, 0x20][Math.floor(rnd() * 4)] : Math.floor(rnd() * 256);
      const bytes = Buffer.concat([b('HTTP/1.1 200 OK\r\n'), junk]);
      const v = viaOurs([bytes], false);
      const ref = viaLlhttp([bytes], false);
      if (!ref.ok) expect(v.ok, JSON.stringify(bytes.toString('latin1'))).toBe(false);
    }
  });
});
