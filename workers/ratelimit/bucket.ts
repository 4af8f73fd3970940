/**
 * Continuous token buckets in shared memory, one budget for every worker thread of a router.
 *
 * Each bucket is Kthena's `golang.org/x/time/rate` bucket (capacity = the limit, refill = limit per
 * unit, starts full, refills continuously) written as GCRA: the whole state is one number, the
 * "theoretical arrival time" (TAT, ms), the instant at which the bucket will be full again. With
 * T = ms per token and B = capacity:
 *
 *   available(now) = B - max(0, TAT - now) / T          (may be negative: output debt)
 *   take n         : TAT' = max(TAT, now) + n T, allowed iff TAT' - now <= B T
 *
 * One number fits one 64-bit word (the Float64 bits, src/shared/layout.ts), so every update is a
 * lock-free CAS loop: load, compute, Atomics.compareExchange; a thread that lost the race reloads
 * and recomputes. Nothing here awaits or blocks. The refill needs no timer: it is the passing of
 * `now`.
 *
 * Float error: TAT grows by n T per take; the comparison allows a millionth of a token so that
 * taking exactly the capacity from a full bucket never fails on a rounding of the last bit.
 */
import { kRlGen, kRlHdrEpochMs, kRlTat, rlIndex } from '../../src/shared/layout.js';

/** What the snapshot carries for one bucket (workers/ratelimit/compile.ts builds it). */
export interface BucketSpec {
  /** Slot in the shared region, and the slot's generation when the snapshot was published. */
  readonly slot: number;
  readonly gen: number;
  /** Tokens per unit = capacity. */
  readonly capacity: number;
  /** unit seconds * 1000 / capacity. */
  readonly msPerToken: number;
}

/** Kthena's units (docs/reference/kthena-behaviour.md §5.1): `month` is 30 days. */
export const kUnitSeconds: Readonly<Record<string, number>> = Object.freeze({
  second: 1, minute: 60, hour: 3600, day: 86_400, month: 2_592_000,
});

const kEpsilonTokens = 1e-6;

// ---- pure math (exported for the unit tests and the Redis script's documentation) ------------

/** Tokens available at `now` (ms) for a bucket whose TAT is `tat`; negative while in debt. */
export function availableAt(tat: number, now: number, capacity: number, msPerToken: number): number {
  const behind = tat - now;
  return behind <= 0 ? capacity : capacity - behind / msPerToken;
}

/** The TAT after taking `n` tokens at `now`, or NaN when fewer than `n` are available. */
export function takeAt(tat: number, now: number, n: number, capacity: number, msPerToken: number): number {
  const next = (tat > now ? tat : now) + n * msPerToken;
  return next - now <= (capacity + kEpsilonTokens) * msPerToken ? next : NaN;
}

/** The TAT after charging `n` tokens at `now` whatever is available (output tokens already spent). */
export function chargeAt(tat: number, now: number, n: number, msPerToken: number): number {
  return (tat > now ? tat : now) + n * msPerToken;
}

/** The TAT after giving back `n` tokens taken earlier (never beyond a full bucket). */
export function refundAt(tat: number, now: number, n: number, msPerToken: number): number {
  if (tat <= now) return tat;
  const back = tat - n * msPerToken;
  return back > now ? back : now;
}

// ---- shared buckets ------------------------------------------------------------------------------

// Per-thread scratch to move a Float64 in and out of its 64-bit pattern without allocating.
const f64 = new Float64Array(1);
const bits = new BigInt64Array(f64.buffer);

function toFloat(b: bigint): number {
  bits[0] = b;
  return f64[0];
}

function toBits(x: number): bigint {
  f64[0] = x;
  return bits[0];
}

/** The shared buckets as seen from one thread. */
export class SharedBuckets {
  readonly #w: BigInt64Array;
  /** performance.timeOrigin - the region's epoch: now() = offset + performance.now(). */
  readonly #offset: number;

  constructor(rateLimitSab: SharedArrayBuffer) {
    this.#w = new BigInt64Array(rateLimitSab);
    this.#offset = performance.timeOrigin - Number(Atomics.load(this.#w, kRlHdrEpochMs));
  }

  /**
   * Milliseconds since the region's epoch. Every thread derives it from the wall clock at its own
   * start plus its monotonic clock, so threads agree to within the wall clock's resolution.
   */
  now(): number {
    return this.#offset + performance.now();
  }

  /** Takes `n` tokens if that many are available; false (and nothing taken) otherwise. */
  take(b: BucketSpec, n: number, now = this.now()): boolean {
    const w = this.#w;
    const i = rlIndex(b.slot, kRlTat);
    for (;;) {
      const cur = Atomics.load(w, i);
      const next = takeAt(toFloat(cur), now, n, b.capacity, b.msPerToken);
      if (next !== next) return false; // NaN: refused
      if (Atomics.compareExchange(w, i, cur, toBits(next)) === cur) return true;
    }
  }

  /** Tokens available now (a read; Kthena's `Tokens()`). */
  available(b: BucketSpec, now = this.now()): number {
    return availableAt(toFloat(Atomics.load(this.#w, rlIndex(b.slot, kRlTat))), now, b.capacity, b.msPerToken);
  }

  /**
   * Charges `n` tokens already spent (output tokens reported by the engine), going into debt when
   * fewer are left: later requests wait for the debt to be refilled. Skipped when the slot was
   * given to another bucket since the snapshot this request started with.
   */
  charge(b: BucketSpec, n: number, now = this.now()): void {
    const w = this.#w;
    if (Number(Atomics.load(w, rlIndex(b.slot, kRlGen))) !== b.gen) return;
    const i = rlIndex(b.slot, kRlTat);
    for (;;) {
      const cur = Atomics.load(w, i);
      if (Atomics.compareExchange(w, i, cur, toBits(chargeAt(toFloat(cur), now, n, b.msPerToken))) === cur) return;
    }
  }

  /** Gives back `n` tokens taken by take() (the request was refused for another reason). */
  refund(b: BucketSpec, n: number, now = this.now()): void {
    const w = this.#w;
    const i = rlIndex(b.slot, kRlTat);
    for (;;) {
      const cur = Atomics.load(w, i);
      if (Atomics.compareExchange(w, i, cur, toBits(refundAt(toFloat(cur), now, n, b.msPerToken))) === cur) return;
    }
  }
}
