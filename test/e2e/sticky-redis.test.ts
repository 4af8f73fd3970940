/**
 * Session-sticky bindings shared by two router processes through one real redis-server
 * (--session-sticky-store redis), each router with two worker threads: a session bound through
 * one router is served by the same pod through the other, a failover re-binds it once for both,
 * and with Redis gone both keep serving from their own tables (the outage logged and shown).
 * The random scorer alone: only the shared binding can make the two routers agree. Simulated vLLM
 * pods on 127.0.74.x.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { cleanup, docs, eventually, podYaml, sampleValue, scrape, serverYaml, startPods, startReplicaPair, tempDir, writeFile, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const PODS = ['r-0', 'r-1', 'r-2'];
const ip = (i: number): string => `127.0.74.${i + 1}`;

let dir = '';
let fleet: SimFleet;
let redis: RedisServer;
let r1: RouterProc;
let r2: RouterProc;

const ROUTE = [
  'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', 'metadata:', '  name: shared', '  namespace: default', 'spec:',
  '  modelName: shared', '  sessionSticky:', '    sources:', '    - {type: Header, name: X-Session-ID}',
  '  rules:', '  - name: all', '    targetModels:', '    - modelServerName: pool',
].join('\n');
const write = (live: string[]): Promise<void> => writeFile(path.join(dir, 'all.yaml'), docs(
  serverYaml('pool', { port: 8000 }), ROUTE, ...live.map((p) => podYaml(p, ip(PODS.indexOf(p)))),
));

async function pod(r: RouterProc, session: string): Promise<string> {
  const res = await fetch(`${r.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-session-id': session },
    body: JSON.stringify({ model: 'shared', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
  });
  await res.text();
  expect(res.status).toBe(200);
  return res.headers.get('x-sim-pod') ?? '';
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-sticky-redis-');
  fleet = await startPods(PODS.map((name, i) => ({ name, ip: ip(i), port: 8000, models: ['shared'], ttftMs: 1, outputTokens: 1 })));
  await write(PODS);
  const cfg = `${dir}-router.yaml`;
  await writeFile(cfg, 'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n');
  redis = await startRedis();
  const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port), SHARED_INFLIGHT: 'false' };
  // A generous bound: on a loaded test machine a round trip can exceed the default 100 ms.
  const args = ['--router-config', cfg, '--session-sticky-store', 'redis', '--session-sticky-redis-timeout', '3s'];
  [r1, r2] = await startReplicaPair({ dir, env, args, workers: 2 });
}, 90_000);

afterAll(async () => {
  await Promise.all([r1?.stop(), r2?.stop()]);
  await fleet?.close();
  await redis?.stop();
  if (dir) {
    await cleanup(`${dir}-router.yaml`);
    await cleanup(dir);
  }
});

describe('session-sticky bindings shared through Redis by two routers', () => {
  it('serves a session bound through one router from the same pod through the other', async () => {
    const firsts = new Set<string>();
    for (let s = 0; s < 10; s++) {
      const session = `shared-${s}`;
      const first = await pod(s % 2 === 0 ? r1 : r2, session);
      firsts.add(first);
      for (let i = 0; i < 4; i++) expect(await pod(i % 2 === 0 ? r2 : r1, session)).toBe(first);
    }
    // Random scorer: the ten sessions did not all land on one pod.
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('re-binds a session once for both routers when its pod leaves', async () => {
    const bound = await pod(r1, 'carol');
    await write(PODS.filter((p) => p !== bound));
    await eventually(async () => (await pod(r2, 'carol')) !== bound && (await pod(r1, 'carol')) !== bound, 10_000, 'bound pod gone from both routers');
    const now = await pod(r1, 'carol');
    for (let i = 0; i < 6; i++) expect(await pod(i % 2 === 0 ? r2 : r1, 'carol')).toBe(now);
    await write(PODS);
  }, 30_000);

  it('keeps serving sessions from each router\'s own table while Redis is down, and says so once', async () => {
    const before = await pod(r1, 'dave');
    await redis.stop();
    // Each router keeps its sessions (its local table was written through).
    for (let i = 0; i < 5; i++) expect(await pod(r1, 'dave')).toBe(before);
    for (let i = 0; i < 5; i++) expect(await pod(r2, `solo-${i}`)).not.toBe('');
    await r1.waitForLog((l) => l.includes('session-sticky Redis store unreachable'), 10_000, 'stderr');
    expect(r1.stderr.filter((l) => l.includes('session-sticky Redis store unreachable'))).toHaveLength(1);
    const m = await scrape(r1.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_sticky_redis_unreachable')).toBeGreaterThan(0);
    expect(sampleValue(m.samples, 'kthena_router_sticky_redis_fallbacks_total')).toBeGreaterThan(0);
  }, 30_000);
});
