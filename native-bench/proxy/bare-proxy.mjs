#!/usr/bin/env node
// The floors of the proxy benchmark: bare uWebSockets.js worker threads (one App each on the same
// port, as the router runs them) forwarding every POST to the mock pods round-robin, with no
// routing, scheduling, parsing, metrics or logs; only the upstream client differs:
//
//   --client undici   undici Pool.dispatch with a raw handler (what the router used before issue 13)
//   --client h1       the router's own HTTP/1.1 client (dist/workers/upstream/h1-client.js)
//
// Both stream the answer back the same way the router does: a known content-length with tryEnd
// (+ onWritable on backpressure), anything else with write(); a full socket pauses the upstream
// through its controller and onWritable resumes it.
//
//   node bare-proxy.mjs --port P --upstreams http://127.0.0.21:8000,http://127.0.0.22:8000
//                       [--client undici|h1] [--threads 2] [--connections 128]
//
// Prints one JSON line {"ready":true,...} once every thread listens.

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const require = createRequire(import.meta.url);

function fail(msg) {
  process.stderr.write(`bare-proxy: ${msg}\n`);
  process.exit(1);
}

if (isMainThread) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      upstreams: { type: 'string', default: 'http://127.0.0.21:8000,http://127.0.0.22:8000' },
      client: { type: 'string', default: 'h1' },
      threads: { type: 'string', default: '2' },
      connections: { type: 'string', default: '128' },
    },
  });
  const port = Number(values.port);
  const threads = Number(values.threads);
  if (!(port > 0) || !(threads >= 1)) fail('--port P and --threads N >= 1 are required');
  if (values.client !== 'undici' && values.client !== 'h1') fail('--client undici|h1');
  const data = { port, upstreams: values.upstreams.split(','), client: values.client, connections: Number(values.connections) };
  let ready = 0;
  for (let i = 0; i < threads; i++) {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { ...data, index: i } });
    w.on('message', (m) => {
      if (m.error) fail(m.error);
      if (m.ready && ++ready === threads) process.stdout.write(JSON.stringify({ ready: true, port, client: data.client, threads }) + '\n');
    });
    w.on('error', (err) => fail(err.stack ?? String(err)));
  }
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
} else {
  await serve(workerData);
}

function loadNativeUws() {
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  return require(join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`));
}

async function serve({ port, upstreams, client, connections, index }) {
  const uws = loadNativeUws();
  let pools;
  if (client === 'undici') {
    const { Pool } = await import('undici');
    pools = upstreams.map((o) => new Pool(o, { connections, pipelining: 1, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 60_000 }));
  } else {
    const file = join(ROOT, 'dist', 'workers', 'upstream', 'h1-client.js');
    let mod;
    try {
      mod = await import(pathToFileURL(file).href);
    } catch (err) {
      parentPort.postMessage({ error: `cannot load ${file} (run npm run build): ${err.message}` });
      return;
    }
    pools = upstreams.map((o) => new mod.H1Pool(o, { connections, keepAliveTimeoutMs: 60_000 }));
  }
  let next = index;

  class Forward {
    constructor(res) {
      this.res = res;
      this.aborted = false;
      this.controller = null;
      this.status = 0;
      this.ctype = '';
      this.total = -1; // content-length, -1: streamed
      this.headWritten = false;
      this.pending = null; // bytes tryEnd could not take yet
      this.pendingOffset = 0;
      this.ended = false;
      this.onWritable = (offset) => this.#writable(offset);
    }

    onRequestStart(controller) {
      this.controller = controller;
      if (this.aborted) controller.abort(new Error('client aborted'));
    }

    onResponseStart(_c, status, headers) {
      this.status = status;
      const ct = headers['content-type'];
      this.ctype = typeof ct === 'string' ? ct : 'application/octet-stream';
      const cl = headers['content-length'];
      this.total = typeof cl === 'string' ? Number(cl) : -1;
    }

    #head() {
      this.headWritten = true;
      this.res.writeStatus(this.status === 200 ? '200 OK' : String(this.status)).writeHeader('content-type', this.ctype);
    }

    onResponseData(c, chunk) {
      if (this.aborted) return;
      const res = this.res;
      let ok = true;
      res.cork(() => {
        if (!this.headWritten) this.#head();
        if (this.total >= 0) {
          this.pendingOffset = res.getWriteOffset();
          const [written, done] = res.tryEnd(chunk, this.total);
          if (done) this.ended = true;
          if (!written && !done) { this.pending = chunk; ok = false; }
        } else {
          ok = res.write(chunk);
        }
      });
      if (!ok) {
        c.pause();
        res.onWritable(this.onWritable);
      }
    }

    #writable(offset) {
      if (this.aborted) return true;
      if (this.pending !== null) {
        const [written, done] = this.res.tryEnd(this.pending.subarray(offset - this.pendingOffset), this.total);
        if (done) this.ended = true;
        if (!written && !done) return false;
        this.pending = null;
      }
      this.controller.resume();
      return true;
    }

    onResponseEnd() {
      // A length-framed answer is complete once tryEnd took its last byte: the response object
      // must not be touched after that.
      if (this.aborted || this.ended) return;
      const res = this.res;
      res.cork(() => {
        if (!this.headWritten) this.#head();
        if (this.total < 0) res.end();
        else if (!this.ended && this.pending === null) res.endWithoutBody(0);
      });
    }

    onResponseError(_c, err) {
      if (this.aborted) return;
      const res = this.res;
      if (this.headWritten) { res.close(); return; }
      res.cork(() => res.writeStatus('502 Bad Gateway').end(String(err.message)));
    }
  }

  const app = uws.App();
  app.post('/*', (res, req) => {
    const f = new Forward(res);
    res.onAborted(() => { f.aborted = true; f.controller?.abort(new Error('client aborted')); });
    const path = req.getUrl();
    const ctype = req.getHeader('content-type');
    const chunks = [];
    res.onData((ab, last) => {
      chunks.push(Buffer.from(ab.slice(0)));
      if (!last) return;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const pool = pools[next++ % pools.length];
      pool.dispatch({ path, method: 'POST', headers: ['content-type', ctype], body }, f);
    });
  });
  app.listen('127.0.0.1', port, (sock) => {
    if (!sock) parentPort.postMessage({ error: `thread ${index} cannot listen on 127.0.0.1:${port}` });
    else parentPort.postMessage({ ready: true });
  });
}
