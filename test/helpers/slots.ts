/**
 * Endpoint slots written the way the scraper writes them (seqlock protocol of
 * src/shared/layout.ts), for scheduler tests.
 */
import {
  epIndex, kEpGen, kEpInflight, kEpKvUsagePpm, kEpRunning, kEpScrapeState, kEpSeq, kEpTpotUs, kEpTtftUs, kEpWaiting, kScrapeFresh,
} from '../../src/shared/layout.js';

export interface SlotMetrics {
  state?: number;
  inflight?: number;
  waiting?: number;
  running?: number;
  /** KV-cache usage 0..1. */
  kv?: number;
  ttftMs?: number;
  tpotMs?: number;
}

/** One scrape of slot `slot` (plus the worker-side in-flight count), generation 1. */
export function writeSlot(ep: Int32Array, slot: number, p: SlotMetrics): void {
  const at = (f: number): number => epIndex(slot, f);
  Atomics.store(ep, at(kEpGen), 1);
  Atomics.store(ep, at(kEpInflight), p.inflight ?? 0);
  Atomics.add(ep, at(kEpSeq), 1);
  Atomics.store(ep, at(kEpScrapeState), p.state ?? kScrapeFresh);
  Atomics.store(ep, at(kEpWaiting), p.waiting ?? 0);
  Atomics.store(ep, at(kEpRunning), p.running ?? 0);
  Atomics.store(ep, at(kEpKvUsagePpm), Math.round((p.kv ?? 0) * 1_000_000));
  Atomics.store(ep, at(kEpTtftUs), Math.round((p.ttftMs ?? 0) * 1000));
  Atomics.store(ep, at(kEpTpotUs), Math.round((p.tpotMs ?? 0) * 1000));
  Atomics.add(ep, at(kEpSeq), 1);
}
