/**
 * The simulator's stand-in for the Kthena runtime sidecar's KV events: when a simulated pod has
 * prefilled a prompt, it records in Redis that it now holds the prompt's KV blocks, exactly where
 * and how the sidecar does (`HSET matrix:kv:block:{model}@{hash} {pod}.{namespace} <unix seconds>`,
 * hash = Kthena's standardized block hash), so the router's kvcache-aware plugin can be exercised
 * end to end without GPUs.
 *
 * Only full blocks are written: engines (vLLM's BlockStored events) report full blocks only, so a
 * prompt's trailing partial block is never held by anyone.
 */

import { Redis } from 'ioredis';

import { KV_DEFAULT_BLOCK_SIZE, kvBlockHashes, kvBlockKey, kvOwnerId } from '../../workers/scheduler/kvcache-aware.js';

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
  #published = 0;
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

  /** Resolves once every publish issued so far has been answered. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush();
    this.#redis.disconnect();
  }
}
