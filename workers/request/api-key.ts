/**
 * Stage: API-key authentication (workers/auth/api-key.ts) on the ModelRoute path, once the target
 * ModelServer is known and before anything about it is answered (its pods, rate limits, queues).
 * It adds to JWT authentication, which ran at ingress when `auth:` is on: a request must pass both.
 * The user id is the JWT's `sub` when there is one, else the key's user. The header or parameter
 * that carried the key is not forwarded to the pod.
 */
import type { CompiledServer, CompiledSnapshot } from '../compile.js';
import { apiKeyFailed, checkApiKey, queryWithout, type CompiledApiKeyRule } from '../auth/api-key.js';
import { respondError } from './finish.js';
import type { RequestState } from './state.js';

/** False when the request was answered (401/403). */
export function apiKeyAuth(st: RequestState, snap: CompiledSnapshot, server: CompiledServer): boolean {
  const rules = server.apiKeys;
  if (rules === null) return true;
  const out = checkApiKey(rules, snap.apiKeysKnown, (n) => st.headerValue(n), st.query);
  if (!out.ok) {
    apiKeyFailed(server.key, out.reason);
    respondError(st, out.code);
    return false;
  }
  if (st.userId === '') st.userId = out.user;
  st.apiKeyRule = out.rule;
  return true;
}

/** Drops the key's header and parameter from what goes upstream (after upstreamHeaders were built). */
export function stripApiKey(st: RequestState, rule: CompiledApiKeyRule): void {
  if (rule.header !== '') {
    const h = st.upstreamHeaders;
    const out: string[] = [];
    for (let i = 0; i < h.length; i += 2) if (h[i] !== rule.header) out.push(h[i]!, h[i + 1]!);
    st.upstreamHeaders = out;
  }
  if (rule.param !== '' && st.query !== '' && st.upstreamPath === '') {
    const q = queryWithout(st.query, rule.param);
    st.upstreamPath = q === '' ? st.rec.path : `${st.rec.path}?${q}`;
  }
}
