/**
 * What every stage of one request shares: the worker's context, the listener the request came
 * in on, and the request's own state. Per-try facts (the endpoint slot held, the upstream
 * controller, the response writer) live on the try's own object (attempt.ts, attempt-pd.ts), not
 * here: a retry is a fresh object, never a reset of fields.
 */
import type { CompiledApiKeyRule } from '../auth/api-key.js';
import type { HttpResponse } from 'uWebSockets.js';
import type { RouterConfig } from '../../src/config.js';
import type { HeaderModifierIR } from '../../src/ir/gateway.js';
import type { CompiledEndpoint, CompiledPd, CompiledServer, CompiledSnapshot } from '../compile.js';
import type { GateTicket, PriorityGate, SaturationDetector } from '../flow-control.js';
import type { AccessLogBuffer } from '../accesslog.js';
import type { WorkerMetrics } from '../metrics.js';
import { RequestRecord } from '../record.js';
import type { Profile, PrefixHashes, Scheduler } from '../scheduler/framework.js';
import type { KvCacheAwareScorer } from '../scheduler/kvcache-aware.js';
import type { ScheduleRequest } from '../scheduler/types.js';
import type { SnapshotReader } from '../snapshot-reader.js';
import type { Usage } from '../sse.js';
import type { Upstream } from './upstream.js';
import type { ModelLimit, RateLimiter } from '../ratelimit/limiter.js';
import type { AuthHolder } from '../auth/holder.js';
import type { AdmissionClient, AdmissionTicket } from '../admission.js';
import type { StickyTable } from '../sticky/memory-store.js';
import type { RedisStickyStore } from '../sticky/redis-store.js';
import type { EppCall, EppClient } from '../epp/client.js';
import type { Fallback } from '../provider/fallback.js';

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
  /**
   * The upstream client for pod endpoints (--upstream-client); created by the first handler when
   * not set. It owns its pools; the sweeper in worker.ts closes those of origins that left.
   */
  upstream?: Upstream;
  /** Requests accepted and not finished (drain waits for 0). */
  active: number;
  onIdle: (() => void) | null;
  renderMetrics: (() => Promise<string>) | null;
  /** InferencePool admission (InferenceObjective priority bands, shedding). */
  gate: PriorityGate;
  saturation: SaturationDetector;
  /** Token rate limits: the shared local buckets and the Redis connections of global limits. */
  rateLimiter: RateLimiter;
  /** JWT authentication of the live router configuration (null inside when off). */
  auth: AuthHolder;
  /** Kthena's fairness queue or session boost (the queue lives on the control thread), null when both are off. */
  admission: AdmissionClient | null;
  /** The router-wide session-sticky table in shared memory (ModelRoute.spec.sessionSticky). */
  sticky: StickyTable;
  /** --session-sticky-store redis: the bindings shared by every replica (null: memory). Optional for tests. */
  stickyRedis?: RedisStickyStore | null;
  /** Endpoint Picker client (--inference-pool-picker=external), created on the first pick. */
  epp: EppClient | null;
  log: (level: 'info' | 'warn' | 'error', obj: object, msg: string) => void;
}

/** One listening port: the router port (--port, also the default Gateway's listener) or a Gateway listener. */
export interface Listener {
  readonly ctx: WorkerContext;
  readonly upstream: Upstream;
  readonly port: number;
  readonly tls: boolean;
  /** Health, readiness and metrics answer here. */
  readonly routerPort: boolean;
}

/**
 * The try that currently answers the client (attempt.ts) as the request sees it: enough to end
 * it from outside (client gone, request timeout, internal error) without knowing its kind.
 */
export interface LiveTry {
  /** The client went away: abort the upstream leg; the try ends the request when it settles. */
  clientGone(): void;
  /** Stops the try without a verdict and releases what it holds (idempotent). */
  release(): void;
  /** Fails the try from outside (e.g. its PD prefill leg failed); it may move to the next pod. */
  fail(err: Error): void;
  /** Aborts the upstream exchange and releases the try; the caller answers the client. */
  cancel(err: Error): void;
  /** The response already reached the client and can still be ended with an error event (SSE). */
  endWithError(message: string): boolean;
}

/** A PD pair's prefill leg (attempt-pd.ts), as finish() and the abort path see it. */
export interface LivePrefill {
  cancel(): void;
}

export class RequestState {
  readonly l: Listener;
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
  // routing
  server: CompiledServer | null = null;
  isLora = false;
  /** Ranked pods (indices into server.endpoints, or into pd.decode on PD). */
  ranked: Int32Array | null = null;
  rankedCount = 0;
  profile: Profile | null = null;
  sreq: ScheduleRequest | null = null;
  /** Prefix hashes of this request's prompt, inserted for the pod that served it (post-schedule hook). */
  prefixHashes: PrefixHashes | null = null;
  /** Tries made so far (1-based index of the current one). */
  attempt = 0;
  maxAttempts = 0;
  upstreamBody: Buffer | string = '';
  /** Path and query sent upstream when a URLRewrite changed them; '' = the request's. */
  upstreamPath = '';
  /** A body that is not a JSON object, forwarded byte for byte (HTTPRoute backends). */
  rawBody: Buffer | null = null;
  upstreamHeaders: string[] = [];
  streamRequested = false;
  injectedUsage = false;
  // prefill/decode disaggregation (null/empty on the aggregated path)
  pd: CompiledPd | null = null;
  /** Prefill pod of pair k; the pair's decode pod is pd.decode[ranked[k]]. */
  pairPrefill: CompiledEndpoint[] | null = null;
  /** Prefill leg body and decode leg body before the per-pair connector members. */
  prefillBody = '';
  decodeBody = '';
  // Gateway API (null/empty on ModelRoute paths)
  /** ResponseHeaderModifier filters to apply, rule's then backend's. */
  respMods: HeaderModifierIR[] | null = null;
  requestTimer: NodeJS.Timeout | null = null;
  /** A request waiting in an InferencePool's flow-control queue, and the pool it counts against. */
  ticket: GateTicket | null = null;
  gatePool = '';
  /** The request's place in the router-wide fairness / session-boost queue (released by finish()). */
  admission: AdmissionTicket | null = null;
  /** The matched route's session-sticky key hash ([lo, hi]) and TTL, when the route has one and a source gave a key. */
  stickyKey: Int32Array | null = null;
  stickyTtlSec = 0;
  /** The session's Redis key ('' in memory mode) and the pod Redis binds it to now ('' when Redis did not answer). */
  stickyRedisKey = '';
  stickyPod = '';
  /** Authenticated user (JWT `sub`), '' when anonymous: the fairness queue's user. */
  userId = '';
  /** The API-key rule that admitted the request (its key is stripped before forwarding); null: none. */
  apiKeyRule: CompiledApiKeyRule | null = null;
  /** The verified token's claims (JWTClaim session-sticky sources), null without JWT authentication. */
  claims: Readonly<Record<string, unknown>> | null = null;
  /** The Endpoint Picker exchange of an external pick, told the served endpoint when the request ends. */
  epp: EppCall | null = null;
  // bookkeeping
  downstreamCounted = false;
  upstreamCounted = false;
  /** The try answering the client, the live PD prefill leg, and the timer before the next try. */
  current: LiveTry | null = null;
  prefill: LivePrefill | null = null;
  retryTimer: NodeJS.Timeout | null = null;
  /** Why the last try failed (the retry log line). */
  lastFailure = '';
  usage: Usage | null = null;
  /** Authentication still running; afterAuth runs once it succeeded. */
  authPending = false;
  afterAuth: (() => void) | null = null;
  /** The rule's ExternalModelProvider to fail over to (route opted in, workers/provider/fallback.ts); null: none. */
  fallback: Fallback | null = null;
  /** The admitted request's rate limit, charged with its output tokens by finish(); null: none. */
  rateLimit: ModelLimit | null = null;

  constructor(l: Listener, res: HttpResponse) {
    this.l = l;
    this.res = res;
  }

  headerValue(name: string): string {
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return '';
  }
}
