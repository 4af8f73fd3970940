/**
 * The Redis session-sticky store (workers/sticky/redis-store.ts) against a real redis-server:
 * hashed keys with the route's TTL, first writer wins, compare-and-set re-binding between
 * "replicas" (separate clients), and the fallback signal when Redis cannot answer, logged once
 * per router however many workers see it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { allocateStickyTable } from '../../src/shared/layout.js';
import { RedisStickyStore, stickyRedisKey } from '../../workers/sticky/redis-store.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let server: RedisServer;
const clients: Redis[] = [];
const client = (port = server.port): Redis => {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
};
// A shared 2-core machine may take longer than the production 100 ms bound to connect a new
// client; these tests are about the answers, not the bound.
const SLOW_OK = { timeoutMs: 5000 };
const logs: string[] = [];
const log = (_level: string, _obj: object, msg: string): void => { logs.push(msg); };

beforeAll(async () => { server = await startRedis(); });
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.stop();
});

describe('session-sticky Redis store', () => {
  it('keys a session by a hash with the route in clear, never the raw value', () => {
    const k = stickyRedisKey('default/chat', 'alice-secret-session');
    expect(k).toMatch(/^kthena:sticky:default\/chat:[A-Za-z0-9_-]{22}$/);
    expect(k).not.toContain('alice');
    expect(stickyRedisKey('default/chat', 'alice-secret-session')).toBe(k);
    expect(stickyRedisKey('default/other', 'alice-secret-session')).not.toBe(k);
  });

  it('binds the first pick, returns the binding to everyone after, and refreshes its TTL', async () => {
    const sab = allocateStickyTable(64);
    const a = new RedisStickyStore(client(), sab, log, SLOW_OK);
    const b = new RedisStickyStore(client(), sab, log, SLOW_OK);
    const key = stickyRedisKey('default/chat', 's1');
    expect(await a.bind(key, 'default/pod-1', 300)).toBe('default/pod-1');
    expect(await b.bind(key, 'default/pod-2', 300)).toBe('default/pod-1');
    const raw = client();
    expect(await raw.get(key)).toBe('default/pod-1');
    await raw.expire(key, 5);
    await b.bind(key, 'default/pod-2', 300);
    expect(await raw.ttl(key)).toBeGreaterThan(250);
  });

  it('gives replicas binding a new session at the same instant one answer', async () => {
    const sab = allocateStickyTable(64);
    const stores = [0, 1, 2, 3].map(() => new RedisStickyStore(client(), sab, log, SLOW_OK));
    for (let s = 0; s < 20; s++) {
      const key = stickyRedisKey('default/chat', `race-${s}`);
      const got = await Promise.all(stores.map((st, i) => st.bind(key, `default/pod-${i}`, 60)));
      expect(new Set(got).size).toBe(1);
    }
  });

  it('moves a binding by compare-and-set: the first replica to see the pod gone wins, the others follow it', async () => {
    const sab = allocateStickyTable(64);
    const a = new RedisStickyStore(client(), sab, log, SLOW_OK);
    const b = new RedisStickyStore(client(), sab, log, SLOW_OK);
    const key = stickyRedisKey('default/chat', 's2');
    await a.bind(key, 'default/gone', 60);
    expect(await a.rebind(key, 'default/gone', 'default/pod-a', 60)).toBe('default/pod-a');
    // b also saw "gone" and picked another pod: it must not overwrite a's new binding.
    expect(await b.rebind(key, 'default/gone', 'default/pod-b', 60)).toBe('default/pod-a');
    expect(await client().get(key)).toBe('default/pod-a');
    expect(a.rebinds).toBe(1);
    expect(b.rebinds).toBe(0);
    // An expired binding is bound anew.
    const k2 = stickyRedisKey('default/chat', 's3');
    expect(await b.rebind(k2, 'default/x', 'default/pod-b', 60)).toBe('default/pod-b');
  });

  it('answers null while Redis cannot answer, logs the outage once per router and its end once', async () => {
    const doomed = await startRedis();
    const sab = allocateStickyTable(64);
    const ws = [0, 1].map(() => new RedisStickyStore(client(doomed.port), sab, log, { ...SLOW_OK, openMs: 50 }));
    const key = stickyRedisKey('default/chat', 'down');
    expect(await ws[0].bind(key, 'default/p', 60)).toBe('default/p');
    const port = doomed.port;
    await doomed.stop();
    logs.length = 0;
    for (const w of ws) expect(await w.bind(key, 'default/p', 60)).toBeNull();
    expect(await ws[0].rebind(key, 'default/p', 'default/q', 60)).toBeNull();
    expect(ws[0].fallbacks + ws[1].fallbacks).toBeGreaterThanOrEqual(3);
    expect(logs.filter((l) => l.includes('unreachable'))).toHaveLength(1);
    const unreachable = (): number => ws.reduce((s, w) => s + w.metricsJSON().find((m) => m.name === 'kthena_router_sticky_redis_unreachable')!.values[0].value, 0);
    expect(unreachable()).toBe(2);
    // Back on the same port: both workers recover, one line says so.
    const again = await startRedis({ port });
    try {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && unreachable() > 0) {
        for (const w of ws) await w.bind(key, 'default/p', 60);
        await new Promise((r) => setTimeout(r, 60));
      }
      expect(unreachable()).toBe(0);
      expect(logs.filter((l) => l.includes('reachable again'))).toHaveLength(1);
    } finally {
      await again.stop();
    }
  }, 30_000);
});
