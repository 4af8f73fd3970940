/**
 * A circuit breaker around one Redis client, for every Redis user (kvcache-aware today; global
 * rate limits and sticky sessions later). Envoy's outlier detection and the classic breaker:
 *
 *   closed    -- every call goes out, bounded by `timeoutMs`; `failureThreshold` consecutive
 *                failures (an error, a timeout, or a client that is not connected) open it.
 *   open      -- every call fails at once with a BreakerOpenError (no Redis round trip, no wait)
 *                for `openMs`.
 *   half-open -- after `openMs` exactly one call goes out as a probe while the others still fail
 *                fast; the probe's success closes the breaker, its failure opens it again.
 *
 * Why: a Redis that accepts connections but never answers (a hung process, a full network path)
 * made every kvcache-aware request wait the whole 5 s lookup timeout (≈30 → 0.8 req/s at
 * concurrency 4). With the breaker only one request per `openMs` pays the timeout.
 *
 * One breaker per client; a worker thread keeps one shared client (workers/redis.ts), so every
 * Redis user on that thread sees the same state.
 */
import type { Redis } from 'ioredis';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface RedisBreakerOptions {
  /** Consecutive failures that open the breaker. Default 3. */
  failureThreshold?: number;
  /** How long an open breaker fails fast before it lets one probe through, ms. Default 5000. */
  openMs?: number;
  /** Bound on every call, ms (a hung Redis never errors by itself). Default 5000 (Kthena's lookup timeout). */
  timeoutMs?: number;
  /** Clock, ms. Default performance.now. */
  now?: () => number;
}

/** Thrown (as a rejection) while the breaker is open, and for calls made during a probe. */
export class BreakerOpenError extends Error {
  readonly code = 'RTR_REDIS_BREAKER_OPEN';
  constructor() {
    super('redis circuit breaker is open');
  }
}

export class RedisTimeoutError extends Error {
  readonly code = 'RTR_REDIS_TIMEOUT';
  constructor(ms: number) {
    super(`redis call timed out after ${ms} ms`);
  }
}

/** ioredis statuses in which a command can be expected to go out promptly. */
const USABLE: ReadonlySet<string> = new Set(['ready', 'wait', 'connecting', 'connect']);

export class RedisBreaker {
  readonly client: Redis;
  readonly #threshold: number;
  readonly #openMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  /** Times the breaker went from closed or half-open to open. */
  opened = 0;
  /** Calls refused without a Redis round trip. */
  rejected = 0;

  constructor(client: Redis, opts: RedisBreakerOptions = {}) {
    if (client === null || typeof client !== 'object') throw new TypeError('RedisBreaker: client must be an ioredis client');
    const threshold = opts.failureThreshold ?? 3;
    if (!(Number.isInteger(threshold) && threshold >= 1)) throw new TypeError(`RedisBreaker: failureThreshold must be an integer >= 1, got ${threshold}`);
    const openMs = opts.openMs ?? 5000;
    if (!(Number.isFinite(openMs) && openMs > 0)) throw new TypeError(`RedisBreaker: openMs must be a number > 0, got ${openMs}`);
    const timeoutMs = opts.timeoutMs ?? 5000;
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError(`RedisBreaker: timeoutMs must be a number > 0, got ${timeoutMs}`);
    this.client = client;
    this.#threshold = threshold;
    this.#openMs = openMs;
    this.#timeoutMs = timeoutMs;
    this.#now = opts.now ?? (() => performance.now());
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#openMs) return 'half-open';
    return this.#state;
  }

  /**
   * Runs `fn` against the client unless the breaker is open; bounds it by `timeoutMs`. Never
   * throws synchronously.
   */
  run<T>(fn: (client: Redis) => Promise<T>): Promise<T> {
    let probe = false;
    if (this.#state === 'open') {
      if (this.#probing || this.#now() - this.#openedAt < this.#openMs) {
        this.rejected++;
        return Promise.reject(new BreakerOpenError());
      }
      probe = true;
      this.#probing = true;
    }
    if (!USABLE.has(this.client.status)) {
      this.#failed(probe);
      return Promise.reject(new Error(`redis client is ${this.client.status}`));
    }
    let p: Promise<T>;
    try {
      p = fn(this.client);
    } catch (err) {
      this.#failed(probe);
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.#failed(probe);
        reject(new RedisTimeoutError(this.#timeoutMs));
      }, this.#timeoutMs);
      p.then(
        (v) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.#succeeded(probe);
          resolve(v);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.#failed(probe);
          reject(err);
        },
      );
    });
  }

  /** Disconnects the client (no reconnection). The breaker refuses every later call. */
  close(): void {
    this.#state = 'open';
    this.#openedAt = Infinity;
    this.client.disconnect(false);
  }

  #succeeded(probe: boolean): void {
    if (probe) this.#probing = false;
    this.#failures = 0;
    if (this.#state !== 'closed' && this.#openedAt !== Infinity) this.#state = 'closed';
  }

  #failed(probe: boolean): void {
    if (probe) this.#probing = false;
    this.#failures++;
    if (probe || (this.#state === 'closed' && this.#failures >= this.#threshold)) {
      if (this.#openedAt === Infinity) return;
      this.#state = 'open';
      this.#openedAt = this.#now();
      this.opened++;
    }
  }
}
