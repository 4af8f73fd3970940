/**
 * The KV-block key scheme Kthena's runtime sidecars write into Redis and the `kvcache-aware` scorer
 * reads (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/kvcache_aware.go): one hash per
 * block of prompt tokens, one Redis hash per block, one field per pod holding it.
 *
 *   key   `matrix:kv:block:{model}@{decimal hash}`
 *   field `{podName}.{namespace}` = unix seconds of the write
 *   hash  SHA-256 over the block's token ids as big-endian uint32, first 8 bytes big-endian,
 *         & 0x7FFFFFFFFFFFFFFF; blocks are hashed on their own (not chained), the trailing
 *         partial block included.
 *
 * Three parties must agree on it byte for byte: the scorer (workers/scheduler/kvcache-aware.ts),
 * the hourly GC of stale owners (src/kvgc.ts) and the simulator's KV-event publisher, which plays
 * the runtime sidecar. So it lives here, imported by each, rather than inside any one of them.
 */
import { createHash } from 'node:crypto';

export const KV_BLOCK_KEY_PREFIX = 'matrix:kv:block:';
/** Kthena's defaults (kvcache_aware.go). */
export const KV_DEFAULT_BLOCK_SIZE = 16;
export const KV_DEFAULT_MAX_BLOCKS = 128;

const MASK63 = 0x7fffffffffffffffn;

let scratch = new Uint8Array(KV_DEFAULT_BLOCK_SIZE * KV_DEFAULT_MAX_BLOCKS * 4);

/** Writes tokens[0..n) as big-endian uint32 (Go's uint32(int): wraps modulo 2^32) into `scratch`. */
function encodeTokens(tokens: ArrayLike<number>, n: number): Uint8Array {
  const bytes = n * 4;
  if (scratch.length < bytes) scratch = new Uint8Array(Math.max(bytes, scratch.length * 2));
  const b = scratch;
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    const t = tokens[i] >>> 0;
    b[o] = t >>> 24;
    b[o + 1] = (t >>> 16) & 0xff;
    b[o + 2] = (t >>> 8) & 0xff;
    b[o + 3] = t & 0xff;
  }
  return b;
}

function hashRange(b: Uint8Array, start: number, end: number): bigint {
  const d = createHash('sha256').update(b.subarray(start, end)).digest();
  return d.readBigUInt64BE(0) & MASK63;
}

function blockCount(nTokens: number, blockSize: number, maxBlocks: number): number {
  return Math.min(Math.ceil(nTokens / blockSize), maxBlocks);
}

/**
 * Kthena's block hashes of a token sequence: blocks of `blockSize` tokens (the last one may be
 * partial), at most `maxBlocks` of them, each hashed on its own (not chained). Kthena's
 * computeStandardizedHash / the runtime's compute_standardized_hash.
 */
export function kvBlockHashes(tokens: ArrayLike<number>, blockSize: number, maxBlocks: number): bigint[] {
  checkBlockArgs(blockSize, maxBlocks);
  const nBlocks = blockCount(tokens.length, blockSize, maxBlocks);
  const n = Math.min(tokens.length, nBlocks * blockSize);
  const b = encodeTokens(tokens, n);
  const out: bigint[] = new Array(nBlocks);
  for (let i = 0; i < nBlocks; i++) {
    out[i] = hashRange(b, i * blockSize * 4, Math.min((i + 1) * blockSize, n) * 4);
  }
  return out;
}

/** Redis key of one block: `matrix:kv:block:{model}@{decimal hash}`. */
export function kvBlockKey(model: string, hash: bigint | string): string {
  return KV_BLOCK_KEY_PREFIX + model + '@' + hash;
}

/** The owner field the runtime writes: `{podName}.{namespace}`. */
export function kvOwnerId(podName: string, namespace: string): string {
  return podName + '.' + namespace;
}

function checkBlockArgs(blockSize: number, maxBlocks: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new TypeError(`blockSize must be an integer >= 1, got ${blockSize}`);
  if (!(maxBlocks >= 1) || (maxBlocks !== Infinity && !Number.isInteger(maxBlocks))) {
    throw new TypeError(`maxBlocks must be an integer >= 1 (or Infinity), got ${maxBlocks}`);
  }
}

/** The Redis keys of every block of `tokens` for `model`, in block order. */
export function kvBlockKeys(model: string, tokens: ArrayLike<number>, blockSize: number, maxBlocks: number): string[] {
  const nBlocks = blockCount(tokens.length, blockSize, maxBlocks);
  const n = Math.min(tokens.length, nBlocks * blockSize);
  const b = encodeTokens(tokens, n);
  const prefix = KV_BLOCK_KEY_PREFIX + model + '@';
  const keys: string[] = new Array(nBlocks);
  for (let i = 0; i < nBlocks; i++) {
    keys[i] = prefix + hashRange(b, i * blockSize * 4, Math.min((i + 1) * blockSize, n) * 4);
  }
  return keys;
}
