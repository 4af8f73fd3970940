/**
 * Manifest validation: one YAML document (a plain object) in, one validated and defaulted typed
 * resource (or the problems that reject it) out. It plays the part the API server and Kthena's
 * validating webhook play on a cluster, in the same order:
 *
 *   1. OpenAPI schema of the CRD (types, required, enums, bounds, patterns, unknown fields rejected
 *      as strict server-side field validation does), with nulls pruned and CRD defaults applied
 *      first, as the API server does;
 *   2. the CRD's CEL rules (same messages);
 *   3. Kthena's webhook rules (same messages), only for objects that passed 1 and 2, because on a
 *      cluster the webhook never sees an object the API server already refused.
 *
 * This file is the entry points; the parts live in validate/: the schema walker (schema.ts),
 * Kubernetes names and labels (names.ts), Go-regex checks (regex.ts), ObjectMeta (meta.ts), the path
 * every kind goes through (kind.ts), one file per kind under kinds/, and the list of kinds
 * (registry.ts, where a new kind is registered).
 *
 * Fields that the Gateway API and Inference Extension CRDs define but the router does not interpret
 * (Gateway `infrastructure`, rule `retry`, the RequestMirror/CORS/ExtensionRef filter bodies, ...)
 * are accepted and dropped, so a manifest written for another implementation still loads; the
 * translator reports what it cannot honour as status conditions. Core kinds (Pod, Service,
 * Namespace, Secret) are read, never served: only the fields the router reads are checked.
 */
import type { AnyResource, ModelRoute, ModelServer, ObjectMeta, Pod, Problem, ResourceSet } from './types.js';
import type { ExternalModelProvider } from './external-provider.js';
import type {
  Gateway, GatewayClass, GatewayResource, HTTPRoute, InferenceObjective, InferencePool, Namespace, ReferenceGrant, Secret, Service,
} from './gateway.js';
import { type FieldError, type Issue, show, typeName } from './validate/schema.js';
import { type AdmissionRules, type KindContext, type KindRules, namespaceOf, parseKind, problemFor } from './validate/kind.js';
import { ADMISSION_KINDS, GATEWAY_KINDS, KTHENA_KINDS } from './validate/registry.js';
import { cmp, isPlainObject } from './validate/util.js';

export { KTHENA_API_VERSION } from './validate/kind.js';
export {
  type FieldError, type Issue, type Schema, ANY, arr, fileIssue, int, map, obj, pattern, show, str, typeName, walk,
} from './validate/schema.js';
export { DNS1123_LABEL, DNS1123_SUBDOMAIN, labelErrors, subdomainErrors } from './validate/names.js';
export { regexError } from './validate/regex.js';
export { type MetaRaw, finishMeta, normalizeTimestamp, parseMetadata } from './validate/meta.js';
export { deepFreeze, isPlainObject, stableJson } from './validate/util.js';
export { modelRouteSpecSchema, modelRouteWebhook } from './validate/kinds/model-route.js';
export { modelServerSpecSchema, modelServerWebhook } from './validate/kinds/model-server.js';
export { externalModelProviderSpecSchema, externalModelProviderWebhook } from './validate/kinds/external-model-provider.js';

export interface ParseContext extends KindContext {
  previous?: AnyResource;
}

export interface ParseResult {
  resource?: AnyResource;
  problems: Problem[];
}

export interface GatewayParseContext extends KindContext {
  previous?: GatewayResource;
}

export interface GatewayParseResult {
  resource?: GatewayResource;
  problems: Problem[];
}

const rulesOf = <R extends AnyResource | GatewayResource>(kinds: readonly KindRules<R>[], kind: unknown, apiVersion: unknown): KindRules<R> | undefined =>
  kinds.find((k) => k.kind === kind && k.apiVersions.includes(apiVersion as string));

/** kind/namespace/name: an object's identity, whatever file it is written in. */
export function resourceIdentity(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function identityIn<R extends AnyResource | GatewayResource>(kinds: readonly KindRules<R>[], raw: unknown): { kind: R['kind']; namespace: string; name: string; key: string } | null {
  if (!isPlainObject(raw)) return null;
  const rules = rulesOf(kinds, raw.kind, raw.apiVersion);
  if (rules === undefined) return null;
  const meta = raw.metadata;
  if (!isPlainObject(meta) || typeof meta.name !== 'string' || meta.name === '') return null;
  const namespace = namespaceOf(rules, meta);
  return { kind: rules.kind, namespace, name: meta.name, key: resourceIdentity(rules.kind, namespace, meta.name) };
}

// ---------------------------------------------------------------------------------------------
// Kthena's kinds and Pods
// ---------------------------------------------------------------------------------------------

/**
 * The identity of a raw document if it is a kind this router serves and names itself, else null.
 * Lets a provider find the previous version and duplicates before validating.
 */
export function identityOf(raw: unknown): { kind: AnyResource['kind']; namespace: string; name: string; key: string } | null {
  return identityIn(KTHENA_KINDS, raw);
}

/** Build a ResourceSet, each list sorted by namespace/name (code-unit order, locale independent). */
export function toResourceSet(resources: Iterable<AnyResource>): ResourceSet {
  const modelRoutes: ModelRoute[] = [];
  const modelServers: ModelServer[] = [];
  const pods: Pod[] = [];
  const providers: ExternalModelProvider[] = [];
  for (const r of resources) {
    if (r.kind === 'ModelRoute') modelRoutes.push(r);
    else if (r.kind === 'ModelServer') modelServers.push(r);
    else if (r.kind === 'ExternalModelProvider') providers.push(r);
    else pods.push(r);
  }
  const byKey = (a: AnyResource, b: AnyResource): number => cmp(a.metadata.namespace, b.metadata.namespace) || cmp(a.metadata.name, b.metadata.name);
  const set: ResourceSet = { modelRoutes: modelRoutes.sort(byKey), modelServers: modelServers.sort(byKey), pods: pods.sort(byKey) };
  // Only when there are any, so that sets without providers keep their shape.
  if (providers.length > 0) set.externalModelProviders = providers.sort(byKey);
  return set;
}

/**
 * One YAML document in, a validated, defaulted, deep-frozen typed resource (or problems) out.
 * null/undefined (an empty document in a YAML stream) yields nothing and no problem. A kind this
 * router does not serve is a warning, not a rejection.
 */
export function parseManifestObject(raw: unknown, ctx: ParseContext): ParseResult {
  if (raw === null || raw === undefined) return { problems: [] };
  const ident = {
    kind: isPlainObject(raw) && typeof raw.kind === 'string' ? raw.kind : '',
    namespace: '',
    name: '',
  };
  if (isPlainObject(raw) && isPlainObject(raw.metadata)) {
    if (typeof raw.metadata.name === 'string') ident.name = raw.metadata.name;
    ident.namespace = namespaceOf(undefined, raw.metadata);
  }
  const problem = (field: string, message: string, severity: Problem['severity'] = 'rejected'): Problem =>
    problemFor(ident, ctx.file, field, message, severity);

  if (!isPlainObject(raw)) return { problems: [problem('', `a manifest must be an object, got ${typeName(raw)}`)] };

  const { apiVersion, kind } = raw;
  const head: Issue[] = [];
  if (apiVersion === undefined || apiVersion === null) head.push({ field: 'apiVersion', message: 'Required value' });
  else if (typeof apiVersion !== 'string') head.push({ field: 'apiVersion', message: `Invalid value: ${show(typeName(apiVersion))}: must be of type string` });
  if (kind === undefined || kind === null) head.push({ field: 'kind', message: 'Required value' });
  else if (typeof kind !== 'string') head.push({ field: 'kind', message: `Invalid value: ${show(typeName(kind))}: must be of type string` });
  if (head.length > 0) return { problems: head.map((i) => problem(i.field, i.message)) };

  const rules = rulesOf(KTHENA_KINDS, kind, apiVersion);
  if (rules === undefined) {
    const known = KTHENA_KINDS.some((k) => k.kind === kind);
    return {
      problems: [known
        ? problem('apiVersion', `kind ${kind as string} in apiVersion ${apiVersion as string} is not served by this router; ignored`, 'warning')
        : problem('kind', `kind ${kind as string} is not served by this router; ignored`, 'warning')],
    };
  }
  return parseKind(rules, raw, ctx);
}

// ---------------------------------------------------------------------------------------------
// Gateway API (gateway.networking.k8s.io v1/v1beta1: GatewayClass, Gateway, HTTPRoute,
// ReferenceGrant), Inference Extension (InferencePool inference.networking.k8s.io/v1,
// InferenceObjective under inference.networking.x-k8s.io/v1alpha2 and llm-d.ai/v1alpha2) and core
// (v1 Service, Namespace, Secret) kinds
// ---------------------------------------------------------------------------------------------

/** True when (apiVersion, kind) is one of the kinds parseGatewayObject parses. */
export function isGatewayManifest(raw: unknown): boolean {
  if (!isPlainObject(raw) || typeof raw.kind !== 'string' || typeof raw.apiVersion !== 'string') return false;
  return rulesOf(GATEWAY_KINDS, raw.kind, raw.apiVersion) !== undefined;
}

/** Identity (kind/namespace/name) of a raw document parseGatewayObject parses, else null. */
export function gatewayIdentityOf(raw: unknown): { kind: GatewayResource['kind']; namespace: string; name: string; key: string } | null {
  return identityIn(GATEWAY_KINDS, raw);
}

/** toResourceSet for every kind a provider emits, each list sorted by namespace/name. */
export function toFullResourceSet(resources: Iterable<AnyResource | GatewayResource>): ResourceSet {
  const kthena: AnyResource[] = [];
  const lists: Record<string, GatewayResource[]> = {};
  for (const r of resources) {
    if (r.kind === 'ModelRoute' || r.kind === 'ModelServer' || r.kind === 'Pod' || r.kind === 'ExternalModelProvider') kthena.push(r);
    else (lists[r.kind] ??= []).push(r);
  }
  const byKey = (a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number =>
    cmp(a.metadata.namespace, b.metadata.namespace) || cmp(a.metadata.name, b.metadata.name);
  const sorted = <T extends GatewayResource>(kind: T['kind']): T[] => ((lists[kind] ?? []) as T[]).sort(byKey);
  return {
    ...toResourceSet(kthena),
    gatewayClasses: sorted<GatewayClass>('GatewayClass'),
    gateways: sorted<Gateway>('Gateway'),
    httpRoutes: sorted<HTTPRoute>('HTTPRoute'),
    referenceGrants: sorted<ReferenceGrant>('ReferenceGrant'),
    services: sorted<Service>('Service'),
    namespaces: sorted<Namespace>('Namespace'),
    secrets: sorted<Secret>('Secret'),
    inferencePools: sorted<InferencePool>('InferencePool'),
    inferenceObjectives: sorted<InferenceObjective>('InferenceObjective'),
  };
}

/**
 * One YAML document of a kind isGatewayManifest accepts in, a validated, defaulted, deep-frozen
 * typed resource (or the problems that reject it) out; any other document yields nothing.
 */
export function parseGatewayObject(raw: unknown, ctx: GatewayParseContext): GatewayParseResult {
  if (!isPlainObject(raw)) return { problems: [] };
  const rules = rulesOf(GATEWAY_KINDS, raw.kind, raw.apiVersion);
  return rules === undefined ? { problems: [] } : parseKind(rules, raw, ctx);
}

// ---------------------------------------------------------------------------------------------
// Admission (the validating webhook)
// ---------------------------------------------------------------------------------------------

export type AdmissionKind = keyof typeof ADMISSION_KINDS;

/**
 * What the validating webhook denies an object for: the CRD's OpenAPI and CEL checks first (on a
 * cluster the API server has run them before calling the webhook, so they fire only behind an
 * older or edited CRD), then Kthena's webhook rules. Empty: allowed. The spec is validated as the
 * API server stores it (nulls pruned, defaults applied); metadata is the API server's business.
 */
export function admissionErrors(kind: AdmissionKind, raw: unknown): FieldError[] {
  const spec = isPlainObject(raw) ? raw.spec : undefined;
  if (spec === undefined || spec === null) return [{ field: 'spec', type: 'Schema', detail: 'Required value' }];
  const issues: Issue[] = [];
  const rules: AdmissionRules = ADMISSION_KINDS[kind];
  const errs = rules.admit(spec, issues);
  if (errs === undefined || issues.length > 0) return issues.map((i) => ({ field: i.field, type: 'Schema', detail: i.message }));
  return errs;
}
