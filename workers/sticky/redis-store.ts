/**
 * Session-sticky bindings in Redis, shared by every router replica (--session-sticky-store redis;
 * Kthena's session-sticky proposal, "Redis" store). One key per (route, session):
 *
 *   kthena:sticky:<route namespace/name>:<base64url SHA-256 of route + session, 128 bits>
 *
 * The raw session value never reaches Redis. The value is the bound pod's `namespace/name` (slot
 * numbers differ between replicas), the TTL the route's sessionAffinitySeconds, refreshed by every
 * request of the session.
 *
 * No split brain between replicas: a binding changes only through two atomic scripts.
 *   bind    -- the pod bound, refreshing its TTL; when there is none, this replica's pick is bound
 *              (first writer wins: two replicas binding a new session at once get the same answer).
 *   rebind  -- compare-and-set: moves the binding from the pod this replica found unschedulable to
 *              its own pick, unless another replica moved it first (then that pod is the answer).
 * One round trip per sticky request (bind), two when the bound pod left the schedulable set.
 *
 * Redis unreachable (an error, or no answer within kTimeoutMs): every call resolves null and the
 * caller uses this router's shared-memory table (written through on every try, so it holds the
 * sessions this replica served). A breaker of its own on the worker's shared client (tighter than
 * kvcache-aware's 5 s, which a request must not wait) fails calls at once for kOpenMs after a failure.
 * The outage is logged once per router (a count of workers that see Redis down, in the sticky
 * table's header) and shown by kthena_router_sticky_redis_unreachable.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

import { kStHdrRedisDown } from '../../src/shared/layout.js';
import { RedisBreaker } from '../../src/shared/redis-breaker.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';

/** Bound on one sticky Redis call, ms: a request waits at most this before the local table decides. */
export const kStickyRedisTimeoutMs = 100;
/** After a failure, calls go to the local table at once for this long; then one probes Redis. */
const kOpenMs = 1000;

const BIND = `local v = redis.call('GET', KEYS[1])
if v then redis.call('EXPIRE', KEYS[1], ARGV[2]) return v end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]`;

const REBIND = `local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return ARGV[2] end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return v`;

interface StickyClient extends Redis {
  krStickyBind(key: string, candidate: string, ttl: number): Promise<string>;
  krStickyRebind(key: string, expected: string, candidate: string, ttl: number): Promise<string>;
}

type Log = (level: 'info' | 'warn' | 'error', obj: object, msg: string) => void;

export const STICKY_REDIS_UNREACHABLE = 'kthena_router_sticky_redis_unreachable';
export const STICKY_REDIS_FALLBACKS_TOTAL = 'kthena_router_sticky_redis_fallbacks_total';
export const STICKY_REDIS_REBINDS_TOTAL = 'kthena_router_sticky_redis_rebinds_total';

/** The Redis key of a session of a route. */
export function stickyRedisKey(route: string, session: string): string {
  const h = createHash('sha256').update(route).update('\n').update(session).digest();
  return `kthena:sticky:${route}:${h.toString('base64url', 0, 16)}`;
}

export class RedisStickyStore {
  readonly #breaker: RedisBreaker;
  readonly #client: StickyClient;
  readonly #hdr: Int32Array;
  readonly #log: Log;
  #down = false;
  /** Sticky requests whose binding came from the local table because Redis could not answer. */
  fallbacks = 0;
  /** Bindings moved by compare-and-set (the bound pod had left the schedulable set). */
  rebinds = 0;

  constructor(client: Redis, stickySab: SharedArrayBuffer, log: Log, opts: { timeoutMs?: number; openMs?: number } = {}) {
    const c = client as StickyClient;
    if (typeof c.krStickyBind !== 'function') {
      client.defineCommand('krStickyBind', { numberOfKeys: 1, lua: BIND });
      client.defineCommand('krStickyRebind', { numberOfKeys: 1, lua: REBIND });
    }
    this.#client = c;
    this.#breaker = new RedisBreaker(client, { failureThreshold: 1, timeoutMs: opts.timeoutMs ?? kStickyRedisTimeoutMs, openMs: opts.openMs ?? kOpenMs });
    this.#hdr = new Int32Array(stickySab);
    this.#log = log;
  }

  /** The pod bound to `key` (TTL refreshed), `candidate` when it was unbound; null: Redis could not answer. */
  bind(key: string, candidate: string, ttlSec: number): Promise<string | null> {
    return this.#run(() => this.#client.krStickyBind(key, candidate, ttlSec));
  }

  /**
   * Moves the binding from `expected` to `candidate` unless it changed meanwhile: the pod bound
   * afterwards (`candidate`, or the one another replica chose); null: Redis could not answer.
   */
  rebind(key: string, expected: string, candidate: string, ttlSec: number): Promise<string | null> {
    return this.#run(() => this.#client.krStickyRebind(key, expected, candidate, ttlSec)).then((v) => {
      if (v === candidate) this.rebinds++;
      return v;
    });
  }

  #run(fn: () => Promise<string>): Promise<string | null> {
    return this.#breaker.run(fn).then((v) => {
      if (this.#down) this.#up();
      return typeof v === 'string' ? v : null;
    }, (err: unknown) => {
      this.fallbacks++;
      if (!this.#down) {
        this.#down = true;
        // Once per router: only the first worker to see the outage logs it.
        if (Atomics.add(this.#hdr, kStHdrRedisDown, 1) === 0) {
          this.#log('warn', { err: (err as Error).message }, 'session-sticky Redis store unreachable; sessions are bound in this router\'s own table until it answers again');
        }
      }
      return null;
    });
  }

  #up(): void {
    this.#down = false;
    if (Atomics.sub(this.#hdr, kStHdrRedisDown, 1) === 1) this.#log('info', {}, 'session-sticky Redis store reachable again');
  }

  metricsJSON(): MetricJSON[] {
    return [
      { name: STICKY_REDIS_UNREACHABLE, help: 'Worker threads whose session-sticky Redis store did not answer the last call (bindings come from the router\'s own table)', type: 'gauge', values: [{ value: this.#down ? 1 : 0, labels: {} }], aggregator: 'sum' },
      { name: STICKY_REDIS_FALLBACKS_TOTAL, help: 'Session-sticky Redis calls that failed or timed out (the router\'s own table decided)', type: 'counter', values: [{ value: this.fallbacks, labels: {} }], aggregator: 'sum' },
      { name: STICKY_REDIS_REBINDS_TOTAL, help: 'Session-sticky bindings moved in Redis by compare-and-set because the bound pod had left the schedulable set', type: 'counter', values: [{ value: this.rebinds, labels: {} }], aggregator: 'sum' },
    ];
  }
}
