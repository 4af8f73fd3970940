/**
 * Process lifecycle end to end: health endpoints, worker crash and restart, SIGTERM drain (complete
 * and bounded by DRAIN_TIMEOUT), start-up failures (flags, ports) and --help. Simulated vLLM pods
 * on 127.0.22.x; the real CLI.
 */
import net from 'node:net';
import path from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup, connectionRefused, docs, eventually, freePort, httpRequest, openStream, podYaml, routeYaml, runCli, sampleValue,
  scrape, serverYaml, startPods, startRouter, tempDir, within, writeFile, type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PORT = 8000;
const ip = (n: number): string => `127.0.22.${n}`;
const CHAT = '/v1/chat/completions';
const msg = [{ role: 'user', content: 'hello world' }];

let dir = '';
let fleet: SimFleet;

/** Pino JSON lines of stderr whose msg equals `m`. */
function logged(r: RouterProc, m: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of r.stderr) {
    if (!l.startsWith('{')) continue;
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.msg === m) out.push(o);
    } catch { /* not JSON */ }
  }
  return out;
}

function countContent(text: string): number {
  return text.split('\n\n').filter((e) => e.startsWith('data: {') && /"content":"[^"]+"/.test(e)).length;
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-lifecycle-');
  fleet = await startPods([
    { name: 'l-fast', ip: ip(1), port: PORT, models: ['m-fast'], ttftMs: 2, itlMs: 1, outputTokens: 4 },
    { name: 'l-slow', ip: ip(2), port: PORT, models: ['m-slow'], itlMs: 100, outputTokens: 20 },
    { name: 'l-5s', ip: ip(3), port: PORT, models: ['m-5s'], itlMs: 250, outputTokens: 20 },
  ]);
  await writeFile(path.join(dir, 'lifecycle.yaml'), docs(
    routeYaml('fast', 'm-fast', 'ms-fast'),
    serverYaml('ms-fast', { port: PORT, labels: { app: 'fast' } }),
    podYaml('l-fast', ip(1), { labels: { app: 'fast' } }),
    routeYaml('slow', 'm-slow', 'ms-slow'),
    serverYaml('ms-slow', { port: PORT, labels: { app: 'slow' } }),
    podYaml('l-slow', ip(2), { labels: { app: 'slow' } }),
    routeYaml('five', 'm-5s', 'ms-5s'),
    serverYaml('ms-5s', { port: PORT, labels: { app: 'five' } }),
    podYaml('l-5s', ip(3), { labels: { app: 'five' } }),
  ));
});

afterAll(async () => {
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('a running router (2 workers, fault injection on)', () => {
  let router: RouterProc;
  beforeAll(async () => {
    router = await startRouter({ dir, workers: 2, env: { KTHENA_ROUTER_FAULT_INJECTION: '1' } });
    await router.waitReady();
  });
  afterAll(async () => { await router?.stop(); });

  it('answers /readyz and /healthz', async () => {
    const ready = await httpRequest(`${router.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ message: 'router is ready' });
    const health = await httpRequest(`${router.url}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ message: 'ok' });
    expect(sampleValue((await scrape(router.metricsPort)).samples, 'kthena_router_workers', { state: 'running' })).toBe(2);
  });

  it('restarts a crashed worker; only requests in flight on it can fail', async () => {
    const before = await scrape(router.metricsPort);
    const okBefore = sampleValue(before.samples, 'kthena_router_requests_total', {
      model: 'm-fast', path: CHAT, status_code: '200', error_type: 'successful_request',
      model_route: 'default/fast', backend_type: 'model_server', backend_name: 'default/ms-fast', upstream_model: 'm-fast',
    }) ?? 0;

    interface Outcome { startedAt: number; ok: boolean; detail: string }
    const outcomes: Outcome[] = [];
    let restartedAt = Infinity;
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        const startedAt = performance.now();
        try {
          // A new connection per request (agent: false => connection: close).
          const r = await httpRequest(router.url, { path: CHAT, body: { model: 'm-fast', messages: msg }, timeoutMs: 10_000 });
          outcomes.push({ startedAt, ok: r.status === 200, detail: `${r.status} ${r.text.slice(0, 200)}` });
        } catch (err) {
          outcomes.push({ startedAt, ok: false, detail: (err as Error).message });
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    try {
      await eventually(() => outcomes.length >= 40, 15_000, '40 requests before the crash');
      const crash = await httpRequest(`http://127.0.0.1:${router.debugPort}/debug/fault/crash-worker?index=0`, { method: 'POST' });
      expect(crash.status).toBe(202);
      await router.waitForLog((l) => l.includes('"msg":"worker restarted"'), 15_000, 'stderr');
      restartedAt = performance.now();
      await eventually(() => outcomes.filter((o) => o.startedAt > restartedAt).length >= 80, 20_000, '80 requests after the restart');
    } finally {
      stop = true;
      await Promise.all(loops);
    }

    const failed = outcomes.filter((o) => !o.ok);
    expect(outcomes.length).toBeGreaterThanOrEqual(120);
    expect(failed.length / outcomes.length, JSON.stringify(failed.slice(0, 5))).toBeLessThanOrEqual(0.05);
    // At most the requests in flight on the crashed worker (4 clients => at most a handful).
    expect(failed.length, JSON.stringify(failed.slice(0, 5))).toBeLessThanOrEqual(8);
    const after = outcomes.filter((o) => o.startedAt > restartedAt);
    expect(after.filter((o) => !o.ok)).toEqual([]);

    const exited = logged(router, 'worker exited unexpectedly; restarting it');
    expect(exited).toHaveLength(1);
    expect(exited[0].worker).toBe(0);
    const restarted = logged(router, 'worker restarted');
    expect(restarted).toHaveLength(1);
    expect(restarted[0].worker).toBe(0);

    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_worker_restarts_total')).toBe(1);
    expect(sampleValue(m.samples, 'kthena_router_workers', { state: 'running' })).toBe(2);
    // Counters never go backwards across a worker's replacement.
    const okAfter = sampleValue(m.samples, 'kthena_router_requests_total', {
      model: 'm-fast', path: CHAT, status_code: '200', error_type: 'successful_request',
      model_route: 'default/fast', backend_type: 'model_server', backend_name: 'default/ms-fast', upstream_model: 'm-fast',
    }) ?? 0;
    expect(okAfter).toBeGreaterThanOrEqual(okBefore + after.length);
    expect(okAfter).toBeLessThanOrEqual(okBefore + outcomes.length);
  });

  it('drains on SIGTERM: refuses new connections, finishes the stream in flight, exits 0', async () => {
    // Keep-alive connections opened before the signal, spread over both workers by the kernel.
    const clients = Array.from({ length: 16 }, () => new Client(router.url, { pipelining: 1 }));
    try {
      for (const c of clients) {
        const warm = await c.request({ method: 'GET', path: '/healthz' });
        expect(warm.statusCode).toBe(200);
        await warm.body.text();
      }

      const s = await openStream(router.url, { model: 'm-slow', messages: msg });
      expect(s.status).toBe(200);
      await within(s.firstEvent, 10_000, 'first event');
      let streamDone = false;
      void s.done.then(() => { streamDone = true; });
      const slowBefore = fleet.pod('l-slow').requests.length;

      router.proc.kill('SIGTERM');
      await eventually(() => connectionRefused('127.0.0.1', router.port), 5000, 'new connections refused');
      // ~2 s of stream remained; the listener closed long before it ended.
      expect(streamDone).toBe(false);

      // A request on a connection opened before the signal is never served: the worker still
      // draining answers 503 router is shutting down; the other has closed its connections.
      const late = await Promise.all(clients.map(async (c) => {
        try {
          const r = await c.request({ method: 'POST', path: CHAT, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm-slow', messages: msg }) });
          return { status: r.statusCode, body: await r.body.text() };
        } catch (err) {
          return err as Error;
        }
      }));
      const answered = late.filter((l): l is { status: number; body: string } => !(l instanceof Error));
      for (const a of answered) {
        expect(a.status).toBe(503);
        expect(JSON.parse(a.body).error).toEqual({ message: 'router is shutting down', type: 'service_unavailable_error', code: 'RTR_ERR_SHUTTING_DOWN' });
      }
      // With 16 connections, some are on the worker that still streams (P(none) = 2^-16).
      expect(answered.length).toBeGreaterThan(0);
      expect(fleet.pod('l-slow').requests.length).toBe(slowBefore);

      const done = await within(s.done, 10_000, 'stream in flight during drain');
      expect(done.error).toBeNull();
      expect(done.text).toContain('data: [DONE]');
      expect(countContent(done.text)).toBe(20);
      expect(await within(router.exited, 10_000, 'router exit after drain')).toBe(0);
      expect(logged(router, 'draining')).toHaveLength(1);
    } finally {
      await Promise.all(clients.map((c) => c.destroy().catch(() => undefined)));
    }
  });
});

describe('DRAIN_TIMEOUT', () => {
  it('closes a stream that outlives DRAIN_TIMEOUT=500ms and exits 0 shortly after', async () => {
    const router = await startRouter({ dir, workers: 2, env: { DRAIN_TIMEOUT: '500ms' } });
    try {
      await router.waitReady();
      const s = await openStream(router.url, { model: 'm-5s', messages: msg });
      expect(s.status).toBe(200);
      await within(s.firstEvent, 10_000, 'first event');
      const t0 = performance.now();
      router.proc.kill('SIGTERM');
      const code = await within(router.exited, 10_000, 'router exit');
      const elapsed = performance.now() - t0;
      expect(code).toBe(0);
      // 500 ms of drain plus a few seconds of slack; the stream alone would have needed ~5 s.
      expect(elapsed).toBeLessThan(4000);
      const done = await within(s.done, 5000, 'client stream end');
      expect(done.text).not.toContain('data: [DONE]');
      expect(countContent(done.text)).toBeLessThan(20);
      expect(logged(router, 'drain deadline reached; closing remaining connections').length).toBeGreaterThanOrEqual(1);
      // The upstream request was cancelled, not left running.
      await eventually(() => fleet.pod('l-5s').inflight === 0, 5000, 'upstream stream cancelled');
    } finally {
      await router.stop();
    }
  });
});

describe('start-up failures', () => {
  it.each([
    [['--port', '0'], /--port/],
    [['--port', '65536'], /--port/],
    [['--workers', '0'], /--workers/],
    [['--bogus-flag', '1'], /unknown flag --bogus-flag/],
    [['--metrics-port', 'abc'], /--metrics-port/],
  ])('exits 2 with a clear message for serve %j', async (extra, message) => {
    const r = await runCli(['serve', '--config', dir, '--host', '127.0.0.1', ...extra]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^kthena-router: /m);
    expect(r.stdout).toBe('');
  });

  it('exits 2 when --config is missing', async () => {
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', String(await freePort())]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--config/);
  });

  it.each([
    [{ ACCESS_LOG_FORMAT: 'xml' }, /ACCESS_LOG_FORMAT/],
    [{ DRAIN_TIMEOUT: 'soon' }, /DRAIN_TIMEOUT/],
    [{ ACCESS_LOG_ENABLED: 'maybe' }, /ACCESS_LOG_ENABLED/],
  ])('exits 2 for an invalid environment %j', async (env, message) => {
    const r = await runCli(['serve', '--config', dir, '--host', '127.0.0.1', '--port', String(await freePort())], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  /** Holds 127.0.0.1:port open while `fn` runs. */
  async function withBusyPort<T>(fn: (port: number) => Promise<T>): Promise<T> {
    const server = net.createServer();
    await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(0, '127.0.0.1', () => res()); });
    const port = (server.address() as net.AddressInfo).port;
    try {
      return await fn(port);
    } finally {
      await new Promise<void>((res) => server.close(() => res()));
    }
  }

  it('exits 1 naming the address when the router port is in use', async () => {
    await withBusyPort(async (busy) => {
      const router = await startRouter({ dir, workers: 2, args: ['--port', String(busy)] });
      try {
        expect(await within(router.exited, 8000, 'router exit')).toBe(1);
        expect(router.stderr.join('\n')).toContain(`127.0.0.1:${busy}`);
      } finally {
        await router.stop();
      }
    });
  });

  it('exits 1 naming the address when the metrics port is in use', async () => {
    await withBusyPort(async (busy) => {
      const router = await startRouter({ dir, workers: 2, args: ['--metrics-port', String(busy)] });
      try {
        expect(await within(router.exited, 8000, 'router exit')).toBe(1);
        expect(router.stderr.join('\n')).toMatch(new RegExp(`:${busy}\\b`));
      } finally {
        await router.stop();
      }
    });
  });

  it('exits 1 naming the address when the debug port is in use', async () => {
    await withBusyPort(async (busy) => {
      const router = await startRouter({ dir, workers: 2, args: ['--debug-port', String(busy)] });
      try {
        expect(await within(router.exited, 8000, 'router exit')).toBe(1);
        expect(router.stderr.join('\n')).toContain(`127.0.0.1:${busy}`);
      } finally {
        await router.stop();
      }
    });
  });
});

describe('--help', () => {
  /** Kthena's command-line flags (reference §8.5). */
  const KTHENA_FLAGS = [
    '--port', '--tls-cert', '--tls-key', '--enable-webhook', '--enable-gateway-api', '--enable-gateway-api-inference-extension',
    '--webhook-port', '--webhook-tls-cert-file', '--webhook-tls-private-key-file', '--cert-secret-name', '--webhook-service-name',
    '--debug-port', '--metrics-port', '--expose-metrics-on-router-port', '--kube-api-qps', '--kube-api-burst',
  ];

  it('exits 0 and lists the flags', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: kthena-router/);
    for (const f of ['--config', '--workers', '--port', '--metrics-port', '--debug-port', '--tls-cert', '--tls-key', '--enable-gateway-api',
      '--enable-gateway-api-inference-extension', '--enable-webhook', '--expose-metrics-on-router-port']) {
      expect(r.stdout, f).toMatch(new RegExp(`^\\s+${f}\\s`, 'm'));
    }
    const serveHelp = await runCli(['serve', '--help']);
    expect(serveHelp.code).toBe(0);
    expect(serveHelp.stdout).toBe(r.stdout);
  });

  it('gives sim its own help text', async () => {
    const r = await runCli(['sim', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: kthena-router sim/);
    expect(r.stdout).toContain('--time-scale');
  });

  it('lists every Kthena flag (§8.5)', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    const missing = KTHENA_FLAGS.filter((f) => !new RegExp(`^\\s+${f}\\s`, 'm').test(r.stdout));
    expect(missing).toEqual([]);
  });

  it('starts with the arguments Kthena\'s Helm chart passes to the router', async () => {
    // volcano-sh/kthena charts/.../kthena-router/component/deployment.yaml (webhook enabled, the default).
    const router = await startRouter({
      dir, workers: 1, args: [
        '--enable-webhook=true', '--enable-gateway-api=false', '--webhook-port=8443',
        '--webhook-tls-cert-file=/etc/tls/tls.crt', '--webhook-tls-private-key-file=/etc/tls/tls.key',
        '--cert-secret-name=kthena-router-webhook-certs', '--webhook-service-name=kthena-router-webhook',
      ],
    });
    try {
      await router.waitReady();
    } finally {
      await router.stop();
    }
  });
});
