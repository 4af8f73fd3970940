/**
 * The request pipeline of one worker: parse -> match route -> read snapshot -> schedule ->
 * dispatch -> stream -> finish (docs/lifecycle.md draws it). Every failure goes through the error
 * catalogue; nothing here blocks the thread.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { Pool, type Dispatcher } from 'undici';
import { Catalog, errorBody, formatMessage, type ErrorCode, RouterError } from '../src/errors.js';
import { epIndex, kEpFailuresTotal, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kEpRequestsTotal, kHdrDraining, kHdrReady } from '../src/shared/layout.js';
import type { RouterConfig } from '../src/config.js';
import { testMatch, type CompiledEndpoint, type CompiledPd, type CompiledRoute, type CompiledRule, type CompiledServer, type CompiledSnapshot, type CompiledTarget } from './compile.js';
import {
  bootstrapRoom, decodeBase, kvTransferParamsOf, lmcachePrefillParams, NIXL_PREFILL_PARAMS, PrefillLeg, prefillBase, sglangMembers, withMembers,
} from './pd.js';
import { RequestRecord } from './record.js';
import { extractPrompt, estimateTokens } from './prompt.js';
import { applySplices, scanTopLevel, type Splice } from './jsonedit.js';
import { SseUsageScanner, usageFromBody, type Usage } from './sse.js';
import type { SnapshotReader } from './snapshot-reader.js';
import type { WorkerMetrics } from './metrics.js';
import type { Profile, PrefixHashes, Scheduler } from './scheduler/framework.js';
import { KvCacheAwareScorer } from './scheduler/kvcache-aware.js';
import { workerRedis } from './redis.js';
import type { ScheduleRequest } from './scheduler/types.js';
import type { HeaderModifierIR } from '../src/ir/gateway.js';
import type { CompiledGatewaySnapshot } from './compile.js';
import type { GateTicket, PriorityGate, SaturationDetector } from './flow-control.js';
import {
  applyHeaderModifier, backendStatus, matchGateway, modifyPath, pickBackend, redirectLocation, selectListener,
} from './gateway-match.js';
import { formatAccessLogJson, formatAccessLogText, type AccessLogBuffer } from './accesslog.js';

/** Kthena walks at most this many scheduled pods when no retry policy is set. */
const kDefaultFallbackPods = 5;
/** Non-streaming bodies up to this size are parsed for usage after being forwarded. */
const kMaxUsageBodyBytes = 4 * 1024 * 1024;

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'content-length', 'expect', 'http2-settings',
]);
// uWS writes its own Date header and framing; forwarding the upstream's would duplicate them.
const RESPONSE_SKIP = new Set([...HOP_BY_HOP, 'date']);

const statusLines: string[] = [];
function statusLine(code: number): string {
  return statusLines[code] ??= `${code} ${STATUS_CODES[code] ?? 'Unknown'}`;
}

export interface WorkerContext {
  cfg: Readonly<RouterConfig>;
  header: Int32Array;
  ep: Int32Array;
  reader: SnapshotReader<CompiledSnapshot<Profile>>;
  scheduler: Scheduler;
  /** Created on the first request whose profile enables kvcache-aware (one Redis connection per worker). */
  kvAware: KvCacheAwareScorer | null;
  metrics: WorkerMetrics;
  accessLog: AccessLogBuffer | null;
  pools: Map<string, Pool>;
  /** Requests accepted and not finished (drain waits for 0). */
  active: number;
  onIdle: (() => void) | null;
  renderMetrics: (() => Promise<string>) | null;
  /** InferencePool admission (InferenceObjective priority bands, shedding). */
  gate: PriorityGate;
  saturation: SaturationDetector;
  log: (level: 'info' | 'warn' | 'error', obj: object, msg: string) => void;
}

const enum Mode { None, Length, Chunked }

interface UpstreamHandlerLike {
  abandon(err: Error): void;
}

class RequestState {
  readonly res: HttpResponse;
  readonly rec = new RequestRecord();
  aborted = false;
  finished = false;
  /** Status line written to the client. */
  responded = false;
  method = '';
  query = '';
  /** Flat [name, value, ...] with lower-case names. */
  headers: string[] = [];
  chunks: Buffer[] | null = null;
  bodyBuf: Buffer | null = null;
  bodyLen = 0;
  // routing
  server: CompiledServer | null = null;
  isLora = false;
  ranked: Int32Array | null = null;
  rankedCount = 0;
  profile: Profile | null = null;
  sreq: ScheduleRequest | null = null;
  /** Prefix hashes of this request's prompt, inserted for the pod that served it (post-schedule hook). */
  prefixHashes: PrefixHashes | null = null;
  attempt = 0;
  maxAttempts = 0;
  upstreamBody = '';
  // prefill/decode disaggregation (null/empty on the aggregated path)
  pd: CompiledPd | null = null;
  /** Prefill pod of pair k; the pair's decode pod is pd.decode[ranked[k]]. */
  pairPrefill: CompiledEndpoint[] | null = null;
  /** Prefill leg body and decode leg body before the per-pair connector members. */
  prefillBody = '';
  decodeBody = '';
  /** The live prefill leg and its pod's slot (-1: none). */
  leg: PrefillLeg | null = null;
  legSlot = -1;
  /** performance.now() when the current decode leg was sent. */
  tDecode = 0;
  // Gateway API (null/empty on ModelRoute paths)
  /** Path and query sent upstream when a URLRewrite changed them; '' = the request's. */
  upstreamPath = '';
  /** A body that is not a JSON object, forwarded byte for byte (HTTPRoute backends). */
  rawBody: Buffer | null = null;
  /** ResponseHeaderModifier filters to apply, rule's then backend's. */
  respMods: HeaderModifierIR[] | null = null;
  requestTimer: NodeJS.Timeout | null = null;
  /** A request waiting in an InferencePool's flow-control queue, and the pool it counts against. */
  ticket: GateTicket | null = null;
  gatePool = '';
  upstreamHeaders: string[] = [];
  streamRequested = false;
  injectedUsage = false;
  downstreamCounted = false;
  upstreamCounted = false;
  // current attempt
  slot = -1;
  /** In-flight field of the current attempt's phase besides kEpInflight (kEpInflightDecode on PD), or -1. */
  phaseField = -1;
  handler: UpstreamHandlerLike | null = null;
  controller: Dispatcher.DispatchController | null = null;
  timer: NodeJS.Timeout | null = null;
  timedOut = false;
  headersReceived = false;
  retryOnAbort = false;
  lastFailure = '';
  // response
  mode = Mode.None;
  total = 0;
  pending: Buffer | null = null;
  /** The client's response is complete (tryEnd reached the total, or an empty body). */
  ended = false;
  /** Upstream body chunks received in this event-loop turn, written together (see #flush). */
  out: Buffer[] = [];
  outBytes = 0;
  flushQueued = false;
  /** Upstream status and headers not yet written to the client (see #writeHead). */
  respStatus = 0;
  respHeaders: Record<string, string | string[] | undefined> | null = null;
  pendingOffset = 0;
  sse: SseUsageScanner | null = null;
  usageChunks: Buffer[] | null = null;
  usageBytes = 0;
  usage: Usage | null = null;

  constructor(res: HttpResponse) {
    this.res = res;
  }
}

/**
 * The request handler of one listening port: the router port (--port, also the default Gateway's
 * listener) or a Gateway listener port.
 */
export function createHandler(ctx: WorkerContext, port: number = ctx.cfg.port, tls = ctx.cfg.tlsCert !== ''): (res: HttpResponse, req: HttpRequest) => void {
  const { cfg, header, reader } = ctx;
  const routerPort = port === cfg.port;

  function headerValue(st: RequestState, name: string): string {
    const h = st.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return '';
  }

  function finish(st: RequestState): void {
    if (st.finished) return;
    st.finished = true;
    const rec = st.rec;
    rec.tEnd = performance.now();
    if (st.timer !== null) { clearTimeout(st.timer); st.timer = null; }
    if (st.requestTimer !== null) { clearTimeout(st.requestTimer); st.requestTimer = null; }
    if (st.ticket !== null) { st.ticket.cancel(); st.ticket = null; }
    if (st.gatePool !== '') ctx.gate.release(st.gatePool);
    // An SGLang prefill still answering after its decode leg ended (or a request that failed
    // otherwise) leaves nothing behind.
    cancelLeg(st);
    if (st.downstreamCounted) ctx.metrics.downstreamFinished(rec.modelLabel);
    if (rec.backendType !== '') {
      if (rec.inputTokens > 0) ctx.metrics.tokens(rec, 'input', rec.inputTokens);
      if (rec.outputTokens > 0) ctx.metrics.tokens(rec, 'output', rec.outputTokens);
    }
    ctx.metrics.requestFinished(rec);
    if (ctx.accessLog !== null && rec.logged) {
      ctx.accessLog.push(cfg.accessLog.format === 'json' ? formatAccessLogJson(rec) : formatAccessLogText(rec));
    }
    if (--ctx.active === 0 && ctx.onIdle !== null) ctx.onIdle();
  }

  function respondError(st: RequestState, code: ErrorCode, detail?: string, kthenaType?: string): void {
    const e = Catalog[code];
    const msg = formatMessage(e, detail);
    const rec = st.rec;
    rec.statusCode = e.status;
    rec.errorType = kthenaType ?? e.kthenaType;
    rec.errorMessage = msg;
    rec.errorCode = code;
    // error_origin stays empty for router errors, as in Kthena's access log (it sets the field
    // only for failures that come from upstream).
    if (!st.aborted && !st.responded) {
      st.responded = true;
      const body = errorBody(code, msg);
      const close = code === 'RTR_ERR_BODY_TOO_LARGE' || Atomics.load(header, kHdrDraining) === 1;
      st.res.cork(() => {
        st.res.writeStatus(statusLine(e.status)).writeHeader('content-type', 'application/json; charset=utf-8');
        if (rec.requestId !== '') st.res.writeHeader('x-request-id', rec.requestId);
        st.res.end(body, close);
      });
    }
    finish(st);
  }

  function simple(res: HttpResponse, status: number, body: string, contentType = 'application/json; charset=utf-8'): void {
    res.cork(() => { res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).end(body); });
  }

  // ---- routing --------------------------------------------------------------------------------

  function ruleMatches(st: RequestState, rule: CompiledRule, model: string): boolean {
    if (rule.matchAll) return true;
    if (rule.bodyModel !== null && rule.bodyModel !== model) return false;
    if (rule.uri !== null && !testMatch(rule.uri, st.rec.path)) return false;
    for (let i = 0; i < rule.headers.length; i++) {
      const h = rule.headers[i];
      if (!testMatch(h, headerValue(st, h.name))) return false;
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
   * `allowed`: the ModelRoutes bound to the request's Gateway (Kthena §6.3), or null without
   * Gateway API, where a route with parentRefs never matches.
   */
  function matchRoute(st: RequestState, snap: CompiledSnapshot, model: string, allowed: Set<string> | null = null): { route: CompiledRoute; target: CompiledTarget } | null {
    let candidates = snap.byModel.get(model);
    st.isLora = false;
    if (candidates === undefined) {
      candidates = snap.byLora.get(model);
      if (candidates === undefined) return null;
      st.isLora = true;
    }
    for (let i = 0; i < candidates.length; i++) {
      const route = candidates[i];
      // Without Gateway API a route bound to a Gateway never matches (Kthena §6.3).
      if (allowed === null ? route.hasParentRefs : !allowed.has(route.key)) continue;
      for (let j = 0; j < route.rules.length; j++) {
        const rule = route.rules[j];
        if (!ruleMatches(st, rule, model)) continue;
        const target = pickTarget(rule);
        if (target !== null) return { route, target };
      }
    }
    return null;
  }

  function kvAwareScorer(): KvCacheAwareScorer {
    if (ctx.kvAware === null) {
      const breaker = workerRedis(cfg.redis);
      ctx.kvAware = new KvCacheAwareScorer({ redis: breaker.client, breaker });
    }
    return ctx.kvAware;
  }

  /** schedule() returned 0 (every candidate filtered out) or -1 (nothing scored). */
  function schedulingFailed(st: RequestState, n: number): void {
    respondError(st, 'RTR_ERR_SCHEDULING', n === 0
      ? `pods have all been filtered out by ${JSON.stringify(ctx.scheduler.filteredBy)}`
      : 'no score plugin scored any pod');
  }

  /**
   * Filters, scores and the top-N pick over the shared endpoint state (workers/scheduler), then the
   * first attempt. `extra` carries kvcache-aware's scores when the profile has it.
   */
  function scheduleAndDispatch(st: RequestState, server: CompiledServer, extra: Float64Array | null): void {
    const ranked = new Int32Array(kDefaultFallbackPods);
    const n = ctx.scheduler.schedule(st.profile!, server.endpoints, st.sreq!, ranked, extra);
    if (n <= 0) { schedulingFailed(st, n); return; }
    st.prefixHashes = ctx.scheduler.takePrefixHashes();
    // The chosen pod is recorded as holding the prompt's prefix now, at the decision, not only
    // once the response succeeded (Kthena): otherwise every request of a burst that shares a
    // prefix arrives before the first one finished, finds no entry and is spread at random, and
    // once they finish every pod holds the prefix, so affinity never forms (measured with
    // native-bench compare). A failed attempt leaves a stale hint; the pod that finally serves
    // is inserted by the post-schedule hook as before.
    ctx.scheduler.postSchedule(st.profile!, st.prefixHashes, server.endpoints[ranked[0]], st.sreq!.modelId);
    st.ranked = ranked;
    st.rankedCount = n;
    st.maxAttempts = server.retryAttempts >= 0 ? server.retryAttempts + 1 : n;
    dispatchAttempt(st);
  }

  /**
   * Kthena §4.1: the decode pods of every group go through the profile; for the decode pods chosen
   * the prefill pods of the same group are scheduled, once per group (Kthena: once per decode pod),
   * and the j-th decode pod of a group is paired with its j-th best prefill pod, so that a retry
   * after a failed pair tries another prefill pod too.
   */
  function schedulePd(st: RequestState, server: CompiledServer, extra: Float64Array | null): void {
    const pd = server.pd!;
    const profile = st.profile!;
    const sreq = st.sreq!;
    if (pd.decode.length === 0) { respondError(st, 'RTR_ERR_SCHEDULING', 'no decode pod found'); return; }
    const ranked = new Int32Array(kDefaultFallbackPods);
    const n = ctx.scheduler.schedule(profile, pd.decode, sreq, ranked, extra !== null ? gather(extra, pd.decodeIdx) : null);
    if (n <= 0) { schedulingFailed(st, n); return; }
    st.prefixHashes = ctx.scheduler.takePrefixHashes();
    // Prefill picks per group, best first; groups seen in ranked order (at most n of them).
    const groups: number[] = [];
    const wanted: number[] = [];
    for (let i = 0; i < n; i++) {
      const g = pd.decodeGroup[ranked[i]];
      const at = groups.indexOf(g);
      if (at < 0) { groups.push(g); wanted.push(1); } else wanted[at]++;
    }
    const picks: (Int32Array | null)[] = [];
    for (let j = 0; j < groups.length; j++) {
      const prefills = pd.prefillByGroup[groups[j]];
      if (prefills.length === 0) { picks.push(null); continue; }
      const out = new Int32Array(Math.min(wanted[j], prefills.length));
      const m = ctx.scheduler.schedule(profile, prefills, sreq, out, extra !== null ? gather(extra, pd.prefillIdxByGroup[groups[j]]) : null);
      picks.push(m > 0 ? out.subarray(0, m) : null);
    }
    const used = new Int32Array(groups.length);
    const pairDecode = new Int32Array(n);
    const pairPrefill: CompiledEndpoint[] = [];
    for (let i = 0; i < n; i++) {
      const j = groups.indexOf(pd.decodeGroup[ranked[i]]);
      const pick = picks[j];
      if (pick === null) continue;
      pairDecode[pairPrefill.length] = ranked[i];
      pairPrefill.push(pd.prefillByGroup[groups[j]][pick[used[j]++ % pick.length]]);
    }
    if (pairPrefill.length === 0) { respondError(st, 'RTR_ERR_SCHEDULING', 'no valid prefill-decode pod pairs found'); return; }
    // Both pods of the first pair hold the prompt's prefix from now on (see scheduleAndDispatch).
    ctx.scheduler.postSchedule(profile, st.prefixHashes, pd.decode[pairDecode[0]], sreq.modelId);
    ctx.scheduler.postSchedule(profile, st.prefixHashes, pairPrefill[0], sreq.modelId);
    st.pd = pd;
    st.ranked = pairDecode;
    st.rankedCount = pairPrefill.length;
    st.pairPrefill = pairPrefill;
    st.maxAttempts = server.retryAttempts >= 0 ? server.retryAttempts + 1 : pairPrefill.length;
    dispatchAttempt(st);
  }

  // ---- body -----------------------------------------------------------------------------------

  function buildUpstreamBody(st: RequestState, text: string, body: Record<string, unknown>, server: CompiledServer): string {
    const splices: Splice[] = [];
    const scan = scanTopLevel(text, ['model', 'stream_options']);
    if (server.model !== '' && !st.isLora && body.model !== server.model) {
      const m = scan.members.get('model')!;
      splices.push({ start: m.valueStart, end: m.valueEnd, text: JSON.stringify(server.model) });
    }
    if (body.stream === true) {
      st.streamRequested = true;
      const so = body.stream_options;
      const includes = so !== null && typeof so === 'object' && (so as { include_usage?: unknown }).include_usage === true;
      if (!includes) {
        st.injectedUsage = true;
        const span = scan.members.get('stream_options');
        if (span !== undefined) {
          const merged = so !== null && typeof so === 'object' && !Array.isArray(so) ? { ...(so as object), include_usage: true } : { include_usage: true };
          splices.push({ start: span.valueStart, end: span.valueEnd, text: JSON.stringify(merged) });
        } else {
          splices.push({ start: scan.close, end: scan.close, text: (scan.count > 0 ? ',' : '') + '"stream_options":{"include_usage":true}' });
        }
      }
    }
    return applySplices(text, splices);
  }

  function onBody(st: RequestState, buf: Buffer): void {
    const rec = st.rec;
    const snap = reader.current();
    if (snap === null) { respondError(st, 'RTR_ERR_NOT_READY'); return; }
    if (snap.gateway !== null) { onGatewayBody(st, buf, snap, snap.gateway); return; }
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
    serveModelRoute(st, snap, text, body, model, prompt, m);
  }

  /** A request matched a ModelRoute rule: its target, then scheduling and dispatch. */
  function serveModelRoute(
    st: RequestState, snap: CompiledSnapshot<Profile>, text: string, body: Record<string, unknown>, model: string, prompt: string,
    m: { route: CompiledRoute; target: CompiledTarget },
  ): void {
    const rec = st.rec;
    rec.modelRoute = m.route.key;
    const t = m.target;
    if (t.kind === 'provider') {
      rec.backendType = 'external_provider';
      rec.backendName = t.key;
      respondError(st, 'RTR_ERR_PROVIDER_UNSUPPORTED', t.key);
      return;
    }
    rec.backendType = 'model_server';
    rec.backendName = t.key;
    rec.modelServer = t.key;
    const server = t.server;
    if (server === null) { respondError(st, 'RTR_ERR_MODEL_SERVER_NOT_FOUND', t.key); return; }
    rec.upstreamModel = server.model !== '' && !st.isLora ? server.model : model;
    if (server.unsupported !== '') { respondError(st, 'RTR_ERR_UNSUPPORTED_FEATURE', `${server.unsupported} on ModelServer ${server.key}`); return; }
    if (server.endpoints.length === 0) { respondError(st, 'RTR_ERR_NO_ENDPOINT', server.key); return; }

    st.server = server;
    st.upstreamBody = buildUpstreamBody(st, text, body, server);
    st.upstreamHeaders = upstreamHeaders(st);
    const pd = server.pd;
    if (pd !== null) {
      st.prefillBody = prefillBase(st.upstreamBody, body.max_completion_tokens !== undefined, pd.connector);
      st.decodeBody = decodeBase(st.upstreamBody, pd.connector);
    }
    const schedule = pd !== null ? schedulePd : scheduleAndDispatch;
    const profile = snap.profile;
    st.profile = profile;
    st.sreq = { model, engineModel: rec.upstreamModel, modelId: snap.modelIds.get(model) ?? -1, prompt, body, engine: server.engine };
    if (profile.hasKvcacheAware) {
      const extra = new Float64Array(server.endpoints.length);
      void kvAwareScorer().score(snap.ir.scheduler.kvcacheAware, st.sreq, server.endpoints, extra).then((ok) => {
        if (st.finished) return;
        if (st.aborted) { clientAborted(st); return; }
        schedule(st, server, ok ? extra : null);
      });
      return;
    }
    schedule(st, server, null);
  }

  // ---- Gateway API ------------------------------------------------------------------------------

  /**
   * A request on a Gateway listener (docs/gateway-api.md): the listener by port and Host; on /v1/
   * paths the ModelRoutes bound to that Gateway first (Kthena §6.3); then the HTTPRoutes attached
   * to the listener, in the specification's precedence order, with their filters, and a weighted
   * Service or InferencePool backend.
   */
  function onGatewayBody(st: RequestState, buf: Buffer, snap: CompiledSnapshot<Profile>, gw: CompiledGatewaySnapshot): void {
    const rec = st.rec;
    const host = headerValue(st, 'host');
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
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
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
        if (m !== null) { serveModelRoute(st, snap, text, body, model, prompt, m); return; }
      }
    }

    const r = matchGateway(gw.match, port, host, st.method, rec.path, (n) => headerValue(st, n), st.query);
    if (r.kind !== 'match') { respondError(st, isV1 ? 'RTR_ERR_NO_ROUTE' : 'RTR_ERR_PATH_NOT_FOUND'); return; }
    const rule = r.rule.ir;
    rec.httpRoute = gw.match.ir.routes[rule.route].key;
    const f = rule.filters;
    if (f.redirect !== null) {
      const location = redirectLocation(f.redirect, { scheme: tls ? 'https' : 'http', host, path: rec.path, query: st.query }, listener.port, r.prefix);
      rec.statusCode = f.redirect.statusCode;
      st.responded = true;
      const res = st.res;
      res.cork(() => { res.writeStatus(statusLine(f.redirect!.statusCode)).writeHeader('location', location).end(); });
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
    if (body !== null) st.upstreamBody = buildUpstreamBody(st, text, body, server);
    else st.rawBody = buf;
    st.upstreamHeaders = upstreamHeaders(st);
    const prompt = body !== null ? extractPrompt(body) ?? '' : '';
    if (rec.inputTokens < 0 && prompt !== '') rec.inputTokens = estimateTokens(prompt);
    st.profile = snap.profile;
    st.sreq = { model, modelId: snap.modelIds.get(model) ?? -1, prompt, body: body ?? {}, engine: server.engine };
    if (rule.requestTimeoutMs > 0) {
      const ms = rule.requestTimeoutMs;
      st.requestTimer = setTimeout(() => { st.requestTimer = null; requestTimedOut(st, ms); }, ms);
    }
    if (b.kind !== 'pool') { scheduleAndDispatch(st, server, null); return; }
    // InferenceObjective priority (x-gateway-inference-objective; unknown or absent = 0): while
    // the pool is saturated higher bands go first and negative ones are shed (GIE §2.7).
    const pool = gw.match.ir.pools[b.pool];
    const objective = headerValue(st, 'x-gateway-inference-objective');
    let priority = 0;
    if (objective !== '') for (const o of pool.objectives) if (o.name === objective) { priority = o.priority; break; }
    const endpoints = server.endpoints;
    st.gatePool = pool.key;
    st.ticket = ctx.gate.admit(pool.key, priority, () => ctx.saturation.saturation(endpoints) >= 1, (outcome) => {
      st.ticket = null;
      if (st.finished) return;
      if (outcome === 'admitted') { if (st.aborted) clientAborted(st); else scheduleAndDispatch(st, server, null); return; }
      if (outcome === 'shed') respondError(st, 'RTR_ERR_SHED');
      else if (outcome === 'full') respondError(st, 'RTR_ERR_QUEUE_FULL', pool.key);
      else respondError(st, 'RTR_ERR_QUEUE_TIMEOUT', pool.key);
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
  function requestTimedOut(st: RequestState, ms: number): void {
    if (st.finished) return;
    const controller = st.controller;
    cancelLeg(st);
    releaseAttempt(st, false);
    upstreamDone(st);
    if (st.responded) {
      const rec = st.rec;
      rec.errorType = 'proxy';
      rec.errorCode = 'RTR_ERR_REQUEST_TIMEOUT';
      rec.errorMessage = formatMessage(Catalog.RTR_ERR_REQUEST_TIMEOUT, `${ms}ms`);
      st.aborted = true;
      st.res.close();
      finish(st);
    } else {
      respondError(st, 'RTR_ERR_REQUEST_TIMEOUT', `${ms}ms`);
    }
    controller?.abort(new RouterError('RTR_ERR_REQUEST_TIMEOUT', `${ms}ms`));
  }

  function upstreamHeaders(st: RequestState): string[] {
    const out: string[] = [];
    const h = st.headers;
    // Headers the client named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    let named: string[] | null = null;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i] === 'connection') {
        for (const t of h[i + 1].split(',')) {
          const n = t.trim().toLowerCase();
          if (n !== '' && n !== 'close' && n !== 'keep-alive') (named ??= []).push(n);
        }
      }
    }
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i];
      if (HOP_BY_HOP.has(k) || (named !== null && named.includes(k))) continue;
      out.push(k, h[i + 1]);
    }
    return out;
  }

  // ---- upstream -------------------------------------------------------------------------------

  function poolFor(origin: string): Pool {
    let p = ctx.pools.get(origin);
    if (p === undefined) {
      p = new Pool(origin, {
        connections: cfg.upstreamConnections,
        pipelining: 1,
        // Our own timer bounds dial + headers (trafficPolicy.timeout); a long non-streaming
        // generation may legitimately take minutes before its headers.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 60_000,
        connect: { timeout: 10_000 },
      });
      ctx.pools.set(origin, p);
    }
    return p;
  }

  /** The current attempt's (decode) endpoint. */
  function endpointOf(st: RequestState): CompiledEndpoint {
    const ranked = st.ranked!;
    const k = ranked[(st.attempt - 1) % st.rankedCount];
    return st.pd !== null ? st.pd.decode[k] : st.server!.endpoints[k];
  }

  function dispatchAttempt(st: RequestState): void {
    const rec = st.rec;
    st.attempt++;
    rec.upstreamAttempts = st.attempt;
    if (st.pd !== null) { pdAttempt(st); return; }
    sendUpstream(st, endpointOf(st), st.upstreamBody, -1);
  }

  /**
   * One prefill/decode pair (Kthena §4.3): http and lmcache run the prefill leg, then the decode
   * leg; nixl and mooncake also hand the prefill answer's kv_transfer_params to the decode leg;
   * sglang sends both legs at once with one bootstrap room.
   */
  function pdAttempt(st: RequestState): void {
    const pd = st.pd!;
    const k = (st.attempt - 1) % st.rankedCount;
    const decode = pd.decode[st.ranked![k]];
    const prefill = st.pairPrefill![k];
    st.rec.selectedPod = decode.podName;
    st.rec.prefillPod = prefill.podName;
    switch (pd.connector) {
      case 'sglang': {
        const room = bootstrapRoom();
        startPrefill(st, prefill, withMembers(st.prefillBody, sglangMembers(room, prefill.ip, false)));
        sendUpstream(st, decode, withMembers(st.decodeBody, sglangMembers(room, prefill.ip, true)), kEpInflightDecode);
        return;
      }
      case 'nixl': case 'mooncake':
        startPrefill(st, prefill, withMembers(st.prefillBody, NIXL_PREFILL_PARAMS));
        return;
      case 'lmcache':
        startPrefill(st, prefill, withMembers(st.prefillBody, lmcachePrefillParams(st.rec.requestId, decode.ip, cfg.lmcachePorts)));
        return;
      default:
        startPrefill(st, prefill, st.prefillBody);
    }
  }

  function startPrefill(st: RequestState, ep: CompiledEndpoint, body: string): void {
    const rec = st.rec;
    st.legSlot = ep.slot;
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflight), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflightPrefill), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpRequestsTotal), 1);
    if (!st.upstreamCounted) { ctx.metrics.upstreamStarted(rec); st.upstreamCounted = true; }
    if (rec.tDispatch === 0) rec.tDispatch = performance.now();
    const leg = new PrefillLeg({
      onSuccess: (l, text) => prefillDone(st, l, text),
      onFailure: (l, err, status, text) => prefillFailed(st, l, err, status, text),
    }, st.server!.timeoutMs);
    st.leg = leg;
    try {
      poolFor(ep.origin).dispatch({
        origin: ep.origin,
        path: upstreamPathOf(st),
        method: st.method as Dispatcher.HttpMethod,
        headers: st.upstreamHeaders,
        body,
      }, leg);
    } catch (err) {
      leg.fail(err as Error);
    }
  }

  function upstreamPathOf(st: RequestState): string {
    if (st.upstreamPath !== '') return st.upstreamPath;
    return st.query === '' ? st.rec.path : st.rec.path + '?' + st.query;
  }

  function releaseLeg(st: RequestState, failed: boolean): void {
    if (st.legSlot < 0) return;
    Atomics.sub(ctx.ep, epIndex(st.legSlot, kEpInflight), 1);
    Atomics.sub(ctx.ep, epIndex(st.legSlot, kEpInflightPrefill), 1);
    if (failed) Atomics.add(ctx.ep, epIndex(st.legSlot, kEpFailuresTotal), 1);
    st.legSlot = -1;
  }

  /** Ends a live prefill leg without a verdict (client gone, pair abandoned, request over). */
  function cancelLeg(st: RequestState): void {
    const leg = st.leg;
    if (leg === null) return;
    st.leg = null;
    leg.abort();
    releaseLeg(st, false);
  }

  function prefillDone(st: RequestState, leg: PrefillLeg, text: string): void {
    if (leg !== st.leg) return;
    st.leg = null;
    releaseLeg(st, false);
    const rec = st.rec;
    ctx.metrics.pdPhase(0, rec, true, (performance.now() - leg.started) / 1000);
    if (st.finished) return;
    if (st.aborted) { upstreamDone(st); clientAborted(st); return; }
    const pd = st.pd!;
    if (pd.connector === 'sglang') return; // the decode leg is already under way
    const decode = endpointOf(st);
    let body = st.decodeBody;
    if (pd.connector === 'nixl' || pd.connector === 'mooncake') {
      const params = kvTransferParamsOf(text);
      if (params === 'null') ctx.log('warn', { requestId: rec.requestId, pod: rec.prefillPod }, 'prefill response carries no kv_transfer_params; decode receives null');
      body = withMembers(body, '"kv_transfer_params":' + params);
    }
    sendUpstream(st, decode, body, kEpInflightDecode);
  }

  function prefillFailed(st: RequestState, leg: PrefillLeg, err: Error, status: number, text: string): void {
    if (leg !== st.leg) return;
    st.leg = null;
    releaseLeg(st, true);
    const rec = st.rec;
    ctx.metrics.pdPhase(0, rec, false, (performance.now() - leg.started) / 1000);
    if (st.finished) return;
    st.lastFailure = `prefill on ${rec.prefillPod}: ${err.message}`;
    if (status >= 400 && status < 500 && st.pd!.connector !== 'sglang' && !st.aborted) {
      // The engine refused the request itself (bad parameters, prompt too long): every pair would
      // answer the same, so the client gets the engine's answer, as on the aggregated path.
      upstreamDone(st);
      rec.statusCode = status;
      rec.upstreamStatusCode = status;
      rec.errorOrigin = 'upstream';
      rec.errorType = 'upstream_response';
      st.responded = true;
      const res = st.res;
      res.cork(() => {
        res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json');
        if (rec.requestId !== '') res.writeHeader('x-request-id', rec.requestId);
        res.end(text);
      });
      finish(st);
      return;
    }
    if (st.pd!.connector === 'sglang') {
      if (st.responded) {
        // The decode leg is already streaming to the client; it ends by itself (or fails) without its KV.
        ctx.log('warn', { requestId: rec.requestId, pod: rec.prefillPod, err: err.message }, 'sglang prefill leg failed after the decode leg answered');
        return;
      }
      // The decode leg cannot succeed without its prefill: fail it, which moves to the next pair.
      const e = new RouterError('RTR_ERR_UPSTREAM_STATUS', `prefill failed: ${err.message}`);
      if (st.controller !== null) st.controller.abort(e);
      else st.handler?.abandon(e);
      return;
    }
    attemptFailed(st, err);
  }

  /** The upstream leg that answers the client: the whole request, or a PD pair's decode leg. */
  function sendUpstream(st: RequestState, ep: CompiledEndpoint, body: string, phaseField: number): void {
    const rec = st.rec;
    rec.selectedPod = ep.podName;
    st.slot = ep.slot;
    st.phaseField = phaseField;
    st.headersReceived = false;
    st.respHeaders = null;
    st.mode = Mode.None;
    st.sse = null;
    st.usageChunks = null;
    st.usageBytes = 0;
    st.out.length = 0;
    st.outBytes = 0;
    st.pending = null;
    st.timedOut = false;
    st.retryOnAbort = false;
    st.controller = null;
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflight), 1);
    if (phaseField >= 0) Atomics.add(ctx.ep, epIndex(ep.slot, phaseField), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpRequestsTotal), 1);
    if (!st.upstreamCounted) { ctx.metrics.upstreamStarted(rec); st.upstreamCounted = true; }
    st.tDecode = performance.now();
    if (rec.tDispatch === 0) rec.tDispatch = st.tDecode;
    const handler = new UpstreamHandler(st, st.attempt);
    st.handler = handler;
    const timeoutMs = st.server!.timeoutMs;
    if (timeoutMs > 0) {
      st.timer = setTimeout(() => {
        st.timer = null;
        if (st.headersReceived || st.finished) return;
        st.timedOut = true;
        st.lastFailure = `RTR_ERR_UPSTREAM_HEADERS_TIMEOUT: ${timeoutMs}ms`;
        if (st.controller !== null) st.controller.abort(new RouterError('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', `${timeoutMs}ms`));
        else handler.abandon(new RouterError('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', `${timeoutMs}ms`));
      }, timeoutMs);
    }
    try {
      poolFor(ep.origin).dispatch({
        origin: ep.origin,
        path: upstreamPathOf(st),
        method: st.method as Dispatcher.HttpMethod,
        headers: st.upstreamHeaders,
        body: st.rawBody !== null ? st.rawBody : st.method === 'GET' && body === '' ? null : body,
      }, handler);
    } catch (err) {
      handler.fail(err as Error);
    }
  }

  function releaseAttempt(st: RequestState, failed: boolean): void {
    if (st.slot < 0) return;
    Atomics.sub(ctx.ep, epIndex(st.slot, kEpInflight), 1);
    if (st.phaseField >= 0) Atomics.sub(ctx.ep, epIndex(st.slot, st.phaseField), 1);
    if (failed) Atomics.add(ctx.ep, epIndex(st.slot, kEpFailuresTotal), 1);
    st.slot = -1;
    if (st.timer !== null) { clearTimeout(st.timer); st.timer = null; }
  }

  function upstreamDone(st: RequestState): void {
    if (st.upstreamCounted) { ctx.metrics.upstreamFinished(st.rec); st.upstreamCounted = false; }
  }

  function attemptFailed(st: RequestState, err: Error): void {
    const rec = st.rec;
    if (st.pd !== null && st.slot >= 0) ctx.metrics.pdPhase(1, rec, false, (performance.now() - st.tDecode) / 1000);
    releaseAttempt(st, true);
    // An SGLang prefill leg of a failed decode leg is cancelled (Kthena: a decode failure cancels the prefill).
    cancelLeg(st);
    if (st.aborted) {
      upstreamDone(st);
      clientAborted(st);
      return;
    }
    if (st.responded) {
      // Bytes already reached the client: no retry is possible; end its response cleanly.
      upstreamDone(st);
      rec.errorType = 'proxy';
      rec.errorCode = 'RTR_ERR_UPSTREAM_MIDSTREAM';
      rec.errorMessage = formatMessage(Catalog.RTR_ERR_UPSTREAM_MIDSTREAM, err.message);
      rec.errorOrigin = 'upstream';
      ctx.log('warn', { requestId: rec.requestId, pod: rec.selectedPod, err: err.message }, 'upstream failed mid-response');
      const res = st.res;
      if (st.mode === Mode.Chunked && st.sse !== null) {
        const event = 'data: ' + errorBody('RTR_ERR_UPSTREAM_MIDSTREAM', rec.errorMessage) + '\n\n';
        res.cork(() => { res.end(event); });
      } else {
        // A length-framed or plain chunked body cannot be completed honestly: close the
        // connection so the client sees a truncated response rather than a short valid one.
        res.close();
      }
      finish(st);
      return;
    }
    if (st.lastFailure === '') st.lastFailure = err.message;
    const code = (err as { code?: string }).code;
    ctx.log('warn', { requestId: rec.requestId, pod: rec.selectedPod, attempt: st.attempt, err: st.lastFailure, code }, 'upstream attempt failed');
    if (st.attempt < st.maxAttempts) {
      const interval = st.server!.retryAttempts >= 0 ? st.server!.retryIntervalMs : 0;
      st.lastFailure = '';
      if (interval > 0) {
        st.timer = setTimeout(() => { st.timer = null; if (!st.aborted && !st.finished) dispatchAttempt(st); else if (st.aborted) clientAborted(st); }, interval);
      } else {
        dispatchAttempt(st);
      }
      return;
    }
    upstreamDone(st);
    respondError(st, st.pd !== null ? 'RTR_ERR_PD_ALL_FAILED' : 'RTR_ERR_UPSTREAM_ALL_FAILED');
  }

  function clientAborted(st: RequestState): void {
    if (st.finished) return;
    const rec = st.rec;
    rec.statusCode = 499;
    rec.errorType = Catalog.RTR_ERR_CLIENT_ABORTED.kthenaType;
    rec.errorCode = 'RTR_ERR_CLIENT_ABORTED';
    rec.errorMessage = Catalog.RTR_ERR_CLIENT_ABORTED.message;
    finish(st);
  }

  class UpstreamHandler {
    readonly #st: RequestState;
    readonly #attempt: number;
    #done = false;

    constructor(st: RequestState, attempt: number) {
      this.#st = st;
      this.#attempt = attempt;
    }

    /** This handler is still the request's live attempt. */
    #live(): boolean {
      return !this.#done && this.#st.attempt === this.#attempt && !this.#st.finished;
    }

    /** Gives up on an attempt that has no controller yet (still queued in the pool). */
    abandon(err: Error): void {
      if (!this.#live()) return;
      this.#done = true;
      attemptFailed(this.#st, err);
    }

    fail(err: Error): void {
      if (!this.#live()) return;
      this.#done = true;
      attemptFailed(this.#st, err);
    }

    onRequestStart(controller: Dispatcher.DispatchController): void {
      if (!this.#live()) { controller.abort(new Error('attempt abandoned')); return; }
      this.#st.controller = controller;
      if (this.#st.aborted) controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED'));
    }

    onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
      const st = this.#st;
      if (!this.#live()) { controller.abort(new Error('attempt abandoned')); return; }
      st.headersReceived = true;
      if (st.timer !== null) { clearTimeout(st.timer); st.timer = null; }
      const rec = st.rec;
      rec.tHeaders = performance.now();
      rec.upstreamStatusCode = statusCode;
      if (st.aborted) { controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED')); return; }
      if (statusCode >= 500) {
        // Retried while nothing reached the client; when the last attempt fails too the client
        // gets Kthena's answer (503 request to all pods failed), not the engine's 5xx body.
        st.lastFailure = `RTR_ERR_UPSTREAM_STATUS: ${statusCode}`;
        controller.abort(new RouterError('RTR_ERR_UPSTREAM_STATUS', String(statusCode)));
        return;
      }
      rec.statusCode = statusCode;
      if (statusCode >= 400) { rec.errorOrigin = 'upstream'; rec.errorType = 'upstream_response'; }
      const cl = headers['content-length'];
      const ct = headers['content-type'];
      const ctype = typeof ct === 'string' ? ct : '';
      if (typeof cl === 'string') { st.mode = Mode.Length; st.total = Number(cl); } else st.mode = Mode.Chunked;
      if (ctype.startsWith('text/event-stream')) st.sse = new SseUsageScanner(st.injectedUsage);
      else if (ctype.includes('json')) st.usageChunks = [];
      // Status and headers are written together with the first body bytes (or the end), in one
      // corked write: a separate header packet followed by the body stalls on Nagle + delayed ACK
      // (measured: 40 ms per response). Until then nothing reached the client and a failure can
      // still be retried on another pod.
      st.respStatus = statusCode;
      st.respHeaders = headers;
    }

    /** Writes the pending status line and headers; call inside res.cork(). */
    #writeHead(): void {
      const st = this.#st;
      const res = st.res;
      const headers = st.respHeaders!;
      st.respHeaders = null;
      st.responded = true;
      res.writeStatus(statusLine(st.respStatus));
      if (st.respMods !== null) { this.#writeModifiedHeaders(headers); res.onWritable((offset) => this.#onWritable(offset)); return; }
      for (const name in headers) {
        if (RESPONSE_SKIP.has(name)) continue;
        const v = headers[name];
        if (v === undefined) continue;
        if (typeof v === 'string') res.writeHeader(name, v);
        else for (let i = 0; i < v.length; i++) res.writeHeader(name, v[i]);
      }
      res.onWritable((offset) => this.#onWritable(offset));
    }

    /** ResponseHeaderModifier filters (Gateway API) applied to the upstream's headers. */
    #writeModifiedHeaders(headers: Record<string, string | string[] | undefined>): void {
      const st = this.#st;
      let pairs: [string, string][] = [];
      for (const name in headers) {
        if (RESPONSE_SKIP.has(name)) continue;
        const v = headers[name];
        if (v === undefined) continue;
        if (typeof v === 'string') pairs.push([name, v]);
        else for (let i = 0; i < v.length; i++) pairs.push([name, v[i]]);
      }
      for (const mod of st.respMods!) pairs = applyHeaderModifier(mod, pairs);
      for (const [k, v] of pairs) if (!RESPONSE_SKIP.has(k.toLowerCase())) st.res.writeHeader(k, v);
    }

    #onWritable(offset: number): boolean {
      const st = this.#st;
      // Not gated on `finished`: the upstream may have ended while our last chunk still waits here.
      if (st.aborted || st.ended && st.pending === null) return true;
      if (st.mode === Mode.Length && st.pending !== null) {
        const chunk = st.pending.subarray(offset - st.pendingOffset);
        const [ok, done] = st.res.tryEnd(chunk, st.total);
        if (done) st.ended = true;
        if (!ok) return false;
        st.pending = null;
      }
      st.controller?.resume();
      return true;
    }

    /**
     * Chunks are queued and written once per event-loop turn: one upstream socket read often
     * carries many SSE events (one undici callback each with chunked framing), and one corked
     * write per event costs a send() each (measured 3x slower than coalesced writes).
     */
    onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
      const st = this.#st;
      if (!this.#live() || st.aborted) return;
      if (st.usageChunks !== null) {
        st.usageBytes += chunk.length;
        if (st.usageBytes <= kMaxUsageBodyBytes) st.usageChunks.push(chunk);
        else st.usageChunks = null;
      }
      st.out.push(chunk);
      st.outBytes += chunk.length;
      if (!st.flushQueued) {
        st.flushQueued = true;
        queueMicrotask(this.#flushQueued);
      }
    }

    readonly #flushQueued = (): void => {
      this.#st.flushQueued = false;
      if (this.#live() || this.#st.out.length > 0) this.#flush(false);
    };

    #flush(end: boolean): void {
      const st = this.#st;
      let buf: Buffer | null = null;
      if (st.out.length === 1) buf = st.out[0];
      else if (st.out.length > 1) buf = Buffer.concat(st.out, st.outBytes);
      st.out.length = 0;
      st.outBytes = 0;
      if (st.aborted) return;
      const res = st.res;
      if (st.mode === Mode.Length) {
        if (st.ended) return;
        if (buf === null) {
          if (end && st.respHeaders !== null) {
            res.cork(() => { this.#writeHead(); res.endWithoutBody(0); });
            st.ended = true;
          }
          return;
        }
        if (st.pending !== null) {
          // Still waiting for onWritable: keep bytes in order behind the pending ones.
          st.pending = Buffer.concat([st.pending, buf]);
          return;
        }
        let ok = true;
        const body = buf;
        res.cork(() => {
          if (st.respHeaders !== null) this.#writeHead();
          st.pendingOffset = res.getWriteOffset();
          const [written, done] = res.tryEnd(body, st.total);
          ok = written;
          if (done) st.ended = true;
        });
        if (!ok && !st.ended) { st.pending = body; st.controller?.pause(); }
        return;
      }
      const out = buf !== null && st.sse !== null ? st.sse.push(buf) : buf;
      const tail = end && st.sse !== null ? st.sse.flush() : null;
      let ok = true;
      res.cork(() => {
        if (st.respHeaders !== null) this.#writeHead();
        if (out !== null && out.length > 0) ok = res.write(out);
        if (end) {
          if (tail !== null) res.write(tail);
          res.end();
          st.ended = true;
        }
      });
      if (!ok && !end) st.controller?.pause();
    }

    onResponseEnd(): void {
      const st = this.#st;
      if (!this.#live()) return;
      this.#done = true;
      // Kthena's PostSchedule runs after a successful proxy. The first choice was recorded at the
      // decision (see scheduleAndDispatch); a retry that succeeded elsewhere records that pod.
      // Before the in-flight release, so the slot cannot have been given to another pod.
      if (st.respStatus < 400 && st.profile !== null && !st.aborted && st.attempt > 1) {
        ctx.scheduler.postSchedule(st.profile, st.prefixHashes, endpointOf(st), st.sreq!.modelId);
        if (st.pd !== null) ctx.scheduler.postSchedule(st.profile, st.prefixHashes, st.pairPrefill![(st.attempt - 1) % st.rankedCount], st.sreq!.modelId);
      }
      if (st.pd !== null) ctx.metrics.pdPhase(1, st.rec, st.respStatus < 400, (performance.now() - st.tDecode) / 1000);
      releaseAttempt(st, false);
      upstreamDone(st);
      if (st.aborted) { clientAborted(st); return; }
      this.#flush(true);
      // A body shorter than its content-length is never passed off as complete.
      if (st.mode === Mode.Length && !st.ended && st.pending === null) st.res.close();
      if (st.sse !== null) st.usage = st.sse.usage;
      else if (st.usageChunks !== null && st.usageChunks.length > 0) {
        st.usage = usageFromBody(st.usageChunks.length === 1 ? st.usageChunks[0] : Buffer.concat(st.usageChunks));
      }
      if (st.usage !== null) {
        if (st.usage.prompt > 0) st.rec.inputTokens = st.usage.prompt;
        st.rec.outputTokens = st.usage.completion;
      }
      finish(st);
    }

    onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
      if (!this.#live()) return;
      this.#done = true;
      attemptFailed(this.#st, err);
    }
  }

  // ---- entry ----------------------------------------------------------------------------------

  return function handle(res: HttpResponse, req: HttpRequest): void {
    const url = req.getUrl();
    // Health and metrics only on the router port (Kthena: the default Gateway's listener).
    if (routerPort && url === '/healthz') { simple(res, 200, '{"message":"ok"}'); return; }
    if (routerPort && url === '/readyz') {
      if (Atomics.load(header, kHdrReady) === 1 && Atomics.load(header, kHdrDraining) === 0) simple(res, 200, '{"message":"router is ready"}');
      else simple(res, 503, '{"message":"router is not ready"}');
      return;
    }
    if (routerPort && url === '/metrics' && ctx.renderMetrics !== null) {
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      ctx.renderMetrics().then(
        (text) => { if (!aborted) simple(res, 200, text, 'text/plain; version=0.0.4; charset=utf-8'); },
        () => { if (!aborted) simple(res, 500, 'metrics unavailable', 'text/plain'); },
      );
      return;
    }
    const v1 = url.startsWith('/v1/');
    // With Gateway API any path may match an HTTPRoute; access log and request metrics stay on
    // /v1/* as in Kthena.
    const gateway = v1 ? null : reader.current()?.gateway ?? null;
    if (!v1 && gateway === null) { simple(res, 404, errorBody('RTR_ERR_PATH_NOT_FOUND', Catalog.RTR_ERR_PATH_NOT_FOUND.message)); return; }

    const st = new RequestState(res);
    const rec = st.rec;
    rec.logged = v1;
    rec.t0 = performance.now();
    rec.startEpochMs = Date.now();
    ctx.active++;
    ctx.metrics.requestStarted();
    res.onAborted(() => {
      st.aborted = true;
      cancelLeg(st);
      if (st.ticket !== null) { st.ticket.cancel(); st.ticket = null; }
      if (st.controller !== null) st.controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED'));
      else if (st.slot < 0) { upstreamDone(st); clientAborted(st); }
      // An attempt still queued in the pool is abandoned by its handler on onRequestStart.
      else if (st.attempt > 0) { releaseAttempt(st, false); upstreamDone(st); clientAborted(st); }
    });
    // Everything needed from `req` is copied now: it is invalid after this function returns.
    st.method = req.getCaseSensitiveMethod();
    rec.method = st.method;
    rec.path = url;
    st.query = req.getQuery() ?? '';
    const headers = st.headers;
    req.forEach((k, v) => { headers.push(k, v); });
    let requestId = '';
    let contentLength = -1;
    let chunked = false;
    let requestIdAt = -1;
    for (let i = 0; i < headers.length; i += 2) {
      const k = headers[i];
      if (k === 'x-request-id') { requestId = headers[i + 1]; requestIdAt = i; }
      else if (k === 'content-length') contentLength = Number(headers[i + 1]);
      else if (k === 'transfer-encoding') chunked = true;
    }
    if (requestId === '') {
      // Replaces an empty header rather than adding a second one (Kthena's Header.Set).
      requestId = randomUUID();
      if (requestIdAt >= 0) headers[requestIdAt + 1] = requestId;
      else headers.push('x-request-id', requestId);
    }
    rec.requestId = requestId;

    if (Atomics.load(header, kHdrDraining) === 1) { respondError(st, 'RTR_ERR_SHUTTING_DOWN'); return; }
    if (url === '/v1/models' && st.method === 'GET') {
      const snap = reader.current();
      rec.statusCode = 200;
      let models = snap === null ? '{"object":"list","data":[]}' : snap.modelsBody;
      if (snap !== null && snap.gateway !== null) {
        // What this Gateway can route: its ModelRoutes' names and adapters.
        const li = selectListener(snap.gateway.match, port, headerValue(st, 'host'));
        models = li < 0 ? '{"object":"list","data":[]}' : snap.gateway.modelsBody[snap.gateway.match.listeners[li].ir.gatewayIndex];
      }
      simple(res, 200, models);
      st.responded = true;
      finish(st);
      return;
    }
    if (contentLength > cfg.maxBodyBytes) { respondError(st, 'RTR_ERR_BODY_TOO_LARGE', String(cfg.maxBodyBytes)); return; }
    if (contentLength <= 0 && !chunked) { onBody(st, Buffer.alloc(0)); return; }
    if (contentLength > 0) st.bodyBuf = Buffer.allocUnsafe(contentLength);
    else st.chunks = [];
    res.onData((ab, isLast) => {
      if (st.finished) return;
      const view = new Uint8Array(ab);
      if (st.bodyLen + view.length > cfg.maxBodyBytes || (st.bodyBuf !== null && st.bodyLen + view.length > st.bodyBuf.length)) {
        respondError(st, 'RTR_ERR_BODY_TOO_LARGE', String(cfg.maxBodyBytes));
        return;
      }
      // uWS neuters `ab` after this callback: copy.
      if (st.bodyBuf !== null) st.bodyBuf.set(view, st.bodyLen);
      else st.chunks!.push(Buffer.from(view));
      st.bodyLen += view.length;
      if (!isLast) return;
      const body = st.bodyBuf !== null ? st.bodyBuf.subarray(0, st.bodyLen) : Buffer.concat(st.chunks!, st.bodyLen);
      st.chunks = null;
      st.bodyBuf = null;
      try {
        onBody(st, body);
      } catch (err) {
        ctx.log('error', { err: (err as Error).stack, requestId: rec.requestId }, 'request pipeline failed');
        respondError(st, 'RTR_ERR_INTERNAL', (err as Error).message);
      }
    });
  };
}

/** values[idx[i]] for each i (kvcache-aware scores of all of a server's pods, for one PD role). */
function gather(values: Float64Array, idx: Int32Array): Float64Array {
  const out = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = values[idx[i]];
  return out;
}
