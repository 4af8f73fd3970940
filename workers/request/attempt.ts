/**
 * Tries: one `Attempt` object per upstream leg that answers the client (the whole request on the
 * aggregated path, a pair's decode leg on PD). It is the upstream handler of its leg, the way
 * undici's RetryHandler wraps a handler: it owns the endpoint slot it holds, its controller, its
 * clocks and its response writer (the parts every leg shares are in leg.ts), and on failure hands
 * the request to `nextTry()`, which
 * starts a fresh try on the next ranked pod (or answers that every try failed). Nothing about a
 * try lives on the request state besides `st.current`.
 */
import { performance } from 'node:perf_hooks';
import { RouterError } from '../../src/errors.js';
import { epIndex, kEpFailuresTotal, kEpInflight, kEpRequestsTotal } from '../../src/shared/layout.js';
import type { CompiledEndpoint } from '../compile.js';
import { outlierFailure, outlierSuccess, type OutlierPolicy } from '../outlier.js';
import { clientAborted, internalError, respondError, upstreamDone } from './finish.js';
import { upstreamPathOf } from './forward.js';
import { UpstreamLeg } from './leg.js';
import { ResponseWriter } from './response.js';
import type { RequestState, WorkerContext } from './state.js';
import type { UpstreamController, UpstreamHandler, UpstreamHeaders } from './upstream.js';
import { failOverLate } from '../provider/fallback.js';

const policies = new WeakMap<object, OutlierPolicy>();

/** The outlier policy of a (frozen) config, made once. */
export function outlierPolicy(cfg: { outlierConsecutive: number; outlierBaseEjectionMs: number; outlierMaxEjectionPercent: number }): OutlierPolicy {
  let p = policies.get(cfg);
  if (p === undefined) {
    p = { consecutive: cfg.outlierConsecutive, baseEjectionSec: Math.max(1, Math.round(cfg.outlierBaseEjectionMs / 1000)), maxEjectionPercent: cfg.outlierMaxEjectionPercent };
    policies.set(cfg, p);
  }
  return p;
}

/** A leg on `slot` failed by the pod's fault: counts towards its ejection (workers/outlier.ts). */
export function podFailed(ctx: WorkerContext, slot: number, podName: string): void {
  if (outlierFailure(ctx.ep, slot, outlierPolicy(ctx.cfg))) {
    ctx.log('warn', { pod: podName, consecutiveFailures: ctx.cfg.outlierConsecutive }, 'endpoint ejected by outlier detection');
  }
}

/** Starts try number st.attempt (aggregated: startAttempt; PD: attempt-pd's startPair). */
export type Launch = (st: RequestState) => void;

/** The next try: counts it, then launches it. */
export function dispatchAttempt(st: RequestState, launch: Launch): void {
  st.attempt++;
  st.rec.upstreamAttempts = st.attempt;
  launch(st);
}

/** The aggregated path's try: the current ranked pod. */
export const startAttempt: Launch = (st) => {
  const ep = st.server!.endpoints[st.ranked![(st.attempt - 1) % st.rankedCount]];
  new Attempt(st, ep, -1, startAttempt).send(st.upstreamBody);
};

/** Counts an upstream leg as started (the upstream gauge and the first dispatch time). */
export function upstreamStarted(st: RequestState, now: number): void {
  const rec = st.rec;
  if (!st.upstreamCounted) { st.l.ctx.metrics.upstreamStarted(rec); st.upstreamCounted = true; }
  if (rec.tDispatch === 0) rec.tDispatch = now;
}

/**
 * A try failed before any byte reached the client (the failing try already released itself):
 * the next ranked pod after the retry interval, or the catalogued answer when none is left.
 */
export function nextTry(st: RequestState, err: Error, launch: Launch): void {
  const ctx = st.l.ctx;
  const rec = st.rec;
  if (st.lastFailure === '') st.lastFailure = err.message;
  const code = (err as { code?: string }).code;
  ctx.log('warn', { requestId: rec.requestId, pod: rec.selectedPod, attempt: st.attempt, err: st.lastFailure, code }, 'upstream attempt failed');
  if (st.attempt < st.maxAttempts) {
    const interval = st.server!.retryAttempts >= 0 ? st.server!.retryIntervalMs : 0;
    st.lastFailure = '';
    if (interval > 0) {
      st.retryTimer = setTimeout(() => {
        st.retryTimer = null;
        if (st.finished) return;
        try {
          if (st.aborted) clientAborted(st);
          else dispatchAttempt(st, launch);
        } catch (e) {
          internalError(st, e);
        }
      }, interval);
    } else {
      dispatchAttempt(st, launch);
    }
    return;
  }
  if (st.fallback !== null && failOverLate(st, 'all_pods_failed')) return;
  upstreamDone(st);
  respondError(st, st.pd !== null ? 'RTR_ERR_PD_ALL_FAILED' : 'RTR_ERR_UPSTREAM_ALL_FAILED');
}

export class Attempt extends UpstreamLeg implements UpstreamHandler {
  readonly ep: CompiledEndpoint;
  /** In-flight field of this leg's phase besides kEpInflight (kEpInflightDecode on PD), or -1. */
  readonly #phaseField: number;
  readonly #launch: Launch;
  /** The endpoint slot this try holds in-flight on (-1: released). */
  #slot = -1;
  /** performance.now() when the leg was sent. */
  tSent = 0;

  constructor(st: RequestState, ep: CompiledEndpoint, phaseField: number, launch: Launch) {
    super(st);
    this.ep = ep;
    this.#phaseField = phaseField;
    this.#launch = launch;
  }


  /** Takes the endpoint's in-flight slot, arms the header timer and sends the leg. */
  send(body: Buffer | string): void {
    const st = this.st;
    const ctx = st.l.ctx;
    const ep = this.ep;
    st.rec.selectedPod = ep.podName;
    st.current = this;
    this.#slot = ep.slot;
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflight), 1);
    if (this.#phaseField >= 0) Atomics.add(ctx.ep, epIndex(ep.slot, this.#phaseField), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpRequestsTotal), 1);
    this.tSent = performance.now();
    upstreamStarted(st, this.tSent);
    // trafficPolicy.timeout, or the router's default when the ModelServer sets none (Kthena: no
    // bound at all, so a hung engine held requests forever).
    const set = st.server!.timeoutMs;
    this.startClock(set > 0 ? set : ctx.cfg.upstreamTimeoutMs, set > 0 ? set : ctx.cfg.upstreamIdleTimeoutMs);
    st.l.upstream.dispatch({
      origin: ep.origin,
      path: upstreamPathOf(st),
      method: st.method,
      headers: st.upstreamHeaders,
      body: st.rawBody !== null ? st.rawBody : st.method === 'GET' && body.length === 0 ? null : body,
    }, this);
  }

  // ---- LegClock -------------------------------------------------------------------------------

  /** trafficPolicy.timeout (or the router's default): dial + response headers. */
  protected headersTimedOut(ms: number): void {
    this.st.lastFailure = `RTR_ERR_UPSTREAM_HEADERS_TIMEOUT: ${ms}ms`;
    this.fail(new RouterError('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', `${ms}ms`));
  }

  protected idleTimedOut(ms: number): void {
    this.st.lastFailure = `RTR_ERR_UPSTREAM_IDLE_TIMEOUT: ${ms}ms`;
    this.fail(new RouterError('RTR_ERR_UPSTREAM_IDLE_TIMEOUT', `${ms}ms`));
  }

  // ---- releasing and failing (UpstreamLeg) ----------------------------------------------------

  release(): void {
    this.#release(false);
  }

  #release(failed: boolean): void {
    this.stopClock();
    const slot = this.#slot;
    if (slot < 0) return;
    const ep = this.st.l.ctx.ep;
    Atomics.sub(ep, epIndex(slot, kEpInflight), 1);
    if (this.#phaseField >= 0) Atomics.sub(ep, epIndex(slot, this.#phaseField), 1);
    if (failed) Atomics.add(ep, epIndex(slot, kEpFailuresTotal), 1);
    this.#slot = -1;
  }

  /** The leg failed: retry on the next pod, or end the request (client gone, bytes already sent). */
  protected failed(err: Error): void {
    const st = this.st;
    const ctx = st.l.ctx;
    const rec = st.rec;
    this.done = true;
    if (st.pd !== null && this.#slot >= 0) ctx.metrics.pdPhase(1, rec, false, (performance.now() - this.tSent) / 1000);
    // The pod's fault (connect, reset, timeout, 5xx), not a client that went away.
    if (this.#slot >= 0 && (err as { code?: string }).code !== 'RTR_ERR_CLIENT_ABORTED' && !st.aborted) {
      podFailed(ctx, this.#slot, this.ep.podName);
    }
    this.#release(true);
    if (st.current === this) st.current = null;
    // An SGLang prefill leg of a failed decode leg is cancelled (Kthena: a decode failure cancels the prefill).
    if (st.prefill !== null) st.prefill.cancel();
    if (st.aborted) { upstreamDone(st); clientAborted(st); return; }
    if (st.responded) {
      // Bytes already reached the client: no retry is possible; end its response cleanly.
      upstreamDone(st);
      ctx.log('warn', { requestId: rec.requestId, pod: rec.selectedPod, err: err.message }, 'upstream failed mid-response');
      this.failedMidstream(err);
      return;
    }
    this.writer?.discard();
    nextTry(st, err, this.#launch);
  }

  // ---- UpstreamHandler (undici's callback order) ----------------------------------------------

  onResponseStart(controller: UpstreamController, statusCode: number, headers: UpstreamHeaders): void {
    const st = this.st;
    try {
      if (!this.headersArrived(controller, statusCode)) return;
      const rec = st.rec;
      if (statusCode >= 500) {
        // Retried while nothing reached the client; when the last try fails too the client gets
        // Kthena's answer (503 request to all pods failed), not the engine's 5xx body.
        st.lastFailure = `RTR_ERR_UPSTREAM_STATUS: ${statusCode}`;
        controller.abort(new RouterError('RTR_ERR_UPSTREAM_STATUS', String(statusCode)));
        return;
      }
      rec.statusCode = statusCode;
      if (statusCode >= 400) { rec.errorOrigin = 'upstream'; rec.errorType = 'upstream_response'; }
      // Status and headers are written together with the first body bytes (or the end), in one
      // corked write: a separate header packet followed by the body stalls on Nagle + delayed ACK
      // (measured: 40 ms per response). Until then nothing reached the client and a failure can
      // still be retried on another pod.
      this.writer = new ResponseWriter(st, controller, statusCode, headers);
    } catch (err) {
      this.#boundary(err);
    }
  }

  onResponseData(_controller: UpstreamController, chunk: Buffer): void {
    if (!this.live() || this.st.aborted || this.writer === null) return;
    this.chunks++;
    try {
      this.writer.data(chunk);
    } catch (err) {
      this.#boundary(err);
    }
  }

  onResponseEnd(): void {
    const st = this.st;
    if (!this.live()) return;
    this.done = true;
    try {
      const ctx = st.l.ctx;
      // Kthena's PostSchedule runs after a successful proxy. The first choice was recorded at the
      // decision (schedule.ts); a retry that succeeded elsewhere records that pod. Before the
      // in-flight release, so the slot cannot have been given to another pod.
      const status = st.rec.statusCode;
      if (status < 400 && st.profile !== null && !st.aborted && st.attempt > 1) {
        ctx.scheduler.postSchedule(st.profile, st.prefixHashes, this.ep, st.sreq!.modelId);
        if (st.pd !== null) ctx.scheduler.postSchedule(st.profile, st.prefixHashes, st.pairPrefill![(st.attempt - 1) % st.rankedCount], st.sreq!.modelId);
      }
      if (st.pd !== null) ctx.metrics.pdPhase(1, st.rec, status < 400, (performance.now() - this.tSent) / 1000);
      if (this.#slot >= 0) outlierSuccess(ctx.ep, this.#slot);
      this.ended();
    } catch (err) {
      internalError(st, err);
    }
  }


  #boundary(err: unknown): void {
    // The upstream exchange is abandoned with the request.
    internalError(this.st, err);
  }
}
