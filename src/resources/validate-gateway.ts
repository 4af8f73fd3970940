/**
 * Validation of the Gateway API (gateway.networking.k8s.io v1/v1beta1: GatewayClass, Gateway,
 * HTTPRoute, ReferenceGrant), Inference Extension (InferencePool inference.networking.k8s.io/v1,
 * InferenceObjective under inference.networking.x-k8s.io/v1alpha2 and llm-d.ai/v1alpha2) and core
 * (v1 Service, Namespace, Secret) manifests. Same order and problem style as validate.ts: the CRD's
 * OpenAPI schema with nulls pruned and defaults applied, then the CEL rules that matter to a router
 * (same messages as the CRDs in deploy/ and reference/crds/), all gathered before rejecting.
 *
 * Fields that the CRDs define but the router does not interpret (Gateway `infrastructure`, rule
 * `retry`, the RequestMirror/CORS/ExtensionRef filter bodies, ...) are accepted and dropped, so a
 * manifest written for another implementation still loads; the translator reports what it cannot
 * honour as status conditions. Core kinds (Service, Namespace, Secret) are read, never served: only
 * the fields the router reads are checked and everything else is ignored.
 */
import { secretPurposes } from './secrets.js';
import type { ExternalModelProvider } from './external-provider.js';
import type { AnyResource, ObjectMeta, Problem, ResourceSet } from './types.js';
import { gepDurationMs } from '../util/duration.js';
import {
  ANY, DNS1123_LABEL, DNS1123_SUBDOMAIN, type Issue, type Schema, arr, deepFreeze, finishMeta, int, isPlainObject, labelErrors,
  map, obj, parseMetadata, regexError, show, str, toResourceSet, typeName, walk,
} from './validate.js';
import {
  GATEWAY_GROUP, INFERENCE_GROUP, INFERENCE_X_GROUP, LLMD_GROUP, type Gateway, type GatewayClass, type GatewayResource, type HTTPRoute,
  type HTTPRouteFilter, type HTTPRouteRule, type InferenceObjective, type InferencePool, type LabelSelector, type Namespace,
  type ReferenceGrant, type Secret, type Service,
} from './gateway.js';

export interface GatewayParseContext {
  file: string;
  now: () => string;
  /** The last valid version of the same kind/namespace/name. */
  previous?: GatewayResource;
  /** metadata.generation as the API server keeps it (Kubernetes mode); see ParseContext. */
  generation?: number;
}

export interface GatewayParseResult {
  resource?: GatewayResource;
  problems: Problem[];
}

const SERVED: Readonly<Record<string, readonly string[]>> = {
  GatewayClass: [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`],
  Gateway: [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`],
  HTTPRoute: [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`],
  ReferenceGrant: [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`],
  InferencePool: [`${INFERENCE_GROUP}/v1`],
  InferenceObjective: [`${INFERENCE_X_GROUP}/v1alpha2`, `${LLMD_GROUP}/v1alpha2`],
  Service: ['v1'],
  Namespace: ['v1'],
  Secret: ['v1'],
};
const CLUSTER_SCOPED = new Set(['GatewayClass', 'Namespace']);

/** True when (apiVersion, kind) is one of the kinds this module parses. */
export function isGatewayManifest(raw: unknown): boolean {
  if (!isPlainObject(raw) || typeof raw.kind !== 'string' || typeof raw.apiVersion !== 'string') return false;
  return SERVED[raw.kind]?.includes(raw.apiVersion) ?? false;
}

/** Identity (kind/namespace/name) of a raw document this module parses, else null. */
export function gatewayIdentityOf(raw: unknown): { kind: GatewayResource['kind']; namespace: string; name: string; key: string } | null {
  if (!isGatewayManifest(raw)) return null;
  const r = raw as Record<string, unknown>;
  const meta = r.metadata;
  if (!isPlainObject(meta) || typeof meta.name !== 'string' || meta.name === '') return null;
  const kind = r.kind as GatewayResource['kind'];
  const namespace = CLUSTER_SCOPED.has(kind) ? '' : (typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default');
  return { kind, namespace, name: meta.name, key: `${kind}/${namespace}/${meta.name}` };
}

/** toResourceSet for every kind a provider emits, each list sorted by namespace/name. */
export function toFullResourceSet(resources: Iterable<AnyResource | GatewayResource | ExternalModelProvider>): ResourceSet {
  const kthena: AnyResource[] = [];
  const lists: Record<string, GatewayResource[]> = {};
  const providers: ExternalModelProvider[] = [];
  for (const r of resources) {
    if (r.kind === 'ModelRoute' || r.kind === 'ModelServer' || r.kind === 'Pod') kthena.push(r);
    else if (r.kind === 'ExternalModelProvider') providers.push(r);
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
    externalModelProviders: providers.sort(byKey),
  };
}

// ---------------------------------------------------------------------------------------------
// Schemas (Gateway API v1.6.1 and GIE v1 CRDs; reference/crds/)
// ---------------------------------------------------------------------------------------------

const HOSTNAME = '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const GROUP = `^$|${DNS1123_SUBDOMAIN}`;
const KIND = '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$';
const CONTROLLER = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&\'()*+,;=:]+$';
const HEADER_NAME = '^[A-Za-z0-9!#$%&\'*+\\-.^_\\x60|~]+$';
const PROTOCOL = '^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9]+$';
const DURATION = '^([0-9]{1,5}(h|m|s|ms)){1,4}$';

const group = (def?: string): Schema => str({ maxLength: 253, pattern: GROUP, ...(def !== undefined ? { default: def } : {}) });
const kind = (def?: string): Schema => str({ minLength: 1, maxLength: 63, pattern: KIND, ...(def !== undefined ? { default: def } : {}) });
const objectName = str({ minLength: 1, maxLength: 253 });
const namespaceName = str({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });
const sectionName = str({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });
const port = int({ minimum: 1, maximum: 65535 });
const hostname = str({ minLength: 1, maxLength: 253, pattern: HOSTNAME });
const preciseHostname = str({ minLength: 1, maxLength: 253, pattern: `^${DNS1123_SUBDOMAIN.slice(1)}` });

const labelSelectorSchema = obj({
  matchLabels: map(str()),
  matchExpressions: arr(obj({
    key: str(),
    operator: str({ enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
    values: arr(str()),
  }, ['key', 'operator'])),
});

const gatewayClassSpecSchema = obj({
  controllerName: str({ minLength: 1, maxLength: 253, pattern: CONTROLLER }),
  description: str({ maxLength: 64 }),
  parametersRef: ANY,
}, ['controllerName']);

const listenerSchema = obj({
  name: sectionName,
  hostname,
  port,
  protocol: str({ minLength: 1, maxLength: 255, pattern: PROTOCOL }),
  tls: obj({
    mode: str({ enum: ['Terminate', 'Passthrough'], default: 'Terminate' }),
    certificateRefs: arr(obj({
      group: group(''), kind: kind('Secret'), name: objectName, namespace: namespaceName,
    }, ['name']), { maxItems: 64 }),
    options: map(str()),
    frontendValidation: ANY,
  }),
  allowedRoutes: obj({
    namespaces: obj({
      from: str({ enum: ['All', 'Selector', 'Same', 'None'], default: 'Same' }),
      selector: labelSelectorSchema,
    }),
    kinds: arr(obj({ group: group(GATEWAY_GROUP), kind: kind() }, ['kind']), { maxItems: 8 }),
  }),
}, ['name', 'port', 'protocol']);

const gatewaySpecSchema = obj({
  gatewayClassName: str({ minLength: 1, maxLength: 253 }),
  listeners: arr(listenerSchema, { minItems: 1, maxItems: 64 }),
  addresses: arr(obj({ type: str({ default: 'IPAddress' }), value: str({ minLength: 1, maxLength: 253 }) }), { maxItems: 16 }),
  infrastructure: ANY,
  allowedListeners: ANY,
  tls: ANY,
  defaultScope: ANY,
  backendTLS: ANY,
}, ['gatewayClassName', 'listeners']);

const parentRefSchema = obj({
  group: group(GATEWAY_GROUP), kind: kind('Gateway'), namespace: namespaceName, name: objectName, sectionName, port,
}, ['name']);

const valueMatchSchema = obj({
  type: str({ enum: ['Exact', 'RegularExpression'], default: 'Exact' }),
  name: str({ minLength: 1, maxLength: 256, pattern: HEADER_NAME }),
  value: str({ minLength: 1, maxLength: 4096 }),
}, ['name', 'value']);

const headerModifierSchema = obj({
  set: arr(obj({ name: str({ minLength: 1, maxLength: 256, pattern: HEADER_NAME }), value: str({ minLength: 1, maxLength: 4096 }) }, ['name', 'value']), { maxItems: 16 }),
  add: arr(obj({ name: str({ minLength: 1, maxLength: 256, pattern: HEADER_NAME }), value: str({ minLength: 1, maxLength: 4096 }) }, ['name', 'value']), { maxItems: 16 }),
  remove: arr(str(), { maxItems: 16 }),
});

const pathModifierSchema = obj({
  type: str({ enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }),
  replaceFullPath: str({ maxLength: 1024 }),
  replacePrefixMatch: str({ maxLength: 1024 }),
}, ['type']);

const filterSchema = obj({
  type: str({ enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef', 'CORS', 'ExternalAuth'] }),
  requestHeaderModifier: headerModifierSchema,
  responseHeaderModifier: headerModifierSchema,
  requestRedirect: obj({
    scheme: str({ enum: ['http', 'https'] }),
    hostname: preciseHostname,
    path: pathModifierSchema,
    port,
    statusCode: int({ default: 302 }),
  }),
  urlRewrite: obj({ hostname: preciseHostname, path: pathModifierSchema }),
  requestMirror: ANY,
  extensionRef: ANY,
  cors: ANY,
  externalAuth: ANY,
}, ['type']);

const backendRefSchema = obj({
  group: group(''), kind: kind('Service'), name: objectName, namespace: namespaceName, port,
  weight: int({ minimum: 0, maximum: 1000000, default: 1 }),
  filters: arr(filterSchema, { maxItems: 16 }),
}, ['name']);

const DEFAULT_MATCH = { path: { type: 'PathPrefix', value: '/' } };

const matchSchema = obj({
  path: obj({
    type: str({ enum: ['Exact', 'PathPrefix', 'RegularExpression'], default: 'PathPrefix' }),
    value: str({ maxLength: 1024, default: '/' }),
  }),
  headers: arr(valueMatchSchema, { maxItems: 16 }),
  queryParams: arr(valueMatchSchema, { maxItems: 16 }),
  method: str({ enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] }),
});

const httpRouteSpecSchema = obj({
  parentRefs: arr(parentRefSchema, { maxItems: 32 }),
  hostnames: arr(hostname, { maxItems: 16 }),
  rules: arr(obj({
    name: sectionName,
    matches: arr(matchSchema, { maxItems: 64 }),
    filters: arr(filterSchema, { maxItems: 16 }),
    backendRefs: arr(backendRefSchema, { maxItems: 16 }),
    timeouts: obj({ request: str({ pattern: DURATION }), backendRequest: str({ pattern: DURATION }) }),
    retry: ANY,
    sessionPersistence: ANY,
  }), { minItems: 1, maxItems: 16 }),
  useDefaultGateways: ANY,
});

const referenceGrantSpecSchema = obj({
  from: arr(obj({ group: str({ maxLength: 253, pattern: GROUP }), kind: kind(), namespace: namespaceName }, ['group', 'kind', 'namespace']), { minItems: 1, maxItems: 16 }),
  to: arr(obj({ group: str({ maxLength: 253, pattern: GROUP }), kind: kind(), name: objectName }, ['group', 'kind']), { minItems: 1, maxItems: 16 }),
}, ['from', 'to']);

const serviceSpecSchema = obj({
  type: str({ enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'], default: 'ClusterIP' }),
  selector: map(str()),
  ports: arr(obj({
    name: str(),
    port,
    targetPort: ANY,
    protocol: str({ enum: ['TCP', 'UDP', 'SCTP'], default: 'TCP' }),
    appProtocol: str(),
  }, ['port'], { ignoreUnknown: true })),
}, [], { ignoreUnknown: true });

const inferencePoolSpecSchema = obj({
  selector: obj({ matchLabels: map(str({ maxLength: 63 })) }, ['matchLabels']),
  targetPorts: arr(obj({ number: port }, ['number']), { minItems: 1, maxItems: 8 }),
  appProtocol: str({ enum: ['http', 'kubernetes.io/h2c'], default: 'http' }),
  endpointPickerRef: obj({
    group: group(''),
    kind: kind('Service'),
    name: objectName,
    port: obj({ number: port }, ['number']),
    failureMode: str({ enum: ['FailOpen', 'FailClose'], default: 'FailClose' }),
  }, ['name']),
}, ['selector', 'targetPorts']);

const poolRefSchema = obj({ group: group(INFERENCE_GROUP), kind: kind('InferencePool'), name: objectName }, ['name']);

const inferenceObjectiveSpecSchema = obj({
  priority: int(),
  poolRef: poolRefSchema,
  poolRefs: arr(poolRefSchema, { minItems: 1 }),
  poolSelector: labelSelectorSchema,
});

// ---------------------------------------------------------------------------------------------
// parseGatewayObject
// ---------------------------------------------------------------------------------------------

/**
 * One YAML document of a kind isGatewayManifest accepts in, a validated, defaulted, deep-frozen
 * typed resource (or the problems that reject it) out.
 */
export function parseGatewayObject(raw: unknown, ctx: GatewayParseContext): GatewayParseResult {
  if (!isGatewayManifest(raw)) return { problems: [] };
  const r = raw as Record<string, unknown>;
  const k = r.kind as GatewayResource['kind'];
  const apiVersion = r.apiVersion as string;
  const ident = { kind: k, namespace: '', name: '' };
  if (isPlainObject(r.metadata)) {
    if (typeof r.metadata.name === 'string') ident.name = r.metadata.name;
    ident.namespace = CLUSTER_SCOPED.has(k) ? '' : (typeof r.metadata.namespace === 'string' && r.metadata.namespace !== '' ? r.metadata.namespace : 'default');
  }
  const rejected = (issues: Issue[]): GatewayParseResult => ({
    problems: issues.map((i) => ({ kind: k, namespace: ident.namespace, name: ident.name, file: ctx.file, field: i.field, message: i.message, severity: 'rejected' })),
  });

  const issues: Issue[] = [];
  const topLevel = k === 'Secret' ? SECRET_KEYS : k === 'Service' || k === 'Namespace' ? null : CRD_KEYS;
  if (topLevel !== null) {
    for (const key of Object.keys(r)) if (!topLevel.has(key)) issues.push({ field: key, message: `unknown field ${JSON.stringify(key)}` });
  }
  const m = parseMetadata(r.metadata, issues);
  if (m !== undefined && CLUSTER_SCOPED.has(k)) m.namespace = '';
  const meta = (spec: unknown): ObjectMeta => finishMeta(m!, k, spec, ctx);
  const done = <T extends GatewayResource>(res: T): GatewayParseResult => ({ resource: deepFreeze(res), problems: [] });

  if (k === 'Namespace') {
    if (issues.length > 0 || m === undefined) return rejected(issues);
    return done<Namespace>({ apiVersion: 'v1', kind: 'Namespace', metadata: meta(m.labels) });
  }
  if (k === 'Secret') {
    const secret = secretOf(r, issues, m?.labels);
    if (issues.length > 0 || m === undefined || secret === undefined) return rejected(issues);
    // The data counts as the spec, so that a rotated credential is a new generation.
    return done<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: meta({ type: secret.type, tls: secret.tls, data: secret.data }), ...secret });
  }

  const needsSpec = k !== 'Service';
  if (needsSpec && (r.spec === undefined || r.spec === null)) {
    issues.push({ field: 'spec', message: 'Required value' });
    return rejected(issues);
  }
  const rawSpec = r.spec ?? {};
  switch (k) {
    case 'GatewayClass': {
      const spec = walk(rawSpec, gatewayClassSpecSchema, 'spec', issues) as { controllerName: string } | undefined;
      const prev = ctx.previous?.kind === 'GatewayClass' ? ctx.previous : undefined;
      if (spec !== undefined && prev !== undefined && prev.spec.controllerName !== spec.controllerName) {
        issues.push({ field: 'spec.controllerName', message: 'Value is immutable' });
      }
      if (issues.length > 0 || m === undefined || spec === undefined) return rejected(issues);
      const typed = { controllerName: spec.controllerName };
      return done<GatewayClass>({ apiVersion, kind: 'GatewayClass', metadata: meta(typed), spec: typed });
    }
    case 'Gateway': {
      const spec = walk(rawSpec, gatewaySpecSchema, 'spec', issues) as Gateway['spec'] | undefined;
      if (spec !== undefined) gatewayCel(spec, issues);
      if (issues.length > 0 || m === undefined || spec === undefined) return rejected(issues);
      const typed: Gateway['spec'] = {
        gatewayClassName: spec.gatewayClassName,
        listeners: spec.listeners.map((l) => {
          const out: Gateway['spec']['listeners'][number] = {
            name: l.name, port: l.port, protocol: l.protocol,
            allowedRoutes: {
              namespaces: { from: l.allowedRoutes?.namespaces?.from ?? 'Same' },
              kinds: (l.allowedRoutes?.kinds ?? []).map((x) => ({ group: x.group, kind: x.kind })),
            },
          };
          if (l.hostname !== undefined) out.hostname = l.hostname;
          const sel = l.allowedRoutes?.namespaces?.selector;
          if (sel !== undefined) out.allowedRoutes.namespaces.selector = selectorOf(sel);
          if (l.tls !== undefined) out.tls = { mode: l.tls.mode, certificateRefs: l.tls.certificateRefs ?? [] };
          return out;
        }),
        addresses: spec.addresses ?? [],
      };
      return done<Gateway>({ apiVersion, kind: 'Gateway', metadata: meta(typed), spec: typed });
    }
    case 'HTTPRoute': {
      const spec = walk(rawSpec, httpRouteSpecSchema, 'spec', issues) as RawRouteSpec | undefined;
      const typed = spec !== undefined ? httpRouteTyped(spec, issues) : undefined;
      if (issues.length > 0 || m === undefined || typed === undefined) return rejected(issues);
      return done<HTTPRoute>({ apiVersion, kind: 'HTTPRoute', metadata: meta(typed), spec: typed });
    }
    case 'ReferenceGrant': {
      const spec = walk(rawSpec, referenceGrantSpecSchema, 'spec', issues) as ReferenceGrant['spec'] | undefined;
      if (issues.length > 0 || m === undefined || spec === undefined) return rejected(issues);
      return done<ReferenceGrant>({ apiVersion, kind: 'ReferenceGrant', metadata: meta(spec), spec });
    }
    case 'Service': {
      const spec = walk(rawSpec, serviceSpecSchema, 'spec', issues) as RawServiceSpec | undefined;
      const typed = spec !== undefined ? serviceTyped(spec, issues) : undefined;
      if (issues.length > 0 || m === undefined || typed === undefined) return rejected(issues);
      return done<Service>({ apiVersion: 'v1', kind: 'Service', metadata: meta(typed), spec: typed });
    }
    case 'InferencePool': {
      const spec = walk(rawSpec, inferencePoolSpecSchema, 'spec', issues) as InferencePool['spec'] | undefined;
      if (spec !== undefined) inferencePoolCel(spec, issues);
      if (issues.length > 0 || m === undefined || spec === undefined) return rejected(issues);
      const typed: InferencePool['spec'] = {
        selector: { matchLabels: spec.selector.matchLabels },
        targetPorts: spec.targetPorts,
        appProtocol: spec.appProtocol,
      };
      if (spec.endpointPickerRef !== undefined) typed.endpointPickerRef = spec.endpointPickerRef;
      return done<InferencePool>({ apiVersion, kind: 'InferencePool', metadata: meta(typed), spec: typed });
    }
    case 'InferenceObjective': {
      const spec = walk(rawSpec, inferenceObjectiveSpecSchema, 'spec', issues) as RawObjectiveSpec | undefined;
      if (spec !== undefined && apiVersion.startsWith(`${INFERENCE_X_GROUP}/`) && spec.poolRef === undefined) {
        // GIE v1.5 required poolRef; llm-d-router made it optional beside poolRefs/poolSelector.
        issues.push({ field: 'spec.poolRef', message: 'Required value' });
      }
      if (spec !== undefined && spec.poolRef === undefined && spec.poolRefs === undefined && spec.poolSelector === undefined) {
        issues.push({ field: 'spec', message: 'one of poolRef, poolRefs or poolSelector must be set' });
      }
      if (issues.length > 0 || m === undefined || spec === undefined) return rejected(issues);
      const typed: InferenceObjective['spec'] = {};
      if (spec.priority !== undefined) typed.priority = spec.priority;
      if (spec.poolRef !== undefined) typed.poolRef = spec.poolRef;
      if (spec.poolRefs !== undefined) typed.poolRefs = spec.poolRefs;
      if (spec.poolSelector !== undefined) typed.poolSelector = selectorOf(spec.poolSelector);
      return done<InferenceObjective>({ apiVersion, kind: 'InferenceObjective', metadata: meta(typed), spec: typed });
    }
  }
  return { problems: [] };
}

const CRD_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
const SECRET_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'type', 'data', 'stringData', 'immutable']);

function selectorOf(s: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: LabelSelector['matchExpressions'][number]['operator']; values?: string[] }[] }): LabelSelector {
  return {
    matchLabels: s.matchLabels ?? {},
    matchExpressions: (s.matchExpressions ?? []).map((e) => ({ key: e.key, operator: e.operator, values: e.values ?? [] })),
  };
}

function gatewayCel(spec: Gateway['spec'], issues: Issue[]): void {
  const ls = spec.listeners;
  const f = 'spec.listeners';
  if (ls.some((l) => ['HTTP', 'TCP', 'UDP'].includes(l.protocol) && l.tls !== undefined)) {
    issues.push({ field: f, message: "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']" });
  }
  if (ls.some((l) => l.protocol === 'HTTPS' && l.tls !== undefined && l.tls.mode !== 'Terminate')) {
    issues.push({ field: f, message: 'tls mode must be Terminate for protocol HTTPS' });
  }
  if (ls.some((l) => l.protocol === 'TLS' && l.tls === undefined)) issues.push({ field: f, message: 'tls mode must be set for protocol TLS' });
  if (ls.some((l) => ['TCP', 'UDP'].includes(l.protocol) && l.hostname !== undefined)) {
    issues.push({ field: f, message: "hostname must not be specified for protocols ['TCP', 'UDP']" });
  }
  if (ls.some((a) => ls.filter((b) => a.name === b.name).length !== 1)) issues.push({ field: f, message: 'Listener name must be unique within the Gateway' });
  if (ls.some((a) => ls.filter((b) => a.port === b.port && a.protocol === b.protocol && a.hostname === b.hostname).length !== 1)) {
    issues.push({ field: f, message: 'Combination of port, protocol and hostname must be unique for each listener' });
  }
  ls.forEach((l, i) => {
    if (l.tls !== undefined && l.tls.mode === 'Terminate' && (l.tls.certificateRefs ?? []).length === 0 && Object.keys((l.tls as { options?: object }).options ?? {}).length === 0) {
      issues.push({ field: `${f}[${i}].tls`, message: 'certificateRefs or options must be specified when mode is Terminate' });
    }
    const sel = l.allowedRoutes?.namespaces?.selector;
    if (sel !== undefined) for (const e of selectorErrors(sel as RawSelector)) issues.push({ field: `${f}[${i}].allowedRoutes.namespaces.selector`, message: e });
  });
}

type RawSelector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };

/** metav1.LabelSelector validation (the parts a controller relies on to evaluate it). */
function selectorErrors(s: RawSelector): string[] {
  const errs = labelErrors(s.matchLabels ?? {});
  for (const e of s.matchExpressions ?? []) {
    const n = (e.values ?? []).length;
    if ((e.operator === 'In' || e.operator === 'NotIn') && n === 0) errs.push(`values: Required value: must be specified when \`operator\` is 'In' or 'NotIn'`);
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && n > 0) errs.push(`values: Forbidden: may not be specified when \`operator\` is 'Exists' or 'DoesNotExist'`);
  }
  return errs;
}

interface RawRouteSpec {
  parentRefs?: HTTPRoute['spec']['parentRefs'];
  hostnames?: string[];
  rules?: (Omit<HTTPRouteRule, 'matches' | 'filters' | 'backendRefs' | 'timeouts'> & {
    matches?: { path?: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string }; headers?: HTTPRouteRule['matches'][number]['headers']; queryParams?: HTTPRouteRule['matches'][number]['headers']; method?: HTTPRouteRule['matches'][number]['method'] }[];
    filters?: RawFilter[];
    backendRefs?: (Omit<HTTPRouteRule['backendRefs'][number], 'filters'> & { filters?: RawFilter[] })[];
    timeouts?: { request?: string; backendRequest?: string };
  })[];
}

type RawFilter = HTTPRouteFilter & { requestMirror?: unknown; extensionRef?: unknown; cors?: unknown; externalAuth?: unknown };

const FILTER_FIELD: Readonly<Record<HTTPRouteFilter['type'], string>> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};

function httpRouteTyped(spec: RawRouteSpec, issues: Issue[]): HTTPRoute['spec'] | undefined {
  const before = issues.length;
  const parentRefs = spec.parentRefs ?? [];
  // CEL on spec.parentRefs: references to the same parent must all set sectionName (or all not),
  // all set port (or all not), and differ in them.
  const sameParent = (a: typeof parentRefs[number], b: typeof parentRefs[number]): boolean =>
    a.group === b.group && a.kind === b.kind && a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '');
  const hasSection = (p: typeof parentRefs[number]): boolean => (p.sectionName ?? '') !== '';
  const hasPort = (p: typeof parentRefs[number]): boolean => (p.port ?? 0) !== 0;
  if (parentRefs.some((a) => parentRefs.some((b) => sameParent(a, b) && (hasSection(a) !== hasSection(b) || hasPort(a) !== hasPort(b))))) {
    issues.push({ field: 'spec.parentRefs', message: 'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent' });
  }
  if (parentRefs.some((a) => parentRefs.filter((b) => sameParent(a, b) && (a.sectionName ?? '') === (b.sectionName ?? '') && (a.port ?? 0) === (b.port ?? 0)).length !== 1)) {
    issues.push({ field: 'spec.parentRefs', message: 'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent' });
  }
  const rawRules = spec.rules ?? [{ matches: [DEFAULT_MATCH as never] }];
  let totalMatches = 0;
  const rules: HTTPRouteRule[] = rawRules.map((rr, i) => {
    const rf = `spec.rules[${i}]`;
    const matches = (rr.matches === undefined || rr.matches.length === 0 ? [DEFAULT_MATCH as never] : rr.matches).map((mm: NonNullable<typeof rr.matches>[number], j: number) => {
      const path = mm.path ?? { type: 'PathPrefix' as const, value: '/' };
      pathCel(path, `${rf}.matches[${j}].path`, issues);
      for (const [list, name] of [[mm.headers ?? [], 'headers'], [mm.queryParams ?? [], 'queryParams']] as const) {
        list.forEach((h, x) => {
          if (h.type === 'RegularExpression') {
            const err = regexError(h.value);
            if (err !== null) issues.push({ field: `${rf}.matches[${j}].${name}[${x}].value`, message: err });
          }
          // listType=map keyed by name: the API server refuses an exact duplicate key.
          if (list.findIndex((o) => o.name === h.name) !== x) issues.push({ field: `${rf}.matches[${j}].${name}[${x}]`, message: `Duplicate value: map[string]interface {}{"name":${JSON.stringify(h.name)}}` });
        });
      }
      if (path.type === 'RegularExpression') {
        const err = regexError(path.value);
        if (err !== null) issues.push({ field: `${rf}.matches[${j}].path.value`, message: err });
      }
      const out: HTTPRouteRule['matches'][number] = { path: { type: path.type, value: path.value }, headers: mm.headers ?? [], queryParams: mm.queryParams ?? [] };
      if (mm.method !== undefined) out.method = mm.method;
      return out;
    });
    totalMatches += rr.matches?.length ?? 0;
    const filters = filtersTyped(rr.filters ?? [], `${rf}.filters`, issues);
    const backendRefs = (rr.backendRefs ?? []).map((b, j) => {
      const bf = `${rf}.backendRefs[${j}]`;
      if (b.group === '' && b.kind === 'Service' && b.port === undefined) issues.push({ field: bf, message: 'Must have port for Service reference' });
      const out: HTTPRouteRule['backendRefs'][number] = { group: b.group, kind: b.kind, name: b.name, weight: b.weight, filters: filtersTyped(b.filters ?? [], `${bf}.filters`, issues) };
      if (b.namespace !== undefined) out.namespace = b.namespace;
      if (b.port !== undefined) out.port = b.port;
      return out;
    });
    if (backendRefs.length > 0 && filters.some((f) => f.type === 'RequestRedirect')) {
      issues.push({ field: rf, message: 'RequestRedirect filter must not be used together with backendRefs' });
    }
    // Evaluated on the defaulted object: omitted matches and an omitted path both default to PathPrefix /.
    const prefixOnly = rr.matches === undefined || (rr.matches.length === 1 && (rr.matches[0]!.path?.type ?? 'PathPrefix') === 'PathPrefix');
    const allFilters = [...filters, ...backendRefs.flatMap((b) => b.filters)];
    for (const f of allFilters) {
      const p = f.type === 'RequestRedirect' ? f.requestRedirect?.path : f.type === 'URLRewrite' ? f.urlRewrite?.path : undefined;
      if (p?.type === 'ReplacePrefixMatch' && !prefixOnly) {
        issues.push({ field: rf, message: `When using ${f.type} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified` });
      }
    }
    const rule: HTTPRouteRule = { matches, filters, backendRefs };
    if (rr.name !== undefined) rule.name = rr.name;
    if (rr.timeouts !== undefined) {
      const t: NonNullable<HTTPRouteRule['timeouts']> = {};
      if (rr.timeouts.request !== undefined) t.requestMs = gepDurationMs(rr.timeouts.request);
      if (rr.timeouts.backendRequest !== undefined) t.backendRequestMs = gepDurationMs(rr.timeouts.backendRequest);
      if (t.requestMs !== undefined && t.backendRequestMs !== undefined && t.requestMs !== 0 && t.backendRequestMs > t.requestMs) {
        issues.push({ field: `${rf}.timeouts`, message: 'backendRequest timeout cannot be longer than request timeout' });
      }
      rule.timeouts = t;
    }
    return rule;
  });
  if (totalMatches > 128) issues.push({ field: 'spec.rules', message: 'While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128' });
  const names = rules.map((r) => r.name).filter((n) => n !== undefined);
  if (new Set(names).size !== names.length) issues.push({ field: 'spec.rules', message: 'Rule name must be unique within the route' });
  if (issues.length > before) return undefined;
  return { parentRefs, hostnames: (spec.hostnames ?? []).map((h) => h.toLowerCase()), rules };
}

function filtersTyped(raw: RawFilter[], field: string, issues: Issue[]): HTTPRouteFilter[] {
  const seen = new Map<string, number>();
  const out: HTTPRouteFilter[] = raw.map((f, i) => {
    const ff = `${field}[${i}]`;
    for (const [type, key] of Object.entries(FILTER_FIELD) as [HTTPRouteFilter['type'], string][]) {
      const has = (f as unknown as Record<string, unknown>)[key] !== undefined;
      if (has && f.type !== type) issues.push({ field: ff, message: `filter.${key} must be nil if the filter.type is not ${type}` });
      if (!has && f.type === type && type !== 'ExternalAuth') issues.push({ field: ff, message: `filter.${key} must be specified for ${type} filter.type` });
    }
    seen.set(f.type, (seen.get(f.type) ?? 0) + 1);
    const typed: HTTPRouteFilter = { type: f.type };
    if (f.requestHeaderModifier !== undefined) typed.requestHeaderModifier = headerModifierTyped(f.requestHeaderModifier);
    if (f.responseHeaderModifier !== undefined) typed.responseHeaderModifier = headerModifierTyped(f.responseHeaderModifier);
    if (f.urlRewrite !== undefined) {
      typed.urlRewrite = { ...f.urlRewrite };
      pathModifierCel(f.urlRewrite.path, `${ff}.urlRewrite.path`, issues);
    }
    if (f.requestRedirect !== undefined) {
      typed.requestRedirect = { ...f.requestRedirect };
      if (![301, 302, 303, 307, 308].includes(f.requestRedirect.statusCode)) {
        issues.push({ field: `${ff}.requestRedirect.statusCode`, message: `Unsupported value: ${f.requestRedirect.statusCode}: supported values: 301, 302, 303, 307, 308` });
      }
      pathModifierCel(f.requestRedirect.path, `${ff}.requestRedirect.path`, issues);
    }
    return typed;
  });
  for (const type of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'CORS']) {
    if ((seen.get(type) ?? 0) > 1) issues.push({ field, message: `${type} filter cannot be repeated` });
  }
  if ((seen.get('RequestRedirect') ?? 0) > 0 && (seen.get('URLRewrite') ?? 0) > 0) {
    issues.push({ field, message: 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both' });
  }
  return out;
}

function headerModifierTyped(h: { set?: { name: string; value: string }[]; add?: { name: string; value: string }[]; remove?: string[] }): HTTPRouteFilter['requestHeaderModifier'] {
  return { set: h.set ?? [], add: h.add ?? [], remove: h.remove ?? [] };
}

function pathModifierCel(p: { type: string; replaceFullPath?: string; replacePrefixMatch?: string } | undefined, field: string, issues: Issue[]): void {
  if (p === undefined) return;
  if (p.type === 'ReplaceFullPath' && p.replaceFullPath === undefined) issues.push({ field, message: 'replaceFullPath must be specified when type is set to \'ReplaceFullPath\'' });
  if (p.replaceFullPath !== undefined && p.type !== 'ReplaceFullPath') issues.push({ field, message: 'type must be \'ReplaceFullPath\' when replaceFullPath is set' });
  if (p.type === 'ReplacePrefixMatch' && p.replacePrefixMatch === undefined) issues.push({ field, message: 'replacePrefixMatch must be specified when type is set to \'ReplacePrefixMatch\'' });
  if (p.replacePrefixMatch !== undefined && p.type !== 'ReplacePrefixMatch') issues.push({ field, message: 'type must be \'ReplacePrefixMatch\' when replacePrefixMatch is set' });
}

/** The CEL rules on HTTPPathMatch, with the CRD's messages. */
function pathCel(p: { type: string; value: string }, field: string, issues: Issue[]): void {
  if (p.type !== 'Exact' && p.type !== 'PathPrefix') return;
  const v = p.value;
  const checks: [boolean, string][] = [
    [v.startsWith('/'), 'value must be an absolute path and start with \'/\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('//'), 'must not contain \'//\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('/./'), 'must not contain \'/./\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('/../'), 'must not contain \'/../\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('%2f'), 'must not contain \'%2f\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('%2F'), 'must not contain \'%2F\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.includes('#'), 'must not contain \'#\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.endsWith('/..'), 'must not end with \'/..\' when type one of [\'Exact\', \'PathPrefix\']'],
    [!v.endsWith('/.'), 'must not end with \'/.\' when type one of [\'Exact\', \'PathPrefix\']'],
    [/^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/.test(v), 'must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&\'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types [\'Exact\', \'PathPrefix\']'],
  ];
  for (const [ok, message] of checks) if (!ok) issues.push({ field, message });
}

type RawServiceSpec = Omit<Service['spec'], 'ports'> & { ports?: (Omit<Service['spec']['ports'][number], 'targetPort'> & { targetPort?: unknown })[] };

function serviceTyped(spec: RawServiceSpec, issues: Issue[]): Service['spec'] | undefined {
  const before = issues.length;
  const ports = (spec.ports ?? []).map((p, i) => {
    let targetPort: number | string = p.port;
    const tp = p.targetPort;
    if (typeof tp === 'number' && Number.isInteger(tp) && tp >= 1 && tp <= 65535) targetPort = tp;
    else if (typeof tp === 'string' && /^[0-9]+$/.test(tp) && Number(tp) >= 1 && Number(tp) <= 65535) targetPort = Number(tp);
    else if (typeof tp === 'string' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(tp) && tp.length <= 15 && /[a-z]/.test(tp)) targetPort = tp;
    else if (tp !== undefined) issues.push({ field: `spec.ports[${i}].targetPort`, message: `Invalid value: ${show(tp)}: must be a port number (1-65535) or an IANA_SVC_NAME` });
    const out: Service['spec']['ports'][number] = { port: p.port, targetPort, protocol: p.protocol };
    if (p.name !== undefined) out.name = p.name;
    if (p.appProtocol !== undefined) out.appProtocol = p.appProtocol;
    return out;
  });
  if (ports.length > 1 && ports.some((p) => p.name === undefined || p.name === '')) {
    issues.push({ field: 'spec.ports', message: 'Required value: when multiple ports are specified, each port must have a name' });
  }
  if (spec.selector !== undefined) for (const e of labelErrors(spec.selector)) issues.push({ field: 'spec.selector', message: e });
  if (issues.length > before) return undefined;
  const out: Service['spec'] = { type: spec.type, ports };
  if (spec.selector !== undefined) out.selector = spec.selector;
  return out;
}

function inferencePoolCel(spec: InferencePool['spec'], issues: Issue[]): void {
  const n = Object.keys(spec.selector.matchLabels).length;
  if (n < 1) issues.push({ field: 'spec.selector.matchLabels', message: 'Invalid value: 0: must have at least 1 properties' });
  if (n > 64) issues.push({ field: 'spec.selector.matchLabels', message: `Too many: ${n}: must have at most 64 properties` });
  for (const e of labelErrors(spec.selector.matchLabels as Record<string, string>)) issues.push({ field: 'spec.selector.matchLabels', message: e });
  if (spec.targetPorts.some((p1) => spec.targetPorts.filter((p2) => p1.number === p2.number).length !== 1)) {
    issues.push({ field: 'spec.targetPorts', message: 'port number must be unique' });
  }
  const epp = spec.endpointPickerRef;
  if (epp !== undefined && epp.kind === 'Service' && epp.port === undefined) {
    issues.push({ field: 'spec.endpointPickerRef', message: "port is required when kind is 'Service' or unspecified (defaults to 'Service')" });
  }
}

interface RawObjectiveSpec {
  priority?: number;
  poolRef?: InferenceObjective['spec']['poolRef'];
  poolRefs?: InferenceObjective['spec']['poolRefs'];
  poolSelector?: RawSelector & { matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[] };
}

function secretOf(r: Record<string, unknown>, issues: Issue[], labels: Record<string, string> | undefined): Pick<Secret, 'type' | 'tls' | 'purposes' | 'data'> | undefined {
  const before = issues.length;
  const type = r.type === undefined || r.type === null ? 'Opaque' : r.type;
  if (typeof type !== 'string') issues.push({ field: 'type', message: `Invalid value: ${show(typeName(type))}: must be of type string` });
  const values: Record<string, string> = {};
  for (const [field, decode] of [['data', true], ['stringData', false]] as const) {
    const d = r[field];
    if (d === undefined || d === null) continue;
    if (!isPlainObject(d)) {
      issues.push({ field, message: `Invalid value: ${show(typeName(d))}: must be of type object` });
      continue;
    }
    for (const [k, v] of Object.entries(d)) {
      if (typeof v !== 'string') {
        issues.push({ field: `${field}[${k}]`, message: `Invalid value: ${show(typeName(v))}: must be of type string` });
      } else if (decode && !/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v)) {
        issues.push({ field: `${field}[${k}]`, message: 'Invalid value: illegal base64 data' });
      } else {
        // stringData wins over data for the same key, as the API server merges them.
        values[k] = decode ? Buffer.from(v, 'base64').toString('utf8') : v;
      }
    }
  }
  if (type === 'kubernetes.io/tls') {
    for (const k of ['tls.crt', 'tls.key']) if (values[k] === undefined) issues.push({ field: `data[${k}]`, message: 'Required value' });
  }
  if (issues.length > before) return undefined;
  const out: Pick<Secret, 'type' | 'tls' | 'purposes' | 'data'> = { type: type as string };
  if (values['tls.crt'] !== undefined && values['tls.key'] !== undefined) out.tls = { cert: values['tls.crt'], key: values['tls.key'] };
  // Only a Secret labelled for a purpose keeps its data (src/resources/secrets.ts).
  const purposes = secretPurposes(labels);
  if (purposes.length > 0) { out.purposes = purposes; out.data = values; }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
