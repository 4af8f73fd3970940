/**
 * Issue 18, defect 3 (second half): nothing ejected a failing endpoint. A dead pod still received
 * 445 first attempts (least-request even prefers it: it fails fast, so it never has requests in
 * flight); passive outlier detection now ejects it after consecutive failures, for every worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, sampleValue, scrape } from '../e2e/harness.js';
import { debugUrl, faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;

beforeAll(async () => {
  env = await faultEnv({ block: 187, pods: 3, args: ['--outlier-consecutive-failures', '3', '--outlier-base-ejection', '30s'] });
});

afterAll(async () => {
  await env?.close();
});

const completions = (i: number): number => env.fleet.pods[i].requests.filter((r) => r.path === '/v1/chat/completions').length;

describe('passive outlier detection', () => {
  it('a pod answering 503 is ejected after 3 consecutive failures and gets no more first attempts', async () => {
    env.fleet.pods[0].set({ failStatus: 503 });
    try {
      for (let i = 0; i < 60; i++) {
        const r = await chat(env.router.url, { model: 'fault-model', messages: [{ role: 'user', content: `distinct prompt ${i} ${Math.random()}` }], max_tokens: 1 });
        expect(r.status, r.text).toBe(200);
      }
      // 3 failures eject it (shared by both workers); without ejection least-request sends it
      // a third or more of the 60 first attempts.
      expect(completions(0)).toBeLessThanOrEqual(5);
      const m = await scrape(env.router.metricsPort);
      expect(sampleValue(m.samples, 'kthena_router_outlier_ejections_total')).toBe(1);
      expect(sampleValue(m.samples, 'kthena_router_outlier_ejected_endpoints')).toBe(1);
      const dump = await (await fetch(debugUrl(env.router, '/debug/config_dump/namespaces/default/pods/pod-0'))).json() as { router?: { ejected: boolean; ejections: number } };
      expect(dump.router).toMatchObject({ ejected: true, ejections: 1 });
    } finally {
      env.fleet.pods[0].set({ failStatus: null });
    }
  });
});
