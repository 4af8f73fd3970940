import { describe, expect, it } from 'vitest';
import { FairnessQueue, SessionBoostQueue, type Waiting } from '../../src/admission/queue.js';
import { SessionTracker, TokenTracker } from '../../src/admission/usage.js';

const w = (key: number, user: string, rank: number, seq = key, session = ''): Waiting => ({ key, model: 'm', user, session, seq, enqueuedAt: 0, rank });

function drain(q: FairnessQueue | SessionBoostQueue, now = 0): number[] {
  const out: number[] = [];
  while (q.size > 0) {
    q.peek(now);
    out.push(q.shift().key);
  }
  return out;
}

describe('TokenTracker', () => {
  it('weights prompt and completion tokens and counts requests within the window', () => {
    const t = new TokenTracker(60_000, { input: 1, output: 2 });
    t.record('alice', 'm', 100, 10, 1_000);
    t.record('alice', 'm', 50, 0, 1_500);
    t.record('alice', 'other', 999, 999, 1_500);
    expect(t.usage('alice', 'm', 2_000)).toEqual({ tokens: 170, requests: 2 });
    expect(t.usage('bob', 'm', 2_000)).toEqual({ tokens: 0, requests: 0 });
  });

  it('forgets buckets older than the window, second by second', () => {
    const t = new TokenTracker(10_000, { input: 1, output: 1 });
    t.record('u', 'm', 5, 0, 0);
    t.record('u', 'm', 7, 0, 5_000);
    expect(t.usage('u', 'm', 9_999).tokens).toBe(12);
    expect(t.usage('u', 'm', 10_000).tokens).toBe(7);
    expect(t.usage('u', 'm', 15_000).tokens).toBe(0);
    t.sweep(15_000);
    expect(t.size).toBe(0);
  });

  it('stays exact over many buckets (the expired prefix is reclaimed)', () => {
    const t = new TokenTracker(100_000, { input: 1, output: 0 });
    for (let s = 0; s < 1_000; s++) t.record('u', 'm', 1, 5, s * 1_000);
    expect(t.usage('u', 'm', 999_000)).toEqual({ tokens: 100, requests: 100 });
  });

  it('refuses a window under one second', () => {
    expect(() => new TokenTracker(500, { input: 1, output: 1 })).toThrow(TypeError);
  });
});

describe('SessionTracker', () => {
  it('keeps the most recent completion per session and evicts the least recently completed', () => {
    const s = new SessionTracker(2);
    s.completed('a', 1);
    s.completed('b', 2);
    s.completed('a', 3);
    s.completed('c', 4);
    expect(s.completedAt('a')).toBe(3);
    expect(s.completedAt('b')).toBe(-1);
    expect(s.completedAt('c')).toBe(4);
    expect(s.completedAt('')).toBe(-1);
  });
});

describe('FairnessQueue', () => {
  const tracker = (): TokenTracker => new TokenTracker(3_600_000, { input: 1, output: 2 });

  it('serves the user with the lowest usage first, and anonymous requests last', () => {
    const t = tracker();
    t.record('heavy', 'm', 1000, 0, 0);
    t.record('light', 'm', 10, 0, 0);
    const q = new FairnessQueue(t, { tokenWeight: 1, requestNumWeight: 0, refreshRetries: 0 });
    q.push(w(1, '', q.priorityOf('', 'm', 0)));
    q.push(w(2, 'heavy', q.priorityOf('heavy', 'm', 0)));
    q.push(w(3, 'light', q.priorityOf('light', 'm', 0)));
    q.push(w(4, 'new', q.priorityOf('new', 'm', 0)));
    expect(drain(q)).toEqual([4, 3, 2, 1]);
  });

  it('counts requests with the request-number weight', () => {
    const t = tracker();
    for (let i = 0; i < 5; i++) t.record('chatty', 'm', 1, 0, 0);
    t.record('bulk', 'm', 3, 0, 0);
    const q = new FairnessQueue(t, { tokenWeight: 0, requestNumWeight: 1, refreshRetries: 0 });
    expect(q.priorityOf('chatty', 'm', 0)).toBe(5);
    expect(q.priorityOf('bulk', 'm', 0)).toBe(1);
  });

  it('breaks priority ties by arrival', () => {
    const q = new FairnessQueue(tracker(), { tokenWeight: 1, requestNumWeight: 0, refreshRetries: 0 });
    q.push(w(1, 'b', 0, 1));
    q.push(w(2, 'a', 0, 2));
    q.push(w(3, 'c', 0, 0));
    expect(drain(q)).toEqual([3, 1, 2]);
  });

  // Kthena #1771: a heap with "same user: arrival, else priority" is not transitive once one
  // user's requests carry different priorities, and serves a later request of the user first.
  it('keeps one user FIFO even when its requests were enqueued with different priorities', () => {
    const q = new FairnessQueue(tracker(), { tokenWeight: 1, requestNumWeight: 0, refreshRetries: 0 });
    q.push(w(1, 'u1', 5, 1));
    q.push(w(2, 'u2', 3, 2));
    q.push(w(3, 'u1', 1, 3));
    expect(drain(q)).toEqual([2, 1, 3]);
  });

  it('keeps one user FIFO with priority refresh on, recomputing priorities at dequeue', () => {
    const t = tracker();
    const q = new FairnessQueue(t, { tokenWeight: 1, requestNumWeight: 0, refreshRetries: 3 });
    q.push(w(1, 'a', 0, 1));
    q.push(w(2, 'a', 0, 2));
    q.push(w(3, 'b', 0, 3));
    // 'a' becomes heavy after enqueue: refresh sends 'b' first, 'a' stays in order.
    t.record('a', 'm', 500, 0, 0);
    expect(drain(q)).toEqual([3, 1, 2]);
    expect(q.refreshes).toBeGreaterThan(0);
  });

  it('removes a cancelled request wherever it waits', () => {
    const q = new FairnessQueue(tracker(), { tokenWeight: 1, requestNumWeight: 0, refreshRetries: 0 });
    q.push(w(1, 'a', 0));
    q.push(w(2, 'a', 0));
    q.push(w(3, 'b', 1));
    expect(q.remove(2)).toBe(true);
    expect(q.remove(2)).toBe(false);
    expect(q.size).toBe(2);
    expect(drain(q)).toEqual([1, 3]);
  });
});

describe('SessionBoostQueue', () => {
  it('serves boosted sessions first, the most recently completed first, then FIFO', () => {
    const s = new SessionTracker(10);
    s.completed('old', 100);
    s.completed('fresh', 200);
    const q = new SessionBoostQueue(s);
    const add = (key: number, session: string): void => q.push(w(key, '', q.rankOf(session), key, session));
    add(1, 'none1');
    add(2, 'old');
    add(3, 'none2');
    add(4, 'fresh');
    add(5, 'old');
    expect(drain(q)).toEqual([4, 2, 5, 1, 3]);
  });

  it('keeps heap order when a request is removed from the middle', () => {
    const q = new SessionBoostQueue(new SessionTracker(10));
    for (let i = 0; i < 50; i++) q.push(w(i, '', (i * 37) % 11 === 0 ? -1 : (i * 17) % 23, i));
    for (const k of [7, 13, 21, 40, 0]) q.remove(k);
    const out = drain(q);
    expect(out).toHaveLength(45);
    const ranks = out.map((k) => ((k * 37) % 11 === 0 ? -1 : (k * 17) % 23));
    for (let i = 1; i < out.length; i++) {
      const a = ranks[i - 1]!;
      const b = ranks[i]!;
      // boosted before not boosted; among boosted descending rank; equal rank by arrival
      expect(a >= 0 || b < 0).toBe(true);
      if (a >= 0 && b >= 0) expect(a > b || (a === b && out[i - 1]! < out[i]!)).toBe(true);
      if (a < 0 && b < 0) expect(out[i - 1]! < out[i]!).toBe(true);
    }
  });
});
