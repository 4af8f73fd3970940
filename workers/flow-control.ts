/**
 * Admission of InferencePool traffic (Gateway API Inference Extension; the behaviour reference is
 * docs/reference/gateway-api.md §2.6, §2.7, after GIE's pkg/epp/requestcontrol/admission.go
 * and pkg/epp/flowcontrol): a pool is saturated when its engines' queues or KV caches are full.
 *
 * - By default (GIE's legacy admission, `legacyAdmit`), a request with priority >= 0 is admitted at
 *   once whatever the saturation; a sheddable one (priority < 0) is refused with 429 while the
 *   pool is saturated. Nothing waits, so the Gateway path costs what the ModelRoute path costs.
 * - With --inference-pool-flow-control (GIE's opt-in flowControl), `PriorityGate`: while the pool
 *   is saturated requests wait in strict priority bands (InferenceObjective.priority, FIFO within
 *   a band), sheddable ones are still refused.
 *
 * Saturation is GIE's utilization detector: per endpoint max(queue / queueDepthThreshold,
 * kv / kvCacheUtilThreshold), averaged over the pool; an endpoint whose metrics are not fresh
 * counts as saturated (1). The queue is what the engine reported waiting at the last scrape; when
 * the engine was already queueing then, the requests the router sent since (its in-flight count
 * beyond the engine's running + waiting) join that queue too. An engine that was not queueing is
 * taken to have batch room for a burst, as GIE does: counting every in-flight request beyond the
 * last scrape's running count as queued (this module's first version) made any burst of more than
 * five requests per pod within one scrape interval look like saturation and held it back (issue 13:
 * p99 98-481 ms on the Gateway path against 7-10 ms on the ModelRoute path at c64).
 *
 * One order per router: waiting requests stay on their worker's gate, but each gate publishes its
 * best waiter per pool in shared memory (the flow-control order region, src/shared/layout.ts) and
 * admits its own head only when no other worker holds a higher band or an earlier request of the
 * same band (a router-wide sequence number); a request finds the fast path only when no worker has
 * one waiting for its pool. Saturation comes from the shared endpoint slots, with the other
 * replicas' in-flight counts when they are shared (kEpRemoteInflight), so it is the router's (and
 * the cluster's) view too. Without the shared region (unit tests) a gate orders its own requests.
 */
import { EndpointView, kVInflight, kVKnown, kVKv, kVRunning, kVWaiting } from './scheduler/endpoint-view.js';
import type { SchedEndpoint } from './scheduler/types.js';
import { gateIndex, kGateBuckets, kGateHash, kGateHdrSeq, kGateHeadSeq, kGatePriority, kGateMaxWorkers } from '../src/shared/layout.js';

export interface SaturationConfig {
  /** Engine queue length at which an endpoint counts as full (GIE default 5). */
  queueDepthThreshold: number;
  /** KV-cache usage 0..1 at which an endpoint counts as full (GIE default 0.8). */
  kvCacheUtilThreshold: number;
}

export const DEFAULT_SATURATION: Readonly<SaturationConfig> = Object.freeze({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 });

/** Reads pool saturation from the shared endpoint slots through its own view (and cache). */
export class SaturationDetector {
  readonly #ep: Int32Array;
  readonly #view = new EndpointView();
  readonly #cfg: SaturationConfig;

  constructor(ep: Int32Array, cfg: SaturationConfig = DEFAULT_SATURATION) {
    this.#ep = ep;
    this.#cfg = cfg;
  }

  /** Average utilization of the endpoints (>= 1: saturated); 1 for an empty pool. */
  saturation(endpoints: readonly SchedEndpoint[]): number {
    const n = endpoints.length;
    if (n === 0) return 1;
    const v = this.#view;
    v.load(this.#ep, endpoints, true);
    const d = v.data;
    const q = this.#cfg.queueDepthThreshold;
    const kvT = this.#cfg.kvCacheUtilThreshold;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const b = v.base[i];
      if (d[b + kVKnown] !== 1) { sum += 1; continue; }
      const waiting = d[b + kVWaiting];
      const queued = waiting > 0 ? Math.max(waiting, d[b + kVInflight] - d[b + kVRunning]) : 0;
      sum += Math.max(queued / q, d[b + kVKv] / kvT);
    }
    return sum / n;
  }
}

export type GateOutcome = 'admitted' | 'shed' | 'full' | 'timeout';

/**
 * GIE's default admission (flow control off): only a sheddable request (priority < 0) is refused,
 * and only while the pool is saturated; `saturated` is not even asked for the others.
 */
export function legacyAdmit(priority: number, saturated: () => boolean): 'admitted' | 'shed' {
  return priority < 0 && saturated() ? 'shed' : 'admitted';
}

export interface GateTicket {
  readonly priority: number;
  /** Removes a waiting request (client gone); no callback follows. */
  cancel(): void;
}

interface Waiter extends GateTicket {
  done: boolean;
  /** Router-wide arrival order (FIFO within a band across workers). */
  seq: number;
  enqueuedAt: number;
  cb: (outcome: GateOutcome) => void;
  timer: NodeJS.Timeout | null;
}

interface PoolQueue {
  /** 32-bit hash of the pool key, never 0 (its entry in the shared order). */
  hash: number;
  /** Bands by priority, highest first. */
  bands: { priority: number; waiters: Waiter[]; head: number }[];
  size: number;
  saturated: () => boolean;
}

export interface GateOptions {
  /** Requests waiting per pool per worker beyond which new ones are refused (429). Default 5000 (GIE's band default). */
  maxQueued?: number;
  /** Longest wait in the queue, ms (then 503). Default 60000; 0 = until the client goes away. */
  maxWaitMs?: number;
  /** How often waiting requests re-check saturation, ms. Default 20. */
  recheckMs?: number;
  /** The router-wide order (gateSab) and this worker's row in it; absent: this gate alone. */
  shared?: { sab: SharedArrayBuffer; worker: number; workers: number };
}

function poolHash(key: string): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h === 0 ? 1 : h;
}

/**
 * Admission by priority. admit() answers at once (callback before it returns) when the pool is not
 * saturated and nothing waits, or when the request is sheddable under saturation; otherwise the
 * request waits in its band and is admitted, highest band first, once the pool has room.
 */
export class PriorityGate {
  readonly #queues = new Map<string, PoolQueue>();
  readonly #maxQueued: number;
  readonly #maxWaitMs: number;
  readonly #recheckMs: number;
  #timer: NodeJS.Timeout | null = null;
  readonly #order: Int32Array | null;
  readonly #worker: number;
  /** Worker rows to read (the router's worker count). */
  readonly #rows: number;
  #localSeq = 0;
  /** Requests admitted after waiting, shed, refused and timed out (this worker). */
  readonly counts = { admittedAfterWait: 0, shed: 0, full: 0, timeout: 0 };

  constructor(o: GateOptions = {}) {
    this.#maxQueued = o.maxQueued ?? 5000;
    this.#maxWaitMs = o.maxWaitMs ?? 60_000;
    this.#recheckMs = o.recheckMs ?? 20;
    this.#order = o.shared !== undefined ? new Int32Array(o.shared.sab) : null;
    this.#worker = o.shared?.worker ?? 0;
    this.#rows = Math.min(kGateMaxWorkers, o.shared?.workers ?? 0);
  }

  /** Requests waiting for `pool` in this worker. */
  waiting(pool: string): number {
    return this.#queues.get(pool)?.size ?? 0;
  }

  admit(pool: string, priority: number, saturated: () => boolean, cb: (outcome: GateOutcome) => void): GateTicket | null {
    const q = this.#queues.get(pool);
    const queued = q !== undefined && q.size > 0;
    if (!queued && !saturated() && !this.#othersWaiting(q?.hash ?? poolHash(pool))) { cb('admitted'); return null; }
    if (priority < 0 && saturated()) { this.counts.shed++; cb('shed'); return null; }
    let queue = q;
    if (queue === undefined) { queue = { hash: poolHash(pool), bands: [], size: 0, saturated }; this.#queues.set(pool, queue); }
    queue.saturated = saturated;
    if (queue.size >= this.#maxQueued) { this.counts.full++; cb('full'); return null; }
    let band = queue.bands.find((b) => b.priority === priority);
    if (band === undefined) {
      band = { priority, waiters: [], head: 0 };
      queue.bands.push(band);
      queue.bands.sort((a, b) => b.priority - a.priority);
    }
    const qq = queue;
    const w: Waiter = {
      priority, done: false, seq: this.#order !== null ? Atomics.add(this.#order, kGateHdrSeq, 1) : this.#localSeq++, enqueuedAt: performance.now(), cb, timer: null,
      cancel: () => { if (!w.done) { w.done = true; if (w.timer !== null) clearTimeout(w.timer); qq.size--; this.#publish(qq); } },
    };
    if (this.#maxWaitMs > 0) {
      w.timer = setTimeout(() => {
        if (w.done) return;
        w.done = true;
        qq.size--;
        this.#publish(qq);
        this.counts.timeout++;
        w.cb('timeout');
      }, this.#maxWaitMs);
    }
    band.waiters.push(w);
    queue.size++;
    this.#publish(queue);
    this.#schedule();
    return w;
  }

  /** A request of `pool` finished: room may have appeared. */
  release(pool: string): void {
    const q = this.#queues.get(pool);
    if (q !== undefined && q.size > 0) this.#pump(q);
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      let more = false;
      for (const [key, q] of this.#queues) {
        this.#pump(q);
        if (q.size > 0) more = true;
        else this.#queues.delete(key);
      }
      if (more) this.#schedule();
    }, this.#recheckMs);
    this.#timer.unref?.();
  }

  /**
   * Admits waiting requests, highest band first, FIFO within a band, while the pool has room and
   * no other worker holds a request that goes first.
   */
  #pump(q: PoolQueue): void {
    try {
      for (const band of q.bands) {
        while (band.head < band.waiters.length) {
          const w = band.waiters[band.head];
          if (w.done) { band.head++; continue; }
          if (q.saturated() || !this.#mayGo(q.hash, w.priority, w.seq)) { this.#compact(band); return; }
          band.head++;
          w.done = true;
          if (w.timer !== null) clearTimeout(w.timer);
          q.size--;
          this.counts.admittedAfterWait++;
          w.cb('admitted');
        }
        this.#compact(band);
      }
    } finally {
      this.#publish(q);
    }
  }

  /** Another worker has a request waiting for the pool (the fast path would jump its queue). */
  #othersWaiting(hash: number): boolean {
    const o = this.#order;
    if (o === null) return false;
    const bucket = hash & (kGateBuckets - 1);
    for (let wk = 0; wk < this.#rows; wk++) {
      if (wk !== this.#worker && Atomics.load(o, gateIndex(wk, bucket) + kGateHash) === hash) return true;
    }
    return false;
  }

  /** No other worker publishes a higher band for the pool, or an earlier request of this band. */
  #mayGo(hash: number, priority: number, seq: number): boolean {
    const o = this.#order;
    if (o === null) return true;
    const bucket = hash & (kGateBuckets - 1);
    for (let wk = 0; wk < this.#rows; wk++) {
      if (wk === this.#worker) continue;
      const i = gateIndex(wk, bucket);
      if (Atomics.load(o, i + kGateHash) !== hash) continue;
      const p = Atomics.load(o, i + kGatePriority);
      const s = Atomics.load(o, i + kGateHeadSeq);
      // Torn read (the entry changed meanwhile): ignore it; the next pump sees it whole.
      if (Atomics.load(o, i + kGateHash) !== hash) continue;
      if (p > priority || (p === priority && s < seq)) return false;
    }
    return true;
  }

  /** Publishes this worker's best waiting request of the pool (or that it has none). */
  #publish(q: PoolQueue): void {
    const o = this.#order;
    if (o === null) return;
    const i = gateIndex(this.#worker, q.hash & (kGateBuckets - 1));
    let best: Waiter | null = null;
    if (q.size > 0) {
      for (const band of q.bands) {
        for (let j = band.head; j < band.waiters.length; j++) {
          if (!band.waiters[j].done) { best = band.waiters[j]; break; }
        }
        if (best !== null) break;
      }
    }
    const cur = Atomics.load(o, i + kGateHash);
    // Another pool of this worker may share the bucket: the entry is left to it while it holds it.
    if (best === null) { if (cur === q.hash) Atomics.store(o, i + kGateHash, 0); return; }
    if (cur !== 0 && cur !== q.hash) return;
    Atomics.store(o, i + kGateHash, 0);
    Atomics.store(o, i + kGatePriority, best.priority);
    Atomics.store(o, i + kGateHeadSeq, best.seq);
    Atomics.store(o, i + kGateHash, q.hash);
  }

  #compact(band: { waiters: Waiter[]; head: number }): void {
    if (band.head > 64 && band.head * 2 > band.waiters.length) {
      band.waiters = band.waiters.slice(band.head);
      band.head = 0;
    } else if (band.head === band.waiters.length) {
      band.waiters.length = 0;
      band.head = 0;
    }
  }
}
