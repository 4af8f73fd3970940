/**
 * An InferencePool backend whose endpoint an external Endpoint Picker chooses
 * (--inference-pool-picker=external, docs/gateway-api.md#endpoint-picker): the Gateway path hands
 * the request here once its route, filters, upstream headers and body are settled. The picker's
 * destination and fallbacks become the request's ranked endpoints, tried in order by the usual
 * attempt machinery; its ImmediateResponse is answered as is; a failure takes the pool's
 * failureMode (FailOpen: `inProcess`, the router's own admission and pick; FailClose: 503/504).
 */
import type { PoolIR } from '../../src/ir/gateway.js';
import type { CompiledGatewaySnapshot, CompiledServer } from '../compile.js';
import { dispatchAttempt, startAttempt } from '../request/attempt.js';
import { clientAborted, finish, internalError, respondError, statusLine } from '../request/finish.js';
import { upstreamPathOf } from '../request/forward.js';
import type { RequestState, WorkerContext } from '../request/state.js';
import { EppClient, isReservedHeader, prepareSubset, type EppResult, type PreparedSubset } from './client.js';
import { EppMetrics } from './metrics.js';

/** This worker's Endpoint Picker metrics (worker.ts adds them to every scrape). */
export const eppMetrics = new EppMetrics();

interface PreparedPool {
  subset: PreparedSubset;
  /** 'ip:port' -> index into server.endpoints. */
  index: Map<string, number>;
}

/** Per compiled backend (a new snapshot compiles new objects, so entries die with it). */
const prepared = new WeakMap<CompiledServer, PreparedPool>();
/** The gateway snapshot whose pickers the worker's client keeps channels for. */
const retainedFor = new WeakMap<WorkerContext, CompiledGatewaySnapshot>();

function preparedPool(server: CompiledServer): PreparedPool {
  let p = prepared.get(server);
  if (p === undefined) {
    const index = new Map<string, number>();
    server.endpoints.forEach((e, i) => index.set(e.origin.slice(e.origin.indexOf('//') + 2), i));
    p = { subset: prepareSubset([...index.keys()]), index };
    prepared.set(server, p);
  }
  return p;
}

function clientFor(ctx: WorkerContext, gw: CompiledGatewaySnapshot): EppClient {
  let c = ctx.epp;
  if (c === null) {
    c = new EppClient({ timeoutMs: ctx.cfg.endpointPickerTimeoutMs, tls: ctx.cfg.endpointPickerTls });
    ctx.epp = c;
  }
  if (retainedFor.get(ctx) !== gw) {
    // A new configuration: channels of pickers that left it are closed (once per snapshot).
    retainedFor.set(ctx, gw);
    c.retain(gw.match.ir.pools.flatMap((p) => (p.epp !== null ? [p.epp] : [])));
  }
  return c;
}

/** The endpoint that answered (the last try's), as 'ip:port', or null before any try. */
export function servedEndpoint(st: RequestState): string | null {
  if (st.server === null || st.ranked === null || st.attempt === 0 || st.rankedCount === 0) return null;
  const origin = st.server.endpoints[st.ranked[(st.attempt - 1) % st.rankedCount]]!.origin;
  return origin.slice(origin.indexOf('//') + 2);
}

/**
 * Asks the pool's picker. `inProcess` runs the router's own path (FailOpen); it is called at most
 * once, from the picker's callback.
 */
export function pickExternally(st: RequestState, server: CompiledServer, pool: PoolIR, gw: CompiledGatewaySnapshot, scheme: 'http' | 'https', inProcess: () => void): void {
  const ctx = st.l.ctx;
  const epp = pool.epp!;
  const p = preparedPool(server);
  // A client never chooses the destination (GIE: output injection headers are stripped).
  const h = st.upstreamHeaders;
  for (let i = h.length - 2; i >= 0; i -= 2) if (isReservedHeader(h[i]!)) h.splice(i, 2);
  const body = st.rawBody !== null ? st.rawBody : st.upstreamBody !== '' ? Buffer.from(st.upstreamBody) : null;
  const failed = (message: string, timedOut: boolean): void => {
    if (epp.failOpen) {
      ctx.log('warn', { requestId: st.rec.requestId, pool: pool.key, err: message }, 'endpoint picker failed: FailOpen, picking in-process');
      inProcess();
    } else if (timedOut) {
      respondError(st, 'RTR_ERR_EPP_TIMEOUT', pool.key);
    } else {
      respondError(st, 'RTR_ERR_EPP_UNAVAILABLE', `${pool.key}: ${message}`);
    }
  };
  const t0 = performance.now();
  const done = (r: EppResult): void => {
    eppMetrics.record(pool.key, r.kind === 'failed' && r.timedOut ? 'timeout' : r.kind, (performance.now() - t0) / 1000);
    if (st.finished) return;
    try {
      if (st.aborted) { clientAborted(st); return; }
      if (r.kind === 'failed') { failed(r.message, r.timedOut); return; }
      if (r.kind === 'immediate') { respondImmediate(st, r.status, r.message); return; }
      const ranked = new Int32Array(r.endpoints.length);
      let n = 0;
      for (const e of r.endpoints) {
        const i = p.index.get(e);
        if (i !== undefined && !ranked.subarray(0, n).includes(i)) ranked[n++] = i;
      }
      if (n === 0) { failed(`picked ${r.endpoints.join(',')}, not a ready endpoint of the pool`, false); return; }
      applyMutations(st, r);
      st.ranked = ranked;
      st.rankedCount = n;
      // The protocol's fallbacks: each endpoint once, in the picker's order.
      st.maxAttempts = n;
      dispatchAttempt(st, startAttempt);
    } catch (err) {
      internalError(st, err);
    }
  };
  st.epp = clientFor(ctx, gw).pick(epp, p.subset, {
    headers: h, method: st.method, path: upstreamPathOf(st), authority: st.headerValue('host'), scheme, body,
  }, done);
}

function applyMutations(st: RequestState, r: EppResult): void {
  const h = st.upstreamHeaders;
  for (const name of r.removeHeaders) {
    for (let i = h.length - 2; i >= 0; i -= 2) if (h[i] === name) h.splice(i, 2);
  }
  for (const [k, v] of r.setHeaders) {
    let set = false;
    for (let i = 0; i < h.length; i += 2) if (h[i] === k) { h[i + 1] = v; set = true; break; }
    if (!set) h.push(k, v);
  }
  if (r.body !== null) {
    if (st.rawBody !== null) st.rawBody = Buffer.from(r.body);
    else st.upstreamBody = Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength).toString('utf8');
  }
}

/** The picker's own answer (e.g. 429 when its pool is saturated): status and body as it gave them. */
function respondImmediate(st: RequestState, status: number, body: string): void {
  const rec = st.rec;
  rec.statusCode = status;
  if (status >= 400) {
    rec.errorType = 'inference_pool_selection';
    rec.errorMessage = body;
  }
  if (!st.responded) {
    st.responded = true;
    const res = st.res;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('content-type', 'text/plain; charset=utf-8');
      if (rec.requestId !== '') res.writeHeader('x-request-id', rec.requestId);
      res.end(body);
    });
  }
  finish(st);
}
