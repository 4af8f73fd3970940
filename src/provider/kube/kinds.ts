/**
 * Every kind the Kubernetes provider watches, one table entry each. Adding a kind (a Gateway API
 * or Inference Extension type once its typed resource and translator exist) is one entry here;
 * the provider, the informers, readiness and the RBAC list in docs/kubernetes.md follow from it.
 *
 * Roles:
 *  - `resource`: validated by src/resources/validate.ts into the ResourceSet the translator reads
 *    (exactly as the file provider does), with problems reported and the last valid version kept;
 *  - `raw`: kept as trimmed plain objects in the snapshot's `raw` map, for consumers that have no
 *    typed resource yet (EndpointSlices); a `resource` kind with `keepRaw` is in both;
 *  - `routerConfig`: the ConfigMap whose `routerConfiguration` key is the router configuration.
 */
import { apiPrefix } from '../../kube/client.js';
import { routerAnnotations } from '../../resources/annotations.js';
import { PROVIDER_CREDENTIAL_LABEL, SECRET_PURPOSES, digestSecretData, purposeSelector, type SecretPurpose } from '../../resources/secret.js';

/** A Kubernetes object as JSON (the shape list and watch return). */
export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
  data?: Record<string, string>;
  [k: string]: unknown;
}

export interface KindContext {
  /** POD_NAMESPACE: where the router's ConfigMap and Lease live. */
  podNamespace: string;
  gatewayApi: boolean;
  inferenceExtension: boolean;
}

export type KindRole = 'resource' | 'raw' | 'routerConfig';

export interface WatchedKind {
  kind: string;
  /** Distinguishes two informers of one kind (metrics, logs, lookups); default: `kind`. */
  id?: string;
  /** `v1` for the core group, else `group/version`. */
  apiVersion: string;
  plural: string;
  /** Cluster-scoped kinds (GatewayClass, Namespace) have no namespace in their paths. */
  clusterScoped?: boolean;
  role: KindRole;
  enabled(ctx: KindContext): boolean;
  /** Watch one namespace only (else every namespace). */
  namespace?(ctx: KindContext): string;
  labelSelector?: string;
  fieldSelector?(ctx: KindContext): string;
  /**
   * A kind whose CRD may be absent: a 404 on its list reads as an empty list (the informer counts
   * as synced and keeps retrying with backoff) instead of holding readiness back forever.
   */
  optional?: boolean;
  /** Keeps only what consumers read, before the object is cached (pods are the bulk of a cluster). */
  trim?(o: RawObject): RawObject;
  /** The status subresource is written by src/status/ for this kind. */
  writesStatus?: boolean;
  /** A `resource` kind whose trimmed objects also go to the snapshot's `raw` map (by id). */
  keepRaw?: boolean;
  /**
   * Several informers of one kind (the Secret purposes) may hold the same object: the version of
   * the lowest rank is used (default 0). Informers whose trim drops data others keep rank last.
   */
  rank?: number;
}

export const KTHENA_GROUP_VERSION = 'networking.serving.volcano.sh/v1alpha1';
export const GATEWAY_GROUP_VERSION = 'gateway.networking.k8s.io/v1';
export const CREDENTIAL_LABEL = PROVIDER_CREDENTIAL_LABEL;
export const ROUTER_CONFIGMAP = 'kthena-router-config';
export const ROUTER_CONFIGMAP_KEY = 'routerConfiguration';

const always = (): boolean => true;
const gatewayApi = (c: KindContext): boolean => c.gatewayApi;
const inferenceExtension = (c: KindContext): boolean => c.inferenceExtension;

/** metadata fields every consumer may read; managedFields and other controllers' annotations are dropped. */
function trimMeta(m: RawObject['metadata']): RawObject['metadata'] {
  const out: RawObject['metadata'] = { name: m.name };
  for (const k of ['namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'labels'] as const) {
    if (m[k] !== undefined) (out as Record<string, unknown>)[k] = m[k];
  }
  const annotations = routerAnnotations(m.annotations as Record<string, string> | undefined);
  if (annotations !== undefined) out.annotations = annotations;
  return out;
}

/** The Pod fields src/resources/validate.ts reads (and nothing else: containers, volumes, env go). */
export function trimPod(o: RawObject): RawObject {
  const spec = (o.spec ?? {}) as { nodeName?: string };
  const st = (o.status ?? {}) as {
    podIP?: string; phase?: string; startTime?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { state?: { running?: { startedAt?: string } } }[];
  };
  const status: Record<string, unknown> = {};
  if (st.podIP !== undefined) status.podIP = st.podIP;
  if (st.phase !== undefined) status.phase = st.phase;
  if (st.startTime !== undefined) status.startTime = st.startTime;
  if (Array.isArray(st.conditions)) status.conditions = st.conditions.map((c) => ({ type: c.type, status: c.status }));
  if (Array.isArray(st.containerStatuses)) {
    status.containerStatuses = st.containerStatuses.map((c) => {
      const startedAt = c.state?.running?.startedAt;
      return startedAt === undefined ? {} : { state: { running: { startedAt } } };
    });
  }
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: trimMeta(o.metadata),
    spec: spec.nodeName !== undefined ? { nodeName: spec.nodeName } : {},
    status,
  };
}

function trimSecret(o: RawObject): RawObject {
  const out: RawObject = { apiVersion: 'v1', kind: 'Secret', metadata: trimMeta(o.metadata), data: o.data ?? {} };
  if (typeof o.type === 'string') out.type = o.type;
  return out;
}

/** API-key Secrets are cached as digests only (src/resources/secret.ts). */
function trimApiKeySecret(o: RawObject): RawObject {
  return { ...trimSecret(o), data: digestSecretData(o.data) };
}

/**
 * One label-selected Secret informer per purpose of src/resources/secret.ts. The provider-credential
 * one keeps its historical id `Secret`; its typed Secrets (credentials) are what
 * ExternalModelProvider statuses and the routing snapshot read.
 */
const SECRET_INFORMER: Readonly<Record<SecretPurpose, { id: string; trim(o: RawObject): RawObject; keepRaw?: boolean }>> = {
  providerCredential: { id: 'Secret', trim: trimSecret },
  apiKeys: { id: 'Secret/api-key', trim: trimApiKeySecret },
};
const purposeSecretKinds: WatchedKind[] = SECRET_PURPOSES.map((p, i) => ({
  kind: 'Secret', id: SECRET_INFORMER[p.purpose].id, apiVersion: 'v1', plural: 'secrets', role: 'resource' as const, enabled: always,
  labelSelector: purposeSelector(p), trim: SECRET_INFORMER[p.purpose].trim, keepRaw: SECRET_INFORMER[p.purpose].keepRaw, rank: i,
}));

/** TLS Secrets for Gateway listeners: only the certificate material (resources/validate/kinds/secret.ts reads it). */
function trimTlsSecret(o: RawObject): RawObject {
  const data: Record<string, string> = {};
  for (const k of ['tls.crt', 'tls.key', 'ca.crt']) if (o.data?.[k] !== undefined) data[k] = o.data[k]!;
  return { apiVersion: 'v1', kind: 'Secret', metadata: trimMeta(o.metadata), type: o.type ?? 'kubernetes.io/tls', data };
}

function trimConfigMap(o: RawObject): RawObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: trimMeta(o.metadata), data: o.data ?? {} };
}

/** Our own CRDs and the Gateway API kinds are small: only metadata noise is dropped. */
function trimCustom(o: RawObject): RawObject {
  const out: RawObject = { ...o, metadata: trimMeta(o.metadata) };
  return out;
}

export const WATCHED_KINDS: readonly WatchedKind[] = Object.freeze([
  { kind: 'ModelRoute', apiVersion: KTHENA_GROUP_VERSION, plural: 'modelroutes', role: 'resource', enabled: always, trim: trimCustom, writesStatus: true },
  { kind: 'ModelServer', apiVersion: KTHENA_GROUP_VERSION, plural: 'modelservers', role: 'resource', enabled: always, trim: trimCustom, writesStatus: true },
  { kind: 'ExternalModelProvider', apiVersion: KTHENA_GROUP_VERSION, plural: 'externalmodelproviders', role: 'resource', enabled: always, trim: trimCustom, writesStatus: true },
  { kind: 'Pod', apiVersion: 'v1', plural: 'pods', role: 'resource', enabled: always, trim: trimPod },
  ...purposeSecretKinds,
  {
    kind: 'ConfigMap', apiVersion: 'v1', plural: 'configmaps', role: 'routerConfig', enabled: always, trim: trimConfigMap,
    namespace: (c) => c.podNamespace, fieldSelector: () => `metadata.name=${ROUTER_CONFIGMAP}`,
  },
  // Gateway API and Inference Extension, when enabled: validated into the ResourceSet by
  // src/resources/validate.ts as in file mode. The control plane does not route by them
  // yet (the Gateway translator is not wired into it), so nothing reads them there so far.
  { kind: 'GatewayClass', apiVersion: GATEWAY_GROUP_VERSION, plural: 'gatewayclasses', clusterScoped: true, role: 'resource', enabled: gatewayApi, trim: trimCustom },
  { kind: 'Gateway', apiVersion: GATEWAY_GROUP_VERSION, plural: 'gateways', role: 'resource', enabled: gatewayApi, trim: trimCustom },
  { kind: 'HTTPRoute', apiVersion: GATEWAY_GROUP_VERSION, plural: 'httproutes', role: 'resource', enabled: gatewayApi, trim: trimCustom },
  { kind: 'ReferenceGrant', apiVersion: 'gateway.networking.k8s.io/v1beta1', plural: 'referencegrants', role: 'resource', enabled: gatewayApi, trim: trimCustom, optional: true },
  { kind: 'Namespace', apiVersion: 'v1', plural: 'namespaces', clusterScoped: true, role: 'resource', enabled: gatewayApi, trim: (o) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: trimMeta(o.metadata) }) },
  // Listener certificates (certificateRefs): every TLS Secret, by field selector.
  { kind: 'Secret', id: 'Secret/tls', apiVersion: 'v1', plural: 'secrets', role: 'resource', enabled: gatewayApi, fieldSelector: () => 'type=kubernetes.io/tls', trim: trimTlsSecret, rank: 100 },
  { kind: 'Service', apiVersion: 'v1', plural: 'services', role: 'resource', enabled: gatewayApi, trim: (o) => ({ apiVersion: 'v1', kind: 'Service', metadata: trimMeta(o.metadata), spec: o.spec }) },
  // No typed EndpointSlice yet: kept raw for the translator that will read Service endpoints.
  { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices', role: 'raw', enabled: gatewayApi, trim: (o) => ({ ...o, metadata: trimMeta(o.metadata) }) },
  { kind: 'InferencePool', apiVersion: 'inference.networking.k8s.io/v1', plural: 'inferencepools', role: 'resource', enabled: inferenceExtension, trim: trimCustom },
  // InferenceObjective exists in two groups (inference.networking.x-k8s.io/v1alpha2 up to GIE
  // v1.5, llm-d.ai/v1alpha2 after); optional, so a cluster with neither CRD still becomes ready.
  { kind: 'InferenceObjective', apiVersion: 'inference.networking.x-k8s.io/v1alpha2', plural: 'inferenceobjectives', role: 'resource', enabled: inferenceExtension, trim: trimCustom, optional: true },
] satisfies WatchedKind[]);

/** The list/watch path of a kind (every namespace, or the one its entry names). */
export function collectionPath(k: WatchedKind, ctx: KindContext): string {
  const ns = k.namespace?.(ctx);
  return `${apiPrefix(k.apiVersion)}${ns !== undefined && !k.clusterScoped ? `/namespaces/${encodeURIComponent(ns)}` : ''}/${k.plural}`;
}

export function kindId(k: WatchedKind): string {
  return k.id ?? k.kind;
}
