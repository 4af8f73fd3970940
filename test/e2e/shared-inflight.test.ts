/**
 * In-flight counts shared across router replicas through Redis (REDIS_HOST), over the real CLI:
 * two routers share one redis-server in front of the same two simulated pods; a third router
 * without Redis is the control.
 *
 * Route `hold` reaches pod-a only (its ModelServer selects `hold: "yes"`); route `m` reaches both
 * pods. Long streams held on pod-a through router 1 must make router 2's least-request send its
 * requests to pod-b, while router 3 (no Redis) sees two equally idle pods.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LEAST_REQUEST_CONFIG, chat, cleanup, docs, eventually, freePort, modelRouteYaml, openStream, podYaml, sampleValue, scrape, serverYaml,
  startPods, startRouter, tempDir, writeFile, type RouterProc, type SseStream,
} from './harness.js';
import path from 'node:path';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { Redis } from 'ioredis';
import { SHARED_INFLIGHT_REPLICA_PREFIX } from '../../src/shared-inflight/index.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const HELD = 4;
let dir: string;
let fleet: SimFleet;
let redis: RedisServer;
let r1: RouterProc;
let r2: RouterProc;
let r3: RouterProc;
const held: SseStream[] = [];

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-inflight-');
  const port = await freePort();
  // Each held stream lasts 8000 tokens x 10 ms = 80 s (aborted by the last test); quick requests ask for one token.
  fleet = await startPods([
    { name: 'pod-a', ip: '127.0.61.2', port, models: ['m'], ttftMs: 2, itlMs: 10, outputTokens: 8000 },
    { name: 'pod-b', ip: '127.0.61.3', port, models: ['m'], ttftMs: 2, itlMs: 10, outputTokens: 8000 },
  ]);
  await writeFile(path.join(dir, 'all.yaml'), docs(
    podYaml('pod-a', '127.0.61.2', { labels: { app: 'mock', hold: 'yes' } }),
    podYaml('pod-b', '127.0.61.3'),
    serverYaml('srv-a', { port, model: 'm', labels: { hold: 'yes' } }),
    serverYaml('srv-all', { port, model: 'm' }),
    modelRouteYaml('route-hold', { modelName: 'hold', rules: [{ targets: [{ server: 'srv-a' }] }] }),
    modelRouteYaml('route-m', { modelName: 'm', rules: [{ targets: [{ server: 'srv-all' }] }] }),
  ));
  redis = await startRedis();
  const shared = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port) };
  const args = ['--router-config', LEAST_REQUEST_CONFIG];
  // Three routers on a shared machine: generous readiness bound.
  [r1, r2, r3] = await Promise.all([
    startRouter({ dir, env: shared, args, workers: 2 }),
    startRouter({ dir, env: shared, args, workers: 2 }),
    startRouter({ dir, args, workers: 1 }),
  ]);
  await Promise.all([r1, r2, r3].map((r) => r.waitReady(50_000)));
}, 120_000);

afterAll(async () => {
  for (const s of held) s.abort();
  await Promise.all([r1, r2, r3].map((r) => r?.stop()));
  await fleet?.close();
  await redis?.stop();
  await cleanup(dir);
});

interface PodDump { name: string; router: { inflight: number; remoteInflight: number } }
async function router(r: RouterProc, pod: string): Promise<PodDump['router']> {
  const body = await (await fetch(`http://127.0.0.1:${r.debugPort}/debug/config_dump/pods`)).json() as { pods: PodDump[] };
  const p = body.pods.find((x) => x.name === pod);
  if (p === undefined) throw new Error(`pod ${pod} not in the dump`);
  return p.router;
}

/** Sequential one-token requests to route `m`: pod name -> count. */
async function quick(r: RouterProc, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await chat(r.url, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: `q${i}` }] });
    expect(res.status).toBe(200);
    const pod = res.headers.get('x-sim-pod') ?? 'none';
    counts[pod] = (counts[pod] ?? 0) + 1;
  }
  return counts;
}

const warnings = (r: RouterProc): number => r.stderr.filter((l) => l.includes('shared in-flight counts: Redis unreachable')).length;
const recoveries = (r: RouterProc): number => r.stderr.filter((l) => l.includes('shared in-flight counts: Redis reachable again')).length;
const metric = async (r: RouterProc, name: string): Promise<number | undefined> => sampleValue((await scrape(r.metricsPort)).samples, name);

describe('shared in-flight counts (REDIS_HOST)', { timeout: 120_000 }, () => {
  it('steers another replica\'s least-request away from a pod held busy through the first replica', async () => {
    for (let i = 0; i < HELD; i++) {
      const s = await openStream(r1.url, { model: 'hold', max_tokens: 8000, messages: [{ role: 'user', content: `hold ${i}` }] });
      expect(s.status).toBe(200);
      held.push(s);
    }
    await Promise.all(held.map((s) => s.firstEvent));
    expect((await router(r1, 'pod-a')).inflight).toBe(HELD);
    await eventually(async () => (await router(r2, 'pod-a')).remoteInflight === HELD, 5000, 'router 2 sees router 1\'s in-flight requests on pod-a');
    expect((await router(r2, 'pod-a')).inflight).toBe(0);
    expect((await router(r3, 'pod-a')).remoteInflight).toBe(0);

    expect(await quick(r2, 12)).toEqual({ 'pod-b': 12 });
    // Without Redis, pod-a looks as idle as pod-b to router 3 (a tie broken at random):
    // 30 requests all landing on pod-b would happen with probability 2^-30.
    expect((await quick(r3, 30))['pod-a'] ?? 0).toBeGreaterThan(0);

    expect(await metric(r2, 'kthena_router_shared_inflight_redis_up')).toBe(1);
    expect(await metric(r2, 'kthena_router_shared_inflight_replicas')).toBe(1);
    expect(await metric(r3, 'kthena_router_shared_inflight_redis_up')).toBeUndefined();
    expect(r2.stderr.some((l) => l.includes('sharing in-flight counts with the other replicas through Redis'))).toBe(true);
  });

  it('falls back to each replica\'s own counts while Redis is down, says so once, and recovers when it is back', async () => {
    const port = redis.port;
    // Counted from here: a loaded machine may already have stalled a refresh or two before.
    const warnsBefore = warnings(r2);
    const recoveriesBefore = recoveries(r2);
    await redis.stop();
    await eventually(async () => (await metric(r2, 'kthena_router_shared_inflight_redis_up')) === 0, 10_000, 'redis_up 0 after Redis stopped');
    expect((await router(r2, 'pod-a')).remoteInflight).toBe(0);
    expect(await metric(r2, 'kthena_router_shared_inflight_redis_failures_total')).toBeGreaterThan(0);
    // Keeps serving (on its own counts) while Redis is down.
    const served = await quick(r2, 6);
    expect(Object.values(served).reduce((a, b) => a + b, 0)).toBe(6);
    // Many failed refreshes (every 50 ms), one warning.
    await new Promise((r) => setTimeout(r, 500));
    expect(warnings(r2)).toBe(warnsBefore + 1);
    expect(held.every((s) => s.received().length > 0)).toBe(true);

    redis = await startRedis({ port });
    await eventually(async () => (await router(r2, 'pod-a')).remoteInflight === HELD, 15_000, 'router 2 sees router 1\'s requests again after Redis restarted');
    expect(await metric(r2, 'kthena_router_shared_inflight_redis_up')).toBe(1);
    await eventually(() => recoveries(r2) > recoveriesBefore, 5000, 'recovery logged');
    expect(await quick(r2, 6)).toEqual({ 'pod-b': 6 });
  });

  it('deletes a replica\'s counts from Redis when it stops, instead of waiting for their TTL', async () => {
    for (const s of held) s.abort();
    await eventually(async () => (await router(r1, 'pod-a')).inflight === 0, 10_000, 'router 1 in-flight back to 0');
    await eventually(async () => (await router(r2, 'pod-a')).remoteInflight === 0, 5000, 'router 2 sees it');
    const c = new Redis({ host: '127.0.0.1', port: redis.port });
    c.on('error', () => undefined);
    try {
      expect(await c.keys(`${SHARED_INFLIGHT_REPLICA_PREFIX}*`)).toHaveLength(2);
      expect(await r1.stop()).toBe(0);
      // The 2 s TTL has not run out: the hash is gone because router 1 deleted it.
      expect(await c.keys(`${SHARED_INFLIGHT_REPLICA_PREFIX}*`)).toHaveLength(1);
    } finally {
      c.disconnect();
    }
    await eventually(async () => (await metric(r2, 'kthena_router_shared_inflight_replicas')) === 0, 5000, 'router 1 left the directory');
  });
});
