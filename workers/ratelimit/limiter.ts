/**
 * The token rate-limit stage of one worker (docs/reference/kthena-behaviour.md §5.1, docs/traffic-policy.md).
 *
 * Per matched route and request model:
 *   1. before scheduling: the input estimate (workers/prompt.ts) is taken from the input bucket,
 *      and the output bucket must hold at least one token; when the output check fails the input
 *      tokens are given back (Kthena consumed them anyway);
 *   2. after the response: the engine's completion tokens are charged to the output bucket, into
 *      debt when it holds fewer (Kthena skipped the charge, so a response larger than the bucket
 *      was never counted).
 * Local limits use the shared buckets (one budget for every worker thread); global limits one Redis
 * script call, behind the shared Redis circuit breaker. Redis unreachable: allowed (fail open, the default) or refused (--rate-limit-redis-failure
 * closed), logged once per outage, counted in kthena_router_rate_limit_redis_errors_total.
 */
import type { RateLimitIR } from '../../src/ir/types.js';
import type { MetricJSON, MetricValueJSON } from '../../src/shared/metric-json.js';
import { SharedBuckets, type BucketSpec } from './bucket.js';
import { globalLimit, RedisBuckets, type GlobalLimit } from './redis.js';

export const RATE_LIMIT_EXCEEDED = 'kthena_router_rate_limit_exceeded_total';
export const RATE_LIMIT_REDIS_ERRORS = 'kthena_router_rate_limit_redis_errors_total';

/** Verdicts of admit(). */
export const kAllowed = 0;
export const kInputExceeded = 1;
export const kOutputExceeded = 2;
export type Verdict = 0 | 1 | 2;

/** One request model's limits on one route, compiled once per snapshot. */
export interface ModelLimit {
  readonly model: string;
  /** Local buckets (null: no limit in that direction, or a global limit). */
  readonly input: BucketSpec | null;
  readonly output: BucketSpec | null;
  /** '' for local limits. */
  readonly redis: string;
  readonly global: GlobalLimit | null;
}

/** A route's limits by request model. */
export type CompiledRateLimit = ReadonlyMap<string, ModelLimit>;

/** Compiles a route's RateLimitIR (workers/compile.ts calls it per route, once per snapshot). */
export function compileRateLimit(rl: RateLimitIR, models: readonly string[]): CompiledRateLimit {
  const out = new Map<string, ModelLimit>();
  const spec = (tokens: number, slot: number, gen: number): BucketSpec => ({
    slot, gen, capacity: tokens, msPerToken: (rl.unitSeconds * 1000) / tokens,
  });
  for (const model of models) {
    if (out.has(model)) continue;
    if (rl.redisAddress !== '') {
      out.set(model, {
        model, input: null, output: null, redis: rl.redisAddress,
        global: globalLimit(model, rl.inputTokensPerUnit, rl.outputTokensPerUnit, rl.unitSeconds),
      });
      continue;
    }
    let input: BucketSpec | null = null;
    let output: BucketSpec | null = null;
    for (const b of rl.buckets) {
      if (b.model !== model) continue;
      if (b.direction === 'input' && rl.inputTokensPerUnit > 0) input = spec(rl.inputTokensPerUnit, b.slot, b.gen);
      if (b.direction === 'output' && rl.outputTokensPerUnit > 0) output = spec(rl.outputTokensPerUnit, b.slot, b.gen);
    }
    if (input !== null || output !== null) out.set(model, { model, input, output, redis: '', global: null });
  }
  return out;
}

export interface RateLimiterOptions {
  rateLimitSab: SharedArrayBuffer;
  /** true: refuse (429) while a limit's Redis cannot answer; false: allow. */
  failClosed: boolean;
  redisTimeoutMs?: number;
  log: (level: 'info' | 'warn' | 'error', obj: object, msg: string) => void;
}

class Counter {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
}

export class RateLimiter {
  readonly buckets: SharedBuckets;
  readonly #redis: RedisBuckets;
  readonly #failClosed: boolean;
  readonly #log: RateLimiterOptions['log'];
  /** Addresses currently failing (logged once when they start and once when they recover). */
  readonly #down = new Set<string>();
  readonly #exceeded = new Map<string, Counter>();
  readonly #redisErrors = new Map<string, Counter>();

  constructor(opts: RateLimiterOptions) {
    this.buckets = new SharedBuckets(opts.rateLimitSab);
    this.#redis = new RedisBuckets({ commandTimeoutMs: opts.redisTimeoutMs ?? 1000, openMs: 1000 });
    this.#failClosed = opts.failClosed;
    this.#log = opts.log;
  }

  #synced: object | null = null;

  /** Keeps one connection per Redis address of `snap` (cheap when the snapshot did not change). */
  sync(snap: { rateLimitRedis: ReadonlySet<string> }): void {
    if (this.#synced === snap) return;
    this.#synced = snap;
    this.useRedis(snap.rateLimitRedis);
  }

  /** The Redis addresses the live snapshot uses (connections are opened before the first request). */
  useRedis(addresses: ReadonlySet<string>): void {
    this.#redis.use(addresses);
    for (const a of this.#down) if (!addresses.has(a)) this.#down.delete(a);
  }

  /**
   * Input check and output pre-check for a request with `inputTokens` estimated tokens. Local
   * limits answer synchronously; global ones with a promise that never rejects.
   */
  admit(lim: ModelLimit, inputTokens: number): Verdict | Promise<Verdict> {
    if (lim.global !== null) {
      const address = lim.redis;
      return this.#redis.admit(address, lim.global, inputTokens).then(
        (v) => { this.#recovered(address); return v === 1 ? kInputExceeded : v === 2 ? kOutputExceeded : kAllowed; },
        (err: unknown) => { this.#failed(address, lim.model, err); return this.#failClosed ? kInputExceeded : kAllowed; },
      );
    }
    const b = this.buckets;
    const now = b.now();
    if (lim.input !== null && !b.take(lim.input, inputTokens, now)) return kInputExceeded;
    if (lim.output !== null && b.available(lim.output, now) < 1) {
      if (lim.input !== null) b.refund(lim.input, inputTokens, now);
      return kOutputExceeded;
    }
    return kAllowed;
  }

  /** Charges the engine's completion tokens after the response (fire and forget for Redis). */
  recordOutput(lim: ModelLimit, n: number): void {
    if (n <= 0) return;
    if (lim.global !== null) {
      if (lim.global.outCapacity <= 0) return;
      const address = lim.redis;
      this.#redis.charge(address, lim.global, n).then(() => this.#recovered(address), (err: unknown) => this.#failed(address, lim.model, err));
      return;
    }
    if (lim.output !== null) this.buckets.charge(lim.output, n);
  }

  /** Counts a refusal (Kthena's kthena_router_rate_limit_exceeded_total). */
  exceeded(model: string, verdict: Verdict, path: string): void {
    const limitType = verdict === kOutputExceeded ? 'output_tokens' : 'input_tokens';
    const k = model + '\0' + limitType + '\0' + path;
    let c = this.#exceeded.get(k);
    if (c === undefined) this.#exceeded.set(k, c = new Counter({ model, limit_type: limitType, path }));
    c.value++;
  }

  #failed(address: string, model: string, err: unknown): void {
    const mode = this.#failClosed ? 'closed' : 'open';
    const k = model + '\0' + mode;
    let c = this.#redisErrors.get(k);
    if (c === undefined) this.#redisErrors.set(k, c = new Counter({ model, fail_mode: mode }));
    c.value++;
    if (this.#down.has(address)) return;
    this.#down.add(address);
    this.#log('warn', { redis: address, err: (err as Error)?.message ?? String(err), failMode: mode },
      `rate-limit Redis unreachable: requests are ${this.#failClosed ? 'refused (429)' : 'allowed without a global limit'} until it answers again`);
  }

  #recovered(address: string): void {
    if (this.#down.size === 0 || !this.#down.delete(address)) return;
    this.#log('info', { redis: address }, 'rate-limit Redis reachable again: global limits apply');
  }

  metricsJSON(): MetricJSON[] {
    const values = (m: Map<string, Counter>): MetricValueJSON[] => [...m.values()].map((c) => ({ value: c.value, labels: { ...c.labels } }));
    return [
      { name: RATE_LIMIT_EXCEEDED, help: 'Number of requests rejected due to rate limiting', type: 'counter', values: values(this.#exceeded), aggregator: 'sum' },
      {
        name: RATE_LIMIT_REDIS_ERRORS, help: 'Global rate-limit checks and charges that Redis could not answer (fail_mode says whether the request was allowed or refused)',
        type: 'counter', values: values(this.#redisErrors), aggregator: 'sum',
      },
    ];
  }

  close(): void {
    this.#redis.close();
  }
}
