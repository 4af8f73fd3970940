/**
 * Typed Gateway API, Inference Extension and core (Service, Namespace, Secret) resources, as the
 * providers emit them: validated and defaulted the way the API server would (CRD defaults applied,
 * CEL rules checked; see validate/kinds/), deep-frozen. Only the fields the router reads are
 * typed; fields it accepts but does not interpret are dropped after validation.
 */
import type { ApiKeySet } from './secret.js';
import type { ObjectMeta } from './types.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const INFERENCE_GROUP = 'inference.networking.k8s.io';
/** InferenceObjective as GIE <= v1.5 served it. */
export const INFERENCE_X_GROUP = 'inference.networking.x-k8s.io';
/** InferenceObjective since it moved to llm-d-router. */
export const LLMD_GROUP = 'llm-d.ai';
/** Kthena's GatewayClass and controller (docs/reference/kthena-behaviour.md §6.1). */
export const KTHENA_GATEWAY_CLASS = 'kthena-router';
export const KTHENA_CONTROLLER_NAME = 'volcano.sh/kthena-router';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

export interface LabelSelector {
  matchLabels: Readonly<Record<string, string>>;
  matchExpressions: LabelSelectorRequirement[];
}

export interface GatewayClass {
  apiVersion: string;
  kind: 'GatewayClass';
  /** Cluster-scoped: namespace is ''. */
  metadata: ObjectMeta;
  spec: { controllerName: string };
}

export interface SecretObjectReference {
  /** '' (core) after defaulting. */
  group: string;
  /** 'Secret' after defaulting. */
  kind: string;
  name: string;
  namespace?: string;
}

export type AllowedNamespacesFrom = 'All' | 'Same' | 'Selector' | 'None';

export interface RouteGroupKind {
  /** gateway.networking.k8s.io after defaulting. */
  group: string;
  kind: string;
}

export interface Listener {
  name: string;
  hostname?: string;
  port: number;
  /** HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed custom protocol. */
  protocol: string;
  tls?: { mode: 'Terminate' | 'Passthrough'; certificateRefs: SecretObjectReference[] };
  allowedRoutes: {
    namespaces: { from: AllowedNamespacesFrom; selector?: LabelSelector };
    /** Empty: the kinds the protocol implies (HTTPRoute for HTTP and HTTPS). */
    kinds: RouteGroupKind[];
  };
}

export interface Gateway {
  apiVersion: string;
  kind: 'Gateway';
  metadata: ObjectMeta;
  spec: {
    gatewayClassName: string;
    listeners: Listener[];
    /** Requested static addresses; not supported (the Gateway is answered UnsupportedAddress). */
    addresses: { type: string; value: string }[];
  };
}

export interface GatewayParentReference {
  /** gateway.networking.k8s.io after defaulting. */
  group: string;
  /** Gateway after defaulting. */
  kind: string;
  name: string;
  namespace?: string;
  sectionName?: string;
  port?: number;
}

export interface HTTPPathMatch {
  type: 'Exact' | 'PathPrefix' | 'RegularExpression';
  value: string;
}

export interface HTTPValueMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export type HTTPMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'CONNECT' | 'OPTIONS' | 'TRACE' | 'PATCH';

export interface HTTPRouteMatch {
  path: HTTPPathMatch;
  headers: HTTPValueMatch[];
  queryParams: HTTPValueMatch[];
  method?: HTTPMethod;
}

export interface HTTPHeaderModifier {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRequestRedirect {
  scheme?: 'http' | 'https';
  hostname?: string;
  path?: HTTPPathModifier;
  port?: number;
  statusCode: 301 | 302 | 303 | 307 | 308;
}

export interface HTTPURLRewrite {
  hostname?: string;
  path?: HTTPPathModifier;
}

export type HTTPRouteFilterType =
  | 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestMirror' | 'RequestRedirect' | 'URLRewrite' | 'ExtensionRef' | 'CORS' | 'ExternalAuth';

export interface HTTPRouteFilter {
  type: HTTPRouteFilterType;
  requestHeaderModifier?: HTTPHeaderModifier;
  responseHeaderModifier?: HTTPHeaderModifier;
  requestRedirect?: HTTPRequestRedirect;
  urlRewrite?: HTTPURLRewrite;
}

export interface HTTPBackendRef {
  /** '' (core) after defaulting. */
  group: string;
  /** Service after defaulting. */
  kind: string;
  name: string;
  namespace?: string;
  port?: number;
  /** 0..1,000,000; 1 after defaulting. */
  weight: number;
  filters: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  /** Never empty after defaulting ([{path: PathPrefix /}]). */
  matches: HTTPRouteMatch[];
  filters: HTTPRouteFilter[];
  backendRefs: HTTPBackendRef[];
  /** Parsed GEP-2257 durations in ms; 0 disables the timeout; absent = none configured. */
  timeouts?: { requestMs?: number; backendRequestMs?: number };
}

export interface HTTPRoute {
  apiVersion: string;
  kind: 'HTTPRoute';
  metadata: ObjectMeta;
  spec: {
    parentRefs: GatewayParentReference[];
    /** Lower-cased. */
    hostnames: string[];
    rules: HTTPRouteRule[];
  };
}

export interface ReferenceGrant {
  apiVersion: string;
  kind: 'ReferenceGrant';
  metadata: ObjectMeta;
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  /** Number, or a named container port; defaults to port. */
  targetPort: number | string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}

export interface Service {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    type: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    /** Absent: endpoints are managed by hand (EndpointSlices), which file mode does not read. */
    selector?: Readonly<Record<string, string>>;
    ports: ServicePort[];
  };
}

export interface Namespace {
  apiVersion: 'v1';
  kind: 'Namespace';
  /** Cluster-scoped: metadata.namespace is ''; the namespace's own name is metadata.name. */
  metadata: ObjectMeta;
}

export interface Secret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: ObjectMeta;
  type: string;
  /** PEM text of tls.crt / tls.key when the Secret has them (data base64-decoded, stringData as is). */
  tls?: { cert: string; key: string };
  /** API keys as digests, when labelled for it (src/resources/secret.ts). */
  apiKeys?: ApiKeySet;
  /** Provider credentials, when labelled with Kthena's credential label (src/resources/secret.ts). */
  credentials?: Readonly<Record<string, string>>;
}

export interface InferencePool {
  apiVersion: string;
  kind: 'InferencePool';
  metadata: ObjectMeta;
  spec: {
    selector: { matchLabels: Readonly<Record<string, string>> };
    /** 1..8 unique port numbers. */
    targetPorts: { number: number }[];
    appProtocol: 'http' | 'kubernetes.io/h2c';
    endpointPickerRef?: {
      group: string;
      kind: string;
      name: string;
      port?: { number: number };
      failureMode: 'FailOpen' | 'FailClose';
    };
  };
}

export interface PoolObjectReference {
  group: string;
  kind: string;
  name: string;
}

export interface InferenceObjective {
  /** inference.networking.x-k8s.io/v1alpha2 or llm-d.ai/v1alpha2. */
  apiVersion: string;
  kind: 'InferenceObjective';
  metadata: ObjectMeta;
  spec: {
    /** Unset reads as 0 (GIE); negative = sheddable. */
    priority?: number;
    poolRef?: PoolObjectReference;
    poolRefs?: PoolObjectReference[];
    poolSelector?: LabelSelector;
  };
}

export type GatewayResource =
  | GatewayClass | Gateway | HTTPRoute | ReferenceGrant | Service | Namespace | Secret | InferencePool | InferenceObjective;
