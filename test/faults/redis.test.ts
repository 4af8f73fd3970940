/**
 * Issue 18, defect 8: a hung Redis added the whole 5 s lookup timeout to every kvcache-aware
 * request (no circuit breaker), and kvcache-aware looked blocks up under the client-facing
 * modelName, so with a ModelServer spec.model that differs every scoring found nothing.
 */
import os from 'node:os';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, cleanup, eventually, sampleValue, scrape } from '../e2e/harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { faultEnv, type FaultEnv } from './fault-env.js';

let redis: RedisServer;
let env: FaultEnv;
const configFile = path.join(os.tmpdir(), `kthena-faults-redis-${process.pid}.yaml`);

beforeAll(async () => {
  redis = await startRedis();
  env = await faultEnv({
    block: 182, pods: 3, workers: 1, model: 'public-name', engineModel: 'engine/served-name',
    pod: { kvEvents: { redisUrl: redis.url, namespace: 'default' } },
    env: { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port) },
    args: ['--router-config', configFile],
    before: async (simPort) => writeFile(configFile, `scheduler:
  pluginConfig: [{name: kvcache-aware, args: {vllmTokenizerPort: ${simPort}, sglangTokenizerPort: ${simPort}}}]
  plugins: {Score: {enabled: [{name: least-request, weight: 1}, {name: kvcache-aware, weight: 2}]}}
`),
  });
});

afterAll(async () => {
  try { process.kill(redis.pid, 'SIGCONT'); } catch { /* gone */ }
  await env?.close();
  await redis?.stop();
  await cleanup(configFile);
});

const prompt = 'Summarise the following contract clause by clause. '.repeat(30);
const ask = (content = prompt) => chat(env.router.url, { model: 'public-name', messages: [{ role: 'user', content }], max_tokens: 2 });
const completions = (i: number): number => env.fleet.pods[i].requests.filter((r) => r.path === '/v1/chat/completions').length;

describe('kvcache-aware', () => {
  it('finds the KV blocks the engine published under its spec.model', async () => {
    expect((await ask()).status).toBe(200);
    const first = [0, 1, 2].find((i) => completions(i) === 1)!;
    const { Redis } = await import('ioredis');
    const c = new Redis(redis.port, '127.0.0.1');
    try {
      await eventually(async () => (await c.keys('matrix:kv:block:engine/served-name@*')).length > 0, 5000, 'KV blocks in Redis');
    } finally { c.disconnect(); }
    for (let i = 0; i < 10; i++) expect((await ask()).status).toBe(200);
    // Every repeat went to the pod holding the blocks (random among 3 would do this 1 time in 3^10).
    expect(completions(first)).toBe(11);
    const m = await scrape(env.router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_kvcache_aware_match_ratio_sum', { model: 'public-name' })).toBeGreaterThan(5);
    expect(sampleValue(m.samples, 'kthena_router_kvcache_aware_errors_total', { model: 'public-name', stage: 'redis' })).toBeUndefined();
  });

  it('a hung Redis costs the lookup timeout once, then fails fast until a probe succeeds', async () => {
    process.kill(redis.pid, 'SIGSTOP');
    try {
      // Four requests in flight meet the hang and wait out the 5 s bound; they open the breaker.
      const wave = await Promise.all(Array.from({ length: 4 }, (_, i) => ask(`wave ${i} ${prompt}`)));
      for (const r of wave) expect(r.status).toBe(200);
      // While it is open every request is scored without Redis at once.
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) expect((await ask(`fast ${i} ${prompt}`)).status).toBe(200);
      expect(performance.now() - t0).toBeLessThan(4000);
      const m = await scrape(env.router.metricsPort);
      expect(sampleValue(m.samples, 'kthena_router_redis_breaker_open')).toBe(1);
      expect(sampleValue(m.samples, 'kthena_router_redis_breaker_rejected_total')).toBeGreaterThanOrEqual(15);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    // Redis is back: after the open period one probe closes the breaker again.
    await eventually(async () => {
      await ask();
      const m = await scrape(env.router.metricsPort);
      return sampleValue(m.samples, 'kthena_router_redis_breaker_open') === 0;
    }, 15_000, 'breaker closed again');
  });
});
