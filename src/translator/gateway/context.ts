/**
 * What every phase of the Gateway translator shares, in the manner of Envoy Gateway's translator
 * (envoyproxy/gateway:internal/gatewayapi/translator.go and its per-kind context types): the options,
 * the inputs indexed once, and what the phases gather (problems, statuses, bootstrap objects,
 * endpoints). Each phase's own result is returned by it and handed to the phases that follow, so
 * the data flow reads in index.ts.
 */
import type { GatewayEndpointIR, GatewayStatuses } from '../../ir/gateway.js';
import type {
  Gateway, GatewayClass, InferenceObjective, InferencePool, ReferenceGrant, Secret, Service,
} from '../../resources/gateway.js';
import type { Pod, Problem, ResourceSet } from '../../resources/types.js';
import { cmp, eligible, key, startedAtSec } from './common.js';

export interface GatewayTranslateOptions {
  /** --enable-gateway-api: without it nothing is translated (Kthena: Gateways are not watched). */
  enableGatewayApi: boolean;
  /** --enable-gateway-api-inference-extension: InferencePool backends and statuses. */
  enableInferenceExtension: boolean;
  /** $POD_NAMESPACE (Kthena: else "default"): where the default Gateway lives. */
  podNamespace: string;
  /** --port: the default Gateway's listener port. */
  defaultPort: number;
  /**
   * --inference-pool-picker: 'inprocess' (default, Kthena's way: endpointPickerRef is a placeholder
   * and the route's scheduler profile picks) or 'external' (call the pool's Endpoint Picker).
   */
  inferencePoolPicker?: 'inprocess' | 'external';
}

export interface TranslateContext {
  readonly resources: ResourceSet;
  readonly opts: GatewayTranslateOptions;
  /** $POD_NAMESPACE, "default" when unset. */
  readonly podNamespace: string;
  /** --inference-pool-picker=external: pools with an endpointPickerRef call it. */
  readonly external: boolean;
  readonly grants: readonly ReferenceGrant[];
  readonly secrets: ReadonlyMap<string, Secret>;
  readonly services: ReadonlyMap<string, Service>;
  readonly nsLabels: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** The pods that can take traffic. */
  readonly pods: readonly Pod[];
  /** InferencePools by namespace/name; none without --enable-gateway-api-inference-extension. */
  readonly poolsByKey: ReadonlyMap<string, InferencePool>;
  readonly objectives: readonly InferenceObjective[];

  readonly problems: Problem[];
  readonly statuses: GatewayStatuses;
  /** Kthena's bootstrap objects assumed because the input lacks them (GatewayTranslateResult.bootstrap). */
  readonly bootstrap: (GatewayClass | Gateway)[];
  readonly endpoints: Endpoints;
}

/**
 * pod:port endpoints met while translating. Only backends of routes attached to one of our
 * listeners contribute endpoints: a pod reached only through another controller's Gateway must not
 * cost a scheduler slot or a scrape. So a Service backend's pods are candidates until its route is
 * known to be kept.
 */
export class Endpoints {
  readonly #candidates = new Map<string, GatewayEndpointIR>();
  readonly #used = new Map<string, GatewayEndpointIR>();

  /** The endpoint's key, remembered as a candidate. */
  candidate(p: Pod, port: number): string {
    const k = `${p.metadata.namespace}/${p.metadata.name}:${port}`;
    if (!this.#candidates.has(k)) this.#candidates.set(k, { key: k, namespace: p.metadata.namespace, pod: p.metadata.name, ip: p.status.podIP!, port, slot: -1, gen: 0, startedAtSec: startedAtSec(p) });
    return k;
  }

  /** The endpoint's key, carried in the IR. */
  add(p: Pod, port: number): string {
    const k = this.candidate(p, port);
    this.use(k);
    return k;
  }

  /** A candidate carried in the IR after all. */
  use(k: string): void {
    this.#used.set(k, this.#candidates.get(k)!);
  }

  /** The endpoints the IR carries, sorted by key. */
  sorted(): GatewayEndpointIR[] {
    return [...this.#used.values()].sort((a, b) => cmp(a.key, b.key));
  }
}

export function newContext(resources: ResourceSet, opts: GatewayTranslateOptions): TranslateContext {
  return {
    resources,
    opts,
    podNamespace: opts.podNamespace === '' ? 'default' : opts.podNamespace,
    external: opts.inferencePoolPicker === 'external',
    grants: resources.referenceGrants ?? [],
    secrets: new Map((resources.secrets ?? []).map((s) => [key(s), s])),
    services: new Map((resources.services ?? []).map((s) => [key(s), s])),
    nsLabels: new Map((resources.namespaces ?? []).map((n) => [n.metadata.name, n.metadata.labels])),
    pods: resources.pods.filter(eligible),
    poolsByKey: new Map((opts.enableInferenceExtension ? resources.inferencePools ?? [] : []).map((p) => [key(p), p])),
    objectives: opts.enableInferenceExtension ? resources.inferenceObjectives ?? [] : [],
    problems: [],
    statuses: { gatewayClasses: [], gateways: [], httpRoutes: [], inferencePools: [] },
    bootstrap: [],
    endpoints: new Endpoints(),
  };
}
