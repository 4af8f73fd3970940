/**
 * Stage: a ModelRoute target that is an ExternalModelProvider (Kthena: router.go doLoadbalance ->
 * proxyExternalProvider). The checks answer as Kthena does, in its order (missing provider 404,
 * not ready 503, unsupported path 400); then the route's token budgets and the fairness queue run
 * as for a ModelServer, and the one provider call answers the client.
 */
import type { CompiledRoute, CompiledSnapshot, CompiledTarget } from '../compile.js';
import { queueThen } from '../request/admission.js';
import { respondError } from '../request/finish.js';
import { rateLimit } from '../request/ratelimit.js';
import type { RequestState } from '../request/state.js';
import { ProviderCall, type ProviderLeg } from './call.js';
import { providerBody, providerHeaders, providerPath, supportsPath } from './request.js';

/**
 * Builds the provider leg for the request, or answers why it cannot be made (and returns null).
 * `body`/`text`/`raw` are the client's body as received.
 */
export function providerLeg(st: RequestState, t: CompiledTarget, raw: Buffer, text: string, body: Record<string, unknown>, model: string): ProviderLeg | null {
  const rec = st.rec;
  rec.backendType = 'external_provider';
  rec.backendName = t.key;
  rec.modelServer = '';
  rec.selectedPod = '';
  const p = t.provider;
  if (p === null) { respondError(st, 'RTR_ERR_PROVIDER_NOT_FOUND', t.key); return null; }
  rec.upstreamModel = p.model !== '' ? p.model : model;
  if (p.notReady !== '') { respondError(st, 'RTR_ERR_PROVIDER_NOT_READY', p.key); return null; }
  const path = rec.path;
  if (!supportsPath(p.type, path)) {
    respondError(st, 'RTR_ERR_PROVIDER_PATH', `${JSON.stringify(p.type)} does not support path ${JSON.stringify(path)}`);
    return null;
  }
  const b = providerBody(p, path, raw, text, body);
  st.injectedUsage = b.injected;
  st.streamRequested = body.stream === true;
  // After a failover from a ModelServer whose API-key rule took its key out of the query, the
  // provider never sees that key either.
  const q = st.upstreamPath === '' ? st.query : st.upstreamPath.includes('?') ? st.upstreamPath.slice(st.upstreamPath.indexOf('?') + 1) : '';
  return { provider: p, path: providerPath(p.type, p.basePath, path, q), headers: providerHeaders(p, st.headers), body: b.body };
}

/** Sends the leg: the request's only upstream call. */
export function callProvider(st: RequestState, leg: ProviderLeg): void {
  new ProviderCall(st, leg.provider).send(leg);
}

/** A matched rule chose a provider target: checks, rate limits, queue, then the call. */
export function serveProvider(
  st: RequestState, snap: CompiledSnapshot, route: CompiledRoute, t: CompiledTarget, raw: Buffer, text: string, body: Record<string, unknown>, model: string,
): void {
  const leg = providerLeg(st, t, raw, text, body, model);
  if (leg === null) return;
  const go = (): void => callProvider(st, leg);
  const adm = st.l.ctx.admission;
  const queued = adm !== null ? () => queueThen(st, adm, model, go) : go;
  if (route.rateLimit !== null) { rateLimit(st, snap, route, model, queued); return; }
  queued();
}
