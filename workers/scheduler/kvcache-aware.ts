/**
 * The `kvcache-aware` score plugin (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/
 * kvcache_aware.go): score each candidate by how long a prefix of the prompt's token blocks its
 * engine already holds in KV cache, as the engines' runtime sidecars report it in Redis.
 *
 * One score() call:
 *   1. tokenize the prompt remotely on a random candidate pod (`POST /tokenize` on the engine's
 *      tokenizer port; one retry, on the next candidate);
 *   2. cut the token ids into blocks of `blockSizeToHash` tokens, at most `maxBlocksToMatch` blocks,
 *      the trailing partial block included (as Kthena: it counts in the denominator and, since
 *      engines only report full blocks, it never matches unless the prompt ends on a boundary);
 *   3. block hashes and Redis keys as src/shared/kv-blocks.ts defines them (the runtime's scheme);
 *   4. one Redis pipeline, per block `HMGET matrix:kv:block:{model}@{hash} {pod}.{ns}...` for the
 *      candidates only (Kthena does HGETALL and then drops non-candidates: same result, less data);
 *      an owner whose write time (unix seconds) is <= the pod's start time is dropped (the cache
 *      was lost in the restart; an unparsable time is kept);
 *   5. only pods holding block 0 get a score: floor(matchLen / totalBlocks × 100), matchLen = the
 *      number of consecutive blocks from block 0 the pod holds. Every other pod gets no entry (NaN).
 *
 * Nothing here throws into the scheduler: a tokenizer or Redis failure counts
 * `kthena_router_kvcache_aware_errors_total{stage}` and makes the plugin contribute nothing.
 */
import type { Redis } from 'ioredis';
import { Pool } from 'undici';

import { RedisBreaker } from '../../src/shared/redis-breaker.js';
import type { MetricJSON, MetricValueJSON } from '../../src/shared/metric-json.js';
import { kvBlockKeys, kvOwnerId } from '../../src/shared/kv-blocks.js';
import type { PluginArgs } from './plugin-api.js';
import type { SchedEndpoint, ScheduleRequest } from './types.js';

export const KV_MATCH_RATIO = 'kthena_router_kvcache_aware_match_ratio';
export const KV_REDIS_DURATION = 'kthena_router_kvcache_aware_redis_duration_seconds';
export const KV_TOKENIZE_DURATION = 'kthena_router_kvcache_aware_tokenize_duration_seconds';
export const KV_ERRORS_TOTAL = 'kthena_router_kvcache_aware_errors_total';

export const MATCH_RATIO_BUCKETS: readonly number[] = Object.freeze([0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]);
export const KV_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]);

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

class Histogram {
  /** Per-bucket (not cumulative) counts; observations above the last bound are only in count. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: Float64Array) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.buckets[i]++;
        return;
      }
    }
  }
}

const kRatioBounds = Float64Array.from(MATCH_RATIO_BUCKETS);
const kDurationBounds = Float64Array.from(KV_DURATION_BUCKETS);

/** The series of one model label. */
class ModelSeries {
  readonly matchRatio = new Histogram(kRatioBounds);
  readonly redis = new Histogram(kDurationBounds);
  readonly tokenize = new Histogram(kDurationBounds);
  tokenizeErrors = 0;
  redisErrors = 0;
  /** Whether each error series exists (prom-client shows a counter series once it was touched). */
  hasTokenizeErrors = false;
  hasRedisErrors = false;
  constructor(readonly model: string) {}
}

function histogramValues(values: MetricValueJSON[], name: string, h: Histogram, labels: Record<string, string>): void {
  if (h.count === 0) return;
  let acc = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    acc += h.buckets[i];
    values.push({ value: acc, labels: { le: h.bounds[i], ...labels }, metricName: name + '_bucket' });
  }
  values.push({ value: h.count, labels: { le: '+Inf', ...labels }, metricName: name + '_bucket' });
  values.push({ value: h.sum, labels: { ...labels }, metricName: name + '_sum' });
  values.push({ value: h.count, labels: { ...labels }, metricName: name + '_count' });
}

// ---------------------------------------------------------------------------------------------
// The plugin
// ---------------------------------------------------------------------------------------------

export interface KvAwareOptions {
  /** Shared Redis client (the caller owns it; close() does not quit it). */
  redis: Redis;
  /**
   * The client's circuit breaker, shared with the thread's other Redis users (workers/redis.ts).
   * Default: a breaker of this scorer's own, bounding every lookup by `redisTimeoutMs`.
   */
  breaker?: RedisBreaker;
  /** Per tokenize attempt, milliseconds. Default 5000 (Kthena). */
  tokenizeTimeoutMs?: number;
  /** Bound on the Redis lookup, milliseconds. Default 5000 (Kthena's context timeout). */
  redisTimeoutMs?: number;
  /** Picks the tokenizer pod; [0, 1). Default Math.random. */
  random?: () => number;
  /**
   * Pods to tokenize on only when no other candidate is left: those ejected by outlier detection
   * (a hung engine's tokenizer holds every request that picks it for the whole tokenize timeout).
   */
  avoid?: (ep: SchedEndpoint) => boolean;
}

/** Tokenizer connection pools kept at once; the least recently created is closed beyond this. */
const MAX_POOLS = 64;

class TokenizeError extends Error {}

export class KvCacheAwareScorer {
  readonly #breaker: RedisBreaker;
  readonly #tokenizeTimeoutMs: number;
  readonly #random: () => number;
  readonly #avoid: ((ep: SchedEndpoint) => boolean) | null;
  readonly #pools = new Map<string, Pool>();
  readonly #series = new Map<string, ModelSeries>();
  /** Owner ids of endpoints, made once per compiled endpoint object. */
  readonly #owners = new WeakMap<SchedEndpoint, string>();
  #closed = false;

  constructor(opts: KvAwareOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('KvCacheAwareScorer options must be an object');
    if (opts.redis === null || typeof opts.redis !== 'object' || typeof opts.redis.pipeline !== 'function') {
      throw new TypeError('KvCacheAwareScorer options.redis must be an ioredis client');
    }
    const tt = opts.tokenizeTimeoutMs ?? 5000;
    if (!(Number.isFinite(tt) && tt > 0)) throw new TypeError(`tokenizeTimeoutMs must be a number > 0, got ${tt}`);
    const rt = opts.redisTimeoutMs ?? 5000;
    if (!(Number.isFinite(rt) && rt > 0)) throw new TypeError(`redisTimeoutMs must be a number > 0, got ${rt}`);
    if (opts.random !== undefined && typeof opts.random !== 'function') throw new TypeError('random must be a function');
    if (opts.breaker !== undefined && !(opts.breaker instanceof RedisBreaker && opts.breaker.client === opts.redis)) {
      throw new TypeError('KvCacheAwareScorer options.breaker must be a RedisBreaker around options.redis');
    }
    this.#breaker = opts.breaker ?? new RedisBreaker(opts.redis, { timeoutMs: rt });
    this.#tokenizeTimeoutMs = tt;
    this.#random = opts.random ?? Math.random;
    if (opts.avoid !== undefined && typeof opts.avoid !== 'function') throw new TypeError('avoid must be a function');
    this.#avoid = opts.avoid ?? null;
  }

  /**
   * Scores `endpoints` into out[0..endpoints.length): 0..100, or NaN for a pod that gets no entry
   * (every pod not holding block 0, and every pod when the result is false). Resolves true when the
   * lookup ran, false when the plugin contributes nothing (empty prompt or model, no candidates,
   * tokenizer or Redis failure). Never rejects.
   */
  async score(
    /** The kvcache-aware plugin's arguments (plugins/kvcache-aware.ts): blockSizeToHash, maxBlocksToMatch, tokenizer ports. */
    args: PluginArgs,
    req: ScheduleRequest,
    endpoints: readonly SchedEndpoint[],
    out: Float64Array,
  ): Promise<boolean> {
    const n = endpoints.length;
    out.fill(NaN, 0, n);
    // The engine's own model name (Kthena uses the client-facing modelName, which finds nothing
    // whenever the ModelServer's spec.model differs: docs/compat.md).
    const model = req.engineModel || req.model;
    if (n === 0 || model === '' || this.#closed) return false;
    const messages = req.body.messages;
    const isChat = Array.isArray(messages);
    // Kthena: nil when there is neither text nor messages.
    if (isChat ? messages.length === 0 : req.prompt === '') return false;

    const series = this.#seriesOf(req.model);
    let tokens: number[];
    const t0 = performance.now();
    try {
      tokens = await this.#tokenize(args, model, req, isChat, endpoints);
    } catch {
      series.tokenizeErrors++;
      series.hasTokenizeErrors = true;
      return false;
    }
    const t1 = performance.now();
    series.tokenize.observe((t1 - t0) / 1000);
    if (tokens.length === 0) return false;

    const blockSize = args.blockSizeToHash;
    const maxBlocks = args.maxBlocksToMatch;
    const keys = kvBlockKeys(model, tokens, blockSize, maxBlocks);
    const nBlocks = keys.length;

    const owners: string[] = new Array(n);
    for (let i = 0; i < n; i++) owners[i] = this.#ownerOf(endpoints[i]);

    let rows: (string | null)[][];
    try {
      rows = await this.#lookup(keys, owners);
    } catch {
      series.redisErrors++;
      series.hasRedisErrors = true;
      return false;
    }
    series.redis.observe((performance.now() - t1) / 1000);

    // matchLen per candidate, walking blocks in order as Kthena's calculatePodScores does: out[i]
    // holds pod i's count (NaN = does not hold block 0); a pod is still matching at block b exactly
    // when its count is b, so no per-block set is needed.
    const first = rows[0];
    let active = 0;
    for (let i = 0; i < n; i++) {
      if (fresh(first[i], endpoints[i].startedAtSec)) {
        out[i] = 1;
        active++;
      }
    }
    let longest = active > 0 ? 1 : 0;
    for (let b = 1; b < nBlocks && active > 0; b++) {
      const row = rows[b];
      for (let i = 0; i < n; i++) {
        if (out[i] === b) {
          if (fresh(row[i], endpoints[i].startedAtSec)) out[i] = b + 1;
          else active--;
        }
      }
      if (active > 0) longest = b + 1;
    }
    for (let i = 0; i < n; i++) {
      const m = out[i];
      if (m === m) out[i] = Math.floor((m / nBlocks) * 100);
    }
    series.matchRatio.observe(longest / nBlocks);
    return true;
  }

  /** This plugin's families, prom-client getMetricsAsJSON() shape (aggregated with 'sum'). */
  metricsJSON(): MetricJSON[] {
    const ratio: MetricValueJSON[] = [];
    const redis: MetricValueJSON[] = [];
    const tokenize: MetricValueJSON[] = [];
    const errors: MetricValueJSON[] = [];
    for (const s of this.#series.values()) {
      const labels = { model: s.model };
      histogramValues(ratio, KV_MATCH_RATIO, s.matchRatio, labels);
      histogramValues(redis, KV_REDIS_DURATION, s.redis, labels);
      histogramValues(tokenize, KV_TOKENIZE_DURATION, s.tokenize, labels);
      if (s.hasTokenizeErrors) errors.push({ value: s.tokenizeErrors, labels: { model: s.model, stage: 'tokenize' } });
      if (s.hasRedisErrors) errors.push({ value: s.redisErrors, labels: { model: s.model, stage: 'redis' } });
    }
    return [
      {
        name: KV_MATCH_RATIO,
        help: "Fraction of the prompt's blocks whose KV cache the best-matching candidate pod already held, per kvcache-aware match attempt (0 = miss)",
        type: 'histogram',
        values: ratio,
        aggregator: 'sum',
      },
      {
        name: KV_REDIS_DURATION,
        help: 'Time spent in the batched Redis lookup during a kvcache-aware match attempt',
        type: 'histogram',
        values: redis,
        aggregator: 'sum',
      },
      {
        name: KV_TOKENIZE_DURATION,
        help: 'Time spent tokenizing the prompt during a kvcache-aware match attempt',
        type: 'histogram',
        values: tokenize,
        aggregator: 'sum',
      },
      {
        name: KV_ERRORS_TOTAL,
        help: 'Number of kvcache-aware match attempts aborted by an error, labelled by failing stage (tokenize or redis)',
        type: 'counter',
        values: errors,
        aggregator: 'sum',
      },
    ];
  }

  /** Closes the tokenizer connection pools. The Redis client belongs to the caller. */
  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }

  #seriesOf(model: string): ModelSeries {
    let s = this.#series.get(model);
    if (s === undefined) {
      s = new ModelSeries(model);
      this.#series.set(model, s);
    }
    return s;
  }

  #ownerOf(ep: SchedEndpoint): string {
    let id = this.#owners.get(ep);
    if (id === undefined) {
      id = kvOwnerId(ep.podName, ep.namespace);
      this.#owners.set(ep, id);
    }
    return id;
  }

  #pool(origin: string): Pool {
    let p = this.#pools.get(origin);
    if (p === undefined) {
      if (this.#pools.size >= MAX_POOLS) {
        const [oldOrigin, oldPool] = this.#pools.entries().next().value as [string, Pool];
        this.#pools.delete(oldOrigin);
        oldPool.close().catch(() => undefined);
      }
      p = new Pool(origin, { connections: 8, keepAliveTimeout: 30_000 });
      this.#pools.set(origin, p);
    }
    return p;
  }

  /**
   * Kthena's TokenizerManager + RemoteTokenizer: a random candidate, the engine's tokenizer port,
   * Kthena's request body; one retry, sent to the next candidate when there is one (the first
   * pod failing is the likely reason for the retry). Ejected pods are skipped while others remain.
   */
  async #tokenize(args: PluginArgs, model: string, req: ScheduleRequest, isChat: boolean, endpoints: readonly SchedEndpoint[]): Promise<number[]> {
    const sglang = req.engine === 'SGLang';
    const port = sglang ? args.sglangTokenizerPort : args.vllmTokenizerPort;
    let body: string;
    if (isChat) {
      body = sglang
        ? JSON.stringify({ model, messages: req.body.messages, add_special_tokens: false })
        : JSON.stringify({ model, messages: req.body.messages, add_special_tokens: false, add_generation_prompt: true });
    } else {
      body = JSON.stringify({ model, prompt: req.prompt, add_special_tokens: true });
    }
    const n = endpoints.length;
    const start = this.#usable(endpoints, Math.min(n - 1, Math.floor(this.#random() * n)), -1);
    try {
      return await this.#tokenizeOn(endpoints[start].ip, port, body);
    } catch {
      return await this.#tokenizeOn(endpoints[this.#usable(endpoints, (start + 1) % n, start)].ip, port, body);
    }
  }

  /** The first candidate from `from` on (wrapping) that is neither avoided nor `not`; `from` when there is none. */
  #usable(endpoints: readonly SchedEndpoint[], from: number, not: number): number {
    const avoid = this.#avoid;
    if (avoid === null) return from;
    const n = endpoints.length;
    for (let k = 0; k < n; k++) {
      const i = (from + k) % n;
      if (i !== not && !avoid(endpoints[i])) return i;
    }
    return from;
  }

  async #tokenizeOn(ip: string, port: number, body: string): Promise<number[]> {
    const origin = ip.includes(':') ? `http://[${ip}]:${port}` : `http://${ip}:${port}`;
    const res = await this.#pool(origin).request({
      path: '/tokenize',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(this.#tokenizeTimeoutMs),
      headersTimeout: this.#tokenizeTimeoutMs,
      bodyTimeout: this.#tokenizeTimeoutMs,
    });
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump().catch(() => undefined);
      throw new TokenizeError(`tokenizer at ${origin} answered ${res.statusCode}`);
    }
    const parsed = (await res.body.json()) as { tokens?: unknown };
    const tokens = parsed?.tokens;
    if (!Array.isArray(tokens)) throw new TokenizeError(`tokenizer at ${origin} answered without a tokens list`);
    for (let i = 0; i < tokens.length; i++) {
      if (!Number.isInteger(tokens[i])) throw new TokenizeError(`tokenizer at ${origin} answered a non-integer token`);
    }
    return tokens as number[];
  }

  /**
   * rows[b][i] = write time of block b by endpoint i (null = not held). Through the breaker: bounded
   * by its timeout, refused at once while Redis is known to be failing.
   */
  #lookup(keys: readonly string[], owners: readonly string[]): Promise<(string | null)[][]> {
    return this.#breaker.run(async (redis) => {
      const pipe = redis.pipeline();
      for (let b = 0; b < keys.length; b++) pipe.hmget(keys[b], ...owners);
      const results = await pipe.exec();
      if (results === null || results.length !== keys.length) throw new Error('redis pipeline was discarded');
      const rows: (string | null)[][] = new Array(results.length);
      for (let b = 0; b < results.length; b++) {
        const [err, row] = results[b];
        if (err) throw err;
        rows[b] = row as (string | null)[];
      }
      return rows;
    });
  }
}

/**
 * Kthena's freshOwners for one (block, pod): held, and not written before the pod (re)started.
 * Both sides are whole seconds, so a same-second write is dropped. A pod with an unknown start time
 * (0) and an unparsable write time are both kept.
 */
function fresh(writtenAt: string | null, startedAtSec: number): boolean {
  if (writtenAt === null) return false;
  if (startedAtSec <= 0) return true;
  const t = parseDecimal(writtenAt);
  return !(t === t && t <= startedAtSec);
}

/** Go's strconv.ParseInt(s, 10, 64) on the values the runtime writes: NaN when not an integer. */
function parseDecimal(s: string): number {
  const len = s.length;
  let i = 0;
  let neg = false;
  if (len > 0 && (s.charCodeAt(0) === 43 || s.charCodeAt(0) === 45)) {
    neg = s.charCodeAt(0) === 45;
    i = 1;
  }
  if (i === len) return NaN;
  let v = 0;
  for (; i < len; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return neg ? -v : v;
}
