/**
 * Issue 18: the control thread. Defect 6 (control half): the rebuild chain had no catch (one
 * rejected rebuild skipped every later change, for good) and no process-level handler caught an
 * unhandled rejection. Defect 7: a manifest written slowly lost routes. Defect 10: the debug server
 * answered any Host (DNS rebinding).
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, docs, eventually, httpRequest, modelRouteYaml, sampleValue, scrape } from '../e2e/harness.js';
import { debugUrl, faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;

beforeAll(async () => {
  env = await faultEnv({ block: 184, pods: 2, engineModel: 'fault-model' });
});

afterAll(async () => {
  await env?.close();
});

const ask = (model: string) => chat(env.router.url, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
const routes = (...names: string[]): string => docs(...names.map((n) => modelRouteYaml(`r-${n}`, { modelName: n, rules: [{ targets: [{ server: 'ms' }] }] })));

describe('control thread', () => {
  it('a rebuild that rejects leaves later changes applying', async () => {
    const f = await httpRequest(debugUrl(env.router, '/debug/fault/fail-rebuild'), { method: 'POST' });
    expect(f.status).toBe(202);
    await env.router.waitForLog((l) => l.includes('snapshot rebuild failed'), 5000, 'stderr');
    await writeFile(path.join(env.dir, 'later.yaml'), routes('after-failure'));
    await eventually(async () => (await ask('after-failure')).status === 200, 5000, 'route added after the failed rebuild');
  });

  it('an unhandled rejection is logged and counted; the router keeps serving', async () => {
    const f = await httpRequest(debugUrl(env.router, '/debug/fault/unhandled-rejection'), { method: 'POST' });
    expect(f.status).toBe(202);
    await env.router.waitForLog((l) => l.includes('unhandled promise rejection on the control thread'), 5000, 'stderr');
    expect(env.router.proc.exitCode).toBeNull();
    const m = await scrape(env.router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_unhandled_rejections_total')).toBe(1);
    expect((await ask('fault-model')).status).toBe(200);
  });

  it('a manifest writer pausing 400 ms mid-file loses no route', async () => {
    const file = path.join(env.dir, 'slow.yaml');
    const names = Array.from({ length: 6 }, (_, i) => `slow-${i}`);
    await writeFile(file, routes(...names));
    await eventually(async () => (await ask('slow-5')).status === 200, 5000, 'slow routes live');
    let stop = false;
    const failures: string[] = [];
    const probe = (async () => {
      while (!stop) {
        for (const n of names) { const r = await ask(n); if (r.status !== 200) failures.push(`${n}: ${r.status}`); }
      }
    })();
    try {
      // The first half is a valid, shorter file; the rest arrives 400 ms later.
      const full = routes(...names);
      const cut = full.indexOf('---', full.length / 2);
      await writeFile(file, full.slice(0, cut));
      await new Promise((r) => setTimeout(r, 400));
      await writeFile(file, full);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      stop = true;
      await probe;
    }
    expect(failures).toEqual([]);
  });

  it('a route removed from a file stops routing within 2 s', async () => {
    await writeFile(path.join(env.dir, 'slow.yaml'), routes('slow-0'));
    const t0 = Date.now();
    await eventually(async () => (await ask('slow-5')).status === 404, 3000, 'removed route gone');
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  it('the debug server refuses a Host other than loopback (DNS rebinding)', async () => {
    const evil = await httpRequest(debugUrl(env.router, '/debug/config_dump/modelroutes'), { headers: { host: 'attacker.example:15000' } });
    expect(evil.status).toBe(403);
    for (const host of ['127.0.0.1', `localhost:${env.router.debugPort}`, `[::1]:${env.router.debugPort}`]) {
      const ok = await httpRequest(debugUrl(env.router, '/debug/config_dump/modelroutes'), { headers: { host } });
      expect(ok.status, host).toBe(200);
    }
  });

  it('/debug/fault/gc answers the memory of every thread, after a full GC of each with POST (what native-bench soak samples)', async () => {
    const threads = async (method: string) => {
      const r = await httpRequest(debugUrl(env.router, '/debug/fault/gc'), { method });
      expect(r.status, r.text).toBe(200);
      return (JSON.parse(r.text) as { threads: { thread: string; heapUsedBytes: number; rssBytes: number; externalBytes: number }[] }).threads;
    };
    expect((await threads('GET')).map((t) => t.thread).sort()).toEqual(['control', 'worker-0', 'worker-1']);
    const after = await threads('POST');
    expect(after.map((t) => t.thread).sort()).toEqual(['control', 'worker-0', 'worker-1']);
    for (const t of after) {
      expect(t.heapUsedBytes).toBeGreaterThan(1 << 20);
      expect(t.rssBytes).toBeGreaterThan(t.heapUsedBytes);
    }
  });
});
