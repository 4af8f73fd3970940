/**
 * The Gateway API routing IR and the status shapes, built by src/translator/gateway/ (pure) and
 * read by workers/gateway-match.ts. Plain, frozen, JSON-serialisable data like ir/types.ts; nothing
 * here is per request. Published to the workers inside the routing snapshot (RoutingIR.gateway).
 *
 * Shape, in the order a request walks it:
 *
 *   GatewayIR.ports[]            one entry per listening port (sorted). A port carries the protocol
 *     .hostnames                 (HTTP or HTTPS; a port never mixes them) and the listener selection
 *                                table: exact hostnames (lower case, sorted), wildcard suffixes
 *                                ("*.example.com" -> ".example.com", longest first), and the one
 *                                listener without hostname (-1 when none). A request's Host (port
 *                                stripped, lower-cased) picks exact, then longest wildcard, then
 *                                the hostname-less listener, else 404 (Kthena's order, docs/reference/kthena-behaviour.md §6.2).
 *   GatewayIR.listeners[]        one per programmed listener, with `entries`: every (route, rule,
 *     .entries                   match, hostname) attached to it, flattened across ALL its routes
 *                                and sorted by the spec's precedence (docs/reference/gateway-api.md §3.3): Exact
 *                                path, then RegularExpression (longest pattern first; its rank is
 *                                implementation-specific), then PathPrefix by length, then method,
 *                                #headers, #queryParams; then the most specific route hostname
 *                                (exact by length, wildcard by length, none) as the spec's hostname
 *                                tie-break; then the oldest route, "ns/name", rule index, match
 *                                index. An entry's hostname is the route hostname intersected with
 *                                the listener's ('*' when neither sets one), checked per request
 *                                like any other predicate. (Hostnames are not separate virtual
 *                                hosts: conformance HTTPRouteMatchingAcrossRoutes sends
 *                                example.com/v2 to a "*.com" route's /v2 rule over an
 *                                "example.com" route's / rule.) The first entry whose predicates
 *                                all hold wins; none -> 404.
 *   MatchEntryIR.rule            index into GatewayIR.rules: filters (null = stage absent, one
 *                                branch per stage in the worker), timeouts, and weighted backends.
 *   BackendIR                    a Service (endpoints = ready pods selected by the Service,
 *                                podIP:targetPort), an InferencePool (ready pods x each targetPort,
 *                                one endpoint per podIP:port, scheduled in-process), or a typed
 *                                invalid backend (`status` 500: not found, not permitted, bad kind)
 *                                which takes its share of the weight and answers 500, as the spec
 *                                requires. A valid backend with no endpoints answers 503.
 *   GatewayIR.endpoints[]        every podIP:port a backend of an attached route uses, sorted by
 *                                key, shared so that a pod reached through two routes is one
 *                                scheduler slot. Routes no listener of ours accepts contribute no
 *                                route, rule, pool or endpoint (no slot, no scrape).
 *
 * ModelRoute binding (docs/reference/kthena-behaviour.md §6.3): GatewayIR.gateways[].models maps a model name (or LoRA
 * adapter) to the ModelRoute keys that may serve it on that Gateway, oldest first; the same name on
 * two Gateways is two independent lists.
 *
 * Statuses (GatewayStatuses) are what a status writer PUTs to the `status` subresource of each
 * object this controller manages: every condition carries observedGeneration and the spec's
 * reasons. lastTransitionTime is not computed here (the translator has no clock):
 * mergeConditions() in the translator keeps the previous time when status, reason and message are
 * unchanged and stamps `now` otherwise. An HTTPRoute or InferencePool with `parents: []` tells the
 * writer to remove this controller's entries (no placeholder parent, GIE conformance).
 */

export type PathMatchKind = 'Exact' | 'PathPrefix' | 'RegularExpression';

export interface ValueMatchIR {
  /** Header names lower-cased; query parameter names as written (case-sensitive). */
  name: string;
  type: 'Exact' | 'RegularExpression';
  value: string;
}

export interface MatchEntryIR {
  /** Effective hostname: 'foo.example.com', '*.example.com' (one or more labels), or '*' (any). */
  hostname: string;
  /** Index into GatewayIR.routes. */
  route: number;
  /** Index into GatewayIR.rules. */
  rule: number;
  /** Position of the rule in its route and of the match in its rule, for messages and ties. */
  ruleIndex: number;
  matchIndex: number;
  pathType: PathMatchKind;
  /**
   * Exact: the path. PathPrefix: the prefix without trailing '/' ('' for '/', which matches all).
   * RegularExpression: the pattern, matched against the whole path.
   */
  path: string;
  /** '' = any method. */
  method: string;
  headers: ValueMatchIR[];
  queryParams: ValueMatchIR[];
}

export interface ListenerIR {
  /** namespace/name of the Gateway. */
  gateway: string;
  /** Index into GatewayIR.gateways. */
  gatewayIndex: number;
  name: string;
  port: number;
  protocol: 'HTTP' | 'HTTPS';
  /** null: any host. */
  hostname: string | null;
  /** HTTPS: namespace/name of the certificate Secrets, resolved and permitted. */
  certificates: string[];
  /** In precedence order. */
  entries: MatchEntryIR[];
}

export interface PortIR {
  port: number;
  protocol: 'HTTP' | 'HTTPS';
  /** [hostname, listener index], sorted by hostname. */
  exact: [string, number][];
  /** [suffix including the leading '.', listener index], longest suffix first. */
  wildcard: [string, number][];
  /** Listener without hostname, or -1. */
  any: number;
}

export interface HeaderModifierIR {
  /** Names lower-cased. */
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

export interface PathModifierIR {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  value: string;
}

export interface RedirectIR {
  /** '' = keep the request's. */
  scheme: '' | 'http' | 'https';
  hostname: string;
  /** 0 = derived (well-known port of the redirect scheme, else the listener port). */
  port: number;
  path: PathModifierIR | null;
  statusCode: number;
}

export interface RewriteIR {
  /** '' = keep the Host. */
  hostname: string;
  path: PathModifierIR | null;
}

export interface FiltersIR {
  requestHeaders: HeaderModifierIR | null;
  responseHeaders: HeaderModifierIR | null;
  redirect: RedirectIR | null;
  rewrite: RewriteIR | null;
}

export interface BackendIR {
  kind: 'service' | 'pool' | 'invalid';
  /** namespace/name of the referent (as referenced, also for an invalid one). */
  key: string;
  weight: number;
  /** 'invalid': the HTTP status this share of traffic gets (500). 0 otherwise. */
  status: number;
  /** Why it is invalid ('' when valid): the ResolvedRefs reason. */
  reason: string;
  /** Indexes into GatewayIR.endpoints, ascending. Empty for a valid backend: answer 503. */
  endpoints: number[];
  /** Index into GatewayIR.pools for 'pool', else -1. */
  pool: number;
  /** Per-backend filters (HTTPBackendRef.filters): header modifiers only. */
  requestHeaders: HeaderModifierIR | null;
  responseHeaders: HeaderModifierIR | null;
}

export interface RuleIR {
  /** Index into GatewayIR.routes. */
  route: number;
  ruleIndex: number;
  /** The rule's name, '' when unnamed. */
  name: string;
  filters: FiltersIR;
  backends: BackendIR[];
  /** Sum of backend weights; 0 with backends means every weight is 0. */
  totalWeight: number;
  /**
   * The status every request on this rule gets without reaching a backend: 500 when the rule has no
   * backendRefs and no redirect, or all its weights are 0. 0 = route normally.
   */
  directStatus: number;
  /** timeouts.request / backendRequest in ms; 0 = none. */
  requestTimeoutMs: number;
  backendRequestTimeoutMs: number;
}

export interface RouteIR {
  /** namespace/name. */
  key: string;
  namespace: string;
  name: string;
}

export interface PoolIR {
  key: string;
  namespace: string;
  name: string;
  appProtocol: 'http' | 'kubernetes.io/h2c';
  /** Ready pods matching the selector x every targetPort. */
  endpoints: number[];
  /**
   * Who picks the endpoint of a request. 'in-process': the route's scheduler profile over
   * `endpoints`, whatever endpointPickerRef says (Kthena's way, and the default). 'external': the
   * pool's Endpoint Picker over Envoy's ext_proc protocol (`epp`), selected by
   * --inference-pool-picker=external.
   */
  picker: 'in-process' | 'external';
  /** The Endpoint Picker to call; set iff picker is 'external'. */
  epp: EndpointPickerIR | null;
  /** InferenceObjectives applying to this pool, by name (sorted); priority unset = 0. */
  objectives: { name: string; priority: number }[];
}

/**
 * An InferencePool's Endpoint Picker (GIE endpointPickerRef, a Service). Workers dial `addresses`
 * (the Service's ready pods at the target port, like a Service backend) or, when the Service has no
 * selector or a named targetPort, `dns`; one HTTP/2 channel per distinct EndpointPickerIR.
 */
export interface EndpointPickerIR {
  /** namespace/name of the Service. */
  service: string;
  /** 'ip:port' ('[ip]:port' for IPv6) of the Service's ready pods, sorted. */
  addresses: string[];
  /** 'name.namespace.svc:port' when the pods cannot be resolved here, else ''. */
  dns: string;
  /** failureMode FailOpen: when the picker fails, the router picks in-process; FailClose: 503. */
  failOpen: boolean;
  /**
   * Why the picker cannot be called ('' when it can): the Service is missing, an ExternalName, of
   * another kind or has no such port (ResolvedRefs=False). Requests then take the failureMode path.
   */
  unresolved: string;
}

export interface GatewayEndpointIR {
  /** namespace/pod:port. */
  key: string;
  namespace: string;
  pod: string;
  ip: string;
  port: number;
  /** Endpoint slot, assigned by publish/; -1 from the translator. */
  slot: number;
  /** kEpGen of the slot, assigned by publish/; 0 from the translator. */
  gen: number;
  /** Pod start, unix seconds (0 = unknown); kvcache-aware drops older block owners. */
  startedAtSec: number;
}

export interface GatewayEntryIR {
  /** namespace/name. */
  key: string;
  namespace: string;
  name: string;
  /** Listener names programmed, in spec order. */
  listeners: string[];
  /** Model name or LoRA adapter -> ModelRoute keys bound to this Gateway, oldest first; sorted by name. */
  models: { name: string; routes: string[] }[];
}

export interface GatewayIR {
  /**
   * Per Gateway (parallel to `gateways`): model names the pods of its InferencePools serve, as
   * scraped from their /v1/models (filled in by the control thread, not the translator; absent or
   * empty until scraped). GET /v1/models on the Gateway lists them beside its ModelRoutes.
   */
  poolModels?: string[][];
  ports: PortIR[];
  listeners: ListenerIR[];
  gateways: GatewayEntryIR[];
  routes: RouteIR[];
  rules: RuleIR[];
  pools: PoolIR[];
  endpoints: GatewayEndpointIR[];
}

/** The Gateway IR with nothing in it: Gateway API disabled, or a snapshot published without one. */
export function emptyGatewayIR(): GatewayIR {
  return { ports: [], listeners: [], gateways: [], routes: [], rules: [], pools: [], endpoints: [] };
}

// ---------------------------------------------------------------------------------------------
// Statuses
// ---------------------------------------------------------------------------------------------

export interface ConditionIR {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
}

export interface ParentRefIR {
  group: string;
  kind: string;
  /** As written in the route (absent = the route's namespace); always set for pool parents. */
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface ListenerStatusIR {
  name: string;
  supportedKinds: { group: string; kind: string }[];
  attachedRoutes: number;
  conditions: ConditionIR[];
}

export interface GatewayStatusIR {
  namespace: string;
  name: string;
  generation: number;
  status: { conditions: ConditionIR[]; listeners: ListenerStatusIR[] };
}

export interface GatewayClassStatusIR {
  name: string;
  generation: number;
  status: { conditions: ConditionIR[] };
}

export interface RouteParentStatusIR {
  parentRef: ParentRefIR;
  controllerName: string;
  conditions: ConditionIR[];
}

export interface HTTPRouteStatusIR {
  namespace: string;
  name: string;
  generation: number;
  /** This controller's entries only; [] = remove ours. */
  status: { parents: RouteParentStatusIR[] };
}

export interface InferencePoolStatusIR {
  namespace: string;
  name: string;
  generation: number;
  /** One entry per Gateway with an accepted route referencing the pool; [] = remove ours. */
  status: { parents: RouteParentStatusIR[] };
}

export interface GatewayStatuses {
  gatewayClasses: GatewayClassStatusIR[];
  gateways: GatewayStatusIR[];
  httpRoutes: HTTPRouteStatusIR[];
  inferencePools: InferencePoolStatusIR[];
}
