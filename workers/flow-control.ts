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
 * One gate per worker thread: bands order the requests of one worker. Workers share the endpoint
 * slots, so every worker sees the same saturation.
 */
import { EndpointView, kVInflight, kVKnown, kVKv, kVRunning, kVWaiting } from './scheduler/endpoint-view.js';
import type { SchedEndpoint } from './scheduler/types.js';

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
  enqueuedAt: number;
  cb: (outcome: GateOutcome) => void;
  timer: NodeJS.Timeout | null;
}

interface PoolQueue {
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
  /** Requests admitted after waiting, shed, refused and timed out (this worker). */
  readonly counts = { admittedAfterWait: 0, shed: 0, full: 0, timeout: 0 };

  constructor(o: GateOptions = {}) {
    this.#maxQueued = o.maxQueued ?? 5000;
    this.#maxWaitMs = o.maxWaitMs ?? 60_000;
    this.#recheckMs = o.recheckMs ?? 20;
  }

  /** Requests waiting for `pool` in this worker. */
  waiting(pool: string): number {
    return this.#queues.get(pool)?.size ?? 0;
  }

  admit(pool: string, priority: number, saturated: () => boolean, cb: (outcome: GateOutcome) => void): GateTicket | null {
    const q = this.#queues.get(pool);
    const queued = q !== undefined && q.size > 0;
    if (!queued && !saturated()) { cb('admitted'); return null; }
    if (priority < 0 && saturated()) { this.counts.shed++; cb('shed'); return null; }
    let queue = q;
    if (queue === undefined) { queue = { bands: [], size: 0, saturated }; this.#queues.set(pool, queue); }
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
      priority, done: false, enqueuedAt: performance.now(), cb, timer: null,
      cancel: () => { if (!w.done) { w.done = true; if (w.timer !== null) clearTimeout(w.timer); qq.size--; } },
    };
    if (this.#maxWaitMs > 0) {
      w.timer = setTimeout(() => {
        if (w.done) return;
        w.done = true;
        qq.size--;
        this.counts.timeout++;
        w.cb('timeout');
      }, this.#maxWaitMs);
    }
    band.waiters.push(w);
    queue.size++;
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

  /** Admits waiting requests, highest band first, FIFO within a band, while the pool has room. */
  #pump(q: PoolQueue): void {
    for (const band of q.bands) {
      while (band.head < band.waiters.length) {
        const w = band.waiters[band.head];
        if (w.done) { band.head++; continue; }
        if (q.saturated()) { this.#compact(band); return; }
        band.head++;
        w.done = true;
        if (w.timer !== null) clearTimeout(w.timer);
        q.size--;
        this.counts.admittedAfterWait++;
        w.cb('admitted');
      }
      this.#compact(band);
    }
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
