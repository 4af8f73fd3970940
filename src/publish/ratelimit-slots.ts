/**
 * Control thread: stable slots in the shared rate-limit region (src/shared/layout.ts) for the local
 * token buckets of the routing IR, one per (route, model, direction).
 *
 * A bucket keeps its slot, and so its level, for as long as its key exists: a route update that
 * changes the limit or the unit does not refill a half-used bucket (Kthena re-creates its limiters
 * on every update). A key that disappears (route deleted, limit removed) frees its slot; a freed
 * slot is reused only after kRlQuarantineMs, and is then reset to full with the next generation.
 */
import type { RateLimitBucketIR, RouteIR } from '../ir/types.js';
import { kRlGen, kRlQuarantineMs, kRlTat, rateLimitBuckets, rlIndex } from '../shared/layout.js';

export class RateLimitSlotAllocator {
  readonly #w: BigInt64Array;
  readonly #capacity: number;
  readonly #byKey = new Map<string, number>();
  readonly #quarantine: { slot: number; until: number }[] = [];
  readonly #free: number[] = [];
  readonly #now: () => number;
  #next = 0;

  constructor(rateLimitSab: SharedArrayBuffer, now: () => number = Date.now) {
    this.#w = new BigInt64Array(rateLimitSab);
    this.#capacity = rateLimitBuckets(rateLimitSab);
    this.#now = now;
  }

  get size(): number { return this.#byKey.size; }

  /**
   * Routes with their local buckets filled in (Redis-backed limits have none), or null, changing
   * nothing, when the region has too few free slots.
   */
  assign(routes: readonly RouteIR[]): RouteIR[] | null {
    const wanted = new Map<string, { model: string; direction: 'input' | 'output' }>();
    for (const r of routes) {
      const rl = r.rateLimit;
      if (rl == null || rl.redisAddress !== '') continue;
      for (const model of modelsOf(r)) {
        if (rl.inputTokensPerUnit > 0) wanted.set(bucketKey(r.key, model, 'input'), { model, direction: 'input' });
        if (rl.outputTokensPerUnit > 0) wanted.set(bucketKey(r.key, model, 'output'), { model, direction: 'output' });
      }
    }
    const now = this.#now();
    let needed = 0;
    for (const k of wanted.keys()) if (!this.#byKey.has(k)) needed++;
    const reusable = this.#quarantine.filter((q) => q.until <= now).length;
    if (needed > this.#free.length + reusable + (this.#capacity - this.#next)) return null;

    for (const [k, slot] of this.#byKey) {
      if (!wanted.has(k)) {
        this.#byKey.delete(k);
        this.#quarantine.push({ slot, until: now + kRlQuarantineMs });
      }
    }
    for (let i = this.#quarantine.length - 1; i >= 0; i--) {
      if (this.#quarantine[i].until <= now) {
        this.#free.push(this.#quarantine[i].slot);
        this.#quarantine.splice(i, 1);
      }
    }
    for (const k of wanted.keys()) {
      if (this.#byKey.has(k)) continue;
      const slot = this.#free.pop() ?? this.#next++;
      // Full, then the new generation: a worker that sees the generation sees a full bucket.
      Atomics.store(this.#w, rlIndex(slot, kRlTat), 0n);
      Atomics.add(this.#w, rlIndex(slot, kRlGen), 1n);
      this.#byKey.set(k, slot);
    }

    return routes.map((r) => {
      const rl = r.rateLimit;
      if (rl == null || rl.redisAddress !== '') return r;
      const buckets: RateLimitBucketIR[] = [];
      for (const model of modelsOf(r)) {
        for (const direction of ['input', 'output'] as const) {
          const slot = this.#byKey.get(bucketKey(r.key, model, direction));
          if (slot === undefined) continue;
          buckets.push({ model, direction, slot, gen: Number(Atomics.load(this.#w, rlIndex(slot, kRlGen))) });
        }
      }
      return { ...r, rateLimit: { ...rl, buckets } };
    });
  }
}

/** The request models a route serves: its modelName and each LoRA adapter (Kthena PR #1237). */
function modelsOf(r: RouteIR): string[] {
  return r.modelName !== '' ? [r.modelName, ...r.loraAdapters] : r.loraAdapters;
}

function bucketKey(route: string, model: string, direction: string): string {
  return route + '\0' + model + '\0' + direction;
}
