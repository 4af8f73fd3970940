/**
 * The ModelRoute path (Kthena's own routing): the body's `model`, the prompt, the first matching
 * rule of the oldest matching ModelRoute, a weighted target, the ModelServer, then scheduling.
 * The Gateway path reuses matchRoute/serveModelRoute for /v1/* requests whose model has a
 * ModelRoute bound to the Gateway.
 */
import { testMatch, type CompiledRoute, type CompiledRule, type CompiledSnapshot, type CompiledTarget } from '../compile.js';
import { decodeBase, prefillBase } from '../pd.js';
import { extractPrompt, estimateTokens } from '../prompt.js';
import type { Profile } from '../scheduler/framework.js';
import { respondError } from './finish.js';
import { jsonTooDeep, kMaxJsonDepth } from './framing.js';
import { buildUpstreamBody, upstreamHeaders } from './forward.js';
import { rateLimit } from './ratelimit.js';
import { apiKeyAuth, stripApiKey } from './api-key.js';
import { schedule } from './schedule.js';
import { queueThen } from './admission.js';
import { stickySession } from './sticky.js';
import type { RequestState } from './state.js';
import { serveProvider } from '../provider/serve.js';
import { failOverEarly } from '../provider/fallback.js';

export interface RouteMatch {
  route: CompiledRoute;
  target: CompiledTarget;
  /** The rule's provider to fail over to when `target` is a ModelServer (route opted in), else null. */
  fallback: CompiledTarget | null;
}

/** A request body on a router without Gateway API. */
export function dispatchModelRoute(st: RequestState, snap: CompiledSnapshot<Profile>, buf: Buffer): void {
  const rec = st.rec;
  const ctx = st.l.ctx;
  const text = buf.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    // A complete first value followed by more content: Kthena's "invalid request body".
    if (message.startsWith('Unexpected non-whitespace character after JSON')) respondError(st, 'RTR_ERR_INVALID_BODY');
    else respondError(st, 'RTR_ERR_BAD_JSON', text.trim() === '' ? 'EOF' : message);
    return;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) { respondError(st, 'RTR_ERR_INVALID_BODY'); return; }
  // Parts of the body are re-serialized (stream_options, messages for /tokenize): 100k nested
  // arrays overflowed the stack there (500 with a stack trace); refused up front instead.
  if (jsonTooDeep(parsed)) { respondError(st, 'RTR_ERR_JSON_TOO_DEEP', String(kMaxJsonDepth)); return; }
  const body = parsed as Record<string, unknown>;
  const model = body.model;
  if (typeof model !== 'string' || model.trim() === '') { respondError(st, 'RTR_ERR_MODEL_NOT_FOUND'); return; }
  rec.modelName = model;
  if (snap.byModel.has(model) || snap.byLora.has(model)) rec.modelLabel = model;
  ctx.metrics.downstreamStarted(rec.modelLabel);
  st.downstreamCounted = true;

  const prompt = extractPrompt(body);
  if (prompt === null) { respondError(st, 'RTR_ERR_PROMPT_NOT_FOUND'); return; }
  rec.inputTokens = estimateTokens(prompt);

  const m = matchRoute(st, snap, model);
  if (m === null) { respondError(st, 'RTR_ERR_NO_ROUTE'); return; }
  serveModelRoute(st, snap, buf, text, body, model, prompt, m);
}

function ruleMatches(st: RequestState, rule: CompiledRule, model: string): boolean {
  if (rule.matchAll) return true;
  if (rule.bodyModel !== null && rule.bodyModel !== model) return false;
  if (rule.uri !== null && !testMatch(rule.uri, st.rec.path)) return false;
  for (let i = 0; i < rule.headers.length; i++) {
    const h = rule.headers[i];
    if (!testMatch(h, st.headerValue(h.name))) return false;
  }
  return true;
}

function pickTarget(rule: CompiledRule): CompiledTarget | null {
  if (rule.totalWeight <= 0) return null;
  const r = Math.floor(Math.random() * rule.totalWeight);
  const c = rule.cumulative;
  for (let i = 0; i < c.length; i++) if (r < c[i]) return rule.targets[i];
  return null;
}

/**
 * `allowed`: the ModelRoutes bound to the request's Gateway (docs/reference/kthena-behaviour.md §6.3), or null without
 * Gateway API, where a route with parentRefs never matches.
 */
export function matchRoute(st: RequestState, snap: CompiledSnapshot, model: string, allowed: Set<string> | null = null): RouteMatch | null {
  let candidates = snap.byModel.get(model);
  st.isLora = false;
  if (candidates === undefined) {
    candidates = snap.byLora.get(model);
    if (candidates === undefined) return null;
    st.isLora = true;
  }
  for (let i = 0; i < candidates.length; i++) {
    const route = candidates[i];
    // Without Gateway API a route bound to a Gateway never matches (docs/reference/kthena-behaviour.md §6.3).
    if (allowed === null ? route.hasParentRefs : !allowed.has(route.key)) continue;
    for (let j = 0; j < route.rules.length; j++) {
      const rule = route.rules[j];
      if (!ruleMatches(st, rule, model)) continue;
      const target = pickTarget(rule);
      if (target !== null) return { route, target, fallback: target.kind === 'server' ? rule.fallback ?? null : null };
    }
  }
  return null;
}

/** A request matched a ModelRoute rule: its target, then scheduling and the first try. */
export function serveModelRoute(
  st: RequestState, snap: CompiledSnapshot<Profile>, buf: Buffer, text: string, body: Record<string, unknown>, model: string, prompt: string, m: RouteMatch,
): void {
  const rec = st.rec;
  rec.modelRoute = m.route.key;
  const t = m.target;
  if (t.kind === 'provider') { serveProvider(st, snap, m.route, t, buf, text, body, model); return; }
  rec.backendType = 'model_server';
  rec.backendName = t.key;
  rec.modelServer = t.key;
  if (m.fallback !== null) st.fallback = { target: m.fallback, route: m.route, snap, raw: buf, text, body, model };
  const server = t.server;
  if (server === null) { respondError(st, 'RTR_ERR_MODEL_SERVER_NOT_FOUND', t.key); return; }
  if (server.apiKeys !== null && !apiKeyAuth(st, snap, server)) return;
  rec.upstreamModel = server.model !== '' && !st.isLora ? server.model : model;
  if (server.unsupported !== '') { respondError(st, 'RTR_ERR_UNSUPPORTED_FEATURE', `${server.unsupported} on ModelServer ${server.key}`); return; }
  if (server.endpoints.length === 0) {
    if (!failOverEarly(st, 'no_ready_pod')) respondError(st, 'RTR_ERR_NO_ENDPOINT', server.key);
    return;
  }

  st.server = server;
  st.upstreamBody = buildUpstreamBody(st, buf, text, body, server);
  st.upstreamHeaders = upstreamHeaders(st.headers);
  if (st.apiKeyRule !== null) stripApiKey(st, st.apiKeyRule);
  const pd = server.pd;
  if (pd !== null) {
    const upstreamText = typeof st.upstreamBody === 'string' ? st.upstreamBody : text;
    st.prefillBody = prefillBase(upstreamText, body.max_completion_tokens !== undefined, pd.connector);
    st.decodeBody = decodeBase(upstreamText, pd.connector);
  }
  st.profile = snap.profile;
  st.sreq = { model, engineModel: rec.upstreamModel, modelId: snap.modelIds.get(model) ?? -1, prompt, body, engine: server.engine };
  stickySession(st, m.route, server);
  const adm = st.l.ctx.admission;
  if (m.route.rateLimit !== null) {
    // The route's token budgets first, then (when on) the fairness / session-boost queue.
    rateLimit(st, snap, m.route, model, adm !== null ? () => queueThen(st, adm, model, () => schedule(st, snap, server)) : () => schedule(st, snap, server));
    return;
  }
  if (adm !== null) { queueThen(st, adm, model, () => schedule(st, snap, server)); return; }
  schedule(st, snap, server);
}
