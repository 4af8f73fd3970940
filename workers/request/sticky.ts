/**
 * Session-sticky routing (ModelRoute.spec.sessionSticky, Kthena's session-sticky proposal): the
 * session key comes from the route's sources in order (first non-empty wins); a live binding pins
 * the request to its pod as long as that pod is still among the pods the scheduler's filters let
 * through; otherwise the binding is dropped (logged) and normal scheduling picks a pod, which is
 * bound for sessionAffinitySeconds. Every try rebinds, so a retry that moved the request to
 * another pod moves the session with it. The table is router-wide shared memory
 * (workers/sticky/memory-store.ts): every worker thread sees the same bindings. With
 * --session-sticky-store redis the binding is Redis's (workers/sticky/redis-store.ts), one round
 * trip after the ranking (scheduleStickyRedis), and the local table is the fallback.
 */
import type { CompiledEndpoint, CompiledRoute, CompiledServer } from '../compile.js';
import { stickyKeyHash } from '../sticky/memory-store.js';
import { stickyRedisKey } from '../sticky/redis-store.js';
import { Attempt, type Launch } from './attempt.js';
import type { RequestState } from './state.js';

/** Routes already warned about a PD target (once per route and worker). */
const pdWarned = new Set<string>();

/** Sets st.stickyKey when the route is sticky and one of its sources yields a session key. */
export function stickySession(st: RequestState, route: CompiledRoute, server: CompiledServer): void {
  const sticky = route.sticky;
  if (sticky === null) return;
  if (server.pd !== null) {
    // The proposal leaves PD out: a session would have to pin a pair across two roles.
    if (!pdWarned.has(route.key)) {
      pdWarned.add(route.key);
      st.l.ctx.log('warn', { modelRoute: route.key, modelServer: server.key }, 'sessionSticky is bypassed for prefill/decode targets');
    }
    return;
  }
  let value = '';
  for (let i = 0; i < sticky.sources.length && value === ''; i++) {
    const src = sticky.sources[i];
    if (src.type === 'Header') value = st.headerValue(src.name).trim();
    else if (src.type === 'Query') value = queryValue(st.query, src.name);
    else if (src.type === 'Cookie') value = cookieValue(st.headerValue('cookie'), src.name);
    else value = claimValue(st.claims, src.name);
  }
  if (value === '') return;
  const k = new Int32Array(2);
  stickyKeyHash(route.key, value, k);
  st.stickyKey = k;
  st.stickyTtlSec = sticky.ttlSec;
  if (st.l.ctx.stickyRedis) st.stickyRedisKey = stickyRedisKey(route.key, value);
}

function queryValue(query: string, name: string): string {
  if (query === '') return '';
  return (new URLSearchParams(query).get(name) ?? '').trim();
}

/**
 * A top-level claim of the verified token: a string (trimmed) or a finite number in its JSON
 * spelling; any other type, or no token (JWT authentication off), is empty. Claim names are exact.
 */
function claimValue(claims: Readonly<Record<string, unknown>> | null, name: string): string {
  if (claims === null) return '';
  const v = claims[name];
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return '';
}

/** Cookie names are case-sensitive and matched exactly (RFC 6265 `name=value; name2=value2`). */
function cookieValue(header: string, name: string): string {
  if (header === '') return '';
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return '';
}

/**
 * The bound pod of the request's session if the scheduler ranked it (it passed every filter):
 * moved to the front of `ranked`. A binding whose pod is no longer schedulable is deleted.
 * Returns how many ranked entries to keep.
 */
export function pinBound(st: RequestState, server: CompiledServer, ranked: Int32Array, n: number, bound: number, gen: number, keep: number): number {
  let at = -1;
  for (let i = 0; i < n; i++) {
    const ep = server.endpoints[ranked[i]];
    if (ep.slot === bound && ep.gen === gen) { at = i; break; }
  }
  if (at < 0) {
    const k = st.stickyKey!;
    st.l.ctx.sticky.delete(k[0], k[1]);
    st.l.ctx.log('info', { requestId: st.rec.requestId, modelServer: server.key }, 'session-sticky pod is no longer schedulable; the session is bound again');
    return Math.min(n, keep);
  }
  const pinned = ranked[at];
  for (let i = at; i > 0; i--) ranked[i] = ranked[i - 1];
  ranked[0] = pinned;
  return Math.min(n, keep);
}

/** Moves the ranked pod named `pod` (namespace/name) to the front; false when it is not ranked. */
export function pinPod(server: CompiledServer, ranked: Int32Array, n: number, pod: string): boolean {
  for (let at = 0; at < n; at++) {
    if (server.endpoints[ranked[at]].key !== pod) continue;
    const pinned = ranked[at];
    for (let i = at; i > 0; i--) ranked[i] = ranked[i - 1];
    ranked[0] = pinned;
    return true;
  }
  return false;
}

/** The aggregated try of a sticky request: binds the session to the try's pod, then sends. */
export const stickyAttempt: Launch = (st) => {
  const ep: CompiledEndpoint = st.server!.endpoints[st.ranked![(st.attempt - 1) % st.rankedCount]];
  const k = st.stickyKey!;
  const ctx = st.l.ctx;
  // The local table is written in Redis mode too: it decides while Redis cannot answer.
  ctx.sticky.set(k[0], k[1], ep.slot, ep.gen, st.stickyTtlSec);
  if (st.stickyPod !== '' && st.stickyPod !== ep.key) {
    // A retry moved the request: the session follows it (unless another replica moved it first).
    void ctx.stickyRedis!.rebind(st.stickyRedisKey, st.stickyPod, ep.key, st.stickyTtlSec);
    st.stickyPod = ep.key;
  }
  new Attempt(st, ep, -1, stickyAttempt).send(st.upstreamBody);
};
