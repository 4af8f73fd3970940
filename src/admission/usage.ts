/**
 * Per-(user, model) token usage over a sliding window, the input of the fairness priority
 * (volcano-sh/kthena:pkg/kthena-router/datastore/token_tracker.go keeps 1-second buckets the same
 * way). One tracker per router: it lives on the control thread and every worker reports to it, so a
 * user's usage is the same whichever worker served the request.
 */

interface Series {
  /** Whole seconds of the buckets, oldest first; parallel to `tokens` and `requests`. */
  secs: number[];
  tokens: number[];
  requests: number[];
  /** Index of the oldest live bucket (entries before it are expired and reclaimed lazily). */
  head: number;
  sumTokens: number;
  sumRequests: number;
}

export interface UsageWeights {
  input: number;
  output: number;
}

export class TokenTracker {
  readonly #windowSec: number;
  readonly #weights: UsageWeights;
  readonly #series = new Map<string, Series>();

  constructor(windowMs: number, weights: UsageWeights) {
    if (!(windowMs >= 1000)) throw new TypeError(`window must be at least 1 s, got ${windowMs} ms`);
    this.#windowSec = Math.floor(windowMs / 1000);
    this.#weights = weights;
  }

  /** Records one completed request (prompt and completion tokens from the engine's usage). */
  record(user: string, model: string, promptTokens: number, completionTokens: number, nowMs: number): void {
    const key = user + '\u0000' + model;
    let s = this.#series.get(key);
    if (s === undefined) {
      s = { secs: [], tokens: [], requests: [], head: 0, sumTokens: 0, sumRequests: 0 };
      this.#series.set(key, s);
    }
    this.#expire(s, nowMs);
    const sec = Math.floor(nowMs / 1000);
    const weighted = promptTokens * this.#weights.input + completionTokens * this.#weights.output;
    const last = s.secs.length - 1;
    if (last >= s.head && s.secs[last] === sec) {
      s.tokens[last]! += weighted;
      s.requests[last]! += 1;
    } else {
      s.secs.push(sec);
      s.tokens.push(weighted);
      s.requests.push(1);
    }
    s.sumTokens += weighted;
    s.sumRequests += 1;
  }

  /** Weighted tokens and request count of `user` on `model` within the window ending now. */
  usage(user: string, model: string, nowMs: number): { tokens: number; requests: number } {
    const s = this.#series.get(user + '\u0000' + model);
    if (s === undefined) return { tokens: 0, requests: 0 };
    this.#expire(s, nowMs);
    return { tokens: s.sumTokens, requests: s.sumRequests };
  }

  /** Drops series whose every bucket expired (bounded memory for users who went away). */
  sweep(nowMs: number): void {
    for (const [k, s] of this.#series) {
      this.#expire(s, nowMs);
      if (s.head >= s.secs.length) this.#series.delete(k);
    }
  }

  get size(): number {
    return this.#series.size;
  }

  #expire(s: Series, nowMs: number): void {
    const oldest = Math.floor(nowMs / 1000) - this.#windowSec;
    while (s.head < s.secs.length && s.secs[s.head]! <= oldest) {
      s.sumTokens -= s.tokens[s.head]!;
      s.sumRequests -= s.requests[s.head]!;
      s.head++;
    }
    // Reclaim the expired prefix once it dominates the arrays (amortised O(1)).
    if (s.head > 64 && s.head * 2 > s.secs.length) {
      s.secs.splice(0, s.head);
      s.tokens.splice(0, s.head);
      s.requests.splice(0, s.head);
      s.head = 0;
    }
    if (s.head >= s.secs.length) { s.sumTokens = 0; s.sumRequests = 0; }
  }
}

/** The bounded LRU of recently completed sessions (session boost): session id -> completion time. */
export class SessionTracker {
  readonly #cap: number;
  readonly #done = new Map<string, number>();

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new TypeError(`session capacity must be at least 1, got ${capacity}`);
    this.#cap = capacity;
  }

  completed(session: string, nowMs: number): void {
    if (session === '') return;
    // Map iteration order is insertion order: delete-then-set moves the session to the young end.
    this.#done.delete(session);
    this.#done.set(session, nowMs);
    if (this.#done.size > this.#cap) this.#done.delete(this.#done.keys().next().value as string);
  }

  /** Completion time of the session's last request, or -1 when it is not among the recent ones. */
  completedAt(session: string): number {
    if (session === '') return -1;
    return this.#done.get(session) ?? -1;
  }

  get size(): number {
    return this.#done.size;
  }
}
