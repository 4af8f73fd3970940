/**
 * The Gateway API path (docs/gateway-api.md): the listener by port and Host; on /v1/ paths the
 * ModelRoutes bound to that Gateway first (docs/reference/kthena-behaviour.md §6.3); then the HTTPRoutes attached to the
 * listener in the specification's precedence order, their filters, a weighted Service or
 * InferencePool backend, the rule's request timeout, and InferencePool admission.
 */
import { jsonTooDeep } from './framing.js';
import { RouterError } from '../../src/errors.js';
import type { HeaderModifierIR } from '../../src/ir/gateway.js';
import type { CompiledGatewaySnapshot, CompiledServer, CompiledSnapshot } from '../compile.js';
import {
  applyHeaderModifier, backendStatus, matchGateway, modifyPath, pickBackend, redirectLocation, selectListener,
} from '../gateway-match.js';
import { legacyAdmit } from '../flow-control.js';
import { extractPrompt, estimateTokens } from '../prompt.js';
import type { Profile } from '../scheduler/framework.js';
import { matchRoute, serveModelRoute } from './dispatch-modelroute.js';
import { clientAborted, failAfterResponse, finish, internalError, respondError, statusLine, upstreamDone } from './finish.js';
import { buildUpstreamBody, upstreamHeaders } from './forward.js';
import { scheduleAggregated } from './schedule.js';
import { pickExternally } from '../epp/route.js';
import type { RequestState } from './state.js';

export function dispatchGateway(st: RequestState, buf: Buffer, snap: CompiledSnapshot<Profile>, gw: CompiledGatewaySnapshot): void {
  const { ctx, port, tls } = st.l;
  const rec = st.rec;
  const host = st.headerValue('host');
  const isV1 = rec.path.startsWith('/v1/');
  const li = selectListener(gw.match, port, host);
  if (li < 0) { respondError(st, isV1 ? 'RTR_ERR_NO_ROUTE' : 'RTR_ERR_PATH_NOT_FOUND'); return; }
  const listener = gw.match.listeners[li].ir;
  rec.gateway = listener.gateway;
  let text = '';
  let body: Record<string, unknown> | null = null;
  if (buf.length > 0) {
    text = buf.toString('utf8');
    try {
      const parsed: unknown = JSON.parse(text);
      // Too deep to re-serialize safely: treated as opaque bytes, like a body that is not JSON.
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && !jsonTooDeep(parsed)) body = parsed as Record<string, unknown>;
    } catch { /* not JSON: HTTPRoute backends receive it as is */ }
  }
  const model = body !== null && typeof body.model === 'string' ? body.model : '';
  if (model !== '') {
    rec.modelName = model;
    if (snap.byModel.has(model) || snap.byLora.has(model)) rec.modelLabel = model;
  }
  if (rec.logged) { ctx.metrics.downstreamStarted(rec.modelLabel); st.downstreamCounted = true; }
  if (isV1 && body !== null && model.trim() !== '') {
    const allowed = gw.models[listener.gatewayIndex].get(model);
    if (allowed !== undefined) {
      const prompt = extractPrompt(body);
      if (prompt === null) { respondError(st, 'RTR_ERR_PROMPT_NOT_FOUND'); return; }
      rec.inputTokens = estimateTokens(prompt);
      const m = matchRoute(st, snap, model, allowed);
      if (m !== null) { serveModelRoute(st, snap, buf, text, body, model, prompt, m); return; }
    }
  }

  const r = matchGateway(gw.match, port, host, st.method, rec.path, (n) => st.headerValue(n), st.query);
  if (r.kind !== 'match') { respondError(st, isV1 ? 'RTR_ERR_NO_ROUTE' : 'RTR_ERR_PATH_NOT_FOUND'); return; }
  const rule = r.rule.ir;
  rec.httpRoute = gw.match.ir.routes[rule.route].key;
  const f = rule.filters;
  if (f.redirect !== null) {
    const location = redirectLocation(f.redirect, { scheme: tls ? 'https' : 'http', host, path: rec.path, query: st.query }, listener.port, r.prefix);
    const status = f.redirect.statusCode;
    rec.statusCode = status;
    st.responded = true;
    const res = st.res;
    res.cork(() => { res.writeStatus(statusLine(status)).writeHeader('location', location).end(); });
    finish(st);
    return;
  }
  if (rule.directStatus !== 0) { respondError(st, 'RTR_ERR_BACKEND_INVALID', `rule ${rule.ruleIndex} of HTTPRoute ${rec.httpRoute} has no backend with a weight`); return; }
  const bi = pickBackend(r.rule, Math.random());
  if (bi < 0) { respondError(st, 'RTR_ERR_BACKEND_INVALID', `rule ${rule.ruleIndex} of HTTPRoute ${rec.httpRoute} has no backend with a weight`); return; }
  const b = rule.backends[bi];
  rec.backendType = b.kind === 'pool' ? 'inference_pool' : b.kind === 'service' ? 'service' : '';
  rec.backendName = b.key;
  if (b.kind === 'pool') rec.inferencePool = b.key;
  const status = backendStatus(gw.match, b);
  if (status !== 0) {
    if (status === 500) respondError(st, 'RTR_ERR_BACKEND_INVALID', `${b.key} (${b.reason})`);
    else respondError(st, 'RTR_ERR_BACKEND_NO_ENDPOINT', b.key);
    return;
  }
  const server = gw.backends[r.entry.rule][bi]!;
  if (f.requestHeaders !== null) modifyRequestHeaders(st, f.requestHeaders);
  if (b.requestHeaders !== null) modifyRequestHeaders(st, b.requestHeaders);
  if (f.responseHeaders !== null || b.responseHeaders !== null) {
    st.respMods = [];
    if (f.responseHeaders !== null) st.respMods.push(f.responseHeaders);
    if (b.responseHeaders !== null) st.respMods.push(b.responseHeaders);
  }
  if (f.rewrite !== null) {
    if (f.rewrite.path !== null) {
      const path = modifyPath(f.rewrite.path, rec.path, r.prefix);
      st.upstreamPath = st.query === '' ? path : path + '?' + st.query;
    }
    if (f.rewrite.hostname !== '') setRequestHeader(st, 'host', f.rewrite.hostname);
  }
  st.server = server;
  rec.upstreamModel = model;
  if (body !== null) st.upstreamBody = buildUpstreamBody(st, buf, text, body, server);
  else st.rawBody = buf;
  st.upstreamHeaders = upstreamHeaders(st.headers);
  const prompt = body !== null ? extractPrompt(body) ?? '' : '';
  if (rec.inputTokens < 0 && prompt !== '') rec.inputTokens = estimateTokens(prompt);
  st.profile = snap.profile;
  st.sreq = { model, modelId: snap.modelIds.get(model) ?? -1, prompt, body: body ?? {}, engine: server.engine };
  if (rule.requestTimeoutMs > 0) {
    const ms = rule.requestTimeoutMs;
    st.requestTimer = setTimeout(() => {
      st.requestTimer = null;
      try { requestTimedOut(st, ms); } catch (err) { internalError(st, err); }
    }, ms);
  }
  if (b.kind !== 'pool') { scheduleAggregated(st, server, null); return; }
  const pool = gw.match.ir.pools[b.pool];
  if (pool.epp !== null) { pickExternally(st, server, pool, gw, tls ? 'https' : 'http', () => admit(st, server, pool)); return; }
  admit(st, server, pool);
}

/**
 * InferenceObjective priority (x-gateway-inference-objective; unknown or absent = 0). By default
 * GIE's admission: only a sheddable request (negative priority) is refused, while the pool is
 * saturated; with --inference-pool-flow-control, requests wait in priority bands while it is
 * (flow-control.ts).
 */
function admit(st: RequestState, server: CompiledServer, pool: { key: string; objectives: readonly { name: string; priority: number }[] }): void {
  const ctx = st.l.ctx;
  const objective = st.headerValue('x-gateway-inference-objective');
  let priority = 0;
  if (objective !== '') for (const o of pool.objectives) if (o.name === objective) { priority = o.priority; break; }
  const endpoints = server.endpoints;
  if (!ctx.cfg.inferencePoolFlowControl) {
    if (legacyAdmit(priority, () => ctx.saturation.saturation(endpoints) >= 1) === 'shed') { ctx.gate.counts.shed++; respondError(st, 'RTR_ERR_SHED'); return; }
    scheduleAggregated(st, server, null);
    return;
  }
  st.gatePool = pool.key;
  st.ticket = ctx.gate.admit(pool.key, priority, () => ctx.saturation.saturation(endpoints) >= 1, (outcome) => {
    st.ticket = null;
    if (st.finished) return;
    try {
      if (outcome === 'admitted') { if (st.aborted) clientAborted(st); else scheduleAggregated(st, server, null); return; }
      if (outcome === 'shed') respondError(st, 'RTR_ERR_SHED');
      else if (outcome === 'full') respondError(st, 'RTR_ERR_QUEUE_FULL', pool.key);
      else respondError(st, 'RTR_ERR_QUEUE_TIMEOUT', pool.key);
    } catch (err) {
      internalError(st, err);
    }
  });
}

function setRequestHeader(st: RequestState, name: string, value: string): void {
  const h = st.headers;
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) { h[i + 1] = value; return; }
  h.push(name, value);
}

/** RequestHeaderModifier on the flat header list (names are lower case on both sides). */
function modifyRequestHeaders(st: RequestState, mod: HeaderModifierIR): void {
  const pairs: [string, string][] = [];
  const h = st.headers;
  for (let i = 0; i < h.length; i += 2) pairs.push([h[i], h[i + 1]]);
  const out = applyHeaderModifier(mod, pairs);
  const flat: string[] = [];
  for (const [k, v] of out) flat.push(k.toLowerCase(), v);
  st.headers = flat;
}

/** HTTPRoute timeouts.request: the whole request, including retries and the response body. */
export function requestTimedOut(st: RequestState, ms: number): void {
  if (st.finished) return;
  const err = new RouterError('RTR_ERR_REQUEST_TIMEOUT', `${ms}ms`);
  const live = st.current;
  if (live !== null) live.cancel(err);
  if (st.prefill !== null) st.prefill.cancel();
  if (st.retryTimer !== null) { clearTimeout(st.retryTimer); st.retryTimer = null; }
  upstreamDone(st);
  if (st.responded) failAfterResponse(st, 'RTR_ERR_REQUEST_TIMEOUT', `${ms}ms`, '');
  else respondError(st, 'RTR_ERR_REQUEST_TIMEOUT', `${ms}ms`);
}
