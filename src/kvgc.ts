/**
 * Kthena's hourly garbage collection of KV-block owners (gcStaleFields in
 * volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/kvcache_aware.go): SCAN
 * `matrix:kv:block:*` in steps of 100 keys and HDEL owner fields older than 24 h. One control
 * thread runs it (not every worker). Failures are logged and retried at the next period.
 * The key scheme is src/shared/kv-blocks.ts, which the workers' scorer reads by.
 */
import { Redis } from 'ioredis';
import type { Logger } from './log.js';
import { KV_BLOCK_KEY_PREFIX } from './shared/kv-blocks.js';

const kPeriodMs = 60 * 60 * 1000;
/** Age after which the hourly GC deletes an owner field (Kthena: 24 h, the runtime's key expiry). */
export const KV_FIELD_MAX_AGE_SEC = 86400;
/** Kthena's GC SCAN COUNT. */
export const KV_GC_SCAN_COUNT = 100;

/**
 * Deletes the owner fields of one key whose write time is older than the cutoff, in one atomic
 * step: a field the runtime rewrites between our read and our delete is never lost (Kthena's
 * HGETALL-then-HDEL has that race). Unparsable values are kept, as Kthena does.
 */
const GC_SCRIPT = `
local h = redis.call('HGETALL', KEYS[1])
local cutoff = tonumber(ARGV[1])
local n = 0
for i = 1, #h, 2 do
  local v = h[i + 1]
  if string.match(v, '^%d+$') and tonumber(v) < cutoff then
    redis.call('HDEL', KEYS[1], h[i])
    n = n + 1
  end
end
return n`;

/**
 * One GC step, as Kthena's hourly gcStaleFields does it: `SCAN cursor MATCH matrix:kv:block:*
 * COUNT 100`, then delete every owner field written more than `maxAgeSec` before `nowSec`
 * (strictly older, as Kthena). Returns the next cursor ('0' once the keyspace has been walked).
 * Rejects on a Redis error (the caller logs it and tries again next hour from the same cursor).
 */
export async function gcKvBlocks(redis: Redis, nowSec: number, maxAgeSec = KV_FIELD_MAX_AGE_SEC, cursor = '0'): Promise<string> {
  const [next, keys] = await redis.scan(cursor, 'MATCH', KV_BLOCK_KEY_PREFIX + '*', 'COUNT', KV_GC_SCAN_COUNT);
  if (keys.length > 0) {
    const cutoff = String(Math.floor(nowSec - maxAgeSec));
    const pipe = redis.pipeline();
    for (const key of keys) pipe.eval(GC_SCRIPT, 1, key, cutoff);
    const results = await pipe.exec();
    for (const r of results ?? []) if (r[0]) throw r[0];
  }
  return next;
}

export class KvBlockGc {
  readonly #redis: Redis;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(opts: { host: string; port: number; password: string }, log: Logger) {
    this.#log = log;
    this.#redis = new Redis({
      host: opts.host, port: opts.port, password: opts.password || undefined,
      lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true,
      retryStrategy: (n) => Math.min(30_000, 500 * n),
    });
    this.#redis.on('error', () => { /* reported per GC run */ });
  }

  start(): void {
    this.#timer = setInterval(() => { this.#running ??= this.#run().finally(() => { this.#running = null; }); }, kPeriodMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    let cursor = '0';
    try {
      do {
        if (this.#stopped) return;
        cursor = await gcKvBlocks(this.#redis, Math.floor(Date.now() / 1000), KV_FIELD_MAX_AGE_SEC, cursor);
      } while (cursor !== '0');
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'kvcache-aware: KV-block GC in Redis failed; retrying next hour');
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
    this.#redis.disconnect();
  }
}
