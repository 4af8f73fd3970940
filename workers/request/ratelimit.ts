/**
 * Stage: token rate limits of the matched ModelRoute (docs/traffic-policy.md). Runs once the
 * route matched and its ModelServer has a ready pod, right before scheduling: the input estimate
 * is taken from the input budget and the output budget must hold a token (a 429 otherwise). When
 * the request ends, finish() charges the engine's completion tokens (chargeOutput).
 *
 * Local limits answer synchronously from the shared buckets; a global limit awaits one Redis
 * script call, and the request continues (or ends) through the same error boundary.
 */
import type { CompiledRoute, CompiledSnapshot } from '../compile.js';
import { kAllowed, kInputExceeded, type Verdict } from '../ratelimit/limiter.js';
import { clientAborted, internalError, respondError } from './finish.js';
import type { RequestState } from './state.js';

/** Runs `next` when the request fits the route's budgets for `model`; answers 429 otherwise. */
export function rateLimit(st: RequestState, snap: CompiledSnapshot, route: CompiledRoute, model: string, next: () => void): void {
  const limits = route.rateLimit;
  const lim = limits === null ? undefined : limits.get(model);
  if (lim === undefined) { next(); return; }
  const limiter = st.l.ctx.rateLimiter;
  limiter.sync(snap);
  st.rateLimit = lim;
  const v = limiter.admit(lim, st.rec.inputTokens > 0 ? st.rec.inputTokens : 0);
  if (typeof v === 'number') { verdict(st, v, next); return; }
  v.then((answer) => {
    if (st.finished) return;
    if (st.aborted) { clientAborted(st); return; }
    try {
      verdict(st, answer, next);
    } catch (err) {
      internalError(st, err);
    }
  }, (err: unknown) => internalError(st, err));
}

function verdict(st: RequestState, v: Verdict, next: () => void): void {
  if (v === kAllowed) { next(); return; }
  const rec = st.rec;
  // Only the admitted request's output is charged later.
  st.rateLimit = null;
  st.l.ctx.rateLimiter.exceeded(rec.modelLabel, v, rec.path);
  // Kthena logs input_rate_limit / output_rate_limit and counts error_type="rate_limit".
  rec.metricErrorType = 'rate_limit';
  respondError(st, v === kInputExceeded ? 'RTR_ERR_INPUT_RATE_LIMIT' : 'RTR_ERR_OUTPUT_RATE_LIMIT');
}

/** finish(): the engine's completion tokens go to the output budget of the admitted request. */
export function chargeOutput(st: RequestState): void {
  const lim = st.rateLimit;
  if (lim === null) return;
  st.rateLimit = null;
  if (st.rec.outputTokens > 0) st.l.ctx.rateLimiter.recordOutput(lim, st.rec.outputTokens);
}
