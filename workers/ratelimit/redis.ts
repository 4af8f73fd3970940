/**
 * Global token buckets in Redis: several router replicas (and Kthena routers during a migration)
 * draw from one budget per model and direction.
 *
 * Layout is Kthena's (volcano-sh/kthena:pkg/kthena-router/filters/ratelimit/global.go): a hash at
 * `kthena:ratelimit:{model}:{input|output}` with `tokens` (float) and `last_update` (Redis `TIME`,
 * seconds with microseconds), capacity = the limit, refill = limit / unit seconds, and
 * `EXPIRE` = clamp(3 x unit, 600 s, 90 days) on every write. The clock is Redis's own, so replicas
 * with skewed clocks still agree.
 *
 * One script call per request does what Kthena does in two or three round trips: the input check
 * (consumes only when the output pre-check passes too), and the output pre-check (at least one
 * token). A second script charges the output tokens reported by the engine, into debt when the
 * bucket holds fewer (Kthena's later ReconcileN does the same).
 */
import { Redis } from 'ioredis';
import { RedisBreaker } from '../../src/shared/redis-breaker.js';

export const kKeyPrefix = 'kthena:ratelimit:';

/** Returns 0 allowed, 1 input limit exceeded, 2 output limit exceeded. */
const ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, cap, rate)
  local h = redis.call('HMGET', key, 'tokens', 'last_update')
  local tokens = tonumber(h[1]) or cap
  local passed = now - (tonumber(h[2]) or now)
  if passed < 0 then passed = 0 end
  return math.min(cap, tokens + passed * rate)
end
local function save(key, tokens, expire)
  redis.call('HSET', key, 'tokens', tokens, 'last_update', now)
  redis.call('EXPIRE', key, expire)
end
local n = tonumber(ARGV[1])
local inCap, inRate, inExp = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local outCap, outRate, outExp = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local inTokens = 0
if inCap > 0 then
  inTokens = level(KEYS[1], inCap, inRate)
  if inTokens < n then
    save(KEYS[1], inTokens, inExp)
    return 1
  end
end
if outCap > 0 then
  local outTokens = level(KEYS[2], outCap, outRate)
  save(KEYS[2], outTokens, outExp)
  if outTokens < 1 then
    if inCap > 0 then save(KEYS[1], inTokens, inExp) end
    return 2
  end
end
if inCap > 0 then save(KEYS[1], inTokens - n, inExp) end
return 0
`;

const CHARGE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap, rate, expire, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'last_update')
local tokens = tonumber(h[1]) or cap
local passed = now - (tonumber(h[2]) or now)
if passed < 0 then passed = 0 end
tokens = math.min(cap, tokens + passed * rate) - n
redis.call('HSET', KEYS[1], 'tokens', tokens, 'last_update', now)
redis.call('EXPIRE', KEYS[1], expire)
return 0
`;

/** Kthena's key expiry: 3 units, at least 10 minutes, at most 90 days. */
export function expireSeconds(unitSeconds: number): number {
  return Math.min(7_776_000, Math.max(600, unitSeconds * 3));
}

/** `host:port`, `[v6]:port` or `host` (port 6379). Null when it is none of these. */
export function parseAddress(address: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:/[\]]+))(?::(\d{1,5}))?$/.exec(address);
  if (m === null) return null;
  const port = m[3] === undefined ? 6379 : Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

type ScriptClient = Redis & {
  rlAdmit(inKey: string, outKey: string, ...args: (string | number)[]): Promise<number>;
  rlCharge(key: string, ...args: (string | number)[]): Promise<number>;
};

/** What a global limit needs per request model (built once per snapshot). */
export interface GlobalLimit {
  readonly inKey: string;
  readonly outKey: string;
  /** 0: no limit in that direction. */
  readonly inCapacity: number;
  readonly outCapacity: number;
  readonly inRate: number;
  readonly outRate: number;
  readonly expire: number;
}

export function globalLimit(model: string, inCapacity: number, outCapacity: number, unitSeconds: number): GlobalLimit {
  return {
    inKey: kKeyPrefix + model + ':input', outKey: kKeyPrefix + model + ':output',
    inCapacity, outCapacity, inRate: inCapacity / unitSeconds, outRate: outCapacity / unitSeconds,
    expire: expireSeconds(unitSeconds),
  };
}

export interface RedisBucketsOptions {
  /** Bound on one script call, ms (Kthena: 5 s). */
  commandTimeoutMs: number;
  /** How long a breaker that opened fails fast before one probe goes out, ms. */
  openMs: number;
}

/**
 * One Redis connection per distinct address (Kthena used the first address for every route), each
 * behind the shared circuit breaker (src/shared/redis-breaker.ts): while the connection is down
 * calls fail at once (no offline queue), three consecutive failures or timeouts open the breaker,
 * and one probe per `openMs` decides when it closes. ioredis reconnects in the background, so
 * limits apply again by themselves when Redis returns.
 */
interface Conn {
  readonly breaker: RedisBreaker;
  /** Settles when the first connection is up, or after connectTimeout: until then calls wait instead of failing. */
  first: Promise<void> | null;
}

export class RedisBuckets {
  readonly #breakers = new Map<string, Conn | null>();
  readonly #opts: RedisBucketsOptions;

  constructor(opts: RedisBucketsOptions) {
    this.#opts = opts;
  }

  /** Opens connections for `addresses` and closes the others (once per snapshot). */
  use(addresses: ReadonlySet<string>): void {
    for (const [address, conn] of this.#breakers) {
      if (!addresses.has(address)) {
        conn?.breaker.close();
        this.#breakers.delete(address);
      }
    }
    for (const address of addresses) {
      if (this.#breakers.has(address)) continue;
      const hp = parseAddress(address);
      let conn: Conn | null = null;
      if (hp !== null) {
        const client = new Redis({
          host: hp.host, port: hp.port,
          // Fail fast while disconnected instead of queueing requests behind a dead connection.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 2000,
          retryStrategy: (times: number) => Math.min(100 * times, 1000),
        }) as ScriptClient;
        // Failures surface through the calls (logged once per outage by the limiter); ioredis would
        // otherwise print every reconnect error.
        client.on('error', () => {});
        client.defineCommand('rlAdmit', { numberOfKeys: 2, lua: ADMIT });
        client.defineCommand('rlCharge', { numberOfKeys: 1, lua: CHARGE });
        const c: Conn = { breaker: new RedisBreaker(client, { timeoutMs: this.#opts.commandTimeoutMs, openMs: this.#opts.openMs }), first: null };
        // The connection is opening right after a snapshot brought this address: the first
        // requests wait for it (bounded) rather than being counted as a Redis failure.
        c.first = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          timer.unref();
          client.once('ready', () => { clearTimeout(timer); resolve(); });
        }).then(() => { c.first = null; });
        conn = c;
      }
      this.#breakers.set(address, conn);
    }
  }

  #run<T>(address: string, fn: (c: ScriptClient) => Promise<T>): Promise<T> {
    const conn = this.#breakers.get(address);
    if (conn === undefined || conn === null) return Promise.reject(new Error(`not a Redis address: "${address}"`));
    if (conn.first !== null) return conn.first.then(() => conn.breaker.run((c) => fn(c as ScriptClient)));
    return conn.breaker.run((c) => fn(c as ScriptClient));
  }

  /** 0 allowed, 1 input exceeded, 2 output exceeded; rejects when Redis could not answer. */
  admit(address: string, g: GlobalLimit, inputTokens: number): Promise<number> {
    return this.#run(address, (c) => c.rlAdmit(
      g.inKey, g.outKey, inputTokens, g.inCapacity, g.inRate, g.expire, g.outCapacity, g.outRate, g.expire,
    )).then(Number);
  }

  /** Charges output tokens; rejects when Redis could not answer. */
  charge(address: string, g: GlobalLimit, n: number): Promise<void> {
    return this.#run(address, (c) => c.rlCharge(g.outKey, g.outCapacity, g.outRate, g.expire, n)).then(() => undefined);
  }

  close(): void {
    for (const c of this.#breakers.values()) c?.breaker.close();
    this.#breakers.clear();
  }
}
