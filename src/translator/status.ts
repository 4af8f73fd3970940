/**
 * Status conditions, computed purely from what the translator saw: the validated resources, every
 * problem reported (provider validation and translation), and the objects as the API server holds
 * them (including versions that failed validation, whose generation the status must name).
 *
 * One computer per kind, in STATUS_COMPUTERS; Gateway, HTTPRoute and InferencePool statuses plug in
 * as more entries. Conditions (documented in docs/kubernetes.md):
 *
 *   ModelRoute            Accepted      True Accepted | False Invalid
 *                         ResolvedRefs  True ResolvedRefs | False BackendNotFound | False Invalid
 *   ModelServer           Accepted      True Accepted | False Invalid
 *                         Ready         True EndpointsAvailable | False NoReadyEndpoints | False Invalid
 *   ExternalModelProvider CredentialsResolved, Ready: Kthena's own types, reasons and messages
 *
 * No clock here: lastTransitionTime is added by the writer, which knows the previous conditions.
 */
import type { GatewayStatuses } from '../ir/gateway.js';
import { KTHENA_CONTROLLER_NAME } from '../resources/gateway.js';
import type { ModelRoute, ModelServer, Problem, ResourceSet } from '../resources/types.js';
import { stableJson } from '../resources/validate.js';
import { providerConfigError, resolveCredential, secretsByKey } from '../resources/external-provider.js';
import { selectPods } from './index.js';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
}

/** An object as the API server holds it (the provider's raw cache entry). */
export interface StatusObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; generation?: number; [k: string]: unknown };
  spec?: unknown;
  data?: Record<string, string>;
  [k: string]: unknown;
}

export interface DesiredStatus {
  apiVersion: string;
  kind: string;
  /** Resource name in API paths (modelroutes). */
  plural: string;
  /** '' for cluster-scoped kinds (GatewayClass). */
  namespace: string;
  name: string;
  /**
   * The status fields this router owns. `conditions` lists anywhere inside (Gateway listeners,
   * route parents) get their lastTransitionTime from the writer.
   */
  status: Record<string, unknown>;
  /**
   * For statuses shared with other controllers: combines ours with the object's current status
   * (see mergeRouteParents in src/status/writer.ts). Default: our fields replace theirs.
   */
  merge?: (current: Record<string, unknown>, ours: Record<string, unknown>) => Record<string, unknown>;
}

export interface StatusInput {
  resources: ResourceSet;
  problems: readonly Problem[];
  /** Current API objects by kind (ModelRoute, ModelServer, ExternalModelProvider, Secret, ...). */
  objects: Readonly<Record<string, readonly StatusObject[]>>;
}

export type StatusComputer = (input: StatusInput) => DesiredStatus[];

const KTHENA = 'networking.serving.volcano.sh/v1alpha1';
/** metav1.Condition.message is limited to 32768 bytes; keep well under it. */
const MAX_MESSAGE = 4096;

function ns(o: StatusObject): string {
  return o.metadata.namespace || 'default';
}

function problemsOf(problems: readonly Problem[], kind: string, namespace: string, name: string): Problem[] {
  return problems.filter((p) => p.kind === kind && p.namespace === namespace && p.name === name);
}

function clip(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 3)}...` : s;
}

function describe(ps: readonly Problem[]): string {
  return ps.map((p) => (p.field !== '' ? `${p.field}: ${p.message}` : p.message)).join('; ');
}

/** Accepted: False while the current version is rejected (the last valid one may still route). */
function accepted(kind: string, gen: number, ps: readonly Problem[]): Condition {
  const rejected = ps.filter((p) => p.severity === 'rejected');
  if (rejected.length > 0) {
    return { type: 'Accepted', status: 'False', reason: 'Invalid', message: clip(describe(ps)), observedGeneration: gen };
  }
  const warnings = ps.filter((p) => p.severity === 'warning');
  const message = warnings.length > 0 ? `${kind} is accepted with warnings: ${describe(warnings)}` : `${kind} is accepted`;
  return { type: 'Accepted', status: 'True', reason: 'Accepted', message: clip(message), observedGeneration: gen };
}

function target(o: StatusObject, kind: string, plural: string, conditions: Condition[]): DesiredStatus {
  return {
    apiVersion: KTHENA, kind, plural, namespace: ns(o), name: o.metadata.name,
    status: { observedGeneration: o.metadata.generation ?? 0, conditions },
  };
}

function generationOf(o: StatusObject): number {
  return o.metadata.generation ?? 0;
}

export const modelRouteStatus: StatusComputer = ({ resources, problems, objects }) => {
  const servers = new Set(resources.modelServers.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  const providers = new Set((objects.ExternalModelProvider ?? []).map((p) => `${ns(p)}/${p.metadata.name}`));
  const valid = new Map(resources.modelRoutes.map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]));
  return (objects.ModelRoute ?? []).map((o) => {
    const gen = generationOf(o);
    const ps = problemsOf(problems, 'ModelRoute', ns(o), o.metadata.name);
    const acc = accepted('ModelRoute', gen, ps);
    const route: ModelRoute | undefined = acc.status === 'True' ? valid.get(`${ns(o)}/${o.metadata.name}`) : undefined;
    let refs: Condition;
    if (route === undefined) {
      refs = { type: 'ResolvedRefs', status: 'False', reason: 'Invalid', message: 'references are not resolved for a ModelRoute that is not accepted', observedGeneration: gen };
    } else {
      const missing: string[] = [];
      for (const rule of route.spec.rules) {
        for (const t of rule.targetModels) {
          if (t.modelServerName !== undefined && t.modelServerName !== '' && !servers.has(`${route.metadata.namespace}/${t.modelServerName}`)) {
            missing.push(`ModelServer ${route.metadata.namespace}/${t.modelServerName} not found`);
          }
          if (t.externalModelProviderName !== undefined && t.externalModelProviderName !== '' && !providers.has(`${route.metadata.namespace}/${t.externalModelProviderName}`)) {
            missing.push(`ExternalModelProvider ${route.metadata.namespace}/${t.externalModelProviderName} not found`);
          }
        }
      }
      const unique = [...new Set(missing)];
      refs = unique.length > 0
        ? { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: clip(unique.join('; ')), observedGeneration: gen }
        : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all targetModels resolved', observedGeneration: gen };
    }
    return target(o, 'ModelRoute', 'modelroutes', [acc, refs]);
  });
};

export const modelServerStatus: StatusComputer = ({ resources, problems, objects }) => {
  const valid = new Map(resources.modelServers.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  return (objects.ModelServer ?? []).map((o) => {
    const gen = generationOf(o);
    const acc = accepted('ModelServer', gen, problemsOf(problems, 'ModelServer', ns(o), o.metadata.name));
    const server: ModelServer | undefined = acc.status === 'True' ? valid.get(`${ns(o)}/${o.metadata.name}`) : undefined;
    let ready: Condition;
    if (server === undefined) {
      ready = { type: 'Ready', status: 'False', reason: 'Invalid', message: 'a ModelServer that is not accepted serves no endpoints', observedGeneration: gen };
    } else {
      const n = selectPods(server, resources.pods).length;
      ready = n > 0
        ? { type: 'Ready', status: 'True', reason: 'EndpointsAvailable', message: `${n} ready pod${n === 1 ? '' : 's'} selected`, observedGeneration: gen }
        : { type: 'Ready', status: 'False', reason: 'NoReadyEndpoints', message: 'no Running and Ready pod with an IP matches spec.workloadSelector', observedGeneration: gen };
    }
    return target(o, 'ModelServer', 'modelservers', [acc, ready]);
  });
};

/**
 * Kthena's ExternalModelProvider conditions (volcano-sh/kthena:pkg/kthena-router/controller/
 * externalmodelprovider_controller.go, reconcileProviderStatus): types, reasons and messages as
 * Kthena writes them. The spec is read as the API server holds it; the credential comes from the
 * labelled Secrets (src/resources/external-provider.ts resolveCredential, which the routing
 * snapshot uses too).
 */
export const externalModelProviderStatus: StatusComputer = ({ resources, objects }) => {
  const secrets = secretsByKey(resources.secrets);
  return (objects.ExternalModelProvider ?? []).map((o) => {
    const gen = generationOf(o);
    const spec = (isObj(o.spec) ? o.spec : {}) as Parameters<typeof providerConfigError>[0] & Parameters<typeof resolveCredential>[0];
    const c = resolveCredential(spec, ns(o), secrets);
    const ok = c.reason === 'CredentialNotRequired' || c.reason === 'CredentialResolved';
    const cred: Condition = { type: 'CredentialsResolved', status: ok ? 'True' : 'False', reason: c.reason, message: c.message, observedGeneration: gen };
    let ready: Condition = ok
      ? { type: 'Ready', status: 'True', reason: 'Ready', message: 'External provider configuration is ready', observedGeneration: gen }
      : { ...cred, type: 'Ready' };
    if (providerConfigError(spec) !== null) {
      ready = { type: 'Ready', status: 'False', reason: 'ConfigurationInvalid', message: 'External provider configuration is invalid', observedGeneration: gen };
    }
    return target(o, 'ExternalModelProvider', 'externalmodelproviders', [cred, ready]);
  });
};

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * For statuses several controllers share (HTTPRoute, InferencePool `parents`): the object's
 * entries of other controllers, then ours. Ours, computed by the translator, replace every entry
 * with our controllerName ([] removes ours).
 */
export function mergeRouteParents(controllerName: string): (current: Record<string, unknown>, ours: Record<string, unknown>) => Record<string, unknown> {
  const refKey = (p: unknown): string => stableJson(isObj(p) ? p.parentRef : p);
  return (current, ours) => {
    const want = new Map(((ours.parents as unknown[] | undefined) ?? []).map((p) => [refKey(p), p]));
    const parents: unknown[] = [];
    // Every entry keeps its position (two controllers must not fight over the order); ours are
    // replaced in place or dropped, new ones of ours go last.
    for (const p of Array.isArray(current.parents) ? current.parents : []) {
      if (!isObj(p) || p.controllerName !== controllerName) parents.push(p);
      else if (want.has(refKey(p))) {
        parents.push(want.get(refKey(p)));
        want.delete(refKey(p));
      }
    }
    parents.push(...want.values());
    return { ...current, ...ours, parents };
  };
}

/**
 * The Gateway translator's statuses (src/translator/gateway) as writer entries: GatewayClass and
 * Gateway (conditions, listeners) owned by us; HTTPRoute and InferencePool `parents` shared with
 * other controllers, so only our entries are replaced. Not called while the control plane does not
 * route by Gateways (a Programmed Gateway that is not served would mislead); wiring it is one
 * line in KubernetesMode.translated.
 */
export function gatewayStatusEntries(s: GatewayStatuses): DesiredStatus[] {
  const GW = 'gateway.networking.k8s.io/v1';
  const shared = mergeRouteParents(KTHENA_CONTROLLER_NAME);
  return [
    ...s.gatewayClasses.map((c) => ({ apiVersion: GW, kind: 'GatewayClass', plural: 'gatewayclasses', namespace: '', name: c.name, status: { ...c.status } })),
    ...s.gateways.map((g) => ({ apiVersion: GW, kind: 'Gateway', plural: 'gateways', namespace: g.namespace, name: g.name, status: { ...g.status } })),
    ...s.httpRoutes.map((r) => ({ apiVersion: GW, kind: 'HTTPRoute', plural: 'httproutes', namespace: r.namespace, name: r.name, status: { ...r.status }, merge: shared })),
    ...s.inferencePools.map((p) => ({
      apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', plural: 'inferencepools', namespace: p.namespace, name: p.name, status: { ...p.status }, merge: shared,
    })),
  ];
}

/** Every status the router writes, by kind. Gateway API kinds add their computers here. */
export const STATUS_COMPUTERS: Readonly<Record<string, StatusComputer>> = Object.freeze({
  ModelRoute: modelRouteStatus,
  ModelServer: modelServerStatus,
  ExternalModelProvider: externalModelProviderStatus,
});

export function computeStatuses(input: StatusInput, computers: Readonly<Record<string, StatusComputer>> = STATUS_COMPUTERS): DesiredStatus[] {
  return Object.values(computers).flatMap((c) => c(input));
}
