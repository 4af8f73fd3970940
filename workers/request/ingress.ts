/**
 * Ingress: the uWS request. Health, readiness and metrics on the router port; everything needed
 * from `req` copied before the handler returns (uWS invalidates it then); x-request-id; the
 * draining, /v1/models and body-size answers; the body read into one buffer preallocated by its
 * content-length; then the snapshot and the ModelRoute or Gateway dispatch.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { Catalog, errorBody } from '../../src/errors.js';
import { kHdrDraining, kHdrReady } from '../../src/shared/layout.js';
import { selectListener } from '../gateway-match.js';
import { dispatchGateway } from './dispatch-gateway.js';
import { dispatchModelRoute } from './dispatch-modelroute.js';
import { afterAuth, authenticate } from './auth.js';
import { clientAborted, finish, internalError, respondError, simple, upstreamDone } from './finish.js';
import { checkRequestBytes } from './framing.js';
import { RequestState, type Listener } from './state.js';

/** The uWS handler of one listener. */
export function ingress(l: Listener): (res: HttpResponse, req: HttpRequest) => void {
  const { ctx } = l;
  const { cfg, header, reader } = ctx;

  return function handle(res: HttpResponse, req: HttpRequest): void {
    const url = req.getUrl();
    // Health and metrics only on the router port (Kthena: the default Gateway's listener).
    if (l.routerPort) {
      if (url === '/healthz') { simple(res, 200, '{"message":"ok"}'); return; }
      if (url === '/readyz') {
        if (Atomics.load(header, kHdrReady) === 1 && Atomics.load(header, kHdrDraining) === 0) simple(res, 200, '{"message":"router is ready"}');
        else simple(res, 503, '{"message":"router is not ready"}');
        return;
      }
      if (url === '/metrics' && ctx.renderMetrics !== null) {
        let aborted = false;
        res.onAborted(() => { aborted = true; });
        ctx.renderMetrics().then(
          (text) => { if (!aborted) simple(res, 200, text, 'text/plain; version=0.0.4; charset=utf-8'); },
          () => { if (!aborted) simple(res, 500, 'metrics unavailable', 'text/plain'); },
        );
        return;
      }
    }
    const v1 = url.startsWith('/v1/');
    // With Gateway API any path may match an HTTPRoute; access log and request metrics stay on
    // /v1/* as in Kthena.
    const gateway = v1 ? null : reader.current()?.gateway ?? null;
    if (!v1 && gateway === null) { simple(res, 404, errorBody('RTR_ERR_PATH_NOT_FOUND', Catalog.RTR_ERR_PATH_NOT_FOUND.message)); return; }

    const st = new RequestState(l, res);
    const rec = st.rec;
    rec.logged = v1;
    rec.t0 = performance.now();
    rec.startEpochMs = Date.now();
    ctx.active++;
    ctx.metrics.requestStarted();
    res.onAborted(() => { onAborted(st); });
    try {
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
      // Bytes the upstream client would refuse, and ambiguous framing: a client error, before any
      // scheduling (workers/request/framing.ts).
      const bad = checkRequestBytes(headers, url, st.query);
      if (bad !== null) { respondError(st, bad.code, bad.detail); return; }

      if (Atomics.load(header, kHdrDraining) === 1) { respondError(st, 'RTR_ERR_SHUTTING_DOWN'); return; }
      // Kthena authenticates /v1/* only (on Gateway ports too); it runs beside the body read.
      if (v1 && !authenticate(st)) return;
      if (url === '/v1/models' && st.method === 'GET') { afterAuth(st, () => models(st)); return; }
      if (contentLength > cfg.maxBodyBytes) { respondError(st, 'RTR_ERR_BODY_TOO_LARGE', String(cfg.maxBodyBytes)); return; }
      if (contentLength <= 0 && !chunked) { const empty = Buffer.alloc(0); afterAuth(st, () => onBody(st, empty)); return; }
      readBody(st, contentLength);
    } catch (err) {
      internalError(st, err);
    }
  };
}

/** The client went away (uWS onAborted, or res.close() by the router itself after setting `aborted`). */
function onAborted(st: RequestState): void {
  if (st.aborted) return;
  st.aborted = true;
  if (st.finished) return;
  try {
    if (st.prefill !== null) st.prefill.cancel();
    if (st.ticket !== null) { st.ticket.cancel(); st.ticket = null; }
    // A live try aborts its upstream leg and ends the request when that settles; without one
    // (reading the body, scheduling, waiting for admission or a retry) the request ends now.
    if (st.current !== null) st.current.clientGone();
    else { upstreamDone(st); clientAborted(st); }
  } catch (err) {
    internalError(st, err);
  }
}

/** GET /v1/models: the list built per snapshot (on a Gateway listener, what that Gateway routes). */
function models(st: RequestState): void {
  const snap = st.l.ctx.reader.current();
  st.rec.statusCode = 200;
  let body = snap === null ? '{"object":"list","data":[]}' : snap.modelsBody;
  if (snap !== null && snap.gateway !== null) {
    const li = selectListener(snap.gateway.match, st.l.port, st.headerValue('host'));
    body = li < 0 ? '{"object":"list","data":[]}' : snap.gateway.modelsBody[snap.gateway.match.listeners[li].ir.gatewayIndex];
  }
  simple(st.res, 200, body);
  st.responded = true;
  finish(st);
}

/** First allocation for a body with a declared length; it grows (doubling) as bytes arrive. */
const kInitialBodyBytes = 64 * 1024;

/**
 * Reads the body into one buffer sized by content-length, allocated as bytes arrive rather than
 * up front (100 connections declaring 32 MiB and sending nothing reserved 2.8 GB); chunks when the
 * length is unknown.
 */
function readBody(st: RequestState, contentLength: number): void {
  const max = st.l.ctx.cfg.maxBodyBytes;
  let bodyBuf: Buffer | null = contentLength > 0 ? Buffer.allocUnsafe(Math.min(contentLength, kInitialBodyBytes)) : null;
  let chunks: Buffer[] | null = contentLength > 0 ? null : [];
  let bodyLen = 0;
  st.res.onData((ab, isLast) => {
    if (st.finished) return;
    try {
      const view = new Uint8Array(ab);
      const next = bodyLen + view.length;
      if (next > max || (bodyBuf !== null && next > contentLength)) {
        respondError(st, 'RTR_ERR_BODY_TOO_LARGE', String(max));
        return;
      }
      // uWS neuters `ab` after this callback: copy.
      if (bodyBuf !== null) {
        if (next > bodyBuf.length) {
          const grown = Buffer.allocUnsafe(Math.min(contentLength, Math.max(bodyBuf.length * 2, next)));
          bodyBuf.copy(grown, 0, 0, bodyLen);
          bodyBuf = grown;
        }
        bodyBuf.set(view, bodyLen);
      } else chunks!.push(Buffer.from(view));
      bodyLen = next;
      if (!isLast) return;
      const body = bodyBuf !== null ? bodyBuf.subarray(0, bodyLen) : Buffer.concat(chunks!, bodyLen);
      chunks = null;
      bodyBuf = null;
      afterAuth(st, () => onBody(st, body));
    } catch (err) {
      internalError(st, err);
    }
  });
}

/** The whole body is in: the snapshot, then the Gateway or the ModelRoute dispatch. */
function onBody(st: RequestState, buf: Buffer): void {
  const snap = st.l.ctx.reader.current();
  if (snap === null) { respondError(st, 'RTR_ERR_NOT_READY'); return; }
  if (snap.gateway !== null) dispatchGateway(st, buf, snap, snap.gateway);
  else dispatchModelRoute(st, snap, buf);
}
