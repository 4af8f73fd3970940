/**
 * Issue 18, defect 1: a worker that had used Redis (kvcache-aware) kept its Redis socket open, so
 * after a crash it never exited (never restarted: the router port went dark after a second crash)
 * and SIGTERM never ended the process.
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, cleanup, eventually, httpRequest, sampleValue, scrape } from '../e2e/harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { bounded, debugUrl, faultEnv, type FaultEnv } from './fault-env.js';

let redis: RedisServer;
let env: FaultEnv;
let configFile: string;

beforeAll(async () => {
  redis = await startRedis();
  configFile = path.join((await import('node:os')).tmpdir(), `kthena-faults-kv-${process.pid}.yaml`);
  // The tokenizer port is the pods' port (the simulator answers /tokenize there).
  env = await faultEnv({
    block: 181, pods: 2, workers: 1,
    env: { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port) },
    args: ['--router-config', configFile],
    before: async (simPort) => writeFile(configFile, `scheduler:
  pluginConfig: [{name: kvcache-aware, args: {vllmTokenizerPort: ${simPort}, sglangTokenizerPort: ${simPort}}}]
  plugins: {Score: {enabled: [{name: least-request, weight: 1}, {name: kvcache-aware, weight: 2}]}}
`),
  });
});

afterAll(async () => {
  await env?.close();
  await redis?.stop();
  await cleanup(configFile);
});

const ask = () => chat(env.router.url, { model: 'fault-model', messages: [{ role: 'user', content: 'hello there, general kenobi' }], max_tokens: 2 });

describe('a worker that used Redis', () => {
  it('is restarted after each crash, and the router exits on SIGTERM', async () => {
    const r = env.router;
    expect((await ask()).status).toBe(200);
    for (let crash = 1; crash <= 2; crash++) {
      const c = await httpRequest(debugUrl(r, '/debug/fault/crash-worker?index=0'), { method: 'POST' });
      expect(c.status).toBe(202);
      await eventually(async () => {
        const m = await scrape(r.metricsPort);
        return sampleValue(m.samples, 'kthena_router_worker_restarts_total') === crash
          && sampleValue(m.samples, 'kthena_router_workers', { state: 'running' }) === 1;
      }, 15_000, `worker restarted after crash ${crash}`);
      // The restarted worker serves (and opens its own Redis connection again).
      await eventually(async () => { try { return (await ask()).status === 200; } catch { return false; } }, 10_000, 'served after restart');
    }
    r.proc.kill('SIGTERM');
    expect(await bounded(r.exited, 15_000, 'exit after SIGTERM')).toBe(0);
  });
});
