/**
 * The request pipeline of one worker, composed from its stages (docs/lifecycle.md draws it):
 *
 *   ingress ─► dispatch (ModelRoute | Gateway) ─► schedule ─► try (attempt | PD pair) ─► upstream
 *                                                                  │
 *                                         response writer ◄────────┘          finish (always)
 *
 * - request/ingress.ts             uWS request: health, headers, x-request-id, limits, body
 * - request/dispatch-modelroute.ts ModelRoute match, target, ModelServer
 * - request/ratelimit.ts           the route's token rate limits (before scheduling; output charged in finish)
 * - request/dispatch-gateway.ts    Gateway listener, HTTPRoute, filters, backend, admission, timeout
 * - request/schedule.ts            scheduler profile (kvcache-aware first), PD pairing
 * - request/attempt.ts             one object per try, retries (nextTry)
 * - request/attempt-pd.ts          a prefill/decode pair: the prefill leg, then a decode Attempt
 * - request/upstream.ts            the upstream client interface (workers/upstream/ h1, or undici)
 * - request/response.ts            the response writer (one per upstream response)
 * - request/forward.ts             headers, path and body sent upstream
 * - request/finish.ts              finish(), catalogued error answers, the error boundary
 * - request/state.ts               WorkerContext, Listener, RequestState
 *
 * Every failure goes through the error catalogue; nothing here blocks the thread.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { ingress } from './request/ingress.js';
import type { Listener, WorkerContext } from './request/state.js';
import { createUpstream } from './request/upstream.js';

export type { WorkerContext } from './request/state.js';

/**
 * The request handler of one listening port: the router port (--port, also the default Gateway's
 * listener) or a Gateway listener port.
 */
export function createHandler(ctx: WorkerContext, port: number = ctx.cfg.port, tls = ctx.cfg.tlsCert !== ''): (res: HttpResponse, req: HttpRequest) => void {
  ctx.upstream ??= createUpstream(ctx.cfg);
  const listener: Listener = { ctx, upstream: ctx.upstream, port, tls, routerPort: port === ctx.cfg.port };
  return ingress(listener);
}
