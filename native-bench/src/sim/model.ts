/**
 * The engine model behind a simulated pod in model mode (`SimPodSpec.model`): a vLLM-V1-style
 * continuous-batching scheduler over a paged KV cache with prefix caching, LoRA slots and
 * remote-KV (PD) admission, advanced one step at a time on a virtual clock. Pure: no timers, no
 * I/O, so unit tests drive it deterministically and the HTTP driver (native-bench/src/sim/driver.ts) only paces
 * its steps against the wall clock.
 *
 * ## Step model
 *
 * One engine step runs one forward pass over a batch; its duration is
 *
 *     step_ms = a + b * P + c * D + d * C / 1000 + loraLoadMs * (adapters loaded in this step)
 *
 * where P = prompt tokens computed in the step (uncached prefill, including chunks and
 * recomputation after preemption), D = sequences decoding one token, C = context tokens held by
 * those decoding sequences (d defaults to 0, see below). A step starts at
 * max(previous step end, arrival of the first eligible request); tokens are emitted at the step's
 * end (the step that completes a prompt samples its first token).
 *
 * Scheduling follows vLLM V1 (`vllm/v1/core/sched/scheduler.py`): running sequences first, in
 * admission order, each taking 1 token (decode) or the rest of its prompt (chunked prefill) from a
 * `maxNumBatchedTokens` budget; a running sequence that cannot get KV blocks preempts the newest
 * running sequence (recompute mode: its blocks are freed, it goes back to the front of the waiting
 * queue and recomputes prompt + generated tokens later). Then, if nothing was preempted, waiting
 * requests FCFS while budget, `maxNumSeqs` and free blocks allow; a request whose adapter would be
 * one more than `maxLoras` in the batch is skipped (kept at the front) for later ones.
 *
 * ## KV cache
 *
 * `floor(kvCacheTokens / blockSize)` blocks. Every full prompt block gets a chained hash (the
 * hash of all tokens up to the block's end, seeded by the LoRA adapter as vLLM's extra keys do);
 * a request's prefill starts after its longest cached prefix of blocks (at most all tokens but
 * one, as in vLLM, so the last token is always computed). Blocks referenced by a sequence are
 * pinned; freed blocks go to the tail of an LRU free queue (a sequence's blocks in reverse order, so
 * its tail blocks go first, as vLLM does) while keeping their hash, and allocating a block pops the
 * head of that queue, evicting its hash. Blocks of generated tokens are not hashed (vLLM caches
 * them too; the simulator's filler output cannot be re-tokenized into the same ids), so a multi-turn
 * follow-up hits on the previous prompt, not on the previous answer. KV usage = pinned blocks /
 * blocks, like `vllm:kv_cache_usage_perc` (evictable cached blocks count as free).
 *
 * ## Default coefficients (a 7B model on one 80 GB GPU with vLLM; docs/benchmarks-simulator.md)
 *
 * Orders of magnitude from memory of public vLLM numbers, not measurements of ours:
 * - a = 10 ms: a decode step at small batch reads all weights once (~15 GB for 7B in bf16) at
 *   2-3.3 TB/s (A100/H100) = 5-8 ms, plus scheduling, sampling and launch overhead; vLLM's
 *   inter-token latency for 7-8B models at low load is commonly reported at 8-15 ms.
 * - b = 0.06 ms/token: prefill is compute-bound at roughly 2 x 7e9 FLOP/token; at 40-50% of an
 *   H100's ~1e15 dense bf16 FLOP/s that is 15-20k tokens/s, i.e. 0.05-0.07 ms/token.
 * - c = 0.08 ms/sequence: the extra cost of one more decoding sequence (sampling, attention and
 *   activations at short context); a 256-sequence decode step then takes ~30 ms, i.e. ~8k output
 *   tokens/s, the range vLLM reaches for 7B on one GPU.
 * - d = 0 (optional): attention reads each sequence's KV every step, ~0.04 ms per 1k context
 *   tokens for a GQA-8 8B model on an H100 (128 KiB/token at 3.3 TB/s); off by default so that the
 *   step time is the three-coefficient formula, on for long-context studies.
 * - maxNumSeqs 256 (Kthena's benchmark setting; vLLM's default except on H100-class GPUs, where
 *   recent versions use 1024), maxNumBatchedTokens 8192 (vLLM's OpenAI-server default on >= 70 GB
 *   GPUs other than A100; `EngineArgs.get_batch_defaults`), blockSize 16 (vLLM's default).
 * - kvCacheTokens 400k: (80 GB x 0.9 - ~16 GB weights - ~4 GB activations) / 128 KiB per token
 *   (GQA-8 8B, bf16) ~ 400k; MHA Llama-2-7B (512 KiB/token) fits ~100k, GQA-4 Qwen2-7B ~900k.
 * - loraLoadMs 50: copying a rank-16 adapter (tens of MB) to the GPU and setting it up; loading
 *   from disk the first time takes longer.
 * - kvTransferMsPerKToken 5: 1k tokens of KV (~128 MB for GQA-8 8B) over RDMA at ~25-50 GB/s,
 *   plus handshake; TCP transports are 10x slower.
 */

import type { SimModelSpec } from './types.js';

export type { SimModelSpec } from './types.js';

export interface ModelConfig {
  readonly stepMs: number;
  readonly prefillMsPerToken: number;
  readonly decodeMsPerSeq: number;
  readonly decodeMsPerKContextToken: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly chunkedPrefill: boolean;
  readonly blockSize: number;
  readonly prefixCaching: boolean;
  readonly maxModelLen: number;
  readonly maxLoras: number;
  readonly loraLoadMs: number;
  readonly kvTransferMsPerKToken: number;
  /** KV capacity in tokens; the block count is floor(kvCacheTokens / blockSize). */
  readonly kvCacheTokens: number;
}

export const MODEL_DEFAULTS: ModelConfig = Object.freeze({
  stepMs: 10,
  prefillMsPerToken: 0.06,
  decodeMsPerSeq: 0.08,
  decodeMsPerKContextToken: 0,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  chunkedPrefill: true,
  blockSize: 16,
  prefixCaching: true,
  maxModelLen: 32768,
  maxLoras: 4,
  loraLoadMs: 50,
  kvTransferMsPerKToken: 5,
  kvCacheTokens: 400_000,
});

const NUMBER_FIELDS = ['stepMs', 'prefillMsPerToken', 'decodeMsPerSeq', 'decodeMsPerKContextToken', 'loraLoadMs', 'kvTransferMsPerKToken'] as const;
const INT_FIELDS = ['maxNumSeqs', 'maxNumBatchedTokens', 'blockSize', 'maxModelLen'] as const;
const BOOL_FIELDS = ['chunkedPrefill', 'prefixCaching'] as const;
const MODEL_KEYS: ReadonlySet<string> = new Set<string>([...NUMBER_FIELDS, ...INT_FIELDS, ...BOOL_FIELDS, 'maxLoras']);

/** Checks a `model` spec; throws TypeError naming the field. `at` names the pod. */
export function validateSimModelSpec(v: unknown, at: string): void {
  if (v === undefined) return;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${at}.model must be an object`);
  const s = v as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!MODEL_KEYS.has(k)) throw new TypeError(`${at}.model has unknown field "${k}"`);
  for (const k of NUMBER_FIELDS) {
    const x = s[k];
    if (x !== undefined && !(typeof x === 'number' && Number.isFinite(x) && x >= 0)) throw new TypeError(`${at}.model.${k} must be a number >= 0`);
  }
  for (const k of INT_FIELDS) {
    const x = s[k];
    if (x !== undefined && !(typeof x === 'number' && Number.isInteger(x) && x >= 1)) throw new TypeError(`${at}.model.${k} must be an integer >= 1`);
  }
  if (s.maxLoras !== undefined && !(typeof s.maxLoras === 'number' && Number.isInteger(s.maxLoras) && s.maxLoras >= 0)) {
    throw new TypeError(`${at}.model.maxLoras must be an integer >= 0`);
  }
  for (const k of BOOL_FIELDS) {
    if (s[k] !== undefined && typeof s[k] !== 'boolean') throw new TypeError(`${at}.model.${k} must be a boolean`);
  }
}

export function resolveModelConfig(spec: SimModelSpec = {}, kvCacheTokens?: number): ModelConfig {
  const cfg: ModelConfig = Object.freeze({
    ...MODEL_DEFAULTS,
    ...Object.fromEntries(Object.entries(spec).filter(([, x]) => x !== undefined)),
    kvCacheTokens: kvCacheTokens ?? MODEL_DEFAULTS.kvCacheTokens,
  });
  if (Math.floor(cfg.kvCacheTokens / cfg.blockSize) < 1) {
    throw new TypeError(`kvCacheTokens (${cfg.kvCacheTokens}) must hold at least one block of ${cfg.blockSize} tokens`);
  }
  return cfg;
}

/** A request the model refuses at admission; `message` is vLLM's wording where it has one. */
export class ModelReject extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'ModelReject';
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------------
// Block hashing: chained, 52-bit, as numbers (Map keys without BigInt or string allocation)
// ---------------------------------------------------------------------------------------------

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Seed of the hash chain: 0 for the base model, a hash of the adapter name otherwise. */
export function chainSeed(lora: string | null): number {
  if (lora === null) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < lora.length; i++) h = Math.imul(h ^ lora.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Chained hashes of the first `nBlocks` full blocks of `tokens`: block i's hash covers tokens
 * [0, (i+1) * blockSize) and the seed, so equal hashes mean equal prefixes (up to 2^-52).
 */
export function chainedBlockHashes(tokens: ArrayLike<number>, blockSize: number, nBlocks: number, seed: number): number[] {
  const out = new Array<number>(nBlocks);
  let h1 = (0x9747b28c ^ seed) >>> 0;
  let h2 = (0x2545f491 + Math.imul(seed, 0x9e3779b1)) >>> 0;
  let t = 0;
  for (let b = 0; b < nBlocks; b++) {
    for (let end = t + blockSize; t < end; t++) {
      const x = tokens[t] | 0;
      h1 = Math.imul(h1 ^ x, 0x01000193);
      h2 = Math.imul(h2 ^ x, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    const a = fmix32(h1 ^ b);
    const c = fmix32(h2 + Math.imul(b, 0x27d4eb2d));
    out[b] = (a & 0xfffff) * 0x100000000 + c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Block pool
// ---------------------------------------------------------------------------------------------

/** Called when a block enters the prefix cache (`stored`) or leaves it (`evicted`). */
export interface KvCacheListener {
  stored(block: number, seq: Seq, blockIndex: number): void;
  evicted(block: number): void;
}

const NO_HASH = -1;

class BlockPool {
  readonly size: number;
  readonly hash: Float64Array;
  readonly ref: Int32Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  readonly #inFree: Uint8Array;
  #head = -1;
  #tail = -1;
  numFree = 0;
  readonly cached = new Map<number, number>();
  evictions = 0;
  listener: KvCacheListener | null = null;

  constructor(size: number) {
    this.size = size;
    this.hash = new Float64Array(size).fill(NO_HASH);
    this.ref = new Int32Array(size);
    this.#prev = new Int32Array(size);
    this.#next = new Int32Array(size);
    this.#inFree = new Uint8Array(size);
    for (let i = 0; i < size; i++) this.#append(i);
  }

  #append(b: number): void {
    this.#prev[b] = this.#tail;
    this.#next[b] = -1;
    if (this.#tail >= 0) this.#next[this.#tail] = b;
    else this.#head = b;
    this.#tail = b;
    this.#inFree[b] = 1;
    this.numFree++;
  }

  #unlink(b: number): void {
    const p = this.#prev[b];
    const n = this.#next[b];
    if (p >= 0) this.#next[p] = n;
    else this.#head = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
    this.#inFree[b] = 0;
    this.numFree--;
  }

  isFree(b: number): boolean {
    return this.#inFree[b] === 1;
  }

  /** Takes a cached block for a sequence (a prefix hit). */
  touch(b: number): void {
    if (this.#inFree[b] === 1) this.#unlink(b);
    this.ref[b]++;
  }

  /** Pops the least recently freed block, evicting its cached hash. Caller checked numFree. */
  allocate(): number {
    const b = this.#head;
    this.#unlink(b);
    const h = this.hash[b];
    if (h !== NO_HASH) {
      this.cached.delete(h);
      this.hash[b] = NO_HASH;
      this.evictions++;
      this.listener?.evicted(b);
    }
    this.ref[b] = 1;
    return b;
  }

  release(b: number): void {
    if (--this.ref[b] === 0) this.#append(b);
  }

  /** Free blocks from the next to be evicted to the last (tests, /sim/state). */
  freeOrder(): number[] {
    const out: number[] = [];
    for (let b = this.#head; b >= 0; b = this.#next[b]) out.push(b);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Sequences
// ---------------------------------------------------------------------------------------------

export type SeqStatus = 'waiting' | 'transfer' | 'running' | 'finished' | 'aborted';

/** Remote KV (PD decode side): the prompt's KV arrives from a prefill pod instead of being computed. */
export interface RemoteKvSpec {
  /**
   * 'now': the prefill is already done (vLLM NIXL/Mooncake: the decode leg carries its
   * kv_transfer_params); 'signal': wait for `EngineModel.release` (SGLang bootstrap rendezvous).
   */
  start: 'now' | 'signal';
}

export interface SeqInput {
  /** Prompt token ids (native-bench/src/sim/tokenize.ts). */
  tokens: readonly number[];
  /** Tokens to generate (>= 1). */
  maxTokens: number;
  /** Virtual ms at which the request reaches the engine. */
  arrival: number;
  /** Adapter name, or null for the base model. */
  lora?: string | null;
  remoteKv?: RemoteKvSpec | null;
  /** Keep the block ids at finish (`Seq.finalBlockIds`), for a PD prefill answer. */
  keepBlockIds?: boolean;
  /** Opaque payload of the caller (the HTTP job). */
  data?: unknown;
}

let nextSeqId = 1;

export class Seq {
  readonly id = nextSeqId++;
  readonly tokens: readonly number[];
  readonly promptLen: number;
  readonly target: number;
  readonly arrival: number;
  readonly lora: string | null;
  readonly remote: RemoteKvSpec | null;
  readonly keepBlockIds: boolean;
  data: unknown;
  status: SeqStatus = 'waiting';
  numComputed = 0;
  generated = 0;
  blocks: number[] = [];
  /** Leading blocks of `blocks` already in the prefix cache. */
  numCachedBlocks = 0;
  hashes: number[] | null = null;
  /** Prompt tokens found in the cache when first admitted (-1 before); reported as cached_tokens. */
  cachedTokens = -1;
  /** Start of the first step that admitted it (or began its KV transfer); NaN before. */
  firstScheduledAt = NaN;
  /** Virtual end time of each generated token. */
  readonly tokenTimes: number[] = [];
  finishedAt = NaN;
  preemptions = 0;
  /** Remote KV: prompt tokens received from the prefill pod, and how long that took. */
  transferTokens = 0;
  transferMs = 0;
  /** Remote KV: when it may run (transfer done); Infinity while waiting for the signal. */
  readyAt = Infinity;
  /** Remote KV with start 'signal': when the prefill finished, once released. */
  signalAt = NaN;
  remoteDone = false;
  /** Whether the adapter had to be loaded for this sequence's first step. */
  loraLoaded = false;
  finalBlockIds: number[] | null = null;

  constructor(input: SeqInput) {
    this.tokens = input.tokens;
    this.promptLen = input.tokens.length;
    this.target = input.maxTokens;
    this.arrival = input.arrival;
    this.lora = input.lora ?? null;
    this.remote = input.remoteKv ?? null;
    this.keepBlockIds = input.keepBlockIds === true;
    this.data = input.data;
  }

  /** Tokens whose KV the sequence needs: prompt + generated (the last sampled one not yet computed). */
  get numTokens(): number {
    return this.promptLen + this.generated;
  }

  get firstTokenAt(): number {
    return this.tokenTimes.length > 0 ? this.tokenTimes[0] : NaN;
  }
}

export interface StepOutcome {
  start: number;
  end: number;
  /** Prompt tokens computed (b term). */
  prefillTokens: number;
  /** Sequences that decoded one token (c term). */
  decodeSeqs: number;
  /** Context tokens of the decoding sequences (d term). */
  contextTokens: number;
  /** Adapters loaded for this step. */
  loraLoads: string[];
  /** Sequences that produced one token at `end`, in batch order. */
  emitted: Seq[];
  /** Subset of `emitted` that reached their target (their blocks are freed). */
  finished: Seq[];
  /** Sequences preempted (sent back to waiting) in this step. */
  preempted: Seq[];
}

export interface ModelStats {
  running: number;
  /** Waiting requests, including those receiving remote KV. */
  waiting: number;
  transferring: number;
  kvUsage: number;
  kvBlocks: number;
  kvBlocksUsed: number;
  kvBlocksCached: number;
  evictions: number;
  preemptions: number;
  prefixQueries: number;
  prefixHits: number;
  /** Prompt tokens of requests whose prefill completed. */
  promptTokens: number;
  generationTokens: number;
  steps: number;
  /** Simulated ms spent in steps (the engine's busy time; elapsed minus this is idle). */
  busyMs: number;
  /** Prompt tokens computed by steps: uncached prefill, including recomputation after preemption. */
  prefillTokensComputed: number;
  lastStepEnd: number;
  residentLoras: string[];
}

export class EngineModel {
  readonly cfg: ModelConfig;
  readonly #pool: BlockPool;
  /** Admission order; the tail is the first preempted. */
  #running: Seq[] = [];
  #waiting: Seq[] = [];
  #transfers: Seq[] = [];
  /** Resident adapters, least recently used first. */
  readonly #loras: string[] = [];
  #lastEnd = 0;
  /** The last step scheduled nothing: wait for an event before retrying the waiting queue. */
  #stalled = false;
  preemptions = 0;
  prefixQueries = 0;
  prefixHits = 0;
  promptTokens = 0;
  generationTokens = 0;
  steps = 0;
  busyMs = 0;
  prefillTokensComputed = 0;

  constructor(cfg: ModelConfig) {
    this.cfg = cfg;
    this.#pool = new BlockPool(Math.floor(cfg.kvCacheTokens / cfg.blockSize));
  }

  set listener(l: KvCacheListener | null) {
    this.#pool.listener = l;
  }

  get numBlocks(): number {
    return this.#pool.size;
  }

  get lastStepEnd(): number {
    return this.#lastEnd;
  }

  /** Throws ModelReject for a request the engine would refuse (the checks of `submit`). */
  check(promptLen: number, maxTokens: number, lora: string | null): void {
    const c = this.cfg;
    const p = promptLen;
    if (p === 0) throw new ModelReject('The prompt cannot be empty.');
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new ModelReject('max_tokens must be at least 1.');
    if (p + maxTokens > c.maxModelLen) {
      throw new ModelReject(
        `This model's maximum context length is ${c.maxModelLen} tokens. However, you requested ` +
          `${p + maxTokens} tokens (${p} in the messages, ${maxTokens} in the completion). ` +
          'Please reduce the length of the messages or completion.',
      );
    }
    if (Math.ceil((p + maxTokens) / c.blockSize) > this.#pool.size) {
      throw new ModelReject(`The request needs ${p + maxTokens} tokens of KV cache, more than the ${this.#pool.size * c.blockSize} the engine has.`);
    }
    if (!c.chunkedPrefill && p + maxTokens > c.maxNumBatchedTokens) {
      throw new ModelReject(`The request (${p + maxTokens} tokens) does not fit max_num_batched_tokens (${c.maxNumBatchedTokens}) without chunked prefill.`);
    }
    if (lora !== null && c.maxLoras === 0) throw new ModelReject('LoRA adapters are not enabled (maxLoras is 0).');
  }

  /** Admits a request to the waiting queue; throws ModelReject for one the engine would refuse. */
  submit(input: SeqInput): Seq {
    this.check(input.tokens.length, input.maxTokens, input.lora ?? null);
    const seq = new Seq(input);
    this.#waiting.push(seq);
    this.#stalled = false;
    return seq;
  }

  /** Removes a sequence wherever it is (client gone, timeout), freeing its blocks. */
  abort(seq: Seq): void {
    const s = seq.status;
    if (s === 'finished' || s === 'aborted') return;
    if (s === 'waiting') remove(this.#waiting, seq);
    else if (s === 'running') remove(this.#running, seq);
    else remove(this.#transfers, seq);
    this.#free(seq);
    seq.status = 'aborted';
    this.#stalled = false;
  }

  /**
   * Remote KV with start 'signal': the prefill finished at virtual `at`; the transfer starts then
   * (or when the sequence gets its blocks, if later).
   */
  release(seq: Seq, at: number): void {
    if (seq.remote?.start !== 'signal' || !Number.isNaN(seq.signalAt)) return;
    seq.signalAt = at;
    if (seq.status === 'transfer') seq.readyAt = Math.max(at, seq.firstScheduledAt) + seq.transferMs;
    this.#stalled = false;
  }

  /** Makes an adapter resident ahead of requests (vLLM's /v1/load_lora_adapter pre-loads it). */
  preloadLora(name: string): boolean {
    if (this.cfg.maxLoras === 0) return false;
    const had = remove(this.#loras, name);
    this.#loras.push(name);
    if (!had) this.#evictLoras(new Set([name, ...this.#running.map((s) => s.lora).filter((l): l is string => l !== null)]));
    return !had;
  }

  unloadLora(name: string): void {
    remove(this.#loras, name);
  }

  /** When the next step can start (virtual ms), or null when there is nothing to do. */
  nextStart(): number | null {
    if (this.#running.length > 0) return this.#lastEnd;
    let t = Infinity;
    if (!this.#stalled) for (const s of this.#waiting) if (s.arrival < t) t = s.arrival;
    for (const s of this.#transfers) if (s.readyAt < t) t = s.readyAt;
    return t === Infinity ? null : Math.max(this.#lastEnd, t);
  }

  /**
   * Runs the next step (at `nextStart()`). Returns null when nothing could be scheduled; requests
   * still waiting then wait for an event (submit, abort, release, a transfer completing).
   */
  step(): StepOutcome | null {
    const start = this.nextStart();
    if (start === null) return null;
    const c = this.cfg;
    let budget = c.maxNumBatchedTokens;
    const batch: Seq[] = [];
    const counts: number[] = [];
    const batchLoras = new Set<string>();
    const preempted: Seq[] = [];

    // Remote KV received: ready to compute the last prompt token and decode.
    if (this.#transfers.length > 0) {
      const still: Seq[] = [];
      for (const s of this.#transfers) {
        if (s.readyAt <= start && this.#running.length < c.maxNumSeqs) {
          s.status = 'running';
          s.remoteDone = true;
          s.numComputed = s.promptLen - 1;
          this.#cacheBlocks(s);
          this.#running.push(s);
        } else {
          still.push(s);
        }
      }
      this.#transfers = still;
    }

    // Running sequences, oldest first; preempt the newest when blocks run out.
    for (let i = 0; i < this.#running.length && budget > 0; ) {
      const s = this.#running[i];
      const n = Math.min(s.numTokens - s.numComputed, budget);
      let ok = true;
      while (!this.#allocate(s, s.numComputed + n, null)) {
        const victim = this.#running.pop() as Seq;
        this.#preempt(victim);
        preempted.push(victim);
        if (victim === s) {
          ok = false;
          break;
        }
      }
      if (!ok) break;
      batch.push(s);
      counts.push(n);
      budget -= n;
      if (s.lora !== null) batchLoras.add(s.lora);
      i++;
    }

    // Waiting requests FCFS, unless this step had to preempt. Requests that cannot join this
    // batch (not arrived by its start, or their adapter would exceed maxLoras) keep their place.
    if (preempted.length === 0) {
      const w = this.#waiting;
      let admitted = 0;
      for (let i = 0; i < w.length && budget > 0 && this.#running.length < c.maxNumSeqs; i++) {
        const s = w[i];
        if (s.arrival > start) continue;
        if (s.lora !== null && !batchLoras.has(s.lora) && batchLoras.size >= c.maxLoras) continue;
        const hits = this.#lookup(s);
        const cached = hits.length * c.blockSize;
        if (s.remote !== null && !s.remoteDone) {
          // Blocks for the whole prompt now; the KV of the uncached part arrives over the wire.
          if (!this.#allocate(s, s.promptLen, hits)) break;
          admitted++;
          this.#admitStats(s, cached, start);
          s.status = 'transfer';
          s.transferTokens = s.promptLen - cached;
          s.transferMs = (s.transferTokens / 1000) * c.kvTransferMsPerKToken;
          if (s.remote.start === 'now') s.readyAt = start + s.transferMs;
          else if (!Number.isNaN(s.signalAt)) s.readyAt = Math.max(s.signalAt, start) + s.transferMs;
          this.#transfers.push(s);
          continue;
        }
        let n = s.numTokens - cached;
        if (!c.chunkedPrefill && n > budget) break;
        n = Math.min(n, budget);
        if (!this.#allocate(s, cached + n, hits)) break;
        admitted++;
        this.#admitStats(s, cached, start);
        s.status = 'running';
        s.numComputed = cached;
        this.#running.push(s);
        batch.push(s);
        counts.push(n);
        budget -= n;
        if (s.lora !== null) batchLoras.add(s.lora);
      }
      if (admitted > 0) this.#waiting = w.filter((s) => s.status === 'waiting');
    }

    if (batch.length === 0) {
      this.#stalled = true;
      return null;
    }

    // Adapters: load the missing ones (one step pays for each), evict the least recently used.
    const loraLoads: string[] = [];
    for (const l of batchLoras) {
      if (remove(this.#loras, l)) {
        this.#loras.push(l);
      } else {
        this.#loras.push(l);
        loraLoads.push(l);
      }
    }
    if (loraLoads.length > 0) {
      this.#evictLoras(batchLoras);
      for (const s of batch) if (s.lora !== null && loraLoads.includes(s.lora) && s.tokenTimes.length === 0) s.loraLoaded = true;
    }

    let prefillTokens = 0;
    let decodeSeqs = 0;
    let contextTokens = 0;
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i];
      const n = counts[i];
      if (n === 1 && s.generated > 0 && s.numComputed === s.numTokens - 1) {
        decodeSeqs++;
        contextTokens += s.numTokens;
      } else {
        prefillTokens += n;
      }
      s.numComputed += n;
      this.#cacheBlocks(s);
    }
    const end =
      start +
      c.stepMs +
      c.prefillMsPerToken * prefillTokens +
      c.decodeMsPerSeq * decodeSeqs +
      (c.decodeMsPerKContextToken * contextTokens) / 1000 +
      c.loraLoadMs * loraLoads.length;

    const emitted: Seq[] = [];
    const finished: Seq[] = [];
    for (const s of batch) {
      if (s.numComputed < s.numTokens) continue;
      if (s.generated === 0) this.promptTokens += s.promptLen;
      s.generated++;
      this.generationTokens++;
      s.tokenTimes.push(end);
      emitted.push(s);
      if (s.generated >= s.target) {
        finished.push(s);
        s.status = 'finished';
        s.finishedAt = end;
        if (s.keepBlockIds) s.finalBlockIds = s.blocks.slice();
        this.#free(s);
      }
    }
    if (finished.length > 0) this.#running = this.#running.filter((s) => s.status === 'running');
    this.#lastEnd = end;
    this.steps++;
    this.busyMs += end - start;
    this.prefillTokensComputed += prefillTokens;
    return { start, end, prefillTokens, decodeSeqs, contextTokens, loraLoads, emitted, finished, preempted };
  }

  /** Runs steps until nothing is left that can run (tests). */
  runUntilIdle(maxSteps = 1_000_000): StepOutcome[] {
    const out: StepOutcome[] = [];
    for (let i = 0; i < maxSteps; i++) {
      if (this.nextStart() === null) return out;
      const o = this.step();
      if (o !== null) out.push(o);
    }
    throw new Error(`engine model did not go idle within ${maxSteps} steps`);
  }

  /** Running sequences, oldest first (copy). */
  get running(): readonly Seq[] {
    return this.#running.slice();
  }

  get waiting(): readonly Seq[] {
    return this.#waiting.concat(this.#transfers);
  }

  /** Prompt tokens of `tokens` (with adapter `lora`) a new request would find cached now. */
  cachedPrefix(tokens: readonly number[], lora: string | null = null): number {
    if (!this.cfg.prefixCaching) return 0;
    const bs = this.cfg.blockSize;
    const n = Math.floor((tokens.length - 1) / bs);
    const hashes = chainedBlockHashes(tokens, bs, n, chainSeed(lora));
    let i = 0;
    while (i < n && this.#pool.cached.has(hashes[i])) i++;
    return i * bs;
  }

  /** Free blocks, next to be evicted first (tests). */
  freeBlockOrder(): number[] {
    return this.#pool.freeOrder();
  }

  stats(): ModelStats {
    const pool = this.#pool;
    let transferring = 0;
    for (const s of this.#transfers) if (!s.remoteDone) transferring++;
    return {
      running: this.#running.length,
      waiting: this.#waiting.length + this.#transfers.length,
      transferring,
      kvUsage: 1 - pool.numFree / pool.size,
      kvBlocks: pool.size,
      kvBlocksUsed: pool.size - pool.numFree,
      kvBlocksCached: pool.cached.size,
      evictions: pool.evictions,
      preemptions: this.preemptions,
      prefixQueries: this.prefixQueries,
      prefixHits: this.prefixHits,
      promptTokens: this.promptTokens,
      generationTokens: this.generationTokens,
      steps: this.steps,
      busyMs: this.busyMs,
      prefillTokensComputed: this.prefillTokensComputed,
      lastStepEnd: this.#lastEnd,
      residentLoras: this.#loras.slice(),
    };
  }

  /** Adapters of running and of waiting requests (vllm:lora_requests_info). */
  loraUsage(): { running: string[]; waiting: string[] } {
    const run = new Set<string>();
    const wait = new Set<string>();
    for (const s of this.#running) if (s.lora !== null) run.add(s.lora);
    for (const s of this.#waiting) if (s.lora !== null) wait.add(s.lora);
    for (const s of this.#transfers) if (s.lora !== null) wait.add(s.lora);
    return { running: [...run], waiting: [...wait] };
  }

  #admitStats(s: Seq, cached: number, start: number): void {
    this.prefixQueries += s.numTokens;
    this.prefixHits += cached;
    if (s.cachedTokens < 0) {
      s.cachedTokens = cached;
      s.firstScheduledAt = start;
    }
  }

  /** The cached blocks of the longest cached prefix (at most all tokens but one). */
  #lookup(s: Seq): number[] {
    const c = this.cfg;
    if (!c.prefixCaching) return [];
    const hashes = this.#hashes(s);
    const max = Math.min(hashes.length, Math.floor((s.numTokens - 1) / c.blockSize));
    const hits: number[] = [];
    for (let i = 0; i < max; i++) {
      const b = this.#pool.cached.get(hashes[i]);
      if (b === undefined) break;
      hits.push(b);
    }
    return hits;
  }

  #hashes(s: Seq): number[] {
    if (s.hashes === null) {
      const bs = this.cfg.blockSize;
      s.hashes = chainedBlockHashes(s.tokens, bs, Math.floor(s.promptLen / bs), chainSeed(s.lora));
    }
    return s.hashes;
  }

  /**
   * Gives `s` blocks for `tokens` tokens, starting with `hits` (cached blocks) when it holds
   * none yet. False, changing nothing, when the free queue is too short.
   */
  #allocate(s: Seq, tokens: number, hits: number[] | null): boolean {
    const pool = this.#pool;
    const have = s.blocks.length + (hits?.length ?? 0);
    const fresh = Math.max(0, Math.ceil(tokens / this.cfg.blockSize) - have);
    let evictableHits = 0;
    if (hits) for (const b of hits) if (pool.isFree(b)) evictableHits++;
    if (fresh + evictableHits > pool.numFree) return false;
    if (hits && hits.length > 0) {
      for (const b of hits) {
        pool.touch(b);
        s.blocks.push(b);
      }
      s.numCachedBlocks = hits.length;
    }
    for (let i = 0; i < fresh; i++) s.blocks.push(pool.allocate());
    return true;
  }

  /** Enters the sequence's newly completed full prompt blocks into the prefix cache. */
  #cacheBlocks(s: Seq): void {
    if (!this.cfg.prefixCaching) return;
    const bs = this.cfg.blockSize;
    const full = Math.min(Math.floor(s.numComputed / bs), Math.floor(s.promptLen / bs), s.blocks.length);
    if (full <= s.numCachedBlocks) return;
    const hashes = this.#hashes(s);
    const pool = this.#pool;
    for (let i = s.numCachedBlocks; i < full; i++) {
      const h = hashes[i];
      const b = s.blocks[i];
      // Another sequence computed the same block first: keep that one, as vLLM does.
      if (pool.hash[b] !== NO_HASH || pool.cached.has(h)) continue;
      pool.hash[b] = h;
      pool.cached.set(h, b);
      pool.listener?.stored(b, s, i);
    }
    s.numCachedBlocks = full;
  }

  #free(s: Seq): void {
    const blocks = s.blocks;
    for (let i = blocks.length - 1; i >= 0; i--) this.#pool.release(blocks[i]);
    s.blocks = [];
    s.numCachedBlocks = 0;
  }

  #preempt(s: Seq): void {
    this.#free(s);
    s.status = 'waiting';
    s.numComputed = 0;
    s.preemptions++;
    this.preemptions++;
    this.#waiting.unshift(s);
  }

  #evictLoras(keep: ReadonlySet<string>): void {
    for (let i = 0; this.#loras.length > this.cfg.maxLoras && i < this.#loras.length; ) {
      if (keep.has(this.#loras[i])) i++;
      else this.#loras.splice(i, 1);
    }
  }
}

function remove<T>(list: T[], x: T): boolean {
  const i = list.indexOf(x);
  if (i < 0) return false;
  list.splice(i, 1);
  return true;
}
