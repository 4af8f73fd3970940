/**
 * In-flight counts shared across router replicas through Redis (Kthena's `REDIS_HOST` on-flight
 * counter, done without a Redis call per request).
 *
 * Kthena does `HINCRBY kthena:on-flight-requests ns/name ±1` around every upstream attempt and
 * re-reads the hash with one HMGET at most every 50 ms. Two Redis writes per request put Redis on
 * the request path, and a replica that crashes leaves its increments in the hash for good: the pod
 * looks busy to every replica until someone deletes the key.
 *
 * Here the workers never talk to Redis for this. The control thread, every `intervalMs` (50 ms):
 *   1. reads this replica's per-pod in-flight counts from the endpoint slots (kEpInflight, exact
 *      across worker threads);
 *   2. in ONE round trip (a Lua script, SYNC_SCRIPT below), replaces this replica's hash
 *      `{kthena:on-flight}:replica:<id>` (field = endpoint key, value = count; only non-zero
 *      counts, plus a liveness field) and gives it a TTL (`ttlMs`, 2 s), registers the id in the
 *      directory set `{kthena:on-flight}:replicas`, and returns, per endpoint key, the sum of
 *      every OTHER live replica's count; ids whose hash has expired are removed from the directory;
 *   3. stores those sums into kEpRemoteInflight of the matching slots (src/shared/layout.ts);
 *      the workers' EndpointView adds them to the local count.
 * A crashed replica's counts therefore disappear after `ttlMs` by themselves; a replica that stops
 * cleanly deletes its hash at once.
 *
 * Redis down: after `failuresToFallBack` (3) consecutive failed refreshes (an error, a timeout,
 * the breaker open), or once no refresh has succeeded for `staleAfterMs` (1 s), this replica zeroes
 * every kEpRemoteInflight (it falls back to its own counts), logs one warning for the outage and
 * one info line when a refresh succeeds again. `up` and `failures` feed the
 * kthena_router_shared_inflight_* metrics. Why two conditions and not just "3 intervals without
 * success": a refused connection fails at once, so 3 failures are 150 ms of evidence; but a slow
 * round trip or a stalled event loop (GC, a busy node: measured flapping every second with a
 * 150 ms age bound at load average 30 on 2 cores) is not an outage, so age alone must be larger.
 *
 * Cost on Redis per refresh of one replica: O(its busy pods + the busy pods of every other
 * replica), i.e. replicas² × busy pods per interval over the fleet (3 replicas × 200 busy pods:
 * 1,800 hash fields per 50 ms); idle pods cost nothing.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { epIndex, kEpInflight, kEpRemoteInflight } from '../shared/layout.js';
import type { RedisBreaker } from '../shared/redis-breaker.js';

/** Redis Cluster hash tag: every key of the scheme lives in one slot, as the script needs. */
export const SHARED_INFLIGHT_KEY_PREFIX = '{kthena:on-flight}';
export const SHARED_INFLIGHT_DIRECTORY_KEY = `${SHARED_INFLIGHT_KEY_PREFIX}:replicas`;
export const SHARED_INFLIGHT_REPLICA_PREFIX = `${SHARED_INFLIGHT_KEY_PREFIX}:replica:`;
/** The liveness field of a replica hash: endpoint keys always contain '/', this never does. */
const kAliveField = '.';

/**
 * KEYS[1] directory set, KEYS[2] this replica's hash.
 * ARGV[1] this replica's id, ARGV[2] TTL ms, ARGV[3] replica hash prefix, ARGV[4..] key, count pairs.
 * Returns { number of other live replicas, key1, sum1, key2, sum2, ... } (sums over the others).
 * Atomic: another replica never sees this replica's hash half rewritten.
 */
export const SYNC_SCRIPT = `
local ttl = tonumber(ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], '${kAliveField}', '1')
local i = 4
while i <= #ARGV do
  local j = math.min(i + 399, #ARGV)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
local sums, order, others = {}, {}, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] then
    local h = redis.call('HGETALL', ARGV[3] .. id)
    if #h == 0 then
      redis.call('SREM', KEYS[1], id)
    else
      others = others + 1
      for k = 1, #h, 2 do
        local f = h[k]
        if f ~= '${kAliveField}' then
          local v = tonumber(h[k + 1]) or 0
          if sums[f] == nil then
            order[#order + 1] = f
            sums[f] = v
          else
            sums[f] = sums[f] + v
          end
        end
      end
    end
  end
end
local out = { others }
for _, f in ipairs(order) do
  out[#out + 1] = f
  out[#out + 1] = sums[f]
end
return out`;

const kCommand = 'kthenaSharedInflightSync';

export interface SharedInflightOptions {
  /** Int32Array over the endpoint region. */
  ep: Int32Array;
  /** The control thread's Redis client behind its breaker. */
  breaker: RedisBreaker;
  /** Endpoint key (namespace/name, or namespace/pod:port for Gateway endpoints) -> slot, as published now. */
  endpoints: () => ReadonlyMap<string, number>;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Unique per process start. Default: hostname-pid-random. */
  replicaId?: string;
  /** Refresh period, ms. Default 50 (Kthena's). */
  intervalMs?: number;
  /** TTL of this replica's published counts, ms: how long a crashed replica's counts linger. Default 2000. */
  ttlMs?: number;
  /** Without a successful refresh for this long, remote counts are zeroed. Default max(1000, 3 × intervalMs). */
  staleAfterMs?: number;
  /** After this many consecutive failed refreshes, remote counts are zeroed. Default 3. */
  failuresToFallBack?: number;
  /** Clock, ms. Default performance.now. */
  now?: () => number;
  /** After the remote counts were stored or cleared (session boost's admission re-checks then). */
  onChange?: () => void;
}

/** The client with the script defined as a command (ioredis runs it with EVALSHA, loading it once). */
type SyncClient = Record<typeof kCommand, (...args: (string | number)[]) => Promise<unknown[]>>;
const syncOf = (c: Redis): SyncClient => c as unknown as SyncClient;

export function defaultReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export class SharedInflight {
  readonly replicaId: string;
  readonly intervalMs: number;
  readonly ttlMs: number;
  readonly staleAfterMs: number;
  readonly failuresToFallBack: number;
  /** True while the last successful refresh is within staleAfterMs. */
  up = false;
  /** Refreshes that failed (error, timeout, breaker open). */
  failures = 0;
  /** Refreshes that succeeded. */
  refreshes = 0;
  /** Other live replicas seen at the last successful refresh. */
  otherReplicas = 0;
  readonly #o: SharedInflightOptions;
  readonly #now: () => number;
  readonly #ownKey: string;
  /** Slots whose kEpRemoteInflight this instance set non-zero (to clear them later). */
  #written = new Set<number>();
  #lastOk: number;
  #consecutiveFailures = 0;
  #outageLogged = false;
  #pending: Promise<boolean> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(o: SharedInflightOptions) {
    this.#o = o;
    this.replicaId = o.replicaId ?? defaultReplicaId();
    this.intervalMs = o.intervalMs ?? 50;
    this.ttlMs = o.ttlMs ?? 2000;
    this.staleAfterMs = o.staleAfterMs ?? Math.max(1000, 3 * this.intervalMs);
    this.failuresToFallBack = o.failuresToFallBack ?? 3;
    if (!(this.intervalMs > 0 && this.ttlMs > this.intervalMs && this.staleAfterMs > 0 && Number.isInteger(this.failuresToFallBack) && this.failuresToFallBack >= 1)) {
      throw new TypeError(`SharedInflight: need intervalMs > 0, ttlMs > intervalMs, staleAfterMs > 0, failuresToFallBack >= 1 (got ${this.intervalMs}, ${this.ttlMs}, ${this.staleAfterMs}, ${this.failuresToFallBack})`);
    }
    this.#now = o.now ?? (() => performance.now());
    this.#ownKey = SHARED_INFLIGHT_REPLICA_PREFIX + this.replicaId;
    this.#lastOk = this.#now();
    if (typeof (o.breaker.client as unknown as Partial<SyncClient>)[kCommand] !== 'function') o.breaker.client.defineCommand(kCommand, { numberOfKeys: 2, lua: SYNC_SCRIPT });
  }

  /** Refreshes every intervalMs until stop(). */
  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#lastOk = this.#now();
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#timer.unref();
    this.#tick();
  }

  #tick(): void {
    this.checkStale();
    // A refresh still waiting (slow Redis, bounded by the breaker's timeout) is not doubled up.
    if (this.#pending === null) void this.refresh();
  }

  /**
   * Publishes this replica's counts and stores the others' sums. Resolves true on success; never
   * rejects (a failure is counted, and the remote counts go to 0 once stale).
   */
  refresh(): Promise<boolean> {
    if (this.#pending !== null) return this.#pending;
    const p = this.#refresh().finally(() => { this.#pending = null; });
    this.#pending = p;
    return p;
  }

  async #refresh(): Promise<boolean> {
    const { ep, breaker } = this.#o;
    const endpoints = this.#o.endpoints();
    const args: (string | number)[] = [SHARED_INFLIGHT_DIRECTORY_KEY, this.#ownKey, this.replicaId, this.ttlMs, SHARED_INFLIGHT_REPLICA_PREFIX];
    for (const [key, slot] of endpoints) {
      const n = Atomics.load(ep, epIndex(slot, kEpInflight));
      if (n > 0) args.push(key, n);
    }
    let reply: unknown[];
    try {
      reply = await breaker.run((c) => syncOf(c)[kCommand](...args));
    } catch (err) {
      this.failures++;
      this.#consecutiveFailures++;
      this.checkStale(err);
      return false;
    }
    if (this.#stopped) return false;
    // The endpoint set may have changed while the call was out: map keys with the current one.
    this.#apply(reply, this.#o.endpoints());
    this.#lastOk = this.#now();
    this.#consecutiveFailures = 0;
    this.refreshes++;
    if (!this.up) {
      this.up = true;
      if (this.#outageLogged) {
        this.#outageLogged = false;
        this.#o.log.info({ replicaId: this.replicaId, otherReplicas: this.otherReplicas }, 'shared in-flight counts: Redis reachable again; least-request sees the other replicas\' load again');
      }
    }
    return true;
  }

  #apply(reply: unknown[], endpoints: ReadonlyMap<string, number>): void {
    const ep = this.#o.ep;
    this.otherReplicas = Number(reply[0]) || 0;
    const next = new Set<number>();
    for (let i = 1; i + 1 < reply.length; i += 2) {
      const slot = endpoints.get(String(reply[i]));
      const n = Number(reply[i + 1]);
      if (slot === undefined || !(n > 0)) continue;
      Atomics.store(ep, epIndex(slot, kEpRemoteInflight), Math.min(n, 0x7fffffff));
      next.add(slot);
    }
    for (const slot of this.#written) if (!next.has(slot)) Atomics.store(ep, epIndex(slot, kEpRemoteInflight), 0);
    this.#written = next;
    this.#o.onChange?.();
  }

  /**
   * Zeroes the remote counts after failuresToFallBack consecutive failures or staleAfterMs without
   * a success (logs the outage once). Called on every tick and after every failure.
   */
  checkStale(err?: unknown): void {
    if (this.#stopped) return;
    if (this.#consecutiveFailures < this.failuresToFallBack && this.#now() - this.#lastOk <= this.staleAfterMs) return;
    this.#clear();
    this.up = false;
    if (!this.#outageLogged) {
      this.#outageLogged = true;
      const e = err as { code?: string; message?: string } | undefined;
      this.#o.log.warn(
        { replicaId: this.replicaId, staleAfterMs: this.staleAfterMs, err: e?.message, code: e?.code },
        'shared in-flight counts: Redis unreachable; each replica now balances on its own in-flight counts only',
      );
    }
  }

  #clear(): void {
    const ep = this.#o.ep;
    const had = this.#written.size > 0;
    for (const slot of this.#written) Atomics.store(ep, epIndex(slot, kEpRemoteInflight), 0);
    this.#written.clear();
    if (had) this.#o.onChange?.();
    this.otherReplicas = 0;
  }

  /** kEpRemoteInflight of a slot (debug dump). */
  remoteOf(slot: number): number {
    return Atomics.load(this.#o.ep, epIndex(slot, kEpRemoteInflight));
  }

  /**
   * Stops refreshing, zeroes the remote counts and deletes this replica's hash (best effort,
   * bounded by the breaker's timeout), so the other replicas stop counting our requests at once;
   * then closes the breaker's client (this instance owns it).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#pending;
    this.#clear();
    this.up = false;
    try {
      await this.#o.breaker.run((c) => c.multi().del(this.#ownKey).srem(SHARED_INFLIGHT_DIRECTORY_KEY, this.replicaId).exec());
    } catch {
      // Redis unreachable: the hash expires by itself after ttlMs.
    }
    this.#o.breaker.close();
  }
}

/** The control thread's own Redis connection for the shared counts, behind its breaker. */
export async function sharedInflightBreaker(r: { host: string; port: number; password: string }): Promise<RedisBreaker> {
  const [{ Redis }, { RedisBreaker }] = await Promise.all([import('ioredis'), import('../shared/redis-breaker.js')]);
  const client = new Redis({
    host: r.host, port: r.port, password: r.password || undefined,
    // Reconnect quickly (one connection per router): the counts are worth having back within a second.
    maxRetriesPerRequest: 1, enableOfflineQueue: true, retryStrategy: (n) => Math.min(1000, 50 * n),
  });
  // Failures surface per refresh (counted, logged once per outage).
  client.on('error', () => undefined);
  // A refresh that takes longer than 10 intervals is worth nothing; probe every second while open.
  return new RedisBreaker(client, { failureThreshold: 3, openMs: 1000, timeoutMs: 500 });
}

/** Endpoint key -> slot of a published IR (ModelServer pods and Gateway endpoints). */
export function endpointSlots(ir: { endpoints: readonly { key: string; slot: number }[]; gateway: { endpoints: readonly { key: string; slot: number }[] } } | null): Map<string, number> {
  const m = new Map<string, number>();
  if (ir === null) return m;
  for (const e of ir.endpoints) if (e.slot >= 0) m.set(e.key, e.slot);
  for (const e of ir.gateway.endpoints) if (e.slot >= 0) m.set(e.key, e.slot);
  return m;
}
