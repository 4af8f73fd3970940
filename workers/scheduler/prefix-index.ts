/**
 * The prefix-cache index shared by every worker thread (the store behind Kthena's `prefix-cache`
 * plugin, docs/reference/kthena-behaviour.md §3.3). Layout and write protocol: src/shared/layout.ts,
 * "Prefix-cache index". Hashes come from PrefixHasher (prefix-hash.ts).
 *
 * Capacity
 * --------
 * A fixed, set-associative table allocated once at startup (allocatePrefixIndex):
 * kPxHdrBuckets (a power of two) buckets of kPxWays (8) ways. One way holds one
 * (block hash, endpoint slot, slot generation) entry, so a block that N pods hold takes N ways of
 * its bucket. Memory is kPxWayInts * 4 = 32 bytes per entry; the default
 * kDefaultPrefixIndexEntries = 262,144 entries is 8 MiB, shared by all workers (Kthena keeps a Go
 * map per pod instead, 50,000 entries each by default, unbounded in total).
 *
 * Eviction (approximate LRU)
 * --------------------------
 * A hash can only live in its bucket (low bits of the hash). Inserting it for a pod:
 * - if a way of the bucket already holds (hash, slot, gen), its stamp is refreshed;
 * - else the way taken is, in order: a free way (never used, or held by a departed pod: its
 *   slotGen no longer equals the slot's kEpGen), else the way with the oldest stamp, whoever
 *   holds it. So a full bucket evicts its least recently inserted entry, even when every way is
 *   held by other pods (8 pods sharing one block fill a bucket; a 9th evicts the oldest of them).
 *   Overwriting a live entry is an eviction: kPxHdrEvictions and, in this worker,
 *   evictionsByModelId[model id of the evicted entry] count it (Kthena's
 *   kthena_router_prefix_cache_evictions_total{model}).
 * - Per-pod cap (Kthena's maxHashCacheSize): a pod whose kEpPrefixEntries has reached the cap may
 *   only replace its own oldest entry in that bucket (counted as an eviction, as Kthena counts its
 *   per-pod LRU evictions); with none of its own entries there, the insert of that hash is
 *   skipped. Under concurrent inserts for the same pod the cap can be overshot by at most one
 *   entry per concurrently inserting worker.
 * - Matching never refreshes stamps (Kthena's lookup does not touch its LRU either).
 * - Stamps are milliseconds since kPxHdrEpochSec as Int32, compared with wrap-around
 *   ((a - b) | 0): ordering is exact for entries less than 24.8 days apart. Among ways with the
 *   same oldest stamp (a burst within one millisecond) the victim is chosen uniformly at random,
 *   so a burst does not keep replacing the same way. All hashes of one insert() share a stamp
 *   (Kthena inserts a request's hashes last to first into its LRU so that short prefixes outlive
 *   long ones; with one stamp per request and the hashes in different buckets, order is moot).
 *
 * Departed pods (no clearSlot)
 * ----------------------------
 * Nothing scans the table when a pod leaves. The control thread bumps the slot's kEpGen when it
 * gives the slot to another pod (and zeroes kEpPrefixEntries); entries made for the old
 * generation then never match (match() compares slotGen with the candidate's gen) and count as
 * free ways, reclaimed lazily by the next insert into their bucket without counting an eviction.
 * kPxHdrEntries counts occupied ways, so it includes such dead entries until they are reclaimed
 * (it is the occupancy of the table, an upper bound of Kthena's entry gauge after pod churn).
 *
 * Races
 * -----
 * Any worker writes (post-schedule hook), any worker reads (scoring); nobody blocks.
 * - Writer: scans the bucket (Atomics.load of each seq, plain reads of the fields: they only
 *   guide the choice), then Atomics.compareExchange(seq, s, s + 1) on the chosen way with the seq
 *   s (even) seen during the scan; Atomics.store of the fields; Atomics.store(seq, s + 2).
 *   Losing the exchange (another writer took the way first, or it changed since the scan) drops
 *   the insert of that one hash: the index is a hint, never a correctness input.
 * - Reader: plain reads of hashHi/slot/slotGen filter the ways (no atomics for the ways that
 *   cannot be a new match); a possible match is then read under the seqlock:
 *   s1 = Atomics.load(seq), Atomics.load of hashHi, hashLo, slot, slotGen, s2 = Atomics.load(seq),
 *   and counts only if s1 is even and s1 === s2. Atomics are sequentially consistent, so a reader
 *   never uses a torn entry (the hash of one write with the slot of another); a way being written
 *   at that moment is skipped (at worst a missed hit). test/unit/prefix-index-threads.test.ts
 *   hammers this from two threads and fails on any torn match.
 * - A stamp refresh is a single Atomics.store outside the seqlock; racing with a claim of the same
 *   way it can at worst give the new entry a slightly different stamp (LRU order only).
 * - Counters are exact (Atomics.add/sub) while slots keep their pods. A slot is reset only once
 *   its in-flight count is 0, so as long as the post-schedule insert runs before the request's
 *   in-flight decrement, no insert for the old pod overlaps the reset. What remains: a worker
 *   that evicts an entry of a slot's old pod exactly while the slot is reset can leave the new
 *   pod's kEpPrefixEntries off by one (it only feeds the per-pod cap).
 *
 * Allocation: none per call. Candidate lookup by slot is O(1): a slot -> candidate index + 1
 * table sized to the endpoint region, set and cleared by each match() (candidate slots must be
 * distinct). Cost of match(): one plain load per way of each bucket scanned (8 per hash), plus a
 * seqlock read per new match.
 */
import {
  epIndex, kEndpointStride, kEpGen, kEpPrefixEntries, kMaxModelIds,
  kPxHashHi, kPxHashLo, kPxHdrBuckets, kPxHdrEntries, kPxHdrEpochSec, kPxHdrEvictions, kPxHeaderInts,
  kPxModelId, kPxSeq, kPxSlot, kPxSlotGen, kPxStamp, kPxWayInts, kPxWays,
} from '../../src/shared/layout.js';

const kBucketInts = kPxWays * kPxWayInts;

export class PrefixIndex {
  /**
   * Evictions counted by this worker, per model id of the evicted entry (index < kMaxModelIds).
   * Entries inserted with modelId -1 are counted only in the shared kPxHdrEvictions.
   */
  readonly evictionsByModelId = new Float64Array(kMaxModelIds);

  readonly #px: Int32Array;
  readonly #ep: Int32Array;
  readonly #mask: number;
  readonly #epochMs: number;
  readonly #now: () => number;
  /** slot -> candidate index + 1 during match(); all zero between calls. */
  readonly #candOf: Int32Array;
  /** xorshift32 state for tie-breaks between equal stamps. */
  #rng = (Math.random() * 0x7fffffff) | 1;

  constructor(prefixSab: SharedArrayBuffer, ep: Int32Array, nowMs: () => number = Date.now) {
    if (!(prefixSab instanceof SharedArrayBuffer)) {
      throw new TypeError('PrefixIndex: prefixSab must be a SharedArrayBuffer (allocatePrefixIndex)');
    }
    if (!(ep instanceof Int32Array) || ep.length % kEndpointStride !== 0) {
      throw new TypeError(`PrefixIndex: ep must be an Int32Array over the endpoint region (a multiple of ${kEndpointStride} ints)`);
    }
    const px = new Int32Array(prefixSab);
    const buckets = px.length > kPxHdrBuckets ? px[kPxHdrBuckets] : 0;
    if (buckets < 1 || (buckets & (buckets - 1)) !== 0 || px.length !== kPxHeaderInts + buckets * kBucketInts) {
      throw new TypeError(`PrefixIndex: prefixSab is not a prefix index (buckets=${buckets}, ${prefixSab.byteLength} bytes)`);
    }
    if (typeof nowMs !== 'function') throw new TypeError('PrefixIndex: nowMs must be a function returning milliseconds');
    this.#px = px;
    this.#ep = ep;
    this.#mask = buckets - 1;
    this.#epochMs = px[kPxHdrEpochSec] * 1000;
    this.#now = nowMs;
    this.#candOf = new Int32Array(ep.length / kEndpointStride);
  }

  /** Number of ways: the most entries the index can hold. */
  get capacity(): number { return (this.#mask + 1) * kPxWays; }

  /** Occupied ways (kPxHdrEntries), shared by all workers; includes departed pods' entries not yet reclaimed. */
  entries(): number {
    const n = Atomics.load(this.#px, kPxHdrEntries);
    return n > 0 ? n : 0;
  }

  /** Live entries replaced by an insert, all workers (kPxHdrEvictions). */
  evictions(): number { return Atomics.load(this.#px, kPxHdrEvictions) >>> 0; }

  /**
   * Kthena's FindTopMatches over candidates j < n, endpoint (slots[j], gens[j]) (distinct slots):
   * scanning hashes from the last one backwards, every candidate holding hash i that has no match
   * yet gets out[j] = i + 1; stops once topK candidates matched. out[j] = 0 for no match.
   * Returns the number of candidates with a match.
   */
  match(
    lo: Int32Array, hi: Int32Array, count: number,
    slots: Int32Array, gens: Int32Array, n: number, topK: number, out: Float64Array,
  ): number {
    const candOf = this.#candOf;
    for (let j = 0; j < n; j++) {
      out[j] = 0;
      candOf[slots[j]] = j + 1;
    }
    const px = this.#px;
    const mask = this.#mask;
    let found = 0;
    scan: for (let i = count - 1; i >= 0; i--) {
      const hLo = lo[i];
      const hHi = hi[i];
      const base = kPxHeaderInts + (hLo & mask) * kBucketInts;
      for (let p = base, end = base + kBucketInts; p < end; p += kPxWayInts) {
        // Plain reads as a filter only (most ways fail here without any atomic load); a
        // possible new match is re-read under the way's seqlock below.
        if (px[p + kPxHashHi] !== hHi) continue;
        let slot = px[p + kPxSlot];
        if (slot < 0 || slot >= candOf.length) continue;
        let c = candOf[slot];
        if (c === 0 || out[c - 1] !== 0 || gens[c - 1] !== px[p + kPxSlotGen]) continue;
        const s1 = Atomics.load(px, p + kPxSeq);
        if ((s1 & 1) !== 0) continue;
        if (Atomics.load(px, p + kPxHashHi) !== hHi || Atomics.load(px, p + kPxHashLo) !== hLo) continue;
        slot = Atomics.load(px, p + kPxSlot);
        const gen = Atomics.load(px, p + kPxSlotGen);
        if (Atomics.load(px, p + kPxSeq) !== s1) continue;
        if (slot < 0 || slot >= candOf.length) continue;
        c = candOf[slot];
        if (c === 0) continue;
        const j = c - 1;
        if (gens[j] !== gen || out[j] !== 0) continue;
        out[j] = i + 1;
        if (++found >= topK) break scan;
      }
    }
    for (let j = 0; j < n; j++) candOf[slots[j]] = 0;
    return found;
  }

  /**
   * Post-schedule hook: records that endpoint (slot, gen) now holds hashes 0..count-1 (made for
   * model id `modelId`, -1 = none). Skips everything if the slot no longer has generation `gen`.
   * See the header comment for way selection, the per-pod cap and races.
   */
  insert(
    lo: Int32Array, hi: Int32Array, count: number,
    slot: number, gen: number, modelId: number, maxEntriesPerPod: number,
  ): void {
    const px = this.#px;
    const ep = this.#ep;
    if (count <= 0 || Atomics.load(ep, epIndex(slot, kEpGen)) !== gen) return;
    const countIdx = epIndex(slot, kEpPrefixEntries);
    const stamp = (this.#now() - this.#epochMs) | 0;
    const mask = this.#mask;
    for (let i = 0; i < count; i++) {
      const hLo = lo[i];
      const hHi = hi[i];
      const base = kPxHeaderInts + (hLo & mask) * kBucketInts;
      let free = -1;
      let freeSeq = 0;
      let oldest = -1;
      let oldestSeq = 0;
      let oldestStamp = 0;
      let own = -1;
      let ownSeq = 0;
      let ownStamp = 0;
      let oldestTies = 0; // ways seen with the oldest stamp (uniform choice among them)
      let ownTies = 0;
      let refreshed = false;
      for (let p = base, end = base + kBucketInts; p < end; p += kPxWayInts) {
        // The seq is read atomically, the fields plainly: they are only used to choose a way,
        // and the compareExchange from this seq below fails if the way changed since.
        const s = Atomics.load(px, p + kPxSeq);
        if ((s & 1) !== 0) continue; // being written: neither a hit nor a victim
        const wLo = px[p + kPxHashLo];
        const wHi = px[p + kPxHashHi];
        if (wLo === 0 && wHi === 0) {
          if (free < 0) { free = p; freeSeq = s; }
          continue;
        }
        const wSlot = px[p + kPxSlot];
        const wGen = px[p + kPxSlotGen];
        const wStamp = px[p + kPxStamp];
        if (wSlot === slot && wGen === gen) {
          if (wLo === hLo && wHi === hHi && Atomics.load(px, p + kPxSeq) === s) {
            Atomics.store(px, p + kPxStamp, stamp);
            refreshed = true;
            break;
          }
          const d = own < 0 ? -1 : (wStamp - ownStamp) | 0;
          if (d < 0 || (d === 0 && this.#tieBreak(++ownTies))) {
            own = p; ownSeq = s; ownStamp = wStamp;
            if (d < 0) ownTies = 1;
          }
        } else if (ep[wSlot * kEndpointStride + kEpGen] !== wGen) {
          if (free < 0) { free = p; freeSeq = s; } // a departed pod's entry
          continue;
        }
        const d = oldest < 0 ? -1 : (wStamp - oldestStamp) | 0;
        if (d < 0 || (d === 0 && this.#tieBreak(++oldestTies))) {
          oldest = p; oldestSeq = s; oldestStamp = wStamp;
          if (d < 0) oldestTies = 1;
        }
      }
      if (refreshed) continue;

      let p: number;
      let s: number;
      if (Atomics.load(ep, countIdx) >= maxEntriesPerPod) {
        if (own < 0) continue;
        p = own; s = ownSeq;
      } else if (free >= 0) {
        p = free; s = freeSeq;
      } else {
        p = oldest; s = oldestSeq;
      }
      if (p < 0 || Atomics.compareExchange(px, p + kPxSeq, s, s + 1) !== s) continue;
      // The way is ours until seq goes even again (the exchange synchronized with the last
      // publish of this way, so plain reads see what we replace). Readers re-read
      // hashLo/hashHi/slot/slotGen atomically, so those are stored atomically too.
      const oLo = px[p + kPxHashLo];
      const oHi = px[p + kPxHashHi];
      const oSlot = px[p + kPxSlot];
      const oGen = px[p + kPxSlotGen];
      const oModel = px[p + kPxModelId];
      Atomics.store(px, p + kPxHashLo, hLo);
      Atomics.store(px, p + kPxHashHi, hHi);
      Atomics.store(px, p + kPxSlot, slot);
      Atomics.store(px, p + kPxSlotGen, gen);
      Atomics.store(px, p + kPxModelId, modelId);
      Atomics.store(px, p + kPxStamp, stamp);
      Atomics.store(px, p + kPxSeq, s + 2);

      if (oLo === 0 && oHi === 0) {
        Atomics.add(px, kPxHdrEntries, 1); // a never-used way
        Atomics.add(ep, countIdx, 1);
      } else if (oSlot === slot && oGen === gen) {
        this.#evicted(oModel); // own entry replaced (per-pod cap): counts unchanged
      } else if (Atomics.load(ep, epIndex(oSlot, kEpGen)) === oGen) {
        this.#evicted(oModel); // another live pod's entry
        Atomics.sub(ep, epIndex(oSlot, kEpPrefixEntries), 1);
        Atomics.add(ep, countIdx, 1);
      } else {
        Atomics.add(ep, countIdx, 1); // a departed pod's way, reclaimed: occupancy unchanged
      }
    }
  }

  /**
   * Reservoir choice among ways with equal stamps (the same millisecond): the k-th tie replaces
   * the current pick with probability 1/k, so a burst of inserts into one bucket within one
   * millisecond spreads over its ways instead of always replacing the first.
   */
  #tieBreak(k: number): boolean {
    let x = this.#rng;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.#rng = x;
    return (x >>> 0) % k === 0;
  }

  #evicted(modelId: number): void {
    Atomics.add(this.#px, kPxHdrEvictions, 1);
    if (modelId >= 0 && modelId < kMaxModelIds) this.evictionsByModelId[modelId]++;
  }
}
