/**
 * In-flight counts shared across replicas through a real redis-server (src/shared-inflight/):
 * each SharedInflight is one replica with its own endpoint region.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { epIndex, kEndpointStride, kEpInflight, kEpRemoteInflight } from '../../src/shared/layout.js';
import { RedisBreaker } from '../../src/shared/redis-breaker.js';
import {
  SHARED_INFLIGHT_DIRECTORY_KEY, SHARED_INFLIGHT_REPLICA_PREFIX, SharedInflight, endpointSlots, type SharedInflightOptions,
} from '../../src/shared-inflight/index.js';
import { DecisionContext } from '../../workers/scheduler/plugin-api.js';
import { LeastRequestScore } from '../../workers/scheduler/plugins/least-request.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { writeSlot } from '../helpers/slots.js';

let redis: RedisServer;
const breakers: RedisBreaker[] = [];

beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => {
  for (const b of breakers) b.close();
  await redis.stop();
});

function breaker(port = redis.port): RedisBreaker {
  const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 20 });
  client.on('error', () => undefined);
  const b = new RedisBreaker(client, { failureThreshold: 3, openMs: 50, timeoutMs: 300 });
  breakers.push(b);
  return b;
}

interface Logged { warn: string[]; info: string[] }

/** One replica: `pods` maps an endpoint key to its slot in this replica's own region. */
function replica(id: string, pods: Record<string, number>, o: Partial<SharedInflightOptions> = {}): { s: SharedInflight; ep: Int32Array; logged: Logged } {
  const ep = new Int32Array(new SharedArrayBuffer(16 * kEndpointStride * 4));
  const logged: Logged = { warn: [], info: [] };
  const map = new Map(Object.entries(pods));
  const s = new SharedInflight({
    ep, breaker: o.breaker ?? breaker(), endpoints: () => map, replicaId: id, ttlMs: 1000,
    log: { warn: (_o: unknown, m?: string) => { logged.warn.push(String(m)); }, info: (_o: unknown, m?: string) => { logged.info.push(String(m)); } } as SharedInflightOptions['log'],
    ...o,
  });
  return { s, ep, logged };
}

const setLocal = (ep: Int32Array, slot: number, n: number): void => { Atomics.store(ep, epIndex(slot, kEpInflight), n); };
const remote = (ep: Int32Array, slot: number): number => Atomics.load(ep, epIndex(slot, kEpRemoteInflight));

let run = 0;
/** Replica ids unique per test: the directory set is shared by every test of the file. */
const ids = (...names: string[]): string[] => { run++; return names.map((n) => `t${run}-${n}`); };

async function flush(): Promise<void> {
  const c = new Redis({ host: '127.0.0.1', port: redis.port });
  await c.flushall();
  c.disconnect();
}

describe('SharedInflight', () => {
  it('gives each replica the sum of the OTHER replicas\' counts per pod, mapped by pod key onto its own slots', async () => {
    await flush();
    const [ia, ib, ic] = ids('a', 'b', 'c');
    // The same pods sit in different slots in each replica: only the key travels.
    const a = replica(ia, { 'ns/p1': 0, 'ns/p2': 1 });
    const b = replica(ib, { 'ns/p1': 5, 'ns/p2': 3 });
    const c = replica(ic, { 'ns/p2': 2, 'ns/p1': 7 });
    setLocal(a.ep, 0, 2); // p1
    setLocal(b.ep, 5, 1); // p1
    setLocal(b.ep, 3, 4); // p2
    for (const r of [a, b, c]) expect(await r.s.refresh()).toBe(true);
    for (const r of [a, b, c]) await r.s.refresh();
    expect([remote(a.ep, 0), remote(a.ep, 1)]).toEqual([1, 4]);
    expect([remote(b.ep, 5), remote(b.ep, 3)]).toEqual([2, 0]);
    expect([remote(c.ep, 7), remote(c.ep, 2)]).toEqual([3, 4]);
    // The local counts are never touched.
    expect(Atomics.load(a.ep, epIndex(0, kEpInflight))).toBe(2);
    expect([a.s.otherReplicas, b.s.otherReplicas, c.s.otherReplicas]).toEqual([2, 2, 2]);
    expect(a.s.up).toBe(true);
    for (const r of [a, b, c]) await r.s.stop();
  });

  it('resets a pod\'s remote count to 0 once the other replicas have nothing in flight on it, and ignores pods it does not know', async () => {
    await flush();
    const [ia, ib] = ids('a', 'b');
    const a = replica(ia, { 'ns/p1': 0 });
    const b = replica(ib, { 'ns/p1': 0, 'ns/only-b': 1 });
    setLocal(b.ep, 0, 3);
    setLocal(b.ep, 1, 9);
    await b.s.refresh();
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(3);
    expect(remote(a.ep, 1)).toBe(0); // slot 1 is no pod of replica a: left alone
    setLocal(b.ep, 0, 0);
    await b.s.refresh();
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(0);
    for (const r of [a, b]) await r.s.stop();
  });

  it('forgets a crashed replica\'s counts after its TTL, and a cleanly stopped one at once', async () => {
    await flush();
    const [ia, icrash, iclean] = ids('a', 'crash', 'clean');
    const a = replica(ia, { 'ns/p1': 0 });
    const crashBreaker = breaker();
    const crashed = replica(icrash, { 'ns/p1': 0 }, { breaker: crashBreaker, ttlMs: 300 });
    const clean = replica(iclean, { 'ns/p1': 0 });
    setLocal(crashed.ep, 0, 5);
    setLocal(clean.ep, 0, 2);
    await crashed.s.refresh();
    await clean.s.refresh();
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(7);
    expect(a.s.otherReplicas).toBe(2);

    await clean.s.stop();
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(5);

    // A crash: the connection drops, nothing is deleted; the hash expires on the Redis side.
    crashBreaker.client.disconnect(false);
    await new Promise((r) => setTimeout(r, 450));
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(0);
    expect(a.s.otherReplicas).toBe(0);
    const c = new Redis({ host: '127.0.0.1', port: redis.port });
    expect(await c.sismember(SHARED_INFLIGHT_DIRECTORY_KEY, icrash)).toBe(0);
    expect(await c.exists(SHARED_INFLIGHT_REPLICA_PREFIX + icrash)).toBe(0);
    c.disconnect();
    await a.s.stop();
  });

  it('keeps the last sums through 2 failed refreshes, zeroes them at the 3rd and logs the outage once; recovers and logs once when Redis is back', async () => {
    const own = await startRedis();
    try {
      let now = 0;
      const [ia, ib] = ids('a', 'b');
      const a = replica(ia, { 'ns/p1': 0 }, { breaker: breaker(own.port), intervalMs: 50, now: () => now });
      const b = replica(ib, { 'ns/p1': 0 }, { breaker: breaker(own.port) });
      setLocal(b.ep, 0, 4);
      await b.s.refresh();
      expect(await a.s.refresh()).toBe(true);
      expect(remote(a.ep, 0)).toBe(4);

      await own.stop();
      now = 100;
      expect(await a.s.refresh()).toBe(false);
      expect(await a.s.refresh()).toBe(false);
      expect(a.s.failures).toBe(2);
      // Two failures, 100 ms old: the last sums stay.
      expect(remote(a.ep, 0)).toBe(4);
      expect(a.s.up).toBe(true);

      expect(await a.s.refresh()).toBe(false); // the third consecutive failure
      expect(remote(a.ep, 0)).toBe(0);
      expect(a.s.up).toBe(false);
      now = 300;
      await a.s.refresh();
      a.s.checkStale();
      expect(a.s.failures).toBe(4);
      expect(a.logged.warn).toHaveLength(1);
      expect(a.logged.warn[0]).toMatch(/Redis unreachable/);
      expect(a.logged.info).toHaveLength(0);

      const back = await startRedis({ port: own.port });
      try {
        // b publishes again into the fresh Redis; a's client reconnects by itself.
        const deadline = Date.now() + 10_000;
        while (!(await b.s.refresh() && await a.s.refresh() && remote(a.ep, 0) === 4)) {
          if (Date.now() > deadline) throw new Error('no recovery within 10 s');
          now += 10;
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(a.s.up).toBe(true);
        expect(a.logged.info).toHaveLength(1);
        expect(a.logged.info[0]).toMatch(/reachable again/);
        expect(a.logged.warn).toHaveLength(1);
        for (const r of [a, b]) await r.s.stop();
      } finally {
        await back.stop();
      }
    } finally {
      await own.stop();
    }
  });

  it('falls back once no refresh has succeeded for staleAfterMs, even without failures (a Redis that never answers)', async () => {
    let now = 0;
    const [ia, ib] = ids('a', 'b');
    const a = replica(ia, { 'ns/p1': 0 }, { now: () => now, staleAfterMs: 1000 });
    const b = replica(ib, { 'ns/p1': 0 });
    setLocal(b.ep, 0, 2);
    await b.s.refresh();
    await a.s.refresh();
    expect(remote(a.ep, 0)).toBe(2);
    now = 999;
    a.s.checkStale();
    expect(remote(a.ep, 0)).toBe(2);
    now = 1001;
    a.s.checkStale();
    expect(remote(a.ep, 0)).toBe(0);
    expect(a.s.up).toBe(false);
    expect(a.logged.warn).toHaveLength(1);
    for (const r of [a, b]) await r.s.stop();
  });

  it('maps the endpoint keys of a published IR (ModelServer pods and Gateway endpoints) to their slots', () => {
    expect(endpointSlots(null).size).toBe(0);
    const m = endpointSlots({ endpoints: [{ key: 'ns/a', slot: 0 }, { key: 'ns/b', slot: -1 }], gateway: { endpoints: [{ key: 'ns/a:8000', slot: 2 }] } });
    expect([...m]).toEqual([['ns/a', 0], ['ns/a:8000', 2]]);
  });
});

describe('least-request with other replicas\' in-flight counts', () => {
  it('adds kEpRemoteInflight to the local in-flight count, so a pod busy through another replica scores lower', () => {
    const ep = new Int32Array(new SharedArrayBuffer(2 * kEndpointStride * 4));
    writeSlot(ep, 0, { inflight: 0, running: 3 });
    writeSlot(ep, 1, { inflight: 1, running: 3 });
    const endpoints = [0, 1].map((slot) => ({ slot, gen: 1, podName: `pod-${slot}`, namespace: 'ns', ip: `127.0.0.${slot + 2}`, startedAtSec: 0 }));
    const score = (): number[] => {
      const ctx = new DecisionContext(ep);
      ctx.ensure(2);
      ctx.view.load(ep, endpoints, true);
      ctx.cand[0] = 0;
      ctx.cand[1] = 1;
      ctx.m = 2;
      const total = new Float64Array(2);
      new LeastRequestScore().score(ctx, total, 1);
      return Array.from(total);
    };
    // This replica alone: pod 0 is idle.
    expect(score()).toEqual([100, 0]);
    // Another replica holds 3 requests on pod 0: bases 3 and 1.
    Atomics.store(ep, epIndex(0, kEpRemoteInflight), 3);
    expect(score()).toEqual([0, Math.trunc((2 / 3) * 100)]);
    // In-flight beyond what the engine runs weighs 100x, whichever replica sent it: 5 vs running 3.
    Atomics.store(ep, epIndex(0, kEpRemoteInflight), 5);
    expect(score()).toEqual([0, Math.trunc(((205 - 1) / 205) * 100)]);
  });
});
