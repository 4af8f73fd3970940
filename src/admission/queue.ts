/**
 * The per-model request queues of Kthena's fairness scheduling and session boost: which waiting
 * request goes next. Pure ordering and bookkeeping; time comes from the caller and nothing here
 * owns a timer (the AdmissionService does), so every rule is unit-testable.
 *
 * Fairness: requests wait per user in arrival order, and the next request is the head of the user
 * with the lowest priority (ties by arrival). Kthena keeps one heap of requests whose comparator
 * says "same user: arrival; else: priority", which is not transitive once a user's requests carry
 * different priorities, so its heap can serve a user's later request first (volcano-sh/kthena
 * #1771). Choosing among per-user heads keeps every user's requests FIFO by construction, whatever
 * the refresh setting.
 *
 * Session boost: requests of a session that completed a request recently (SessionTracker) go first,
 * the most recently completed session first; everyone else is FIFO.
 */
import type { SessionTracker, TokenTracker } from './usage.js';

export interface Waiting {
  /** Router-wide request id (worker index and the worker's own id folded by the caller). */
  key: number;
  model: string;
  /** JWT subject; '' when the request is anonymous (served after every identified user). */
  user: string;
  session: string;
  /** Arrival order, router-wide. */
  seq: number;
  enqueuedAt: number;
  /** Fairness: priority computed at enqueue (lower first). Session boost: completion time of the session, -1 if not boosted. */
  rank: number;
}

export interface FairnessParams {
  tokenWeight: number;
  requestNumWeight: number;
  /** 0: priorities are fixed at enqueue (Kthena's default); >0: the head's priority is recomputed at dequeue. */
  refreshRetries: number;
}

export interface ModelQueue {
  readonly size: number;
  push(w: Waiting): void;
  /** The request to admit next (not removed), or null. */
  peek(nowMs: number): Waiting | null;
  /** Removes the request `peek` returned. */
  shift(): Waiting;
  /** Removes a request wherever it is (cancelled or timed out); false when it was not queued. */
  remove(key: number): boolean;
  /** Every waiting request, for timeouts and shutdown. */
  all(): Iterable<Waiting>;
}

export class FairnessQueue implements ModelQueue {
  readonly #users = new Map<string, Waiting[]>();
  readonly #tracker: TokenTracker;
  readonly #p: FairnessParams;
  #size = 0;
  #peeked: string | null = null;
  /** Dequeues whose head priority was recomputed (kthena_router_fairness_queue_priority_refresh_total). */
  refreshes = 0;

  constructor(tracker: TokenTracker, params: FairnessParams) {
    this.#tracker = tracker;
    this.#p = params;
  }

  get size(): number {
    return this.#size;
  }

  /** Kthena's priority: token weight x weighted tokens + request weight x request count; anonymous = +Inf. */
  priorityOf(user: string, model: string, nowMs: number): number {
    if (user === '') return Number.POSITIVE_INFINITY;
    const u = this.#tracker.usage(user, model, nowMs);
    return this.#p.tokenWeight * u.tokens + this.#p.requestNumWeight * u.requests;
  }

  push(w: Waiting): void {
    let q = this.#users.get(w.user);
    if (q === undefined) { q = []; this.#users.set(w.user, q); }
    q.push(w);
    this.#size++;
    this.#peeked = null;
  }

  peek(nowMs: number): Waiting | null {
    let best: Waiting | null = null;
    let bestPrio = 0;
    let bestUser = '';
    for (const [user, q] of this.#users) {
      const head = q[0]!;
      let prio = head.rank;
      if (this.#p.refreshRetries > 0) {
        prio = this.priorityOf(user, head.model, nowMs);
        head.rank = prio;
      }
      if (best === null || prio < bestPrio || (prio === bestPrio && head.seq < best.seq)) {
        best = head;
        bestPrio = prio;
        bestUser = user;
      }
    }
    if (best !== null && this.#p.refreshRetries > 0) this.refreshes++;
    this.#peeked = best === null ? null : bestUser;
    return best;
  }

  shift(): Waiting {
    const user = this.#peeked;
    if (user === null) throw new Error('shift() without a successful peek()');
    const q = this.#users.get(user)!;
    const w = q.shift()!;
    if (q.length === 0) this.#users.delete(user);
    this.#size--;
    this.#peeked = null;
    return w;
  }

  remove(key: number): boolean {
    for (const [user, q] of this.#users) {
      const i = q.findIndex((w) => w.key === key);
      if (i < 0) continue;
      q.splice(i, 1);
      if (q.length === 0) this.#users.delete(user);
      this.#size--;
      this.#peeked = null;
      return true;
    }
    return false;
  }

  *all(): Iterable<Waiting> {
    for (const q of this.#users.values()) yield* q;
  }
}

/** Boosted first (most recently completed session first), then arrival order. A binary heap. */
export class SessionBoostQueue implements ModelQueue {
  readonly #heap: Waiting[] = [];
  readonly #sessions: SessionTracker;

  constructor(sessions: SessionTracker) {
    this.#sessions = sessions;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** The rank a request gets at enqueue: its session's completion time, or -1 (not boosted). */
  rankOf(session: string): number {
    return this.#sessions.completedAt(session);
  }

  push(w: Waiting): void {
    const h = this.#heap;
    h.push(w);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  peek(): Waiting | null {
    return this.#heap[0] ?? null;
  }

  shift(): Waiting {
    return this.#removeAt(0);
  }

  remove(key: number): boolean {
    const i = this.#heap.findIndex((w) => w.key === key);
    if (i < 0) return false;
    this.#removeAt(i);
    return true;
  }

  all(): Iterable<Waiting> {
    return this.#heap;
  }

  #removeAt(i: number): Waiting {
    const h = this.#heap;
    const out = h[i]!;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      this.#siftDown(i);
      // The moved element may also belong above i (removal from the middle of a heap).
      let j = i;
      while (j > 0) {
        const p = (j - 1) >> 1;
        if (!before(h[j]!, h[p]!)) break;
        [h[j], h[p]] = [h[p]!, h[j]!];
        j = p;
      }
    }
    return out;
  }

  #siftDown(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

/** Session-boost order: a total order (boosted, then completion time descending, then arrival). */
function before(a: Waiting, b: Waiting): boolean {
  const ab = a.rank >= 0;
  const bb = b.rank >= 0;
  if (ab !== bb) return ab;
  if (ab && a.rank !== b.rank) return a.rank > b.rank;
  return a.seq < b.seq;
}
