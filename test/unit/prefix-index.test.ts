import { describe, expect, it } from 'vitest';
import {
  allocatePrefixIndex, epIndex, kEndpointStride, kEpGen, kEpPrefixEntries, kMaxModelIds,
  kPxHashHi, kPxHashLo, kPxHdrBuckets, kPxHdrEntries, kPxHdrEvictions, kPxSeq, kPxSlot, kPxSlotGen, kPxWays,
  pxWayIndex,
} from '../../src/shared/layout.js';
import { PrefixHasher } from '../../workers/scheduler/prefix-hash.js';
import { PrefixIndex } from '../../workers/scheduler/prefix-index.js';

/** Hashes as (lo, hi) pairs, copied out of the hasher. */
function hashes(h: PrefixHasher, model: string, prompt: string, bs: number, max: number): Array<[number, number]> {
  const n = h.hash(model, prompt, bs, max);
  return Array.from({ length: n }, (_, i) => [h.lo[i], h.hi[i]] as [number, number]);
}

/** Deterministic PRNG (tests must not flake). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

describe('PrefixHasher', () => {
  const h = new PrefixHasher(1024);

  it('gives no hashes for an empty prompt', () => {
    expect(h.hash('m', '', 64, 128)).toBe(0);
  });

  it('cuts 64-byte blocks, a trailing partial block counting as a block (Kthena chunking)', () => {
    expect(h.hash('m', 'a'.repeat(64), 64, 128)).toBe(1);
    expect(h.hash('m', 'a'.repeat(65), 64, 128)).toBe(2);
    expect(h.hash('m', 'a'.repeat(128), 64, 128)).toBe(2);
    expect(h.hash('m', 'a', 64, 128)).toBe(1);
  });

  it('answers a repeated call (a PD request scheduling both phases) with the same hashes, and a changed argument afresh', () => {
    const p = 'abcdefgh'.repeat(64); // 8 whole blocks of 64 bytes
    const first = hashes(h, 'm', p, 64, 128);
    expect(hashes(h, 'm', p, 64, 128)).toEqual(first);
    expect(hashes(h, 'other', p, 64, 128)).not.toEqual(first);
    expect(hashes(h, 'm', p, 32, 128)).toHaveLength(Math.ceil(Buffer.byteLength(p) / 32));
    expect(hashes(h, 'm', p, 64, 2)).toEqual(first.slice(0, 2));
    expect(hashes(h, 'm', p + 'x'.repeat(64), 64, 128)).toEqual([...first, ...hashes(h, 'm', p + 'x'.repeat(64), 64, 128).slice(first.length)]);
    expect(hashes(h, 'm', p, 64, 128)).toEqual(first);
  });

  it('gives equal leading hashes for a shared prefix and different ones after it', () => {
    const shared = 'system: be brief. '.repeat(10); // 180 bytes: blocks 0 and 1 are shared
    const a = hashes(h, 'm', shared + 'user: hello world, how are you today?', 64, 128);
    const b = hashes(h, 'm', shared + 'user: goodbye cruel world, see you later', 64, 128);
    expect(a.length).toBe(4);
    expect(b.length).toBe(4);
    expect(a.slice(0, 2)).toEqual(b.slice(0, 2));
    expect(a[2]).not.toEqual(b[2]);
    expect(a[3]).not.toEqual(b[3]);
  });

  it('chains: a different first block changes every later hash', () => {
    const a = hashes(h, 'm', 'x' + 'a'.repeat(255), 64, 128);
    const b = hashes(h, 'm', 'y' + 'a'.repeat(255), 64, 128);
    for (let i = 0; i < 4; i++) expect(a[i]).not.toEqual(b[i]);
  });

  it('keys every hash on the model', () => {
    const p = 'the same prompt, long enough for several blocks of sixty-four bytes each. '.repeat(4);
    const a = hashes(h, 'llama', p, 64, 128);
    const b = hashes(h, 'llama-lora', p, 64, 128);
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) expect(a[i]).not.toEqual(b[i]);
    expect(hashes(h, 'llama', p, 64, 128)).toEqual(a); // cached model hash gives the same result
  });

  it('counts blocks in UTF-8 bytes, splitting multi-byte characters as Go slicing does', () => {
    // 'é' = C3 A9, 'è' = C3 A8: "aaaé" is 5 bytes, block 0 = "aaa" + C3 in both prompts.
    const e1 = hashes(h, 'm', 'aaaé', 4, 128);
    const e2 = hashes(h, 'm', 'aaaè', 4, 128);
    expect(e1.length).toBe(2);
    expect(e1[0]).toEqual(e2[0]);
    expect(e1[1]).not.toEqual(e2[1]);
    expect(hashes(h, 'm', 'aaab', 4, 128)[0]).not.toEqual(e1[0]);
    // 4-byte characters (surrogate pairs in JS): '😀' = F0 9F 98 80, '😃' = F0 9F 98 83.
    expect(h.hash('m', '😀😀', 3, 128)).toBe(3); // 8 bytes
    const s1 = hashes(h, 'm', 'ab😀', 3, 128);
    const s2 = hashes(h, 'm', 'ab😃', 3, 128);
    expect(s1.length).toBe(2);
    expect(s1[0]).toEqual(s2[0]); // "ab" + F0
    expect(s1[1]).not.toEqual(s2[1]); // 9F 98 80 vs 9F 98 83
    // Non-ASCII Latin-1 (one-byte V8 strings) still encode as two UTF-8 bytes.
    expect(h.hash('m', 'ÿ'.repeat(4), 4, 128)).toBe(2);
  });

  it('encodes a lone surrogate as U+FFFD, like Go', () => {
    expect(hashes(h, 'm', 'ab\uD800cd', 64, 128)).toEqual(hashes(h, 'm', 'ab\uFFFDcd', 64, 128));
  });

  it('a character straddling the last hashed byte is cut exactly there', () => {
    // maxBlocks * blockSize = 4 bytes: "abc" + the first byte of the emoji.
    const a = hashes(h, 'm', 'abc😀 and much more text', 4, 1);
    expect(a.length).toBe(1);
    expect(hashes(h, 'm', 'abc😃', 4, 1)).toEqual(a);
    expect(hashes(h, 'm', 'abc\u00f0', 4, 1)).not.toEqual(a); // ð = C3 B0: byte 3 differs
  });

  it('caps at maxBlocksToMatch: prompts differing only after the cap hash the same', () => {
    const base = 'z'.repeat(5 * 16);
    expect(h.hash('m', base + 'tail one', 16, 5)).toBe(5);
    expect(hashes(h, 'm', base + 'tail one', 16, 5)).toEqual(hashes(h, 'm', base + 'another tail', 16, 5));
    expect(hashes(h, 'm', base + 'tail one', 16, 5)).toEqual(hashes(h, 'm', base, 16, 5));
  });

  it('hashes a 100 KB prompt as its first blockSize * maxBlocks bytes', () => {
    const r = prng(7);
    let big = '';
    while (big.length < 100 * 1024) big += String.fromCharCode(0x20 + Math.floor(r() * 0x5f)) + (r() < 0.05 ? 'é€😀' : '');
    const cap = 64 * 128;
    const prefix = Buffer.from(big, 'utf8').subarray(0, cap + 8).toString('utf8'); // whole chars beyond the cap
    const a = hashes(h, 'm', big, 64, 128);
    expect(a.length).toBe(128);
    expect(hashes(h, 'm', prefix, 64, 128)).toEqual(a);
    expect(hashes(h, 'm', big.slice(0, big.length - 10) + 'different', 64, 128)).toEqual(a);
  });

  it('h_i are equal exactly when the first (i+1) * blockSize bytes are (random multi-byte prompts)', () => {
    const r = prng(42);
    const alphabet = ['a', 'b', 'é', '€', '😀', '\u0000', ' '];
    const gen = (n: number) => {
      let s = '';
      for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      return s;
    };
    for (const bs of [1, 3, 5, 8, 13, 64]) {
      for (let t = 0; t < 60; t++) {
        const common = gen(Math.floor(r() * 30));
        const p1 = common + gen(Math.floor(r() * 30));
        const p2 = r() < 0.3 ? p1 : common + gen(Math.floor(r() * 30));
        const max = 1 + Math.floor(r() * 12);
        const b1 = Buffer.from(p1, 'utf8');
        const b2 = Buffer.from(p2, 'utf8');
        const h1 = hashes(h, 'm', p1, bs, max);
        const h2 = hashes(h, 'm', p2, bs, max);
        expect(h1.length).toBe(Math.min(max, Math.ceil(b1.length / bs)));
        for (let i = 0; i < Math.min(h1.length, h2.length); i++) {
          const end1 = Math.min(b1.length, (i + 1) * bs);
          const end2 = Math.min(b2.length, (i + 1) * bs);
          const same = end1 === end2 && b1.subarray(0, end1).equals(b2.subarray(0, end2));
          expect(h1[i][0] === h2[i][0] && h1[i][1] === h2[i][1]).toBe(same);
        }
      }
    }
  });

  it('never yields 0/0 and spreads over buckets', () => {
    const r = prng(3);
    const low = new Set<number>();
    for (let t = 0; t < 2000; t++) {
      const n = h.hash('m', `prompt ${t} ${r()}`, 8, 64);
      for (let i = 0; i < n; i++) {
        expect(h.lo[i] !== 0 || h.hi[i] !== 0).toBe(true);
        low.add(h.lo[i] & 255);
      }
    }
    expect(low.size).toBe(256);
  });

  it('gives the same result whatever was hashed before (buffer reuse)', () => {
    const p = 'x'.repeat(100) + 'é'.repeat(50);
    const before = hashes(h, 'm', p, 7, 30);
    h.hash('other', 'y'.repeat(5000), 64, 128);
    h.hash('m', 'short', 1, 3);
    expect(hashes(h, 'm', p, 7, 30)).toEqual(before);
    expect(hashes(new PrefixHasher(30), 'm', p, 7, 30)).toEqual(before);
  });

  it('rejects configurations outside its bounds', () => {
    expect(() => new PrefixHasher(0)).toThrow(TypeError);
    expect(() => h.hash('m', 'p', 0, 10)).toThrow(RangeError);
    expect(() => h.hash('m', 'p', 64, 1025)).toThrow(RangeError);
    expect(new PrefixHasher().maxBlocks).toBe(1024);
  });
});

// ---------------------------------------------------------------------------------------------

interface Fixture {
  px: Int32Array;
  ep: Int32Array;
  index: PrefixIndex;
  clock: { t: number };
  buckets: number;
}

/** An index of `entries` ways over `slots` endpoint slots, every slot at generation 1. */
function fixture(entries: number, slots = 16): Fixture {
  const sab = allocatePrefixIndex(entries, 1_700_000_000);
  const ep = new Int32Array(new SharedArrayBuffer(slots * kEndpointStride * 4));
  for (let s = 0; s < slots; s++) ep[epIndex(s, kEpGen)] = 1;
  const clock = { t: 1_700_000_000_000 + 1 };
  const index = new PrefixIndex(sab, ep, () => clock.t);
  const px = new Int32Array(sab);
  return { px, ep, index, clock, buckets: px[kPxHdrBuckets] };
}

/** Hash arrays from (bucket, tag) pairs: lo selects the bucket, hi/lo high bits identify the hash. */
function hs(...pairs: Array<[bucket: number, tag: number]>): { lo: Int32Array; hi: Int32Array; n: number } {
  const lo = new Int32Array(pairs.length);
  const hi = new Int32Array(pairs.length);
  pairs.forEach(([b, tag], i) => { lo[i] = b | (tag << 12); hi[i] = 0x5000 + tag; });
  return { lo, hi, n: pairs.length };
}

/** Candidates: [slot, gen] pairs. Returns { out, found }. */
function match(f: Fixture, h: { lo: Int32Array; hi: Int32Array; n: number }, cands: Array<[number, number]>, topK = 5) {
  const slots = Int32Array.from(cands.map((c) => c[0]));
  const gens = Int32Array.from(cands.map((c) => c[1]));
  const out = new Float64Array(cands.length).fill(-1);
  const found = f.index.match(h.lo, h.hi, h.n, slots, gens, cands.length, topK, out);
  return { out: Array.from(out), found };
}

function insert(f: Fixture, h: { lo: Int32Array; hi: Int32Array; n: number }, slot: number, modelId = 0, cap = 1_000_000, gen?: number) {
  f.index.insert(h.lo, h.hi, h.n, slot, gen ?? f.ep[epIndex(slot, kEpGen)], modelId, cap);
}

/** Reassigns a slot to a new pod the way the publisher does (counters zeroed, generation + 1). */
function reassign(f: Fixture, slot: number): void {
  Atomics.store(f.ep, epIndex(slot, kEpPrefixEntries), 0);
  Atomics.add(f.ep, epIndex(slot, kEpGen), 1);
}

/** Recounts the table: occupied ways, live ways per slot. */
function census(f: Fixture, slots: number) {
  let occupied = 0;
  const live = new Array<number>(slots).fill(0);
  for (let b = 0; b < f.buckets; b++) {
    for (let w = 0; w < kPxWays; w++) {
      const p = pxWayIndex(b, w);
      expect(f.px[p + kPxSeq] & 1).toBe(0);
      if (f.px[p + kPxHashLo] === 0 && f.px[p + kPxHashHi] === 0) continue;
      occupied++;
      const slot = f.px[p + kPxSlot];
      if (f.px[p + kPxSlotGen] === f.ep[epIndex(slot, kEpGen)]) live[slot]++;
    }
  }
  return { occupied, live };
}

describe('PrefixIndex.match (Kthena FindTopMatches)', () => {
  // Hashes h0..h4 of one prompt, spread over buckets.
  const prompt = hs([1, 10], [2, 11], [3, 12], [4, 13], [5, 14]);
  const take = (k: number[]) => {
    const lo = Int32Array.from(k.map((i) => prompt.lo[i]));
    const hi = Int32Array.from(k.map((i) => prompt.hi[i]));
    return { lo, hi, n: k.length };
  };

  function setup() {
    const f = fixture(1024);
    insert(f, take([0, 1, 2, 3, 4]), 0); // A: the whole prompt
    insert(f, take([0, 1, 2]), 1); // B: 3 blocks
    insert(f, take([0]), 2); // C: 1 block
    insert(f, take([3]), 4); // E: only h3 (Kthena trusts the chain: matchLen 4)
    insert(f, take([0, 1, 2, 3, 4]), 5); // F: holds everything, never a candidate below
    return f;
  }

  it('gives each candidate the index + 1 of the last hash it holds, 0 without one', () => {
    const f = setup();
    expect(match(f, prompt, [[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]])).toEqual({ out: [5, 3, 1, 0, 4], found: 4 });
  });

  it('stops once topK candidates matched, scanning from the last hash backwards', () => {
    const f = setup();
    // i=4: A; i=3: E -> 2 found, stop: B and C keep 0 although they hold h0..
    expect(match(f, prompt, [[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]], 2)).toEqual({ out: [5, 0, 0, 0, 4], found: 2 });
    expect(match(f, prompt, [[2, 1], [1, 1]], 1)).toEqual({ out: [0, 3], found: 1 });
  });

  it('counts only candidates toward topK (a non-candidate holder does not stop the scan)', () => {
    const f = setup();
    expect(match(f, prompt, [[2, 1]], 1)).toEqual({ out: [1], found: 1 });
  });

  it('with topK reached inside one hash, exactly topK of its holders match', () => {
    const f = setup();
    const r = match(f, prompt, [[0, 1], [5, 1]], 1);
    expect(r.found).toBe(1);
    expect(r.out.sort()).toEqual([0, 5]);
  });

  it('ignores entries of another generation of the slot (a departed pod)', () => {
    const f = setup();
    reassign(f, 0);
    expect(match(f, prompt, [[0, 2], [1, 1]])).toEqual({ out: [0, 3], found: 1 });
  });

  it('clears its slot table between calls (no match leaks to another candidate list)', () => {
    const f = setup();
    expect(match(f, prompt, [[0, 1]]).out).toEqual([5]);
    // slot 0 is no candidate now: its entries must not land on index 0 (slot 3, which holds nothing).
    expect(match(f, prompt, [[3, 1]])).toEqual({ out: [0], found: 0 });
    expect(match(f, prompt, [], 5)).toEqual({ out: [], found: 0 });
  });

  it('matches nothing on an empty index or for no hashes', () => {
    const f = fixture(64);
    expect(match(f, prompt, [[0, 1], [1, 1]])).toEqual({ out: [0, 0], found: 0 });
    expect(match(setup(), { lo: new Int32Array(0), hi: new Int32Array(0), n: 0 }, [[0, 1]])).toEqual({ out: [0], found: 0 });
  });

  it('skips a way whose seqlock is held by a writer (odd seq)', () => {
    const f = fixture(8); // one bucket
    insert(f, hs([0, 1]), 0);
    const p = pxWayIndex(0, 0);
    expect(f.px[p + kPxSlot]).toBe(0);
    Atomics.add(f.px, p + kPxSeq, 1); // a writer is halfway through
    expect(match(f, hs([0, 1]), [[0, 1]]).out).toEqual([0]);
    Atomics.add(f.px, p + kPxSeq, 1);
    expect(match(f, hs([0, 1]), [[0, 1]]).out).toEqual([1]);
  });

  it('works end to end with the hasher: matchLen = shared leading blocks', () => {
    const f = fixture(4096);
    const h = new PrefixHasher();
    const sys = 'You are a careful assistant. Answer in one line. '.repeat(4); // 196 bytes
    const n1 = h.hash('llama', sys + 'Q1: what is 2+2?', 16, 128);
    f.index.insert(h.lo, h.hi, n1, 3, 1, 0, 50_000);
    const n2 = h.hash('llama', sys + 'Q2: the capital of France?', 16, 128);
    const out = new Float64Array(2);
    expect(f.index.match(h.lo, h.hi, n2, Int32Array.of(3, 4), Int32Array.of(1, 1), 2, 5, out)).toBe(1);
    expect(out[0]).toBe(Math.floor(Buffer.byteLength(sys + 'Q') / 16));
    expect(out[1]).toBe(0);
  });
});

describe('PrefixIndex.insert', () => {
  it('counts entries in the header and per endpoint, refreshing instead of duplicating', () => {
    const f = fixture(1024);
    insert(f, hs([1, 1], [2, 2], [3, 3]), 0);
    insert(f, hs([1, 1], [2, 2]), 1);
    insert(f, hs([1, 1], [2, 2], [3, 3]), 0); // refresh
    expect(f.index.entries()).toBe(5);
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(3);
    expect(f.ep[epIndex(1, kEpPrefixEntries)]).toBe(2);
    expect(f.index.evictions()).toBe(0);
    expect(f.index.capacity).toBe(1024);
  });

  it('skips a pod whose slot moved to another generation', () => {
    const f = fixture(64);
    insert(f, hs([0, 1]), 0, 0, 1000, 7);
    expect(f.index.entries()).toBe(0);
    expect(match(f, hs([0, 1]), [[0, 7]]).out).toEqual([0]);
  });

  it('evicts the least recently inserted way of a full bucket, counting it per model', () => {
    const f = fixture(8); // one bucket of 8 ways
    for (let k = 0; k < 8; k++) {
      f.clock.t += 10;
      insert(f, hs([0, 100 + k]), k, k === 0 ? 3 : 9); // pod k holds hash k; entry 0 of model 3
    }
    expect(f.index.entries()).toBe(8);
    f.clock.t += 10;
    insert(f, hs([0, 100]), 1, 9); // refresh? no: (hash 0, pod 1) is new -> evicts pod 0's entry (oldest)
    expect(f.index.entries()).toBe(8);
    expect(f.index.evictions()).toBe(1);
    expect(f.px[kPxHdrEvictions]).toBe(1);
    expect(f.index.evictionsByModelId[3]).toBe(1);
    expect(f.index.evictionsByModelId.length).toBe(kMaxModelIds);
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(0);
    expect(f.ep[epIndex(1, kEpPrefixEntries)]).toBe(2);
    expect(match(f, hs([0, 100]), [[0, 1], [1, 1]]).out).toEqual([0, 1]);

    // Refresh pod 1's hash 101 (now the oldest): the next insert evicts pod 2's instead.
    f.clock.t += 10;
    insert(f, hs([0, 101]), 1);
    f.clock.t += 10;
    insert(f, hs([0, 200]), 9, -1); // modelId -1 on the new entry; the evicted one was model 9
    expect(match(f, hs([0, 101]), [[1, 1]]).out).toEqual([1]);
    expect(match(f, hs([0, 102]), [[2, 1]]).out).toEqual([0]);
    expect(f.index.evictions()).toBe(2);
    expect(f.index.evictionsByModelId[9]).toBe(1);
    // Evicting an entry that was inserted with modelId -1 counts in the header only.
    for (let k = 0; k < 8; k++) { f.clock.t += 10; insert(f, hs([0, 300 + k]), 10); }
    expect(f.index.evictions()).toBe(10);
    expect(f.index.evictionsByModelId.reduce((a, b) => a + b, 0)).toBe(9);
    const { occupied, live } = census(f, 16);
    expect(occupied).toBe(f.index.entries());
    for (let s = 0; s < 16; s++) expect(f.ep[epIndex(s, kEpPrefixEntries)]).toBe(live[s]);
  });

  it('orders stamps with wrap-around (an Int32 stamp past 2^31 ms is still newer)', () => {
    const f = fixture(8);
    f.clock.t = 1_700_000_000_000 + 2 ** 31 - 100; // stamps near the Int32 maximum
    insert(f, hs([0, 1]), 0);
    for (let k = 1; k < 8; k++) { f.clock.t += 30; insert(f, hs([0, 1 + k]), k); } // these wrap negative
    f.clock.t += 30;
    insert(f, hs([0, 50]), 8);
    expect(match(f, hs([0, 1]), [[0, 1]]).out).toEqual([0]); // the oldest went
    expect(match(f, hs([0, 8]), [[7, 1]]).out).toEqual([1]); // the most negative stamp stayed
  });

  it('reclaims ways of a departed pod as free, without counting an eviction', () => {
    const f = fixture(8);
    for (let k = 0; k < 8; k++) insert(f, hs([0, k + 1]), 0); // pod in slot 0 fills the bucket
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(8);
    reassign(f, 0);
    expect(f.index.entries()).toBe(8); // occupancy: reclaimed lazily
    insert(f, hs([0, 50]), 1);
    insert(f, hs([0, 51]), 0); // the slot's new pod
    expect(f.index.evictions()).toBe(0);
    expect(f.index.entries()).toBe(8);
    expect(f.ep[epIndex(1, kEpPrefixEntries)]).toBe(1);
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(1);
    expect(match(f, hs([0, 50], [0, 51]), [[1, 1], [0, 2]]).out).toEqual([1, 2]);
    // Live entries are evicted only once no departed pod's way is left.
    for (let k = 0; k < 6; k++) insert(f, hs([0, 60 + k]), 2);
    expect(f.index.evictions()).toBe(0);
    insert(f, hs([0, 70]), 3);
    expect(f.index.evictions()).toBe(1);
  });

  it('caps entries per pod: at the cap a pod only replaces its own oldest entry in the bucket', () => {
    const f = fixture(16); // two buckets
    insert(f, hs([0, 1]), 0, 0, 2);
    f.clock.t += 5;
    insert(f, hs([0, 2]), 0, 0, 2);
    f.clock.t += 5;
    insert(f, hs([0, 3]), 0, 0, 2); // at the cap: replaces hash 1 (its oldest)
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(2);
    expect(f.index.entries()).toBe(2);
    expect(f.index.evictions()).toBe(1);
    expect(f.index.evictionsByModelId[0]).toBe(1);
    expect(match(f, hs([0, 1], [0, 2], [0, 3]), [[0, 1]]).out).toEqual([3]);
    expect(match(f, hs([0, 1]), [[0, 1]]).out).toEqual([0]);
    insert(f, hs([1, 4]), 0, 0, 2); // no own entry in bucket 1: skipped although ways are free
    expect(match(f, hs([1, 4]), [[0, 1]]).out).toEqual([0]);
    expect(f.index.entries()).toBe(2);
    insert(f, hs([1, 4]), 0, 0, 3); // under a larger cap it goes in
    expect(match(f, hs([1, 4]), [[0, 1]]).out).toEqual([1]);
    // Another pod still evicts the capped pod's entries normally.
    for (let k = 0; k < 8; k++) { f.clock.t += 5; insert(f, hs([0, 10 + k]), 1); }
    expect(f.ep[epIndex(0, kEpPrefixEntries)]).toBe(1);
  });

  it('keeps every counter equal to a recount of the table under random churn', () => {
    const r = prng(99);
    const slots = 12;
    const f = fixture(64, slots); // 8 buckets: constant eviction
    const perModel = new Float64Array(kMaxModelIds);
    for (let step = 0; step < 4000; step++) {
      f.clock.t += Math.floor(r() * 3);
      const x = r();
      if (x < 0.02) {
        reassign(f, Math.floor(r() * slots));
        continue;
      }
      const slot = Math.floor(r() * slots);
      const n = 1 + Math.floor(r() * 6);
      const pairs: Array<[number, number]> = [];
      for (let i = 0; i < n; i++) pairs.push([Math.floor(r() * 8), Math.floor(r() * 40)]);
      const modelId = Math.floor(r() * 4) - 1;
      insert(f, hs(...pairs), slot, modelId, x < 0.5 ? 1_000 : 5);
    }
    perModel.set(f.index.evictionsByModelId);
    const { occupied, live } = census(f, slots);
    expect(f.px[kPxHdrEntries]).toBe(occupied);
    for (let s = 0; s < slots; s++) expect(f.ep[epIndex(s, kEpPrefixEntries)]).toBe(live[s]);
    expect(f.index.evictions()).toBeGreaterThan(100);
    expect(perModel.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(f.index.evictions());
  });
});

describe('PrefixIndex construction', () => {
  it('rejects what is not a prefix index or an endpoint region', () => {
    const ep = new Int32Array(new SharedArrayBuffer(kEndpointStride * 4));
    expect(() => new PrefixIndex(new SharedArrayBuffer(64), ep)).toThrow(TypeError);
    expect(() => new PrefixIndex(new ArrayBuffer(64) as unknown as SharedArrayBuffer, ep)).toThrow(TypeError);
    expect(() => new PrefixIndex(allocatePrefixIndex(64), new Int32Array(5))).toThrow(TypeError);
    expect(new PrefixIndex(allocatePrefixIndex(100), ep).capacity).toBe(128);
  });
});
