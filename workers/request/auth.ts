/**
 * Stage: Kthena's JWT authentication (workers/auth/jwt.ts) of every /v1/* request, GET /v1/models
 * included; health, readiness and metrics never reach it. It starts with the request, beside the
 * body read: a token verified before answers at once, a new one is verified in WebCrypto while the
 * body arrives, and the request goes on (afterAuth) only once both are done. The token's `sub` is
 * the request's user id.
 */
import type { AuthOutcome } from '../auth/jwt.js';
import { clientAborted, internalError, respondError } from './finish.js';
import type { RequestState } from './state.js';

/** Starts authentication; false when the request was answered (401) already. */
export function authenticate(st: RequestState): boolean {
  const ctx = st.l.ctx;
  const authn = ctx.auth.for(ctx.reader.current());
  if (authn === null) return true;
  const out = authn.authenticate(st.headerValue('authorization'));
  if (!(out instanceof Promise)) return settle(st, out);
  st.authPending = true;
  out.then((o) => {
    st.authPending = false;
    if (st.finished) return;
    if (st.aborted) { clientAborted(st); return; }
    try {
      if (!settle(st, o)) return;
      const next = st.afterAuth;
      st.afterAuth = null;
      if (next !== null) next();
    } catch (err) {
      internalError(st, err);
    }
  }, (err: unknown) => internalError(st, err));
  return true;
}

/** Runs `next` now, or once a pending authentication succeeded. */
export function afterAuth(st: RequestState, next: () => void): void {
  if (st.authPending) st.afterAuth = next;
  else next();
}

function settle(st: RequestState, o: AuthOutcome): boolean {
  if (o.ok) { st.userId = o.sub; st.claims = o.claims; return true; }
  respondError(st, o.code, o.detail === '' ? undefined : o.detail);
  return false;
}
