/**
 * The simulator's stand-in for the Kthena runtime sidecar's KV events: when a simulated pod has
 * prefilled a prompt, it records in Redis that it now holds the prompt's KV blocks, exactly where
 * and how the sidecar does (`HSET matrix:kv:block:{model}@{hash} {pod}.{namespace} <unix seconds>`,
 * hash = Kthena's standardized block hash), so the router's kvcache-aware plugin can be exercised
 * end to end without GPUs.
 *
 * Only full blocks are written: engines (vLLM's BlockStored events) report full blocks only, so a
 * prompt's trailing partial block is never held by anyone.
 *
 * Two ways to publish:
 * - fixed-delay pods (no engine model) call `publish` once a prompt is prefilled and never remove
 *   anything;
 * - model-mode pods mirror their prefix cache (native-bench/src/sim/model.ts): `storeBlock` when a block enters
 *   the cache, `removeBlock` when it is evicted, reference-counted per Redis key (Kthena's hash is
 *   per block, not chained, so two cached blocks can share a key), batched into one pipeline per
 *   event-loop turn.
 */

import { Redis } from 'ioredis';

import { KV_DEFAULT_BLOCK_SIZE, kvBlockHashes, kvBlockKey, kvOwnerId } from '../../../src/shared/kv-blocks.js';

export interface SimKvEventsSpec {
  /** `redis://host:port[/db]` */
  redisUrl: string;
  /** Namespace of the pod, the second half of the owner field `{pod}.{namespace}`. */
  namespace: string;
  /** Tokens per KV block (the engine's block size; must equal the router's blockSizeToHash). Default 16. */
  blockSize?: number;
}

/** Throws TypeError naming the bad field. */
export function validateKvEventsSpec(v: unknown, at: string): void {
  if (v === undefined) return;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${at}.kvEvents must be an object`);
  const s = v as Record<string, unknown>;
  if (typeof s.redisUrl !== 'string' || !/^rediss?:\/\//.test(s.redisUrl)) {
    throw new TypeError(`${at}.kvEvents.redisUrl must be a redis:// URL`);
  }
  if (typeof s.namespace !== 'string' || s.namespace === '') throw new TypeError(`${at}.kvEvents.namespace must be a non-empty string`);
  if (s.blockSize !== undefined && !(typeof s.blockSize === 'number' && Number.isInteger(s.blockSize) && s.blockSize >= 1)) {
    throw new TypeError(`${at}.kvEvents.blockSize must be an integer >= 1`);
  }
}

export class KvEventPublisher {
  readonly #redis: Redis;
  readonly #owner: string;
  readonly #blockSize: number;
  readonly #pending = new Set<Promise<void>>();
  /** Model mode: cached blocks per Redis key, and the HSET/HDEL not yet sent. */
  readonly #refs = new Map<string, number>();
  #ops: [op: 'set' | 'del', key: string][] = [];
  #flushScheduled = false;
  #published = 0;
  #removed = 0;
  #errors = 0;
  #closed = false;

  constructor(spec: SimKvEventsSpec, podName: string) {
    this.#owner = kvOwnerId(podName, spec.namespace);
    this.#blockSize = spec.blockSize ?? KV_DEFAULT_BLOCK_SIZE;
    this.#redis = new Redis(spec.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    // Connection errors surface as failed publishes (counted); an unhandled 'error' event would
    // crash the process.
    this.#redis.on('error', () => undefined);
  }

  /** Blocks written so far (one per HSET). */
  get published(): number {
    return this.#published;
  }

  /** Owner fields deleted (model mode evictions). */
  get removed(): number {
    return this.#removed;
  }

  /** Tokens per block. */
  get blockSize(): number {
    return this.#blockSize;
  }

  /** Publishes that failed (Redis unreachable ...). */
  get errors(): number {
    return this.#errors;
  }

  /** Records every full block of `tokens` as held by this pod, now. Fire and forget. */
  publish(model: string, tokens: readonly number[]): void {
    if (this.#closed) return;
    const full = Math.floor(tokens.length / this.#blockSize) * this.#blockSize;
    if (full === 0) return;
    const hashes = kvBlockHashes(full === tokens.length ? tokens : tokens.slice(0, full), this.#blockSize, Infinity);
    const now = String(Math.floor(Date.now() / 1000));
    const pipe = this.#redis.pipeline();
    for (const h of hashes) pipe.hset(kvBlockKey(model, h), this.#owner, now);
    const p = pipe.exec().then(
      (results) => {
        if (results === null || results.some((r) => r[0] !== null)) this.#errors++;
        else this.#published += hashes.length;
      },
      () => {
        this.#errors++;
      },
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Model mode: a block with this Redis key (`kvBlockKey`) entered the pod's prefix cache. */
  storeBlock(key: string): void {
    if (this.#closed) return;
    const n = this.#refs.get(key) ?? 0;
    this.#refs.set(key, n + 1);
    if (n === 0) this.#queue('set', key);
  }

  /** Model mode: a block with this key was evicted; the owner field goes with the last one. */
  removeBlock(key: string): void {
    if (this.#closed) return;
    const n = this.#refs.get(key) ?? 0;
    if (n <= 1) {
      this.#refs.delete(key);
      if (n === 1) this.#queue('del', key);
    } else {
      this.#refs.set(key, n - 1);
    }
  }

  #queue(op: 'set' | 'del', key: string): void {
    this.#ops.push([op, key]);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#sendOps());
  }

  #sendOps(): void {
    this.#flushScheduled = false;
    const ops = this.#ops;
    this.#ops = [];
    if (ops.length === 0 || this.#closed) return;
    const now = String(Math.floor(Date.now() / 1000));
    const pipe = this.#redis.pipeline();
    let sets = 0;
    for (const [op, key] of ops) {
      if (op === 'set') {
        pipe.hset(key, this.#owner, now);
        sets++;
      } else {
        pipe.hdel(key, this.#owner);
      }
    }
    const p = pipe.exec().then(
      (results) => {
        if (results === null || results.some((r) => r[0] !== null)) this.#errors++;
        else {
          this.#published += sets;
          this.#removed += ops.length - sets;
        }
      },
      () => {
        this.#errors++;
      },
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Resolves once every publish issued so far has been answered. */
  async flush(): Promise<void> {
    if (this.#ops.length > 0) this.#sendOps();
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#ops.length > 0) this.#sendOps();
    this.#closed = true;
    await this.flush();
    this.#redis.disconnect();
  }
}
