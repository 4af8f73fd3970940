/**
 * Issue 18: what a hostile or broken client can do to the router without any credentials.
 * Defect 2: every distinct URL path became a `path` label value (20,000 paths: /metrics 90 MB).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, scrape } from '../e2e/harness.js';
import { faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;

beforeAll(async () => {
  env = await faultEnv({ block: 183, pods: 2 });
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
