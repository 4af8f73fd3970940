/**
 * Prompt block hashing for the prefix-cache plugin (docs/reference/kthena-behaviour.md §3.3, `prefix-cache`).
 *
 * Kthena's semantics, kept exactly:
 * - the prompt string is cut into `blockSizeToHash`-BYTE blocks of its UTF-8 encoding (a block may
 *   end in the middle of a multi-byte character, as Go's `prompt[start:end]` does);
 * - at most `maxBlocksToMatch` blocks; bytes after them are ignored;
 * - a trailing partial block counts as a block (Kthena's loop ends a block at `len(prompt)`), so
 *   `count = min(maxBlocksToMatch, ceil(utf8Bytes / blockSizeToHash))`; an empty prompt gives 0;
 * - the hashes are chained: h0 = H(model), h_i = H(h_{i-1} || block_i), so h_i identifies the model
 *   and the whole prefix up to block i (a hit on h_i implies hits on h_0..h_{i-1}).
 * Lone UTF-16 surrogates encode as U+FFFD, as Go's JSON decoder turns them into U+FFFD.
 *
 * Not bit-compatible with Kthena's xxh64 (the hashes never leave the process): H is a 64-bit
 * MurmurHash3-style hash computed as two 32-bit lanes (the x86_128 construction reduced to two
 * lanes, 8 bytes per round, Math.imul mixing with the lanes cross-fed every round, and the fmix32
 * avalanche on both lanes with cross-feeding at the end).
 * The previous hash enters as the first 8-byte round of the message, like Kthena's
 * `decimal(prev) || block`. A result of 0/0 is mapped to 1/0: 0/0 marks an empty index way.
 *
 * Cost: no allocation per call. Only the bytes that can be hashed are encoded: Buffer#write stops
 * at blockSizeToHash * maxBlocksToMatch (+3, so that a character straddling the last boundary is
 * complete) bytes, into a buffer kept across calls, and returns a plain number (unlike
 * TextEncoder#encodeInto, which allocates its {read, written} result). H(model) is cached per
 * model string (a Map of at most 1024 models, cleared when full).
 */

const C1 = 0x239b961b;
const C2 = 0xab0e9789 | 0;
const C3 = 0x38b34ae5;
const N1 = 0x561ccd1b;
const N2 = 0x0bcaa747;
const F1 = 0x85ebca6b | 0;
const F2 = 0xc2b2ae35 | 0;
// The "previous hash" that H(model) is chained from (any fixed pair).
const MODEL_SEED_LO = 0x6b746865; // "kthe"
const MODEL_SEED_HI = 0x6e61726f; // "naro"
const MAX_CACHED_MODELS = 1024;
/** Default upper bound of maxBlocksToMatch (Kthena's default is 128). */
export const kDefaultMaxPrefixBlocks = 1024;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, F1);
  h ^= h >>> 13;
  h = Math.imul(h, F2);
  h ^= h >>> 16;
  return h;
}

export class PrefixHasher {
  /** Low 32 bits of hash i, for i < the count returned by hash(). */
  readonly lo: Int32Array;
  /** High 32 bits of hash i. */
  readonly hi: Int32Array;
  /** Upper bound of maxBlocksToMatch (the length of lo/hi). */
  readonly maxBlocks: number;

  #buf: Buffer;
  #u8: Uint8Array;
  #i32: Int32Array;
  readonly #models = new Map<string, Int32Array>();
  // Lanes of the last digest (fields instead of a returned pair: no allocation).
  #h1 = 0;
  #h2 = 0;
  // The last hash() call, for the repeat check.
  #lastPrompt = '';
  #lastModel = '';
  #lastBlock = 0;
  #lastMax = 0;
  #lastCount = 0;

  constructor(maxBlocks: number = kDefaultMaxPrefixBlocks) {
    if (!Number.isInteger(maxBlocks) || maxBlocks < 1 || maxBlocks > 1 << 20) {
      throw new TypeError(`PrefixHasher: maxBlocks must be an integer in [1, 1048576], got ${String(maxBlocks)}`);
    }
    this.maxBlocks = maxBlocks;
    this.lo = new Int32Array(maxBlocks);
    this.hi = new Int32Array(maxBlocks);
    const ab = new ArrayBuffer(0);
    this.#buf = Buffer.from(ab);
    this.#u8 = new Uint8Array(ab);
    this.#i32 = new Int32Array(ab);
    this.#ensure(64 * Math.min(maxBlocks, 128));
  }

  /**
   * Hashes the first min(maxBlocksToMatch, ceil(bytes / blockSizeToHash)) blocks of the UTF-8
   * encoding of `prompt`, chained from H(model), into lo/hi. Returns the number of hashes.
   * Throws a RangeError for a block size < 1 or maxBlocksToMatch outside [1, maxBlocks]
   * (configuration validation must have rejected those).
   */
  hash(model: string, prompt: string, blockSizeToHash: number, maxBlocksToMatch: number): number {
    if (prompt.length === 0) return 0;
    if (!(blockSizeToHash >= 1) || (blockSizeToHash | 0) !== blockSizeToHash) {
      throw new RangeError(`PrefixHasher: blockSizeToHash must be a positive integer, got ${String(blockSizeToHash)}`);
    }
    if (!(maxBlocksToMatch >= 1) || maxBlocksToMatch > this.maxBlocks || (maxBlocksToMatch | 0) !== maxBlocksToMatch) {
      throw new RangeError(`PrefixHasher: maxBlocksToMatch must be an integer in [1, ${this.maxBlocks}], got ${String(maxBlocksToMatch)}`);
    }
    // The same request hashed again (a PD request schedules its decode pods, then the prefill pods
    // of each group): the hashes are still in lo/hi. Identity of the prompt string is what is
    // compared first, so a repeat costs nothing for a long prompt.
    if (prompt === this.#lastPrompt && model === this.#lastModel && blockSizeToHash === this.#lastBlock && maxBlocksToMatch === this.#lastMax) {
      return this.#lastCount;
    }
    // H(model) first: on a cache miss it uses the encode buffer as scratch.
    let model0 = this.#models.get(model);
    if (model0 === undefined) model0 = this.#modelHash(model);
    const limit = blockSizeToHash * maxBlocksToMatch;
    this.#ensure(limit);
    // Buffer#write stops at the byte capacity and never writes a partial character, hence the
    // +3: a character that starts before `limit` is always complete, so the first `limit` bytes
    // are exactly those of the full encoding. The rest of the string is never encoded.
    let bytes = this.#buf.write(prompt, 0, limit + 3, 'utf8');
    if (bytes > limit) bytes = limit;

    let lo = model0[0];
    let hi = model0[1];
    let count = 0;
    for (let start = 0; start < bytes; start += blockSizeToHash) {
      const len = bytes - start < blockSizeToHash ? bytes - start : blockSizeToHash;
      this.#digest(lo, hi, start, len);
      lo = this.#h1;
      hi = this.#h2;
      if (lo === 0 && hi === 0) lo = 1;
      this.lo[count] = lo;
      this.hi[count] = hi;
      count++;
    }
    this.#lastPrompt = prompt;
    this.#lastModel = model;
    this.#lastBlock = blockSizeToHash;
    this.#lastMax = maxBlocksToMatch;
    this.#lastCount = count;
    return count;
  }

  #ensure(limit: number): void {
    const need = limit + 3;
    if (this.#u8.length >= need) return;
    const ab = new ArrayBuffer((need + 7) & ~7);
    this.#buf = Buffer.from(ab);
    this.#u8 = new Uint8Array(ab);
    this.#i32 = new Int32Array(ab);
  }

  /** On a cache miss only (allocates the cached pair). */
  #modelHash(model: string): Int32Array {
    const len = Buffer.byteLength(model, 'utf8');
    this.#ensure(len);
    this.#buf.write(model, 0, len, 'utf8');
    this.#digest(MODEL_SEED_LO, MODEL_SEED_HI, 0, len);
    const h = new Int32Array(2);
    h[0] = this.#h1;
    h[1] = this.#h2;
    if (h[0] === 0 && h[1] === 0) h[0] = 1;
    if (this.#models.size >= MAX_CACHED_MODELS) this.#models.clear();
    this.#models.set(model, h);
    return h;
  }

  /** H(prev || bytes[start, start + len)) into #h1/#h2. */
  #digest(prevLo: number, prevHi: number, start: number, len: number): void {
    let h1 = 0x9e3779b9 | 0;
    let h2 = 0x7f4a7c15;
    // Round 0: the previous hash as the first word pair. A round is a bijection of the state
    // (rotations, x += y, y += x, odd multipliers), with the two multiplies independent so that
    // they run in parallel (murmur3 x86_128 chains its lanes serially).
    let k1 = Math.imul(prevLo, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2);
    let k2 = Math.imul(prevHi, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3);
    let a = h1 ^ k1; a = (a << 19) | (a >>> 13);
    let b = h2 ^ k2; b = (b << 17) | (b >>> 15);
    a = (a + b) | 0; b = (b + a) | 0;
    h1 = (Math.imul(a, 5) + N1) | 0;
    h2 = (Math.imul(b, 5) + N2) | 0;

    const u8 = this.#u8;
    const full = len & ~7;
    let p = start;
    const end = start + full;
    if (LITTLE_ENDIAN && (start & 3) === 0) {
      const i32 = this.#i32;
      for (let w = start >> 2; p < end; p += 8, w += 2) {
        k1 = Math.imul(i32[w], C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2);
        k2 = Math.imul(i32[w + 1], C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3);
        a = h1 ^ k1; a = (a << 19) | (a >>> 13);
        b = h2 ^ k2; b = (b << 17) | (b >>> 15);
        a = (a + b) | 0; b = (b + a) | 0;
        h1 = (Math.imul(a, 5) + N1) | 0;
        h2 = (Math.imul(b, 5) + N2) | 0;
      }
    } else {
      for (; p < end; p += 8) {
        const w0 = u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24);
        const w1 = u8[p + 4] | (u8[p + 5] << 8) | (u8[p + 6] << 16) | (u8[p + 7] << 24);
        k1 = Math.imul(w0, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2);
        k2 = Math.imul(w1, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3);
        a = h1 ^ k1; a = (a << 19) | (a >>> 13);
        b = h2 ^ k2; b = (b << 17) | (b >>> 15);
        a = (a + b) | 0; b = (b + a) | 0;
        h1 = (Math.imul(a, 5) + N1) | 0;
        h2 = (Math.imul(b, 5) + N2) | 0;
      }
    }
    // Tail: 0..7 bytes, little-endian, folded in without a round (as murmur3 does); the length
    // in the finalization tells "ab" from "ab\0".
    const rem = len - full;
    if (rem > 0) {
      let w0 = 0;
      let w1 = 0;
      for (let i = rem - 1; i >= 4; i--) w1 = (w1 << 8) | u8[p + i];
      for (let i = (rem < 4 ? rem : 4) - 1; i >= 0; i--) w0 = (w0 << 8) | u8[p + i];
      if (rem > 4) {
        k2 = Math.imul(w1, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3); h2 ^= k2;
      }
      k1 = Math.imul(w0, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2); h1 ^= k1;
    }
    const total = len + 8;
    h1 ^= total; h2 ^= total;
    h1 = (h1 + h2) | 0; h2 = (h2 + h1) | 0;
    h1 = fmix32(h1); h2 = fmix32(h2);
    h1 = (h1 + h2) | 0; h2 = (h2 + h1) | 0;
    this.#h1 = h1;
    this.#h2 = h2;
  }
}
