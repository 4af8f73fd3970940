/**
 * The global token buckets' Lua scripts (workers/ratelimit/redis.ts) against a real redis-server:
 * Kthena's key layout and fields, the input check that consumes only when the output pre-check
 * passes too, output charged into debt, expiry, and the fast failure while Redis is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { globalLimit, RedisBuckets } from '../../workers/ratelimit/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let client: Redis;
let buckets: RedisBuckets;
let address = '';

beforeAll(async () => {
  redis = await startRedis();
  address = `127.0.0.1:${redis.port}`;
  client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  buckets = new RedisBuckets({ commandTimeoutMs: 1000, openMs: 200 });
  buckets.use(new Set([address]));
}, 30_000);

afterAll(async () => {
  buckets?.close();
  client?.disconnect();
  await redis?.stop();
});

const hourly = (model: string, input: number, output: number) => globalLimit(model, input, output, 3600);

describe('global token buckets (Redis Lua)', () => {
  it('admits while the input budget lasts, in Kthena\'s key layout with Redis time and a 3-unit expiry', async () => {
    const g = hourly('m1', 25, 0);
    expect(await buckets.admit(address, g, 10)).toBe(0);
    expect(await buckets.admit(address, g, 10)).toBe(0);
    expect(await buckets.admit(address, g, 10)).toBe(1);
    const h = await client.hgetall('kthena:ratelimit:m1:input');
    expect(Number(h.tokens)).toBeGreaterThanOrEqual(5);
    expect(Number(h.tokens)).toBeLessThan(5.1);
    const [sec] = await client.time();
    expect(Math.abs(Number(h.last_update) - Number(sec))).toBeLessThan(5);
    expect(await client.ttl('kthena:ratelimit:m1:input')).toBeGreaterThan(10_700);
    // No output limit: no output key.
    expect(await client.exists('kthena:ratelimit:m1:output')).toBe(0);
  });

  it('an output budget below one token refuses without consuming input; output is charged into debt', async () => {
    const g = hourly('m2', 100, 10);
    expect(await buckets.admit(address, g, 30)).toBe(0);
    await buckets.charge(address, g, 25);
    expect(Number(await client.hget('kthena:ratelimit:m2:output', 'tokens'))).toBeLessThan(-14.9);
    expect(await buckets.admit(address, g, 30)).toBe(2);
    // The refused request took no input tokens: 70 left, not 40.
    expect(Number(await client.hget('kthena:ratelimit:m2:input', 'tokens'))).toBeGreaterThanOrEqual(70);
  });

  it('fails fast while Redis is gone, and answers again once it is back on the same address', async () => {
    const port = redis.port;
    await redis.stop();
    const g = hourly('m3', 100, 0);
    const t0 = performance.now();
    await expect(buckets.admit(address, g, 1)).rejects.toBeTruthy();
    await expect(buckets.admit(address, g, 1)).rejects.toBeTruthy();
    expect(performance.now() - t0).toBeLessThan(1500);
    redis = await startRedis({ port });
    let answered = false;
    for (let i = 0; i < 100 && !answered; i++) {
      answered = await buckets.admit(address, g, 1).then(() => true, () => false);
      if (!answered) await new Promise((r) => setTimeout(r, 100));
    }
    expect(answered).toBe(true);
  }, 30_000);
});
