/**
 * Typed resources as every provider (file, later Kubernetes) emits them. Objects here are already
 * validated and defaulted (as the API server would: CRD defaults applied, creationTimestamp set),
 * so the translator never sees a raw manifest.
 */
import type {
  Gateway, GatewayClass, HTTPRoute, InferenceObjective, InferencePool, Namespace, ReferenceGrant, Secret, Service,
} from './gateway.js';
import type { ExternalModelProvider } from './external-provider.js';

export interface ObjectMeta {
  name: string;
  namespace: string;
  /** RFC 3339. In file mode: the manifest's value, else the time the object was first loaded. */
  creationTimestamp: string;
  resourceVersion: string;
  generation: number;
  labels: Readonly<Record<string, string>>;
  deletionTimestamp?: string;
  uid: string;
  /** The router's own annotations (src/resources/annotations.ts); absent when the object has none. */
  annotations?: Readonly<Record<string, string>>;
}

export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

export interface ParentReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  sectionName?: string;
  port?: number;
}

export interface TargetModel {
  modelServerName?: string;
  externalModelProviderName?: string;
  /** Defaulted to 100 (CRD default). Relative weight 0..100. */
  weight: number;
}

export interface ModelMatch {
  headers?: Record<string, StringMatch>;
  uri?: StringMatch;
  body?: { model?: string };
}

export interface Rule {
  name?: string;
  modelMatch?: ModelMatch;
  targetModels: TargetModel[];
}

export interface RateLimit {
  inputTokensPerUnit?: number;
  outputTokensPerUnit?: number;
  unit: 'second' | 'minute' | 'hour' | 'day' | 'month';
  global?: { redis?: { address: string } };
}

export interface ModelRoute {
  apiVersion: 'networking.serving.volcano.sh/v1alpha1';
  kind: 'ModelRoute';
  metadata: ObjectMeta;
  spec: {
    modelName?: string;
    loraAdapters?: string[];
    parentRefs?: ParentReference[];
    rules: Rule[];
    rateLimit?: RateLimit;
    /** Session affinity (Kthena's session-sticky proposal; not in Kthena's CRD at this version). */
    sessionSticky?: SessionSticky;
  };
}

export interface SessionSticky {
  /** Binding TTL in seconds; default 10800. */
  sessionAffinitySeconds?: number;
  /** Evaluated in order; the first non-empty value is the session key. */
  sources: { type: 'Header' | 'Query' | 'Cookie' | 'JWTClaim'; name: string }[];
}

/**
 * One way to present an API key to a ModelServer (volcano-sh/kthena:docs/proposal/
 * Authorization_of_kthena_router.md): where the key is read, and the Secrets (labelled
 * networking.serving.volcano.sh/api-key=true) whose keys it admits.
 */
export interface ApiKeyRule {
  fromHeader?: string;
  fromParam?: string;
  secretName?: { name: string; namespace?: string };
  /** Secrets of the ModelServer's namespace with all these labels; wins over secretName. */
  labelSelector?: Record<string, string>;
}

export interface PDGroup {
  groupKey: string;
  prefillLabels: Record<string, string>;
  decodeLabels: Record<string, string>;
}

export interface ModelServer {
  apiVersion: 'networking.serving.volcano.sh/v1alpha1';
  kind: 'ModelServer';
  metadata: ObjectMeta;
  spec: {
    model?: string;
    inferenceEngine: 'vLLM' | 'SGLang';
    workloadSelector: { matchLabels: Record<string, string>; pdGroup?: PDGroup };
    workloadPort: { port: number; protocol: 'http' | 'https' };
    trafficPolicy?: {
      /** Milliseconds, parsed from the metav1.Duration string. */
      timeoutMs?: number;
      retry?: { attempts: number; retryIntervalMs: number };
    };
    kvConnector?: { type: 'http' | 'lmcache' | 'nixl' | 'mooncake' };
    /** API-key authentication (Kthena's authorization proposal; not in Kthena's CRD). */
    apiKeyRules?: ApiKeyRule[];
  };
  /** The spec exactly as written (durations as strings), for the debug dump. */
  rawSpec: unknown;
}

export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: { nodeName?: string };
  status: {
    podIP?: string;
    phase?: string;
    /** The Ready condition is True. */
    ready: boolean;
    startTime?: string;
    /** Newest `containerStatuses[].state.running.startedAt` (RFC 3339), when any container runs. */
    containersStartedAt?: string;
  };
}

export type AnyResource = ModelRoute | ModelServer | Pod | ExternalModelProvider;

/**
 * Everything a provider currently knows, each list sorted by namespace/name. The Gateway API,
 * Inference Extension and core kinds are optional (absent = none), so that code and tests that
 * only know the Kthena kinds keep building sets the old way.
 */
export interface ResourceSet {
  modelRoutes: readonly ModelRoute[];
  modelServers: readonly ModelServer[];
  pods: readonly Pod[];
  gatewayClasses?: readonly GatewayClass[];
  gateways?: readonly Gateway[];
  httpRoutes?: readonly HTTPRoute[];
  referenceGrants?: readonly ReferenceGrant[];
  services?: readonly Service[];
  namespaces?: readonly Namespace[];
  secrets?: readonly Secret[];
  inferencePools?: readonly InferencePool[];
  inferenceObjectives?: readonly InferenceObjective[];
  externalModelProviders?: readonly ExternalModelProvider[];
}


/** A validation or translation problem, reported (log, metric, debug dump) and never fatal. */
export interface Problem {
  kind: string;
  namespace: string;
  name: string;
  /** Manifest file in file mode. */
  file?: string;
  /** JSON path of the offending field, e.g. spec.rules[0].targetModels. */
  field: string;
  message: string;
  /** 'rejected': the object (or this version of it) is left out; 'warning': it is used. */
  severity: 'rejected' | 'warning';
}

export function objectKey(meta: { namespace: string; name: string }): string {
  return `${meta.namespace}/${meta.name}`;
}
