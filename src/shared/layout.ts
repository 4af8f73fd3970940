/**
 * The one module that owns every SharedArrayBuffer offset. Both the control thread (src/) and the
 * workers (workers/) import it; nothing else computes an offset.
 *
 * Regions
 * -------
 * 1. Header (Int32Array over `headerSab`, kHeaderInts ints).
 * 2. Snapshot double buffer (`snapshotSab`, two halves of `halfBytes` each): protobuf-encoded IR.
 * 3. Endpoint slots (Int32Array over `endpointSab`, kEndpointStride ints per slot).
 * 4. Prefix-cache index (Int32Array over `prefixSab`).
 * 5. Local rate-limit buckets (BigInt64Array over `rateLimitSab`, kRlStride words per bucket).
 *
 * Snapshot publish protocol (single writer: the control thread)
 * -------------------------------------------------------------
 * Writer, publishing generation g+1 (current is g):
 *   1. half h = (g + 1) & 1, the half readers are NOT reading for generation g;
 *   2. copy the encoded bytes into half h;
 *   3. store the byte length in header[kHdrSnapLen0 + h];
 *   4. Atomics.store(header, kHdrGeneration, g + 1)   <- the release: everything above happens-before
 *      any reader that observes g + 1 with Atomics.load.
 * Reader (a worker, once per request: one Atomics.load):
 *   1. g1 = Atomics.load(header, kHdrGeneration); if g1 === cached generation, done;
 *   2. read len = header[kHdrSnapLen0 + (g1 & 1)] and copy the bytes of half (g1 & 1);
 *   3. g2 = Atomics.load(header, kHdrGeneration); read the bytes *before* this second load.
 *      If g2 - g1 >= 2 the writer may have overwritten half (g1 & 1) while we copied: retry.
 *      (g2 === g1 + 1 wrote the other half, so our copy is intact.)
 * The writer never waits for readers; a reader never blocks (no Atomics.wait on a serving thread).
 * When an encoded snapshot outgrows a half, the control thread allocates a larger snapshotSab,
 * posts it to every worker and waits for their acknowledgement before publishing into it.
 *
 * Endpoint slots
 * --------------
 * One slot per pod, stable across snapshots for the pod's lifetime (keyed by namespace/name).
 * A freed slot is reused only after its in-flight count returned to 0, so that late decrements of
 * requests started against the old pod can never corrupt the counter of a new one.
 * Fields written by workers use Atomics.add/sub (exact across threads); fields written by the
 * control thread use Atomics.store and are read with Atomics.load.
 */

/** Header fields (Int32 indexes). */
export const kHdrGeneration = 0; // snapshot generation, 0 = nothing published yet
export const kHdrSnapLen0 = 1; // byte length of half 0
export const kHdrSnapLen1 = 2; // byte length of half 1
export const kHdrReady = 3; // 1 once the router is ready (first snapshot published)
export const kHdrDraining = 4; // 1 while draining after SIGTERM
export const kHdrSnapshotEpoch = 5; // bumps each time snapshotSab is replaced by a larger one
export const kHdrScrapeReady = 6; // 1 once the first scrape round (pods of the first snapshot) finished
export const kHeaderInts = 16;

/**
 * Endpoint slot fields (Int32 indexes relative to slot * kEndpointStride).
 *
 * Worker-written fields (Atomics.add/sub, exact across threads): kEpInflight*, kEpRequestsTotal,
 * kEpFailuresTotal, kEpPrefixEntries, and the outlier fields kEpConsecFailures, kEpEjectedUntilSec,
 * kEpEjections: a failure is Atomics.add on the consecutive count; the worker whose add reaches the
 * threshold (exactly one: the add returns the old value) stores 0 into it, Atomics.add(kEpEjections)
 * and stores the ejection end; readers Atomics.load kEpEjectedUntilSec only, and a stale read
 * costs at most one request routed as if the ejection had not happened (or just ended).
 *
 * kEpRemoteInflight is control-thread-written (Atomics.store) outside the seqlock: see its comment.
 *
 * Scraper-written fields (the control thread is the only writer) are guarded by the per-slot
 * seqlock kEpSeq:
 *   writer: Atomics.add(seq, 1) (odd: write in progress); Atomics.store every field;
 *           Atomics.add(seq, 1) (even again).
 *   reader: s1 = Atomics.load(seq); if s1 is odd, retry; Atomics.load the fields;
 *           s2 = Atomics.load(seq); if s1 !== s2, retry. After kSeqlockRetries failed tries the
 *           reader treats the slot as "no metrics" (never blocks, never spins unbounded).
 * Atomics are sequentially consistent, so a reader that sees the same even seq before and after
 * read values all written by one completed write (no torn snapshot of waiting/running/KV).
 * The model bit sets are written under the same seqlock; lora-affinity reads one word of them.
 *
 * kEpGen is bumped (by the control thread) every time a slot is given to a new pod; prefix-index
 * entries store the generation they were made for, so entries of a departed pod never match its
 * successor in the same slot.
 */
export const kEpInflight = 0; // requests in flight to this endpoint, all workers (Atomics.add/sub)
export const kEpInflightPrefill = 1; // PD: in-flight prefill legs
export const kEpInflightDecode = 2; // PD: in-flight decode legs
export const kEpSeq = 3; // seqlock over the scraper-written fields below (even = stable)
export const kEpRequestsTotal = 4; // attempts sent to this endpoint since the slot was assigned
export const kEpFailuresTotal = 5; // attempts that failed (connect, reset, timeout, 5xx)
export const kEpGen = 6; // slot generation: +1 each time the slot is assigned to a new pod
export const kEpPrefixEntries = 7; // prefix-index entries currently held by this endpoint (workers)
// --- scraper-written (seqlock) ---
export const kEpScrapeState = 8; // ScrapeState below
export const kEpWaiting = 9; // requests waiting in the engine queue
export const kEpRunning = 10; // requests running in the engine batch
export const kEpKvUsagePpm = 11; // KV-cache usage, parts per million (0..1_000_000)
export const kEpTtftUs = 12; // mean time to first token over the last scrape interval, µs (0 = unknown)
export const kEpTpotUs = 13; // mean time per output token over the last scrape interval, µs (0 = unknown)
export const kEpPrefixHitPpm = 14; // engine prefix-cache hit rate over the last interval, ppm; -1 = unknown
export const kEpLastScrapeSec = 15; // unix seconds of the last successful scrape (0 = never)
export const kEpScrapeFailures = 16; // consecutive failed scrapes
// --- shared in-flight counts (src/shared-inflight/), not under the seqlock ---
/**
 * In-flight requests the OTHER router replicas have on this endpoint (their kEpInflight summed),
 * as read from Redis at the last refresh. One writer: the control thread's SharedInflight, every
 * 50 ms (Atomics.store; 0 without REDIS_HOST, and reset to 0 once Redis has been unreachable for
 * its staleness bound). Readers (the workers' EndpointView) add it to kEpInflight with a plain
 * read: it is one independent word, a count "as of the last refresh", with no ordering relation
 * to any other field. Lags the other replicas by at most one refresh interval plus one round trip.
 */
export const kEpRemoteInflight = 17;
// --- passive outlier detection (workers write with Atomics; workers/outlier.ts) ---
export const kEpConsecFailures = 18; // consecutive failed attempts (connect, reset, timeout, 5xx); 0 after a success
export const kEpEjectedUntilSec = 19; // unix seconds until which the endpoint is ejected (0 = not ejected)
export const kEpEjections = 20; // times ejected since the slot was assigned (the backoff grows with it)
export const kEpModelBits = 32; // kModelBitWords words: bit i set = model id i in the pod's /v1/models
export const kEpLoraActiveBits = 64; // kModelBitWords words: bit i set = adapter id i running or waiting (lora_requests_info)
export const kModelBitWords = 32;
/** Distinct model/adapter names that get a bit (ids 0..kMaxModelIds-1). */
export const kMaxModelIds = kModelBitWords * 32;
export const kEndpointStride = 96;

/** kEpScrapeState values. */
export const kScrapeNever = 0; // not scraped yet: plugins treat metrics as unknown
export const kScrapeFresh = 1; // last scrape succeeded within the staleness bound
export const kScrapeFailing = 2; // the last scrape failed (values are from the last success)
export const kScrapeStale = 3; // no successful scrape within the staleness bound
export const kSeqlockRetries = 4;

/**
 * Prefix-cache index (Int32Array over `prefixSab`), shared by every worker.
 *
 * A set-associative table: kPxBuckets(prefixSab) buckets of kPxWays ways; a way holds one
 * (block hash, endpoint) pair, so a hash that several pods hold occupies several ways of its
 * bucket. Bucket = low bits of the hash. Eviction: the way with the oldest stamp in the bucket
 * (approximate LRU; memory is fixed at startup: kPxWayInts * 4 bytes per entry).
 * Way fields: [seq, hashLo, hashHi, slot, slotGen, modelId, stamp, unused].
 * Writers (any worker, in the post-schedule hook) claim a way with
 * Atomics.compareExchange(seq, even, even + 1), store the fields, then Atomics.store(seq, even + 2);
 * a writer that loses the race skips that insert (the index is a hint, never a correctness input).
 * Readers use the seqlock read of the endpoint slots and skip a way whose seq moved.
 * Stamps are milliseconds since kPxHdrEpochSec, compared with wrap-around ((a - b) | 0).
 */
export const kPxHdrEntries = 0; // live entries (Atomics.add/sub by writers)
export const kPxHdrEvictions = 1; // total evictions (also counted per model by each worker)
export const kPxHdrEpochSec = 2; // unix seconds the stamps count from (set once by the control thread)
export const kPxHdrBuckets = 3; // number of buckets (power of two)
export const kPxHeaderInts = 16;
export const kPxWays = 8;
export const kPxWayInts = 8;
export const kPxSeq = 0;
export const kPxHashLo = 1;
export const kPxHashHi = 2;
export const kPxSlot = 3;
export const kPxSlotGen = 4;
export const kPxModelId = 5;
export const kPxStamp = 6;
export const kDefaultPrefixIndexEntries = 262_144;

/** Int32 index of way `way` of bucket `bucket`. */
export function pxWayIndex(bucket: number, way: number): number {
  return kPxHeaderInts + (bucket * kPxWays + way) * kPxWayInts;
}

/**
 * Local rate-limit token buckets (BigInt64Array over `rateLimitSab`), shared by every worker so
 * that `--workers N` limits exactly as one thread would (workers/ratelimit/bucket.ts).
 *
 * A bucket is one 64-bit word: the bits of a Float64 "theoretical arrival time" (GCRA), in
 * milliseconds since kRlHdrEpochMs; the bucket is full when that time is <= now. Because the whole
 * state is one word, a worker updates it with a CAS loop (Atomics.load, compute, and
 * Atomics.compareExchange(old, new); retry when another thread won), never with a lock, and no
 * update spans an await. Capacity and refill rate are not stored here: they come with the
 * snapshot, so a route update changes the rate without refilling a half-used bucket.
 *
 * Slots are assigned by the control thread (publish/), per (route, model, input|output), stable
 * while the bucket exists. Before a slot is given to a new bucket the control thread stores a
 * full state into it and bumps kRlGen; workers compare kRlGen with the generation the snapshot
 * carries before charging output tokens after a long response, so a late charge never lands in a
 * bucket that was reassigned meanwhile. Freed slots are also held back for kRlQuarantineMs.
 */
export const kRlHdrEpochMs = 0; // unix ms the bucket clocks count from (stored once, before workers start)
export const kRlHeaderWords = 8;
export const kRlStride = 2;
export const kRlTat = 0; // Float64 bits: theoretical arrival time, ms since kRlHdrEpochMs (0 = full)
export const kRlGen = 1; // +1 each time the slot is given to a new bucket
export const kRlQuarantineMs = 10 * 60_000;
export const kDefaultRateLimitBuckets = 8192;

/** BigInt64 index of field `field` of rate-limit bucket `slot`. */
export function rlIndex(slot: number, field: number): number {
  return kRlHeaderWords + slot * kRlStride + field;
}

/** A rate-limit region of `buckets` buckets, all full, clocks counting from `nowMs`. */
export function allocateRateLimitRegion(buckets = kDefaultRateLimitBuckets, nowMs = Date.now()): SharedArrayBuffer {
  const sab = new SharedArrayBuffer((kRlHeaderWords + buckets * kRlStride) * 8);
  new BigInt64Array(sab)[kRlHdrEpochMs] = BigInt(Math.floor(nowMs));
  return sab;
}

export function rateLimitBuckets(rateLimitSab: SharedArrayBuffer): number {
  return (rateLimitSab.byteLength / 8 - kRlHeaderWords) / kRlStride;
}

export const kDefaultMaxEndpoints = 16384;
export const kDefaultSnapshotHalfBytes = 4 * 1024 * 1024;

export interface SharedRegions {
  headerSab: SharedArrayBuffer;
  snapshotSab: SharedArrayBuffer;
  endpointSab: SharedArrayBuffer;
  prefixSab: SharedArrayBuffer;
  rateLimitSab: SharedArrayBuffer;
  /** Session-sticky bindings (see "Session-sticky bindings" below). */
  stickySab: SharedArrayBuffer;
  /** InferencePool flow control's router-wide order (see "Flow-control order" below). */
  gateSab: SharedArrayBuffer;
}

export function allocateRegions(
  maxEndpoints = kDefaultMaxEndpoints,
  halfBytes = kDefaultSnapshotHalfBytes,
  prefixEntries = kDefaultPrefixIndexEntries,
): SharedRegions {
  return {
    headerSab: new SharedArrayBuffer(kHeaderInts * 4),
    snapshotSab: new SharedArrayBuffer(halfBytes * 2),
    endpointSab: new SharedArrayBuffer(maxEndpoints * kEndpointStride * 4),
    prefixSab: allocatePrefixIndex(prefixEntries),
    rateLimitSab: allocateRateLimitRegion(),
    stickySab: allocateStickyTable(kDefaultStickyEntries),
    gateSab: allocateGateRegion(),
  };
}

/** A prefix index holding `entries` (rounded up to buckets of kPxWays, power-of-two buckets). */
export function allocatePrefixIndex(entries: number, nowSec = Math.floor(Date.now() / 1000)): SharedArrayBuffer {
  let buckets = 1;
  while (buckets * kPxWays < entries) buckets *= 2;
  const sab = new SharedArrayBuffer((kPxHeaderInts + buckets * kPxWays * kPxWayInts) * 4);
  const px = new Int32Array(sab);
  px[kPxHdrBuckets] = buckets;
  px[kPxHdrEpochSec] = nowSec;
  return sab;
}

export function snapshotHalfBytes(snapshotSab: SharedArrayBuffer): number {
  return snapshotSab.byteLength >>> 1;
}

export function maxEndpoints(endpointSab: SharedArrayBuffer): number {
  return endpointSab.byteLength / (kEndpointStride * 4);
}

/** Int32 index of field `field` of endpoint slot `slot`. */
export function epIndex(slot: number, field: number): number {
  return slot * kEndpointStride + field;
}

/**
 * Session-sticky bindings (Int32Array over `stickySab`), one table per router shared by every
 * worker: session key hash -> endpoint slot, with a TTL (ModelRoute.spec.sessionSticky).
 *
 * Same shape and protocol as the prefix index: kStBuckets buckets of kStWays ways, bucket = low
 * bits of the key hash, way fields [seq, hashLo, hashHi, slot, slotGen, expires, used, unused].
 * A writer claims a way with Atomics.compareExchange(seq, even, even + 1), stores the fields, then
 * Atomics.store(seq, even + 2); a writer that loses the race skips its write (the next request of
 * the session writes again). Readers use the seqlock read and treat a way whose seq moved as a
 * miss. A way is reused when it holds the same key, is free or expired, or else the way least
 * recently used in its bucket is evicted (bounded memory, approximate LRU).
 * `expires` and `used` are seconds since kStHdrEpochSec. The raw session value is never stored:
 * only its 64-bit hash together with the route's identity.
 */
export const kStHdrEntries = 0; // live bindings (approximate: Atomics.add/sub by writers)
export const kStHdrEvictions = 1; // live bindings evicted to make room
export const kStHdrEpochSec = 2; // unix seconds the stamps count from (set once by the control thread)
export const kStHdrBuckets = 3; // number of buckets (power of two)
export const kStHdrRedisDown = 4; // worker threads that see the Redis binding store down (its outage is logged once per router)
export const kStHeaderInts = 16;
export const kStWays = 4;
export const kStWayInts = 8;
export const kStSeq = 0;
export const kStHashLo = 1;
export const kStHashHi = 2;
export const kStSlot = 3;
export const kStSlotGen = 4;
export const kStExpires = 5;
export const kStUsed = 6;
export const kDefaultStickyEntries = 65_536;

/** Int32 index of way `way` of bucket `bucket` of the sticky table. */
export function stWayIndex(bucket: number, way: number): number {
  return kStHeaderInts + (bucket * kStWays + way) * kStWayInts;
}

/** A sticky-binding table holding `entries` (rounded up to power-of-two buckets of kStWays). */
export function allocateStickyTable(entries: number, nowSec = Math.floor(Date.now() / 1000)): SharedArrayBuffer {
  let buckets = 1;
  while (buckets * kStWays < entries) buckets *= 2;
  const sab = new SharedArrayBuffer((kStHeaderInts + buckets * kStWays * kStWayInts) * 4);
  const st = new Int32Array(sab);
  st[kStHdrBuckets] = buckets;
  st[kStHdrEpochSec] = nowSec;
  return sab;
}

/**
 * Flow-control order (Int32Array over `gateSab`): InferencePool requests that wait in priority
 * bands (--inference-pool-flow-control) stay on their worker, but the order is the router's. Every
 * worker publishes, per pool it has waiters for, its best waiting request: the highest band and the
 * router-wide sequence number of that band's first request (workers/flow-control.ts). A worker
 * admits its own head only if no other worker publishes a higher band, or the same band with an
 * earlier sequence number; saturation is read from the shared endpoint slots, so it is the same
 * for every worker already.
 *
 * Header: [seq counter (Atomics.add at every enqueue), unused x3]. Then one row per worker index
 * (kGateMaxWorkers), kGateBuckets entries each, entry = [poolHash, priority, headSeq, unused];
 * bucket = poolHash & (kGateBuckets - 1); poolHash 0 = no entry. Only the row's worker writes it
 * (poolHash last, after zeroing it first: a reader that sees the hash change treats the entry as
 * absent); the control thread clears the row of a worker that exited.
 */
export const kGateHdrSeq = 0;
export const kGateHeaderInts = 4;
export const kGateBuckets = 64;
export const kGateEntryInts = 4;
export const kGateMaxWorkers = 256;
export const kGateHash = 0;
export const kGatePriority = 1;
export const kGateHeadSeq = 2;

/** Int32 index of worker `worker`'s entry for bucket `bucket`. */
export function gateIndex(worker: number, bucket: number): number {
  return kGateHeaderInts + (worker * kGateBuckets + bucket) * kGateEntryInts;
}

export function allocateGateRegion(): SharedArrayBuffer {
  return new SharedArrayBuffer((kGateHeaderInts + kGateMaxWorkers * kGateBuckets * kGateEntryInts) * 4);
}

/** Forgets every entry of worker `worker` (it exited: its waiting requests are gone). */
export function clearGateRow(gate: Int32Array, worker: number): void {
  for (let b = 0; b < kGateBuckets; b++) Atomics.store(gate, gateIndex(worker, b) + kGateHash, 0);
}
