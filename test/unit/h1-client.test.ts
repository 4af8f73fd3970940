/**
 * The upstream HTTP/1.1 client against local `net` servers that behave, and that misbehave:
 * close mid-body, send junk, stall, close a kept-alive socket just before a request, answer with
 * bytes nobody asked for. Every handler is wrapped in an asserting recorder (the decorator idea of
 * undici's lib/handler/decorator-handler.js): onRequestStart first, onResponseStart at most once,
 * nothing after the end or an error, nothing while paused.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { H1Agent, H1Pool, type ResponseHeaders, type UpstreamController, type UpstreamHandler } from '../../workers/upstream/h1-client.js';

interface Outcome {
  status: number;
  headers: ResponseHeaders;
  body: Buffer;
  trailers: ResponseHeaders | null;
  error: (Error & { code?: string }) | null;
}

/** An asserting handler that records what it is given and resolves when the request ends. */
class Recorder implements UpstreamHandler {
  controller: UpstreamController | null = null;
  status = 0;
  headers: ResponseHeaders = {};
  chunks: Buffer[] = [];
  trailers: ResponseHeaders | null = null;
  error: (Error & { code?: string }) | null = null;
  ended = false;
  readonly done: Promise<Outcome>;
  #resolve!: (o: Outcome) => void;
  onStart: ((c: UpstreamController) => void) | null = null;
  onChunk: ((c: UpstreamController, chunk: Buffer) => void) | null = null;

  constructor() {
    this.done = new Promise((r) => { this.#resolve = r; });
  }

  #check(where: string): void {
    if (this.ended) throw new Error(`${where} after the request ended`);
    if (this.controller === null) throw new Error(`${where} before onRequestStart`);
  }

  onRequestStart(c: UpstreamController): void {
    if (this.controller !== null) throw new Error('onRequestStart twice');
    this.controller = c;
  }

  onResponseStart(c: UpstreamController, status: number, headers: ResponseHeaders): void {
    this.#check('onResponseStart');
    if (this.status !== 0) throw new Error('onResponseStart twice');
    this.status = status;
    this.headers = headers;
    this.onStart?.(c);
  }

  onResponseData(c: UpstreamController, chunk: Buffer): void {
    this.#check('onResponseData');
    if (this.status === 0) throw new Error('onResponseData before onResponseStart');
    if (c.paused) throw new Error('onResponseData while paused');
    this.chunks.push(chunk);
    this.onChunk?.(c, chunk);
  }

  onResponseEnd(c: UpstreamController, trailers: ResponseHeaders): void {
    this.#check('onResponseEnd');
    if (c.paused) throw new Error('onResponseEnd while paused');
    this.trailers = trailers;
    this.#finish();
  }

  onResponseError(_c: UpstreamController, err: Error): void {
    this.#check('onResponseError');
    this.error = err;
    this.#finish();
  }

  #finish(): void {
    this.ended = true;
    this.#resolve({ status: this.status, headers: this.headers, body: Buffer.concat(this.chunks), trailers: this.trailers, error: this.error });
  }
}

interface TestServer {
  origin: string;
  /** Sockets accepted so far. */
  accepted: net.Socket[];
  /** Every request head+body received, per connection index. */
  received: string[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const pools: H1Pool[] = [];

/**
 * A raw TCP server. `onRequest(socket, request, n)` runs for each complete request (head, and a
 * body by content-length), n counting requests on that socket from 0.
 */
async function server(onRequest: (s: net.Socket, req: string, n: number, connIndex: number) => void): Promise<TestServer> {
  const accepted: net.Socket[] = [];
  const received: string[] = [];
  const srv = net.createServer((s) => {
    const connIndex = accepted.length;
    accepted.push(s);
    received[connIndex] = '';
    let buf = '';
    let n = 0;
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      received[connIndex] += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /content-length: (\d+)/i.exec(buf.slice(0, end));
        const len = m ? Number(m[1]) : 0;
        if (buf.length < end + 4 + len) return;
        const req = buf.slice(0, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        onRequest(s, req, n++, connIndex);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const t: TestServer = {
    origin: `http://127.0.0.1:${port}`,
    accepted,
    received,
    close: () => new Promise((r) => { for (const s of accepted) s.destroy(); srv.close(() => r()); }),
  };
  servers.push(t);
  return t;
}

function pool(origin: string, opts: ConstructorParameters<typeof H1Pool>[1] = {}): H1Pool {
  const p = new H1Pool(origin, opts);
  pools.push(p);
  return p;
}

function send(p: H1Pool, opts: { method?: string; path?: string; headers?: string[]; body?: string | Buffer | null } = {}, rec = new Recorder()): Recorder {
  p.dispatch({ method: opts.method ?? 'POST', path: opts.path ?? '/v1/chat/completions', headers: opts.headers ?? ['content-type', 'application/json'], body: opts.body === undefined ? '{"a":1}' : opts.body }, rec);
  return rec;
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await sleep(5);
  }
}

afterEach(async () => {
  for (const p of pools.splice(0)) await p.destroy();
  for (const s of servers.splice(0)) await s.close();
});

describe('H1Pool: requests and keep-alive', () => {
  it('sends head and body as written and reuses the connection for the next request', async () => {
    const s = await server((sock, _req) => sock.write(ok('{"id":1}', 'Content-Type: application/json\r\n')));
    const p = pool(s.origin);
    const a = await send(p, { body: '{"model":"m","prompt":"héllo"}' }).done;
    expect(a.error).toBeNull();
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.body.toString()).toBe('{"id":1}');
    const b = await send(p, { method: 'GET', path: '/v1/models?x=1', body: null, headers: ['x-request-id', 'r1'] }).done;
    expect(b.status).toBe(200);
    expect(s.accepted.length).toBe(1);
    const body = '{"model":"m","prompt":"héllo"}';
    expect(s.received[0]).toBe(
      `POST /v1/chat/completions HTTP/1.1\r\ncontent-type: application/json\r\nhost: ${s.origin.slice(7)}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${Buffer.from(body).toString('latin1')}` +
      `GET /v1/models?x=1 HTTP/1.1\r\nx-request-id: r1\r\nhost: ${s.origin.slice(7)}\r\n\r\n`,
    );
  });

  it('keeps the caller\'s host header and sends Buffer bodies as they are', async () => {
    const s = await server((sock) => sock.write(ok('k')));
    const p = pool(s.origin);
    await send(p, { headers: ['host', 'pod.example'], body: Buffer.from([0x7b, 0x7d]) }).done;
    expect(s.received[0]).toBe('POST /v1/chat/completions HTTP/1.1\r\nhost: pod.example\r\ncontent-length: 2\r\n\r\n{}');
  });

  it('refuses framing headers and header injection before any callback', () => {
    const p = pool('http://127.0.0.1:9');
    for (const headers of [['content-length', '3'], ['transfer-encoding', 'chunked'], ['connection', 'close'], ['x', 'a\r\nb: c'], ['bad name', 'v']]) {
      const rec = new Recorder();
      expect(() => p.dispatch({ method: 'POST', path: '/', headers, body: 'abc' }, rec)).toThrow(expect.objectContaining({ code: 'RTR_ERR_INTERNAL' }));
      expect(rec.controller).toBeNull();
    }
    expect(() => p.dispatch({ method: 'GET', path: '/a b', body: null }, new Recorder())).toThrow(expect.objectContaining({ code: 'RTR_ERR_INTERNAL' }));
    expect(() => new H1Pool('https://127.0.0.1:443')).toThrow(TypeError);
  });

  it('never opens more connections than the cap; queued requests wait their turn', async () => {
    const held: net.Socket[] = [];
    const s = await server((sock) => { held.push(sock); });
    const p = pool(s.origin, { connections: 2 });
    const recs = Array.from({ length: 5 }, (_, i) => send(p, { body: `{"i":${i}}` }));
    await until(() => held.length === 2);
    expect(p.stats).toEqual({ connections: 2, idle: 0, queued: 3 });
    // Answer whatever is waiting until all five are done.
    let answered = 0;
    while (answered < 5) {
      await until(() => held.length > 0);
      held.shift()!.write(ok(String(answered)));
      answered++;
    }
    const outs = await Promise.all(recs.map((r) => r.done));
    expect(outs.every((o) => o.status === 200 && o.error === null)).toBe(true);
    expect(s.accepted.length).toBe(2);
    expect(p.stats).toEqual({ connections: 2, idle: 2, queued: 0 });
  });

  it('closes idle connections after keepAliveTimeoutMs', async () => {
    const s = await server((sock) => sock.write(ok('x')));
    const p = pool(s.origin, { keepAliveTimeoutMs: 150 });
    await send(p).done;
    expect(p.stats.idle).toBe(1);
    await until(() => s.accepted[0].destroyed || s.accepted[0].readableEnded);
    expect(p.stats).toEqual({ connections: 0, idle: 0, queued: 0 });
  });

  it('does not reuse a connection the server announced it will close', async () => {
    const s = await server((sock, _r, _n, conn) => sock.write(conn === 0 ? ok('a', 'Connection: close\r\n') : ok('b')));
    const p = pool(s.origin);
    expect((await send(p).done).body.toString()).toBe('a');
    expect((await send(p).done).body.toString()).toBe('b');
    expect(s.accepted.length).toBe(2);
  });

  it('honours a Keep-Alive timeout hint too short to reuse the connection', async () => {
    const s = await server((sock) => sock.write(ok('a', 'Keep-Alive: timeout=1\r\n')));
    const p = pool(s.origin);
    await send(p).done;
    await send(p).done;
    expect(s.accepted.length).toBe(2);
  });
});

describe('H1Pool: bodies and backpressure', () => {
  it('streams a chunked body and delivers trailers', async () => {
    const s = await server((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n');
      sock.write('6\r\ndata: \r\n');
      setTimeout(() => sock.write('3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n'), 20);
    });
    const p = pool(s.origin);
    const out = await send(p).done;
    expect(out.body.toString()).toBe('data: abc');
    expect(out.trailers).toEqual({ 'x-t': '1' });
    expect(p.stats.idle).toBe(1);
  });

  it('delivers nothing while paused and stops reading the socket (the server sees backpressure)', async () => {
    const total = 32 * 1024 * 1024;
    let serverSocket: net.Socket | null = null;
    const s = await server((sock) => {
      serverSocket = sock;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
      const piece = Buffer.alloc(1024 * 1024, 0x61);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += piece.length;
          if (!sock.write(piece)) { sock.once('drain', pump); return; }
        }
      };
      pump();
    });
    const p = pool(s.origin);
    const rec = new Recorder();
    let received = 0;
    rec.onChunk = (c, chunk) => {
      received += chunk.length;
      if (received > 1024 * 1024 && !pausedOnce) { pausedOnce = true; c.pause(); }
    };
    let pausedOnce = false;
    send(p, {}, rec);
    await until(() => pausedOnce);
    const atPause = received;
    await sleep(200);
    expect(received).toBe(atPause); // nothing while paused
    // The server could not push the whole body: its writes are held in its own buffer.
    expect(serverSocket!.writableLength).toBeGreaterThan(0);
    rec.controller!.resume();
    const out = await rec.done;
    expect(out.error).toBeNull();
    expect(out.body.length).toBe(total);
  });

  it('holds the end of a response that completed while paused until resume', async () => {
    const s = await server((sock) => sock.write(ok('whole body in one read')));
    const p = pool(s.origin);
    const rec = new Recorder();
    rec.onChunk = (c) => c.pause();
    send(p, {}, rec);
    await until(() => rec.chunks.length === 1);
    await sleep(50);
    expect(rec.ended).toBe(false);
    // The connection itself is already free for the next request.
    expect(p.stats.idle).toBe(1);
    rec.controller!.resume();
    const out = await rec.done;
    expect(out.body.toString()).toBe('whole body in one read');
  });

  it('keeps the bytes that followed the head when the handler pauses in onResponseStart', async () => {
    const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'));
    const p = pool(s.origin);
    const rec = new Recorder();
    rec.onStart = (c) => c.pause();
    send(p, {}, rec);
    await until(() => rec.status === 200);
    await sleep(50);
    expect(rec.chunks.length).toBe(0);
    rec.controller!.resume();
    const out = await rec.done;
    expect(out.body.toString()).toBe('hello');
    expect(p.stats.idle).toBe(1);
  });

  it('answers to HEAD, 204 and 304 have no body; a 204 announcing one is not reused', async () => {
    const s = await server((sock, req) => {
      if (req.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
      else if (req.includes('/304')) sock.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n');
      else sock.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n');
    });
    const p = pool(s.origin);
    const head = await send(p, { method: 'HEAD', body: null }).done;
    expect([head.status, head.body.length]).toEqual([200, 0]);
    const nm = await send(p, { method: 'GET', path: '/304', body: null }).done;
    expect([nm.status, nm.body.length]).toEqual([304, 0]);
    expect(s.accepted.length).toBe(1);
    const nc = await send(p, { method: 'GET', path: '/204', body: null }).done;
    expect([nc.status, nc.body.length]).toEqual([204, 0]);
    await send(p, { method: 'GET', path: '/204', body: null }).done;
    expect(s.accepted.length).toBe(2);
  });

  it('skips 1xx interim answers', async () => {
    const s = await server((sock) => sock.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + ok('final')));
    const p = pool(s.origin);
    const out = await send(p).done;
    expect([out.status, out.body.toString(), out.headers.link]).toEqual([200, 'final', undefined]);
  });

  it('reads a body delimited by the close, and does not reuse that connection', async () => {
    const s = await server((sock) => { sock.write('HTTP/1.1 200 OK\r\n\r\nuntil'); setTimeout(() => sock.end(' close'), 20); });
    const p = pool(s.origin);
    const out = await send(p).done;
    expect([out.error, out.body.toString()]).toEqual([null, 'until close']);
    expect(p.stats.connections).toBe(0);
  });
});

describe('H1Pool: misbehaving upstreams', () => {
  it('fails a body cut short by a close (no guessing)', async () => {
    const s = await server((sock) => { sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part'); setTimeout(() => sock.destroy(), 20); });
    const p = pool(s.origin);
    const rec = send(p);
    const out = await rec.done;
    expect(rec.status).toBe(200);
    expect(out.error?.code).toBe('RTR_ERR_UPSTREAM_PROTOCOL');
    expect(out.error?.message).toMatch(/before the end of the body/);
  });

  it('fails a chunked body cut short by a close', async () => {
    const s = await server((sock) => { sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'); });
    const out = await send(pool(s.origin)).done;
    expect(out.error?.code).toBe('RTR_ERR_UPSTREAM_PROTOCOL');
  });

  it('fails on junk, on conflicting framing and on an oversized head, and closes that connection', async () => {
    const answers = [
      'SSH-2.0-OpenSSH_9.2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}\r\nContent-Length: 0\r\n\r\n`,
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n',
    ];
    const s = await server((sock, _r, _n, i) => sock.write(answers[i]));
    const p = pool(s.origin, { maxHeaderBytes: 1024 });
    for (let i = 0; i < answers.length; i++) {
      const out = await send(p).done;
      expect(out.error?.code, answers[i].slice(0, 30)).toBe('RTR_ERR_UPSTREAM_PROTOCOL');
    }
    expect(s.accepted.length).toBe(answers.length);
  });

  it('does not reuse a connection that carried bytes after the response', async () => {
    const s = await server((sock, _r, _n, conn) => sock.write(conn === 0 ? ok('a') + 'HTTP/1.1 200 OK\r\n' : ok('b')));
    const p = pool(s.origin);
    expect((await send(p).done).body.toString()).toBe('a');
    expect((await send(p).done).body.toString()).toBe('b');
    expect(s.accepted.length).toBe(2);
  });

  it('drops an idle connection that receives unsolicited bytes', async () => {
    const s = await server((sock) => { sock.write(ok('a')); setTimeout(() => sock.write('HTTP/1.1 200 OK\r\n'), 20); });
    const p = pool(s.origin);
    await send(p).done;
    await until(() => p.stats.connections === 0);
  });

  it('times out a server that never answers (headersTimeoutMs) and closes the connection', async () => {
    const s = await server(() => undefined);
    const p = pool(s.origin, { headersTimeoutMs: 100 });
    const out = await send(p).done;
    expect(out.error?.code).toBe('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT');
    await until(() => s.accepted[0].destroyed || s.accepted[0].readableEnded);
    expect(p.stats.connections).toBe(0);
  });

  it('fails with a connect error when nothing listens', async () => {
    const s = await server(() => undefined);
    const origin = s.origin;
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const out = await send(pool(origin)).done;
    expect(out.error?.code).toBe('RTR_ERR_UPSTREAM_CONNECT');
    expect(out.error?.message).toMatch(/ECONNREFUSED/);
  });

  it('sends a request again, on a new connection, when a kept-alive one was closed as it was written', async () => {
    const s = await server((sock, _r, n, conn) => {
      // The first connection serves one request, then drops the next without reading it: what a
      // server closing an idle connection at that very moment looks like from our side.
      if (conn === 0 && n === 1) { sock.destroy(); return; }
      sock.write(ok(`conn${conn}`));
    });
    const p = pool(s.origin);
    expect((await send(p).done).body.toString()).toBe('conn0');
    const out = await send(p).done;
    expect([out.error, out.body.toString()]).toEqual([null, 'conn1']);
    expect(s.accepted.length).toBe(2);
  });

  it('notices a kept-alive socket the server closed before the next request, and dials a new one', async () => {
    const s = await server((sock) => { sock.write(ok('x')); setTimeout(() => sock.end(), 10); });
    const p = pool(s.origin);
    await send(p).done;
    await until(() => p.stats.connections === 0);
    expect((await send(p).done).error).toBeNull();
    expect(s.accepted.length).toBe(2);
  });

  it('does not resend when the connection was new or when response bytes had arrived', async () => {
    const fresh = await server((sock) => sock.destroy());
    const a = await send(pool(fresh.origin)).done;
    expect(a.error?.code).toBe('RTR_ERR_UPSTREAM_CONNECT');
    expect(a.error?.message).toMatch(/closed before the response/);
    expect(fresh.accepted.length).toBe(1);

    const partial = await server((sock, _r, n) => { if (n === 0) sock.write(ok('x')); else sock.end('HTTP/1.1 200 O'); });
    const p = pool(partial.origin);
    await send(p).done;
    const b = await send(p).done;
    expect(b.error?.code).toBe('RTR_ERR_UPSTREAM_PROTOCOL');
    expect(partial.accepted.length).toBe(1);
  });
});

describe('H1Pool: aborts from the caller', () => {
  it('aborts a request waiting for headers: the handler gets the reason, the server sees the close', async () => {
    const s = await server(() => undefined);
    const p = pool(s.origin);
    const rec = send(p);
    await until(() => s.received[0]?.length > 0);
    const reason = Object.assign(new Error('client went away'), { code: 'RTR_ERR_CLIENT_ABORTED' });
    rec.controller!.abort(reason);
    const out = await rec.done;
    expect(out.error).toBe(reason);
    expect(rec.controller!.aborted).toBe(true);
    await until(() => s.accepted[0].destroyed || s.accepted[0].readableEnded);
    // A second abort, or a resume, does nothing more (the recorder would throw on a second end).
    rec.controller!.abort(new Error('again'));
    rec.controller!.resume();
  });

  it('aborts mid-body', async () => {
    const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const p = pool(s.origin);
    const rec = new Recorder();
    rec.onChunk = (c) => c.abort(new Error('enough'));
    const out = await send(p, {}, rec).done;
    expect(out.error?.message).toBe('enough');
    expect(out.body.toString()).toBe('abc');
    await until(() => p.stats.connections === 0);
  });

  it('aborts a queued request without touching the connections', async () => {
    const held: net.Socket[] = [];
    const s = await server((sock) => { held.push(sock); });
    const p = pool(s.origin, { connections: 1 });
    const first = send(p);
    const queued = send(p);
    await until(() => held.length === 1);
    queued.controller!.abort(new Error('gave up'));
    expect((await queued.done).error?.message).toBe('gave up');
    held[0].write(ok('first'));
    expect((await first.done).body.toString()).toBe('first');
    expect(s.received[0].match(/POST/g)!.length).toBe(1);
    expect(p.stats).toEqual({ connections: 1, idle: 1, queued: 0 });
  });

  it('can be aborted from onRequestStart, before anything is sent', async () => {
    const s = await server((sock) => sock.write(ok('x')));
    const p = pool(s.origin);
    const rec = new Recorder();
    const start = rec.onRequestStart.bind(rec);
    rec.onRequestStart = (c) => { start(c); c.abort(new Error('no')); };
    const out = await send(p, {}, rec).done;
    expect(out.error?.message).toBe('no');
    await sleep(30);
    expect(s.accepted.length).toBe(0);
  });

  it('destroy() fails requests in flight; close() waits for them', async () => {
    const held: net.Socket[] = [];
    const s = await server((sock) => { held.push(sock); });
    const p = pool(s.origin);
    const a = send(p);
    await until(() => held.length === 1);
    let closed = false;
    const closing = p.close().then(() => { closed = true; });
    await sleep(30);
    expect(closed).toBe(false);
    held[0].write(ok('done'));
    expect((await a.done).body.toString()).toBe('done');
    await closing;
    const s2 = await server(() => undefined);
    const p2 = pool(s2.origin);
    const b = send(p2);
    await until(() => s2.accepted.length === 1);
    await p2.destroy();
    expect((await b.done).error?.code).toBe('RTR_ERR_UPSTREAM_CONNECT');
  });
});

describe('H1Agent', () => {
  it('keeps one pool per origin', async () => {
    const s1 = await server((sock) => sock.write(ok('one')));
    const s2 = await server((sock) => sock.write(ok('two')));
    const agent = new H1Agent({ connections: 4 });
    const r1 = new Recorder();
    const r2 = new Recorder();
    agent.dispatch({ origin: s1.origin, method: 'GET', path: '/', body: null }, r1);
    agent.dispatch({ origin: s2.origin, method: 'GET', path: '/', body: null }, r2);
    expect([(await r1.done).body.toString(), (await r2.done).body.toString()]).toEqual(['one', 'two']);
    expect(agent.pool(s1.origin)).toBe(agent.pool(s1.origin));
    await agent.destroy();
  });
});
