/**
 * A prefill/decode pair's try (docs/reference/kthena-behaviour.md §4.3, docs/pd.md): http and lmcache run the prefill leg,
 * then the decode leg; nixl and mooncake also hand the prefill answer's kv_transfer_params to the
 * decode leg; sglang sends both legs at once with one bootstrap room. The prefill leg is a
 * `Prefill` (its pod's slot and pd.ts's PrefillLeg handler); the decode leg is an ordinary
 * `Attempt` that counts on the decode in-flight field, so retries, timeouts and the response
 * writer are the aggregated path's.
 */
import { performance } from 'node:perf_hooks';
import { RouterError } from '../../src/errors.js';
import { epIndex, kEpFailuresTotal, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kEpRequestsTotal } from '../../src/shared/layout.js';
import type { CompiledEndpoint } from '../compile.js';
import {
  bootstrapRoom, kvTransferParamsOf, lmcachePrefillParams, NIXL_PREFILL_PARAMS, PrefillLeg, sglangMembers, withMembers,
} from '../pd.js';
import { outlierSuccess } from '../outlier.js';
import { Attempt, nextTry, podFailed, upstreamStarted, type Launch } from './attempt.js';
import { clientAborted, finish, internalError, statusLine, upstreamDone } from './finish.js';
import { upstreamPathOf } from './forward.js';
import type { LivePrefill, RequestState } from './state.js';

export const startPair: Launch = (st) => {
  const pd = st.pd!;
  const k = (st.attempt - 1) % st.rankedCount;
  const decode = pd.decode[st.ranked![k]];
  const prefill = st.pairPrefill![k];
  st.rec.selectedPod = decode.podName;
  st.rec.prefillPod = prefill.podName;
  switch (pd.connector) {
    case 'sglang': {
      const room = bootstrapRoom();
      new Prefill(st, prefill, decode).send(withMembers(st.prefillBody, sglangMembers(room, prefill.ip, false)));
      new Attempt(st, decode, kEpInflightDecode, startPair).send(withMembers(st.decodeBody, sglangMembers(room, prefill.ip, true)));
      return;
    }
    case 'nixl': case 'mooncake':
      new Prefill(st, prefill, decode).send(withMembers(st.prefillBody, NIXL_PREFILL_PARAMS));
      return;
    case 'lmcache':
      new Prefill(st, prefill, decode).send(withMembers(st.prefillBody, lmcachePrefillParams(st.rec.requestId, decode.ip, st.l.ctx.cfg.lmcachePorts)));
      return;
    default:
      new Prefill(st, prefill, decode).send(st.prefillBody);
  }
};

/** One pair's prefill leg: the prefill pod's in-flight slot and the PrefillLeg handler. */
class Prefill implements LivePrefill {
  readonly #st: RequestState;
  readonly #ep: CompiledEndpoint;
  readonly #decode: CompiledEndpoint;
  #leg: PrefillLeg | null = null;
  #slot = -1;

  constructor(st: RequestState, ep: CompiledEndpoint, decode: CompiledEndpoint) {
    this.#st = st;
    this.#ep = ep;
    this.#decode = decode;
  }

  send(body: string): void {
    const st = this.#st;
    const ctx = st.l.ctx;
    const ep = this.#ep;
    this.#slot = ep.slot;
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflight), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpInflightPrefill), 1);
    Atomics.add(ctx.ep, epIndex(ep.slot, kEpRequestsTotal), 1);
    upstreamStarted(st, performance.now());
    const leg = new PrefillLeg({
      onSuccess: (l, text) => { try { this.#done(l, text); } catch (err) { internalError(st, err); } },
      onFailure: (l, err, status, text) => { try { this.#failed(l, err, status, text); } catch (e) { internalError(st, e); } },
      // The whole prefill answer (one short JSON body) is bounded, by the router's default
      // when the ModelServer sets no trafficPolicy.timeout.
    }, st.server!.timeoutMs > 0 ? st.server!.timeoutMs : ctx.cfg.upstreamTimeoutMs);
    this.#leg = leg;
    st.prefill = this;
    st.l.upstream.dispatch({ origin: ep.origin, path: upstreamPathOf(st), method: st.method, headers: st.upstreamHeaders, body }, leg);
  }

  /** Ends a live prefill leg without a verdict (client gone, pair abandoned, request over). */
  cancel(): void {
    const leg = this.#leg;
    if (leg === null) return;
    this.#detach(false);
    leg.abort();
  }

  #detach(failed: boolean): void {
    this.#leg = null;
    if (this.#st.prefill === this) this.#st.prefill = null;
    const slot = this.#slot;
    if (slot < 0) return;
    const ep = this.#st.l.ctx.ep;
    Atomics.sub(ep, epIndex(slot, kEpInflight), 1);
    Atomics.sub(ep, epIndex(slot, kEpInflightPrefill), 1);
    if (failed) Atomics.add(ep, epIndex(slot, kEpFailuresTotal), 1);
    this.#slot = -1;
  }

  #done(leg: PrefillLeg, text: string): void {
    if (leg !== this.#leg) return;
    const st = this.#st;
    const ctx = st.l.ctx;
    outlierSuccess(ctx.ep, this.#slot);
    this.#detach(false);
    const rec = st.rec;
    ctx.metrics.pdPhase(0, rec, true, (performance.now() - leg.started) / 1000);
    if (st.finished) return;
    if (st.aborted) { upstreamDone(st); clientAborted(st); return; }
    const pd = st.pd!;
    if (pd.connector === 'sglang') return; // the decode leg is already under way
    let body = st.decodeBody;
    if (pd.connector === 'nixl' || pd.connector === 'mooncake') {
      const params = kvTransferParamsOf(text);
      if (params === 'null') ctx.log('warn', { requestId: rec.requestId, pod: rec.prefillPod }, 'prefill response carries no kv_transfer_params; decode receives null');
      body = withMembers(body, '"kv_transfer_params":' + params);
    }
    new Attempt(st, this.#decode, kEpInflightDecode, startPair).send(body);
  }

  #failed(leg: PrefillLeg, err: Error, status: number, text: string): void {
    if (leg !== this.#leg) return;
    const st = this.#st;
    const ctx = st.l.ctx;
    // Outlier detection counts the prefill pod's own failures (no answer, timeout, 5xx) as the
    // aggregated path does; a 4xx is the pod answering about the request.
    if (status >= 400 && status < 500) outlierSuccess(ctx.ep, this.#slot);
    else if (!st.aborted) podFailed(ctx, this.#slot, this.#ep.podName);
    this.#detach(true);
    const rec = st.rec;
    ctx.metrics.pdPhase(0, rec, false, (performance.now() - leg.started) / 1000);
    if (st.finished) return;
    st.lastFailure = `prefill on ${rec.prefillPod}: ${err.message}`;
    const sglang = st.pd!.connector === 'sglang';
    if (status >= 400 && status < 500 && !sglang && !st.aborted) {
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
    if (sglang) {
      if (st.responded) {
        // The decode leg is already streaming to the client; it ends by itself (or fails) without its KV.
        ctx.log('warn', { requestId: rec.requestId, pod: rec.prefillPod, err: err.message }, 'sglang prefill leg failed after the decode leg answered');
        return;
      }
      // The decode leg cannot succeed without its prefill: fail it, which moves to the next pair.
      st.current?.fail(new RouterError('RTR_ERR_UPSTREAM_STATUS', `prefill failed: ${err.message}`));
      return;
    }
    if (st.aborted) { upstreamDone(st); clientAborted(st); return; }
    nextTry(st, err, startPair);
  }
}
