/**
 * Issue 18: what a hostile or broken client can do to the router without any credentials.
 * Defect 2: every distinct URL path became a `path` label value (20,000 paths: /metrics 90 MB).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, httpRequest, modelRouteYaml, scrape } from '../e2e/harness.js';
import { faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;

beforeAll(async () => {
  env = await faultEnv({
    block: 183, pods: 2, engineModel: 'fault-model',
    extra: [modelRouteYaml('regex-route', {
      modelName: 'regex-model',
      rules: [
        // Valid RE2 (Kthena accepts it); catastrophic on a backtracking engine.
        { name: 'nested', match: { headers: { 'x-tier': { regex: '^(a+)+$' } } }, targets: [{ server: 'ms' }] },
        { name: 'insensitive', match: { headers: { 'x-tier': { regex: '(?i)^premium$' } } }, targets: [{ server: 'ms' }] },
      ],
    })],
  });
});

afterAll(async () => {
  await env?.close();
});

/** Runs `n` tasks with `concurrency` in flight. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < n) await task(next++); }));
}

describe('metrics cardinality', () => {
  it('2,000 distinct /v1 paths add no path label values and keep /metrics small', async () => {
    const before = await scrape(env.router.metricsPort);
    await pool(2000, 16, (i) => httpRequest(env.router.url, { path: `/v1/probe-${i}/x`, body: { model: 'fault-model' }, timeoutMs: 10_000 }));
    const after = await scrape(env.router.metricsPort);
    const paths = new Set(after.samples.filter((s) => s.name.startsWith('kthena_router_request')).map((s) => s.labels.path).filter((p) => p !== undefined));
    expect([...paths].sort()).toEqual(['other']);
    expect(after.text.length - before.text.length).toBeLessThan(20_000);
  });
});

describe('route regexes', () => {
  it('a header built against a nested-quantifier regex is answered at once, and other clients are served meanwhile', async () => {
    const body = { model: 'regex-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
    const t0 = performance.now();
    // 2^32 backtracking steps on V8's RegExp (minutes); linear under RE2.
    const evil = await Promise.all(Array.from({ length: 4 }, () => chat(env.router.url, body, { 'x-tier': 'a'.repeat(32) + 'b' })));
    for (const r of evil) expect(r.status).toBe(404);
    const ok = await chat(env.router.url, { ...body, model: 'fault-model' });
    expect(ok.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(5000);
    const fine = await chat(env.router.url, body, { 'x-tier': 'a'.repeat(32) });
    expect(fine.status, fine.text).toBe(200);
  });

  it('RE2 syntax means what it means in Go: (?i) matches case-insensitively', async () => {
    const r = await chat(env.router.url, { model: 'regex-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }, { 'x-tier': 'PREMIUM' });
    expect(r.status).toBe(200);
  });
});
