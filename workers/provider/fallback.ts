/**
 * Failing over from in-cluster pods to the rule's ExternalModelProvider (beyond Kthena; opt-in with
 * the ModelRoute annotation kthena-router.volcano.sh/provider-fallback: "true",
 * docs/traffic-policy.md#fallback-to-a-provider). A request whose ModelServer target has no ready
 * pod, leaves the scheduler no candidate, or whose every try failed before any byte reached the
 * client is sent to the provider instead of answering 503. The client's original body goes (the
 * ModelServer's `spec.model` rewrite is not the provider's), through the provider's own checks.
 */
import type { CompiledRoute, CompiledSnapshot, CompiledTarget } from '../compile.js';
import { upstreamDone } from '../request/finish.js';
import type { RequestState } from '../request/state.js';
import { callProvider, providerLeg, serveProvider } from './serve.js';

/** What a request needs to fail over, kept from the dispatch (only on routes that opted in). */
export interface Fallback {
  target: CompiledTarget;
  route: CompiledRoute;
  snap: CompiledSnapshot;
  raw: Buffer;
  text: string;
  body: Record<string, unknown>;
  model: string;
}

function switchTo(st: RequestState, why: string): Fallback | null {
  const fb = st.fallback;
  if (fb === null || st.responded || st.aborted || st.finished) return null;
  st.fallback = null;
  const rec = st.rec;
  st.l.ctx.log('warn', { requestId: rec.requestId, modelServer: rec.modelServer, provider: fb.target.key, reason: why }, 'failing over to the external provider');
  st.l.ctx.metrics.providerFallback(rec.modelRoute, fb.target.key, why);
  return fb;
}

/**
 * Before the route's rate limits and queue ran (no ready pod): the provider path from its start.
 * True when the request went to the provider (it is answered there).
 */
export function failOverEarly(st: RequestState, why: string): boolean {
  const fb = switchTo(st, why);
  if (fb === null) return false;
  serveProvider(st, fb.snap, fb.route, fb.target, fb.raw, fb.text, fb.body, fb.model);
  return true;
}

/** After scheduling (budgets taken, queue passed): straight to the provider call. */
export function failOverLate(st: RequestState, why: string): boolean {
  const fb = switchTo(st, why);
  if (fb === null) return false;
  // The pods' upstream gauge ends under the ModelServer's labels before they change.
  upstreamDone(st);
  const leg = providerLeg(st, fb.target, fb.raw, fb.text, fb.body, fb.model);
  if (leg !== null) callProvider(st, leg);
  return true;
}
