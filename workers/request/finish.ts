/**
 * The end of every request, whatever ended it: the router's error answer, the client going away,
 * an internal failure caught at a re-entry point, or a complete response. `finish()` runs exactly
 * once per accepted request and releases everything the request holds (timers, the flow-control
 * ticket, the live try and prefill leg, counters), then writes metrics and the access-log line.
 */
import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { HttpResponse } from 'uWebSockets.js';
import { Catalog, errorBody, formatMessage, type ErrorCode } from '../../src/errors.js';
import { kHdrDraining } from '../../src/shared/layout.js';
import { formatAccessLogJson, formatAccessLogText } from '../accesslog.js';
import { chargeOutput } from './ratelimit.js';
import { servedEndpoint } from '../epp/route.js';
import type { RequestState } from './state.js';

const statusLines: string[] = [];
export function statusLine(code: number): string {
  return statusLines[code] ??= `${code} ${STATUS_CODES[code] ?? 'Unknown'}`;
}

/** A complete answer outside any request state (health, readiness, metrics, 404 off /v1). */
export function simple(res: HttpResponse, status: number, body: string, contentType = 'application/json; charset=utf-8'): void {
  res.cork(() => { res.writeStatus(statusLine(status)).writeHeader('content-type', contentType).end(body); });
}

export function finish(st: RequestState): void {
  if (st.finished) return;
  st.finished = true;
  const ctx = st.l.ctx;
  const rec = st.rec;
  rec.tEnd = performance.now();
  try {
    if (st.retryTimer !== null) { clearTimeout(st.retryTimer); st.retryTimer = null; }
    if (st.requestTimer !== null) { clearTimeout(st.requestTimer); st.requestTimer = null; }
    if (st.ticket !== null) { st.ticket.cancel(); st.ticket = null; }
    if (st.gatePool !== '') ctx.gate.release(st.gatePool);
    if (st.admission !== null) {
      // Usage as the engine reported it (fairness counts real tokens); a request still waiting
      // just gives its place up.
      const u = st.usage;
      st.admission.release(u?.prompt ?? 0, u?.completion ?? 0, st.rankedCount > 0);
      st.admission.cancel();
      st.admission = null;
    }
    // An SGLang prefill still answering after its decode leg ended (or a request that failed
    // otherwise) leaves nothing behind; a try still holding its pod's slot (only after an
    // internal failure) gives it back.
    if (st.prefill !== null) st.prefill.cancel();
    if (st.current !== null) st.current.release();
    if (st.epp !== null) { const e = st.epp; st.epp = null; e.done(servedEndpoint(st), rec.statusCode); }
    upstreamDone(st);
    if (st.rateLimit !== null) chargeOutput(st);
    if (st.downstreamCounted) ctx.metrics.downstreamFinished(rec.modelLabel);
    if (rec.backendType !== '') {
      if (rec.inputTokens > 0) ctx.metrics.tokens(rec, 'input', rec.inputTokens);
      if (rec.outputTokens > 0) ctx.metrics.tokens(rec, 'output', rec.outputTokens);
    }
    ctx.metrics.requestFinished(rec);
    if (ctx.accessLog !== null && rec.logged) {
      ctx.accessLog.push(ctx.cfg.accessLog.format === 'json' ? formatAccessLogJson(rec) : formatAccessLogText(rec));
    }
  } finally {
    // Drain counts on this whatever failed above.
    if (--ctx.active === 0 && ctx.onIdle !== null) ctx.onIdle();
  }
}

/** The upstream request gauge goes down once, when the last upstream leg of the request ended. */
export function upstreamDone(st: RequestState): void {
  if (st.upstreamCounted) { st.upstreamCounted = false; st.l.ctx.metrics.upstreamFinished(st.rec); }
}

/** Answers a catalogued router error (when nothing was written yet) and finishes the request. */
export function respondError(st: RequestState, code: ErrorCode, detail?: string, kthenaType?: string): void {
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
    const close = code === 'RTR_ERR_BODY_TOO_LARGE' || Atomics.load(st.l.ctx.header, kHdrDraining) === 1;
    if (code !== 'RTR_ERR_BAD_FRAMING') writeError(st, e.status, body, close);
    else {
      // Where this request's body ends is unknown, so nothing after it on the connection may be
      // read as a request (RFC 9112 §6.3; request smuggling behind a proxy that framed it
      // differently). The pinned uWS build serves pipelined requests even after end(body, true),
      // but aborts a connection whose response is still pending when more requests arrive. So the
      // answer waits until uWS has parsed what this read held: bytes after the head abort the
      // connection unanswered; otherwise the 400 goes out and the connection closes.
      setImmediate(() => { if (!st.aborted) writeError(st, e.status, body, true); });
    }
  }
  finish(st);
}

function writeError(st: RequestState, status: number, body: string, close: boolean): void {
  const res = st.res;
  const requestId = st.rec.requestId;
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json; charset=utf-8');
    if (requestId !== '') res.writeHeader('x-request-id', requestId);
    res.end(body, close);
  });
}

/** The client went away (logged as 499). */
export function clientAborted(st: RequestState): void {
  if (st.finished) return;
  const rec = st.rec;
  rec.statusCode = 499;
  rec.errorType = Catalog.RTR_ERR_CLIENT_ABORTED.kthenaType;
  rec.errorCode = 'RTR_ERR_CLIENT_ABORTED';
  rec.errorMessage = Catalog.RTR_ERR_CLIENT_ABORTED.message;
  finish(st);
}

/**
 * A request that already answered (some bytes reached the client) fails: record the error, end
 * the client's response as honestly as possible (an SSE error event, else a closed connection),
 * finish.
 */
export function failAfterResponse(st: RequestState, code: ErrorCode, detail: string, origin: '' | 'upstream'): void {
  const rec = st.rec;
  rec.errorType = 'proxy';
  rec.errorCode = code;
  rec.errorMessage = formatMessage(Catalog[code], detail);
  if (origin !== '') rec.errorOrigin = origin;
  if (!st.aborted) {
    const live = st.current;
    if (live === null || !live.endWithError(errorBody(code, rec.errorMessage))) {
      // A length-framed or plain chunked body cannot be completed honestly: close the
      // connection so the client sees a truncated response rather than a short valid one.
      st.aborted = true;
      st.res.close();
    }
  }
  finish(st);
}

/**
 * The error boundary of every re-entry into the request path (uWS callbacks, timers, promise
 * continuations, upstream callbacks): a throw ends the request with RTR_ERR_INTERNAL (or, when
 * bytes were already sent, a closed connection) and still runs finish(), so drain never waits on
 * a request that nobody will end.
 */
export function internalError(st: RequestState, err: unknown): void {
  const e = err as Error;
  st.l.ctx.log('error', { err: e?.stack ?? String(err), requestId: st.rec.requestId }, 'request pipeline failed');
  if (st.finished) return;
  try {
    if (st.current !== null) { const live = st.current; live.cancel(new Error('internal error')); }
    if (st.responded || st.aborted) failAfterResponse(st, 'RTR_ERR_INTERNAL', e?.message ?? String(err), '');
    else respondError(st, 'RTR_ERR_INTERNAL', e?.message ?? String(err));
  } catch (again) {
    st.l.ctx.log('error', { err: (again as Error)?.stack, requestId: st.rec.requestId }, 'request could not be ended cleanly');
    if (!st.finished) finish(st);
  }
}

/** Runs `fn` inside the error boundary. For cold paths; hot callbacks inline the same try/catch. */
export function guarded(st: RequestState, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    internalError(st, err);
  }
}
