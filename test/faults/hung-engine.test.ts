/**
 * Issue 18, defect 3: a hung engine held requests forever. With no trafficPolicy.timeout there was
 * no bound at all; with one, only the time to headers was bounded (a stream that stopped mid-way
 * stalled 30 s past a 10 s timeout).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, httpRequest, sseEvents } from '../e2e/harness.js';
import { faultEnv, type FaultEnv } from './fault-env.js';

let env: FaultEnv;
let timed: FaultEnv;

beforeAll(async () => {
  // No trafficPolicy.timeout: the router's defaults apply (here shortened by flag).
  env = await faultEnv({ block: 185, pods: 1, args: ['--upstream-timeout', '1500ms', '--upstream-idle-timeout', '1s'] });
  // trafficPolicy.timeout: 1s bounds the headers and every gap between response bytes.
  timed = await faultEnv({ block: 186, pods: 1, timeout: '1s' });
});

afterAll(async () => {
  await env?.close();
  await timed?.close();
});

const streamBody = { model: 'fault-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 6, stream: true };

describe('a hung engine', () => {
  it('without trafficPolicy.timeout, a pod that never answers is bounded by --upstream-timeout', async () => {
    env.fleet.pods[0].set({ hangMs: 8000 });
    try {
      const t0 = performance.now();
      const r = await chat(env.router.url, { model: 'fault-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
      const took = performance.now() - t0;
      expect(r.status, r.text).toBe(503);
      // Up to 5 tries on the one pod, 1.5 s each, would be 7.5 s; all of them is still bounded.
      expect(took).toBeLessThan(12_000);
      expect(took).toBeGreaterThanOrEqual(1400);
    } finally {
      env.fleet.pods[0].set({ hangMs: 0 });
    }
  }, 30_000);

  it.each([['without trafficPolicy.timeout (--upstream-idle-timeout)', () => env], ['with trafficPolicy.timeout', () => timed]])(
    '%s: a stream that stops mid-way ends with an error event within the idle bound', async (_what, which) => {
      const e = which();
      // 6 tokens, 8 s apart after the first: headers and the first event arrive, then silence.
      e.fleet.pods[0].set({ itlMs: 8000 });
      try {
        const t0 = performance.now();
        const r = await httpRequest(e.router.url, { path: '/v1/chat/completions', body: streamBody, timeoutMs: 15_000 });
        const took = performance.now() - t0;
        expect(r.status).toBe(200);
        expect(took).toBeLessThan(5000);
        const events = sseEvents(r.text);
        const last = events[events.length - 1];
        expect(last.json?.error?.code, r.text).toBe('RTR_ERR_UPSTREAM_MIDSTREAM');
        expect(last.json.error.message).toContain('upstream sent nothing for 1000ms');
      } finally {
        e.fleet.pods[0].set({ itlMs: 1 });
      }
    }, 30_000);
});
