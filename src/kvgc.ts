/**
 * Kthena's hourly garbage collection of KV-block owners (reference §3.3, kvcache-aware): SCAN
 * `matrix:kv:block:*` in steps of 100 keys and HDEL owner fields older than 24 h. One control
 * thread runs it (not every worker). Failures are logged and retried at the next period.
 */
import { Redis } from 'ioredis';
import type { Logger } from './log.js';
import { gcKvBlocks } from '../workers/scheduler/kvcache-aware.js';

const kPeriodMs = 60 * 60 * 1000;

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
        cursor = await gcKvBlocks(this.#redis, Math.floor(Date.now() / 1000), 86_400, cursor);
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
