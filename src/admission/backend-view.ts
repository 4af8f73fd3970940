/**
 * Session boost's second admission level, read from the endpoint slots the scraper fills: how many
 * pods list the model in their scraped /v1/models, and whether one of them reports an empty engine
 * queue (Kthena: SESSION_BOOST_INFLIGHT_PER_POD x those pods, and RequestWaitingNum == 0 on at least
 * one). Counted once per model per scrape round or snapshot, not per admission. `remote` is the
 * other replicas' in-flight requests on those pods (kEpRemoteInflight, shared in-flight counts;
 * 0 without Redis), read fresh at every call: it moves every 50 ms, not once per scrape.
 */
import { epIndex, kEpModelBits, kEpRemoteInflight, kEpScrapeState, kEpWaiting, kScrapeNever } from '../shared/layout.js';
import type { BackendView } from './service.js';

export interface BackendSource {
  /** Endpoint slots of every pod the snapshot routes to (ModelServer pods). */
  slots(): Iterable<number>;
  /** Model name -> model bit id (the scraper's /v1/models bit sets). */
  modelIds(): ReadonlyMap<string, number>;
}

export class ScrapedBackendView {
  readonly #ep: Int32Array;
  readonly #src: BackendSource;
  readonly #cache = new Map<string, { pods: number; anyIdle: boolean; remote: number; slots: number[] }>();

  constructor(ep: Int32Array, src: BackendSource) {
    this.#ep = ep;
    this.#src = src;
  }

  /** A scrape round finished or a snapshot was published: counts are recomputed on next use. */
  invalidate(): void {
    this.#cache.clear();
  }

  readonly view: BackendView = (model: string) => {
    let v = this.#cache.get(model);
    if (v === undefined) {
      v = { pods: 0, anyIdle: false, remote: 0, slots: [] };
      const id = this.#src.modelIds().get(model);
      if (id !== undefined && id >= 0) {
        const word = kEpModelBits + (id >>> 5);
        const bit = 1 << (id & 31);
        for (const slot of this.#src.slots()) {
          if ((Atomics.load(this.#ep, epIndex(slot, word)) & bit) === 0) continue;
          v.pods++;
          v.slots.push(slot);
          // A pod never scraped has no queue figure: it does not count as idle.
          if (Atomics.load(this.#ep, epIndex(slot, kEpScrapeState)) !== kScrapeNever && Atomics.load(this.#ep, epIndex(slot, kEpWaiting)) === 0) v.anyIdle = true;
        }
      }
      this.#cache.set(model, v);
    }
    let remote = 0;
    for (const slot of v.slots) remote += Atomics.load(this.#ep, epIndex(slot, kEpRemoteInflight));
    v.remote = remote;
    return v;
  };
}
