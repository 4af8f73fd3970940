/**
 * The router-wide session-sticky table in shared memory (layout and protocol in
 * src/shared/layout.ts, "Session-sticky bindings"). Every worker reads and writes it without locks
 * and without blocking; a lost write race only means the next request of the session writes again.
 */
import {
  kStExpires, kStHashHi, kStHashLo, kStHdrBuckets, kStHdrEntries, kStHdrEpochSec, kStHdrEvictions,
  kStSeq, kStSlot, kStSlotGen, kStUsed, kStWays, stWayIndex,
} from '../../src/shared/layout.js';

/**
 * 64-bit hash of (route identity, session value), as two 32-bit halves written to `out`. Two FNV-1a
 * passes with different offsets and a murmur3 finaliser each; (0, 0) is reserved for a free way.
 */
export function stickyKeyHash(route: string, session: string, out: Int32Array): void {
  let a = 0x811c9dc5 | 0;
  let b = 0x6a09e667 | 0;
  for (let i = 0; i < route.length; i++) {
    const c = route.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a = Math.imul(a ^ 0xff, 0x01000193);
  b = Math.imul(b ^ 0xff, 0x5bd1e995);
  for (let i = 0; i < session.length; i++) {
    const c = session.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  out[0] = fmix(a);
  out[1] = fmix(b ^ a);
  if (out[0] === 0 && out[1] === 0) out[0] = 1;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export class StickyTable {
  readonly #t: Int32Array;
  readonly #mask: number;
  readonly #epoch: number;
  readonly #nowSec: () => number;
  /** kEpGen of the slot `get` returned (valid right after a hit; read instead of allocating a pair). */
  lastGen = 0;

  constructor(sab: SharedArrayBuffer, nowSec: () => number = () => Math.floor(Date.now() / 1000)) {
    this.#t = new Int32Array(sab);
    this.#mask = this.#t[kStHdrBuckets]! - 1;
    this.#epoch = this.#t[kStHdrEpochSec]!;
    this.#nowSec = nowSec;
  }

  get entries(): number {
    return Atomics.load(this.#t, kStHdrEntries);
  }

  get evictions(): number {
    return Atomics.load(this.#t, kStHdrEvictions);
  }

  /** The endpoint slot bound to the key (generation in `lastGen`), or -1 when none is live. */
  get(lo: number, hi: number): number {
    const t = this.#t;
    const now = this.#nowSec() - this.#epoch;
    const bucket = lo & this.#mask;
    for (let w = 0; w < kStWays; w++) {
      const i = stWayIndex(bucket, w);
      const s1 = Atomics.load(t, i + kStSeq);
      if ((s1 & 1) !== 0) continue;
      if (Atomics.load(t, i + kStHashLo) !== lo || Atomics.load(t, i + kStHashHi) !== hi) continue;
      const slot = Atomics.load(t, i + kStSlot);
      const gen = Atomics.load(t, i + kStSlotGen);
      const expires = Atomics.load(t, i + kStExpires);
      if (Atomics.load(t, i + kStSeq) !== s1) continue;
      if (expires <= now) return -1;
      this.lastGen = gen;
      return slot;
    }
    return -1;
  }

  /**
   * Binds the key to `slot` for `ttlSec` from now (a rebind and a TTL refresh are the same write).
   * Returns false when another writer held the way at that instant (the binding is not written).
   */
  set(lo: number, hi: number, slot: number, gen: number, ttlSec: number): boolean {
    const t = this.#t;
    const now = this.#nowSec() - this.#epoch;
    const bucket = lo & this.#mask;
    let target = -1;
    let oldest = -1;
    let oldestUsed = 0;
    let free = -1;
    for (let w = 0; w < kStWays; w++) {
      const i = stWayIndex(bucket, w);
      const hl = Atomics.load(t, i + kStHashLo);
      const hh = Atomics.load(t, i + kStHashHi);
      if (hl === lo && hh === hi) { target = i; break; }
      const live = (hl !== 0 || hh !== 0) && Atomics.load(t, i + kStExpires) > now;
      if (!live) { if (free < 0) free = i; continue; }
      const used = Atomics.load(t, i + kStUsed);
      if (oldest < 0 || used < oldestUsed) { oldest = i; oldestUsed = used; }
    }
    let evict = false;
    let fresh = false;
    if (target < 0) {
      if (free >= 0) { target = free; fresh = true; } else { target = oldest; evict = true; }
    }
    const seq = Atomics.load(t, target + kStSeq);
    if ((seq & 1) !== 0 || Atomics.compareExchange(t, target + kStSeq, seq, seq + 1) !== seq) return false;
    // A free way may have held an expired binding: it counted as live until now.
    const wasLive = (Atomics.load(t, target + kStHashLo) !== 0 || Atomics.load(t, target + kStHashHi) !== 0);
    Atomics.store(t, target + kStHashLo, lo);
    Atomics.store(t, target + kStHashHi, hi);
    Atomics.store(t, target + kStSlot, slot);
    Atomics.store(t, target + kStSlotGen, gen);
    Atomics.store(t, target + kStExpires, now + ttlSec);
    Atomics.store(t, target + kStUsed, now);
    Atomics.store(t, target + kStSeq, seq + 2);
    if (evict) Atomics.add(t, kStHdrEvictions, 1);
    else if (fresh && !wasLive) Atomics.add(t, kStHdrEntries, 1);
    return true;
  }

  /** Removes the key's binding (failover); false when there was none or a writer held it. */
  delete(lo: number, hi: number): boolean {
    const t = this.#t;
    const bucket = lo & this.#mask;
    for (let w = 0; w < kStWays; w++) {
      const i = stWayIndex(bucket, w);
      if (Atomics.load(t, i + kStHashLo) !== lo || Atomics.load(t, i + kStHashHi) !== hi) continue;
      const seq = Atomics.load(t, i + kStSeq);
      if ((seq & 1) !== 0 || Atomics.compareExchange(t, i + kStSeq, seq, seq + 1) !== seq) return false;
      Atomics.store(t, i + kStHashLo, 0);
      Atomics.store(t, i + kStHashHi, 0);
      Atomics.store(t, i + kStExpires, 0);
      Atomics.store(t, i + kStSeq, seq + 2);
      Atomics.sub(t, kStHdrEntries, 1);
      return true;
    }
    return false;
  }
}
