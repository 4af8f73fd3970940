/**
 * The routing IR: plain, frozen data built by the translator, encoded into the snapshot buffer by
 * publish/, decoded and compiled once per generation by each worker. Nothing here is per request.
 */
import type { GatewayIR } from './gateway.js';

export type MatchType = 'exact' | 'prefix' | 'regex';

export interface StringMatchIR {
  type: MatchType;
  value: string;
}

export interface HeaderMatchIR extends StringMatchIR {
  /** Lower-case header name. */
  name: string;
}

export interface RuleMatchIR {
  headers: HeaderMatchIR[];
  uri: StringMatchIR | null;
  bodyModel: string | null;
}

export interface TargetIR {
  /** 'server': a ModelServer; 'provider': an ExternalModelProvider. */
  kind: 'server' | 'provider';
  /** namespace/name of the ModelServer or provider. */
  key: string;
  /**
   * Index into RoutingIR.servers ('server') or RoutingIR.providers ('provider'), or -1 when the
   * object does not exist (or is not valid).
   */
  server: number;
  weight: number;
}

export interface RuleIR {
  name: string;
  /** null: the rule matches every request. */
  match: RuleMatchIR | null;
  targets: TargetIR[];
  /** Sum of target weights (> 0 for a valid rule). */
  totalWeight: number;
  /**
   * Index into `targets` of the ExternalModelProvider a request fails over to when its ModelServer
   * target cannot serve it (route annotation kthena-router.volcano.sh/provider-fallback); absent: none.
   */
  fallback?: number;
}

export interface RouteIR {
  key: string;
  namespace: string;
  name: string;
  /** '' when the route has only LoRA adapters. */
  modelName: string;
  loraAdapters: string[];
  hasParentRefs: boolean;
  rules: RuleIR[];
  /** spec.rateLimit, or null when the route has none (or neither token field). */
  rateLimit: RateLimitIR | null;
  /** spec.sessionSticky; absent when the route has none (Kthena's session-sticky proposal). */
  sessionSticky?: SessionStickyIR;
}

/**
 * A route's token rate limits (docs/reference/kthena-behaviour.md §5.1, docs/traffic-policy.md). Every model the
 * route serves (modelName and each LoRA adapter) has its own budget per direction, as Kthena keys
 * its limiters by the request model.
 */
export interface RateLimitIR {
  /** 0: no limit in that direction. */
  inputTokensPerUnit: number;
  outputTokensPerUnit: number;
  unitSeconds: number;
  /** '' for local buckets (shared memory, one budget per router); else the Redis `host:port`. */
  redisAddress: string;
  /** Local buckets, one per (model, direction) with a limit; slots assigned by publish/ (empty from the translator). */
  buckets: RateLimitBucketIR[];
}

export interface RateLimitBucketIR {
  model: string;
  direction: 'input' | 'output';
  /** Slot in the rate-limit region and its generation (src/shared/layout.ts). */
  slot: number;
  gen: number;
}

export interface SessionStickyIR {
  /** Binding TTL, seconds. */
  ttlSec: number;
  /** In order; Header names lower-cased. JWTClaim only when JWT authentication is configured. */
  sources: { type: 'Header' | 'Query' | 'Cookie' | 'JWTClaim'; name: string }[];
}

export interface ServerIR {
  key: string;
  namespace: string;
  name: string;
  /** spec.model, or '' when unset (the request model is forwarded as is). */
  model: string;
  engine: 'vLLM' | 'SGLang';
  port: number;
  /** trafficPolicy.timeout in ms; 0 = none. */
  timeoutMs: number;
  /** trafficPolicy.retry.attempts; -1 = not set (Kthena's walk over up to 5 scheduled pods). */
  retryAttempts: number;
  retryIntervalMs: number;
  /** Indexes into RoutingIR.endpoints: Running, Ready, non-terminating pods with an IP. */
  endpoints: number[];
  /** '' when served; else the feature this ModelServer needs that this release lacks (answered 501). */
  unsupported: string;
  /**
   * Prefill/decode groups (`workloadSelector.pdGroup`), in group-value order; empty without
   * pdGroup. A pod matching every decodeLabel is a decode pod (checked first), else one matching
   * every prefillLabel is a prefill pod; pods without the group label are not used for PD.
   * Indexes into RoutingIR.endpoints, ascending.
   */
  pdGroups: PdGroupIR[];
  /** KV connector for PD: spec.kvConnector.type, else 'sglang' for SGLang engines, else 'http'; '' without pdGroup. */
  connector: '' | 'http' | 'lmcache' | 'nixl' | 'mooncake' | 'sglang';
}

export interface PdGroupIR {
  /** Value of the groupKey label. */
  name: string;
  decode: number[];
  prefill: number[];
}

export interface EndpointIR {
  /** namespace/podName. */
  key: string;
  namespace: string;
  name: string;
  ip: string;
  /** Endpoint slot in the shared endpoint region; assigned by publish/, -1 from the translator. */
  slot: number;
  /** kEpGen of the slot when it was assigned to this pod (publish/); 0 from the translator. */
  gen: number;
  /** Pod status.startTime in unix seconds (0 = unknown); kvcache-aware drops KV blocks older than this. */
  startedAtSec: number;
}

/**
 * The scheduler profile from the router configuration (`--router-config`, Kthena's
 * `routerConfiguration` format), validated against the plugin registry
 * (workers/scheduler/registry.ts) and with every default filled in.
 */
export interface SchedulerIR {
  /** Filter plugin names, in configured order. */
  filters: string[];
  /** Score plugins with integer weights >= 0, in configured order. */
  scores: { name: string; weight: number }[];
  /**
   * The arguments of every plugin in `filters` and `scores`, by plugin name, each a flat mapping
   * argument name (as written in pluginConfig) -> value, defaults filled in. One sub-document
   * whatever the plugins are: a new plugin adds no field here or in the snapshot schema.
   */
  args: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * An ExternalModelProvider as the workers call it (workers/provider/), with its credential already
 * resolved from the labelled Secret. `authValue` is a secret: the debug snapshot dump redacts it
 * and nothing logs it.
 */
export interface ProviderIR {
  key: string;
  namespace: string;
  name: string;
  type: 'OpenAI' | 'Anthropic';
  /** spec.model (sent upstream instead of the request's model), '' when unset. */
  model: string;
  /** https://host[:port] of spec.baseURL. */
  origin: string;
  /** spec.baseURL's path without trailing slashes ('' when none), percent-encoded as written. */
  basePath: string;
  insecureSkipVerify: boolean;
  /** spec.headers, flat [name, value, ...], names as written, sorted by lower-case name. */
  headers: string[];
  /** Lower-case auth header name ('authorization' or 'x-api-key'), '' without spec.auth. */
  authHeader: string;
  /** `Bearer <credential>` or the credential itself; '' without spec.auth. */
  authValue: string;
  /** '' when the provider can be called; else why not (its Ready reason): requests get 503 not ready. */
  notReady: string;
}

/** JWT authentication of /v1/* requests (routerConfiguration `auth:`), workers/auth/jwt.ts. */
export interface AuthIR {
  issuer: string;
  /** Empty: `aud` is not checked. */
  audiences: string[];
  jwksUri: string;
}

/**
 * API keys (ModelServer.spec.apiKeyRules, src/translator/api-keys.ts): digests only, never a key.
 * A request to a listed ModelServer passes when one rule finds a key at its location whose digest
 * that rule admits.
 */
export interface ApiKeysIR {
  /** Sorted by server key; only ModelServers with rules. */
  servers: ServerApiKeysIR[];
  /** Every digest of every API-key Secret, sorted: a known key refused by a ModelServer is a 403, not a 401. */
  known: string[];
}

export interface ServerApiKeysIR {
  /** namespace/name of the ModelServer. */
  server: string;
  rules: ApiKeyRuleIR[];
}

export interface ApiKeyRuleIR {
  /** Lower-case header name, '' for none. `authorization` reads the token of `Bearer <token>`. */
  header: string;
  /** Query parameter name, '' for none. */
  param: string;
  /** [digest, user id] pairs, sorted by digest. */
  keys: [string, string][];
}

export interface RoutingIR {
  /** Oldest first: creationTimestamp, then resourceVersion, then namespace/name. */
  routes: RouteIR[];
  servers: ServerIR[];
  /** Valid ExternalModelProviders, sorted by key (absent in IRs built before providers existed: none). */
  providers?: ProviderIR[];
  /** Sorted by key; only pods selected by at least one ModelServer. */
  endpoints: EndpointIR[];
  scheduler: SchedulerIR;
  /**
   * Every model and LoRA adapter name a route serves, sorted. The scraper sets bit modelIds[i] of a
   * pod's model bit set when the pod lists modelNames[i] (lora-affinity reads one bit).
   */
  modelNames: string[];
  /** Parallel to modelNames: stable ids assigned by publish/ (empty from the translator). */
  modelIds: number[];
  /** Gateway API routing (src/ir/gateway.ts); empty (no ports) while --enable-gateway-api is off. */
  gateway: GatewayIR;
  /** JWT authentication from the router configuration; absent or null: off. Set by the control thread after translation. */
  auth?: AuthIR | null;
  /** API keys of ModelServers; absent when no ModelServer has apiKeyRules. */
  apiKeys?: ApiKeysIR;
}
