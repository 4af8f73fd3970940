import { afterEach, describe, expect, it, vi } from 'vitest';
import { PriorityGate, SaturationDetector, type GateOutcome, legacyAdmit } from '../../workers/flow-control.js';
import { allocateGateRegion, allocateRegions, clearGateRow, epIndex, kEpRemoteInflight, kScrapeStale } from '../../src/shared/layout.js';
import { writeSlot } from '../helpers/slots.js';

afterEach(() => { vi.useRealTimers(); });

describe('PriorityGate', () => {
  it('admits at once while the pool has room and nothing waits', () => {
    const g = new PriorityGate();
    const seen: GateOutcome[] = [];
    expect(g.admit('p', 0, () => false, (o) => seen.push(o))).toBeNull();
    expect(seen).toEqual(['admitted']);
  });

  it('sheds a negative priority with 429 semantics only while the pool is saturated', () => {
    const g = new PriorityGate();
    const seen: GateOutcome[] = [];
    g.admit('p', -1, () => true, (o) => seen.push(o));
    g.admit('p', -1, () => false, (o) => seen.push(o));
    expect(seen).toEqual(['shed', 'admitted']);
    expect(g.counts.shed).toBe(1);
  });

  it('serves higher bands first and FIFO within a band once room appears', () => {
    vi.useFakeTimers();
    const g = new PriorityGate({ recheckMs: 10 });
    let room = 0;
    const saturated = () => room <= 0;
    const order: string[] = [];
    const take = (name: string) => (o: GateOutcome) => { if (o === 'admitted') { order.push(name); room--; } };
    g.admit('p', 0, saturated, take('a0'));
    g.admit('p', 10, saturated, take('b10'));
    g.admit('p', 0, saturated, take('c0'));
    g.admit('p', 10, saturated, take('d10'));
    const shed: GateOutcome[] = [];
    g.admit('p', -5, saturated, (o) => shed.push(o));
    expect(shed).toEqual(['shed']);
    expect(g.waiting('p')).toBe(4);
    vi.advanceTimersByTime(50);
    expect(order).toEqual([]);
    room = 3;
    g.release('p');
    expect(order).toEqual(['b10', 'd10', 'a0']);
    room = 10;
    vi.advanceTimersByTime(10);
    expect(order).toEqual(['b10', 'd10', 'a0', 'c0']);
    expect(g.waiting('p')).toBe(0);
  });

  it('a cancelled waiter is skipped and never called back', () => {
    vi.useFakeTimers();
    const g = new PriorityGate({ recheckMs: 5 });
    let sat = true;
    const seen: string[] = [];
    const t = g.admit('p', 1, () => sat, () => seen.push('first'))!;
    g.admit('p', 1, () => sat, () => seen.push('second'));
    t.cancel();
    expect(g.waiting('p')).toBe(1);
    sat = false;
    vi.advanceTimersByTime(5);
    expect(seen).toEqual(['second']);
  });

  it('times out a waiter after maxWaitMs and refuses beyond maxQueued', () => {
    vi.useFakeTimers();
    const g = new PriorityGate({ maxWaitMs: 100, maxQueued: 2 });
    const seen: GateOutcome[] = [];
    g.admit('p', 0, () => true, (o) => seen.push(o));
    g.admit('p', 0, () => true, (o) => seen.push(o));
    g.admit('p', 0, () => true, (o) => seen.push(o));
    expect(seen).toEqual(['full']);
    vi.advanceTimersByTime(100);
    expect(seen).toEqual(['full', 'timeout', 'timeout']);
    expect(g.waiting('p')).toBe(0);
    expect(g.counts).toMatchObject({ full: 1, timeout: 2 });
  });

  it('keeps pools apart', () => {
    const g = new PriorityGate();
    const seen: string[] = [];
    g.admit('busy', 0, () => true, () => seen.push('busy'));
    g.admit('idle', 0, () => false, () => seen.push('idle'));
    expect(seen).toEqual(['idle']);
    expect(g.waiting('busy')).toBe(1);
  });
});

describe('PriorityGate, one order per router (two worker gates over one shared region)', () => {
  const pair = (): [PriorityGate, PriorityGate, SharedArrayBuffer] => {
    const sab = allocateGateRegion();
    return [0, 1].map((worker) => new PriorityGate({ recheckMs: 10, shared: { sab, worker, workers: 2 } })).concat([sab as never]) as [PriorityGate, PriorityGate, SharedArrayBuffer];
  };

  /** Two workers' gates on one pool with `room` free places; `take(name)` records admissions in order. */
  const contest = () => {
    vi.useFakeTimers();
    const [w0, w1] = pair();
    const c = {
      w0, w1, room: 0, order: [] as string[],
      saturated: () => c.room <= 0,
      take: (name: string) => (o: GateOutcome) => { if (o === 'admitted') { c.order.push(name); c.room--; } },
    };
    return c;
  };

  it('a higher band waiting on another worker goes first, then this worker\'s', () => {
    const c = contest();
    const { w0, w1, order, saturated, take } = c;
    w0.admit('p', 0, saturated, take('w0-low'));
    w1.admit('p', 10, saturated, take('w1-high'));
    c.room = 1;
    // w0 pumps first (a request of its own finished): w1's higher band holds it back.
    w0.release('p');
    expect(order).toEqual([]);
    w1.release('p');
    expect(order).toEqual(['w1-high']);
    c.room = 1;
    vi.advanceTimersByTime(10);
    expect(order).toEqual(['w1-high', 'w0-low']);
  });

  it('keeps arrival order within a band across workers', () => {
    const c = contest();
    const { w0, w1, order, saturated, take } = c;
    w0.admit('p', 3, saturated, take('first'));
    w1.admit('p', 3, saturated, take('second'));
    w0.admit('p', 3, saturated, take('third'));
    c.room = 1;
    w1.release('p');
    expect(order).toEqual([]);
    w0.release('p');
    expect(order).toEqual(['first']);
    c.room = 2;
    // Each gate re-checks every 10 ms: 'third' (w0) waits for 'second' (w1) to go first.
    vi.advanceTimersByTime(10);
    expect(order).toEqual(['first', 'second']);
    vi.advanceTimersByTime(10);
    expect(order).toEqual(['first', 'second', 'third']);
  });

  it('takes no fast path while another worker has a request waiting for the pool; other pools are not held', () => {
    vi.useFakeTimers();
    const [w0, w1, sab] = pair();
    let sat = true;
    const order: string[] = [];
    w0.admit('p', 0, () => sat, () => order.push('waiting'));
    sat = false;
    // Room now, but w0's request came first.
    expect(w1.admit('p', 0, () => sat, () => order.push('late'))).not.toBeNull();
    expect(w1.admit('q', 0, () => false, () => order.push('other-pool'))).toBeNull();
    expect(order).toEqual(['other-pool']);
    vi.advanceTimersByTime(10);
    expect(order).toEqual(['other-pool', 'waiting', 'late']);
    // A worker that exited leaves no entry behind to hold the others.
    sat = true;
    w0.admit('p', 0, () => sat, () => order.push('orphan'));
    clearGateRow(new Int32Array(sab), 0);
    expect(w1.admit('p', 0, () => false, () => order.push('free'))).toBeNull();
  });
});

describe('SaturationDetector (GIE utilization detector)', () => {
  const regions = allocateRegions(16, 1 << 16, 1024);
  const ep = new Int32Array(regions.endpointSab);
  const eps = [0, 1].map((slot) => ({ slot, gen: 1, podName: `p${slot}`, namespace: 'ns', ip: '127.0.0.1', startedAtSec: 0 }));

  it('averages max(queue/5, kv/0.8) over the pool; unknown metrics count as full', () => {
    const d = new SaturationDetector(ep);
    writeSlot(ep, 0, { waiting: 5, running: 0, kv: 0.2 });
    writeSlot(ep, 1, { waiting: 0, running: 0, kv: 0.4 });
    expect(d.saturation(eps)).toBeCloseTo((1 + 0.5) / 2, 9);
    writeSlot(ep, 1, { state: kScrapeStale });
    expect(d.saturation(eps)).toBeCloseTo(1, 9);
    expect(d.saturation([])).toBe(1);
  });

  it('counts the other replicas\' in-flight requests (shared in-flight counts) into a queueing engine\'s queue', () => {
    const d = new SaturationDetector(ep);
    writeSlot(ep, 0, { waiting: 1, running: 2, kv: 0, inflight: 3 });
    writeSlot(ep, 1, { waiting: 0, running: 0, kv: 0, inflight: 0 });
    expect(d.saturation(eps)).toBeCloseTo((1 / 5 + 0) / 2, 9);
    Atomics.store(ep, epIndex(0, kEpRemoteInflight), 9);
    expect(d.saturation(eps)).toBeCloseTo(((3 + 9 - 2) / 5 + 0) / 2, 9);
    Atomics.store(ep, epIndex(0, kEpRemoteInflight), 0);
  });

  it('a burst within one scrape interval on engines that were not queueing is not saturation (GIE: scraped queue only)', () => {
    const d = new SaturationDetector(ep);
    writeSlot(ep, 0, { waiting: 0, running: 2, kv: 0.1, inflight: 40 });
    writeSlot(ep, 1, { waiting: 0, running: 0, kv: 0, inflight: 40 });
    expect(d.saturation(eps)).toBeCloseTo((0.1 / 0.8 + 0) / 2, 9);
  });

  it('on an engine that was queueing, the router in-flight requests beyond what it was running join the queue (before the next scrape)', () => {
    const d = new SaturationDetector(ep);
    writeSlot(ep, 0, { waiting: 1, running: 2, kv: 0, inflight: 12 });
    writeSlot(ep, 1, { waiting: 0, running: 0, kv: 0 });
    expect(d.saturation(eps)).toBeCloseTo((10 / 5 + 0) / 2, 9);
    writeSlot(ep, 0, { waiting: 7, running: 2, kv: 0, inflight: 3 });
    expect(d.saturation(eps)).toBeCloseTo((7 / 5 + 0) / 2, 9);
  });
});

describe('legacyAdmit (GIE default admission, flow control off)', () => {
  it('admits every non-sheddable request without asking for saturation', () => {
    let asked = 0;
    const saturated = () => { asked++; return true; };
    expect(legacyAdmit(0, saturated)).toBe('admitted');
    expect(legacyAdmit(10, saturated)).toBe('admitted');
    expect(asked).toBe(0);
  });

  it('sheds a negative priority only while saturated', () => {
    expect(legacyAdmit(-1, () => true)).toBe('shed');
    expect(legacyAdmit(-1, () => false)).toBe('admitted');
  });
});
