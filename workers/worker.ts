/**
 * Worker thread entry: one uWS App listening on the router port (the kernel spreads connections
 * across the threads' SO_REUSEPORT sockets), reading the routing snapshot from shared memory.
 *
 * A worker never calls process.exit with sockets open and is never terminate()d: a thread that
 * ends with uWS handles alive aborts the whole process (uv_loop_close assertion). Every exit path
 * closes the listen socket and the App first.
 */
import { apiKeyMetricsJSON } from './auth/api-key.js';
import { parentPort, workerData, threadId } from 'node:worker_threads';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { loadNativeUws, type Uws } from './uws.js';
import { SnapshotReader } from './snapshot-reader.js';
import { compileSnapshot, type CompiledSnapshot } from './compile.js';
import { Scheduler, type Profile } from './scheduler/framework.js';
import type { MetricJSON } from '../src/shared/metric-json.js';
import { eppMetrics } from './epp/route.js';
import type { FromWorker, ListenPort, ToWorker, WorkerInit } from '../src/shared/messages.js';
import { threadMemory } from '../src/shared/memory.js';
import { createHandler, type WorkerContext } from './pipeline.js';
import { PriorityGate, SaturationDetector } from './flow-control.js';
import { WorkerMetrics } from './metrics.js';
import { RateLimiter } from './ratelimit/limiter.js';
import { AuthHolder } from './auth/holder.js';
import { AccessLogBuffer } from './accesslog.js';
import { closeWorkerRedis, redisBreakerMetricsJSON, workerRedis } from './redis.js';
import { RedisStickyStore } from './sticky/redis-store.js';
import { outlierMetricsJSON } from './outlier.js';
import { RouterError } from '../src/errors.js';
import { AdmissionClient } from './admission.js';
import { closeProviderAgents } from './provider/call.js';
import { StickyTable } from './sticky/memory-store.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);
const log = (level: 'info' | 'warn' | 'error', obj: object, msg: string): void => post({ type: 'log', level, obj: { worker: init.index, thread: threadId, ...obj }, msg });

let app: TemplatedApp | null = null;
let listenSocket: us_listen_socket | null = null;
/** Router-port Apps replaced by a TLS reload: their listen socket is closed, their connections finish. */
const retiredApps: TemplatedApp[] = [];
/** Gateway listener ports other than the router port: one App each (its handler knows its port). */
const extra = new Map<number, { app: TemplatedApp; socket: us_listen_socket | null; tls: string }>();
let closing = false;

function main(): void {
  let uws: Uws;
  try {
    uws = loadNativeUws();
  } catch (err) {
    const e = err as RouterError;
    post({ type: 'fatal', code: e.code ?? 'RTR_ERR_NATIVE_UWS', message: e.message });
    port.close();
    return;
  }
  const { cfg, regions } = init;
  const onSnapshotError = (err: unknown): void => log('error', { err: (err as Error).stack }, 'snapshot decode failed; keeping the previous snapshot');
  const ep = new Int32Array(regions.endpointSab);
  const scheduler = new Scheduler({ ep, prefixSab: regions.prefixSab });
  const reader = new SnapshotReader<CompiledSnapshot<Profile>>(
    regions.headerSab, regions.snapshotSab,
    (ir, generation) => compileSnapshot(ir, generation, (s) => scheduler.compile(s, ir.modelNames, ir.modelIds)),
    onSnapshotError,
  );
  const accessLog = cfg.accessLog.enabled ? new AccessLogBuffer((lines) => post({ type: 'access', lines })) : null;
  const pendingMetrics = new Map<number, (text: string | null) => void>();
  let nextId = 1;
  const ctx: WorkerContext = {
    cfg,
    header: new Int32Array(regions.headerSab),
    ep,
    reader,
    scheduler,
    kvAware: null,
    metrics: new WorkerMetrics(),
    accessLog,
    active: 0,
    onIdle: null,
    gate: new PriorityGate({ shared: { sab: regions.gateSab, worker: init.index, workers: cfg.workers } }),
    saturation: new SaturationDetector(ep),
    rateLimiter: new RateLimiter({ rateLimitSab: regions.rateLimitSab, failClosed: cfg.rateLimitFailClosed, log }),
    auth: new AuthHolder(log),
    sticky: new StickyTable(regions.stickySab),
    stickyRedis: cfg.sessionStickyStore === 'redis' ? new RedisStickyStore(workerRedis(cfg.redis).client, regions.stickySab, log, { timeoutMs: cfg.sessionStickyRedisTimeoutMs }) : null,
    admission: init.admission !== undefined ? new AdmissionClient(init.admission, cfg.sessionBoost.enabled ? cfg.sessionBoost.header.toLowerCase() : '') : null,
    epp: null,
    renderMetrics: cfg.exposeMetricsOnRouterPort
      ? () => new Promise<string>((resolve, reject) => {
        const id = nextId++;
        pendingMetrics.set(id, (t) => (t === null ? reject(new Error('metrics unavailable')) : resolve(t)));
        post({ type: 'render-metrics', id });
      })
      : null,
    log,
  };

  const allMetrics = (): MetricJSON[] => [
    ...ctx.metrics.toJSON(), ...scheduler.metricsJSON(), ...(ctx.kvAware?.metricsJSON() ?? []), ...redisBreakerMetricsJSON(), ...outlierMetricsJSON(), ...eppMetrics.metricsJSON(),
    ...ctx.rateLimiter.metricsJSON(), ...(ctx.stickyRedis?.metricsJSON() ?? []), ...apiKeyMetricsJSON(),
  ];

  const serve = (a: TemplatedApp, p: number, tls: boolean): void => {
    const handler = createHandler(ctx, p, tls);
    a.any('/*', (res, req) => {
      try {
        handler(res, req);
      } catch (err) {
        log('error', { err: (err as Error).stack }, 'request handler threw');
        try { res.cork(() => { res.writeStatus('500 Internal Server Error').end(); }); } catch { /* response already gone */ }
      }
    });
  };
  app = cfg.tlsCert !== '' ? uws.SSLApp({ cert_file_name: cfg.tlsCert, key_file_name: cfg.tlsKey }) : uws.App();
  serve(app, cfg.port, cfg.tlsCert !== '');

  /** Opens and closes Gateway listener ports to match `ports` (the router port is never touched). */
  const setListeners = (ports: ListenPort[]): { port: number; error: string }[] => {
    const failed: { port: number; error: string }[] = [];
    const wanted = new Map(ports.filter((p) => p.port !== cfg.port).map((p) => [p.port, p]));
    for (const [p, l] of extra) {
      const w = wanted.get(p);
      const tls = w?.tls ? `${w.tls.cert}|${w.tls.key}` : '';
      if (w !== undefined && tls === l.tls) continue;
      if (l.socket !== null) uws.us_listen_socket_close(l.socket);
      (l.app as unknown as { close(): void }).close();
      extra.delete(p);
    }
    for (const [p, w] of wanted) {
      if (extra.has(p)) continue;
      const a = w.tls !== null ? uws.SSLApp({ cert_file_name: w.tls.cert, key_file_name: w.tls.key }) : uws.App();
      serve(a, p, w.tls !== null);
      let socket: us_listen_socket | false = false;
      // uWS calls back synchronously from listen().
      a.listen(cfg.host, p, (s) => { socket = s; });
      if (socket) extra.set(p, { app: a, socket, tls: w.tls ? `${w.tls.cert}|${w.tls.key}` : '' });
      else {
        (a as unknown as { close(): void }).close();
        failed.push({ port: p, error: `${cfg.host}:${p} could not be bound` });
      }
    }
    return failed;
  };
  app.listen(cfg.host, cfg.port, (s) => {
    if (!s) {
      post({ type: 'listening', ok: false, error: `${cfg.host}:${cfg.port}` });
      shutdown();
      return;
    }
    listenSocket = s;
    post({ type: 'listening', ok: true });
  });

  /**
   * A new SSLApp with the current certificate files, bound beside the old one (SO_REUSEPORT), then
   * the old listen socket closed: no moment without a listener, and connections already open keep
   * their TLS session until they close.
   */
  function reloadTls(): void {
    const a = uws.SSLApp({ cert_file_name: cfg.tlsCert, key_file_name: cfg.tlsKey });
    serve(a, cfg.port, true);
    let s: us_listen_socket | false = false;
    a.listen(cfg.host, cfg.port, (x) => { s = x; });
    if (!s) {
      (a as unknown as { close(): void }).close();
      log('error', { port: cfg.port }, 'TLS reload: could not bind the new listener; keeping the previous certificate');
      return;
    }
    if (listenSocket !== null) uws.us_listen_socket_close(listenSocket);
    if (app !== null) retiredApps.push(app);
    app = a;
    listenSocket = s;
  }

  // Pools for endpoints that left the snapshot are closed once per generation change, off the
  // request path (close() lets their in-flight requests finish).
  let sweptGeneration = 0;
  const sweeper = setInterval(() => {
    const snap = reader.current();
    if (snap === null || snap.generation === sweptGeneration) return;
    sweptGeneration = snap.generation;
    // Connections for new global rate limits before their first request needs them.
    ctx.rateLimiter.sync(snap);
    // The JWKS of a new auth: block is fetched before the first request needs it.
    ctx.auth.for(snap);
    ctx.upstream?.sweep(snap.origins);
  }, 1000);
  sweeper.unref();

  function shutdown(): void {
    if (closing) return;
    closing = true;
    clearInterval(sweeper);
    if (listenSocket) { uws.us_listen_socket_close(listenSocket); listenSocket = null; }
    for (const l of extra.values()) {
      if (l.socket !== null) uws.us_listen_socket_close(l.socket);
      (l.app as unknown as { close(): void }).close();
    }
    extra.clear();
    accessLog?.flush();
    accessLog?.close();
    ctx.admission?.close();
    const closers: Promise<unknown>[] = ctx.upstream !== undefined ? [ctx.upstream.destroy()] : [];
    closers.push(closeProviderAgents());
    if (ctx.kvAware !== null) closers.push(ctx.kvAware.close());
    // The Redis socket (and its reconnect timer) would keep this thread alive forever.
    closeWorkerRedis();
    ctx.rateLimiter.close();
    ctx.auth.close();
    // So would the Endpoint Picker channels (their keepalive timers and HTTP/2 sessions).
    ctx.epp?.close();
    void Promise.allSettled(closers).then(() => {
      // close() exists on the native App (20.30) but is missing from the bundled typings.
      (app as unknown as { close(): void } | null)?.close();
      app = null;
      for (const r of retiredApps) (r as unknown as { close(): void }).close();
      retiredApps.length = 0;
      port.close();
    });
  }

  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'collect':
        post({ type: 'metrics', id: m.id, data: allMetrics() as unknown[] });
        break;
      case 'snapshot-buffer':
        reader.replaceBuffer(m.sab);
        post({ type: 'ack', id: m.id });
        break;
      case 'listeners':
        if (!closing) post({ type: 'listeners-result', id: m.id, failed: setListeners(m.ports) });
        break;
      case 'metrics-text': {
        const cb = pendingMetrics.get(m.id);
        pendingMetrics.delete(m.id);
        cb?.(m.text);
        break;
      }
      case 'drain': {
        // Stop accepting; in-flight requests finish (bounded by the deadline), then exit.
        if (listenSocket) { uws.us_listen_socket_close(listenSocket); listenSocket = null; }
        for (const l of extra.values()) if (l.socket !== null) { uws.us_listen_socket_close(l.socket); l.socket = null; }
        const done = (): void => { post({ type: 'metrics', id: 0, data: allMetrics() as unknown[] }); shutdown(); };
        if (ctx.active === 0) { done(); break; }
        ctx.onIdle = done;
        setTimeout(() => { log('warn', { active: ctx.active }, 'drain deadline reached; closing remaining connections'); done(); }, Math.max(0, m.deadlineMs - Date.now())).unref();
        break;
      }
      case 'reload-tls': {
        if (!closing && listenSocket !== null) reloadTls();
        post({ type: 'ack', id: m.id });
        break;
      }
      case 'crash':
        setImmediate(() => { throw new Error('crash requested through fault injection'); });
        break;
      case 'memory':
        post({ type: 'memory', id: m.id, usage: threadMemory(`worker-${init.index}`, m.gc) });
        break;
    }
  });

  process.on('uncaughtException', (err) => {
    log('error', { err: err.stack }, 'worker crashed; closing it so the control thread restarts it');
    post({ type: 'metrics', id: 0, data: allMetrics() as unknown[] });
    process.exitCode = 1;
    shutdown();
  });
}

main();
