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
import type {
<<<<<<< HEAD
  AnyResource, ApiKeyRule, ModelRoute, ModelServer, ObjectMeta, Pod, Problem, ResourceSet,
} from './types.js';
import { parseDurationMs } from '../util/duration.js';
=======
  Gateway, GatewayClass, GatewayResource, HTTPRoute, InferenceObjective, InferencePool, Namespace, ReferenceGrant, Secret, Service,
} from './gateway.js';
import { type FieldError, type Issue, show, typeName } from './validate/schema.js';
import { type AdmissionRules, type KindContext, type KindRules, namespaceOf, parseKind, problemFor } from './validate/kind.js';
import { ADMISSION_KINDS, GATEWAY_KINDS, KTHENA_KINDS } from './validate/registry.js';
import { cmp, isPlainObject } from './validate/util.js';
>>>>>>> main

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
  for (const r of resources) {
    if (r.kind === 'ModelRoute') modelRoutes.push(r);
    else if (r.kind === 'ModelServer') modelServers.push(r);
    else pods.push(r);
  }
  const byKey = (a: AnyResource, b: AnyResource): number => cmp(a.metadata.namespace, b.metadata.namespace) || cmp(a.metadata.name, b.metadata.name);
  return { modelRoutes: modelRoutes.sort(byKey), modelServers: modelServers.sort(byKey), pods: pods.sort(byKey) };
}

<<<<<<< HEAD
// ---------------------------------------------------------------------------------------------
// A small structural-schema walker (the subset of OpenAPI v3 the Kthena CRDs use)
// ---------------------------------------------------------------------------------------------

/** The subset of OpenAPI v3 the Kthena CRDs use; deploy/crds is generated from these schemas. */
export type Schema =
  | { t: 'string'; enum?: readonly string[]; minLength?: number; maxLength?: number; pattern?: string; default?: string }
  | { t: 'integer'; minimum?: number; maximum?: number; default?: number }
  | { t: 'boolean'; default?: boolean }
  | { t: 'array'; items: Schema; minItems?: number; maxItems?: number }
  | {
    t: 'object';
    properties?: Readonly<Record<string, Schema>>;
    required?: readonly string[];
    /** Map values (additionalProperties). */
    values?: Schema;
    /** Keep unknown keys out of the result without rejecting them (schemas we only read from). */
    ignoreUnknown?: boolean;
  }
  | { t: 'any' };

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export interface Issue { field: string; message: string }

/**
 * One webhook-rule failure, kept structured (the shape of Go's field.Error) so that file mode and
 * the admission webhook render it from one place: file mode shows `detail` under `field`, the
 * webhook renders Kthena's `field: Type: value: detail` text (src/webhook/messages.ts).
 * 'Schema' carries a message already in that form (an OpenAPI or CEL failure).
 */
export interface FieldError {
  field: string;
  type: 'Required' | 'Invalid' | 'NotSupported' | 'Schema';
  /** The offending value (Invalid, NotSupported). */
  value?: unknown;
  /** NotSupported: the accepted values. */
  supported?: readonly string[];
  detail: string;
}

function fileIssue(e: FieldError): Issue {
  return { field: e.field, message: e.detail };
}

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(typeName(v));
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const compiledPatterns = new Map<string, RegExp>();
export function pattern(p: string): RegExp {
  let re = compiledPatterns.get(p);
  if (re === undefined) {
    re = new RegExp(p);
    compiledPatterns.set(p, re);
  }
  return re;
}

/**
 * Returns a fresh, cleaned copy: nulls pruned (the API server prunes nulls of non-nullable fields
 * before defaulting), defaults applied, only declared keys kept. undefined when the value is invalid.
 */
export function walk(v: unknown, s: Schema, path: string, issues: Issue[]): unknown {
  switch (s.t) {
    case 'any':
      return structuredClone(v);
    case 'string': {
      if (typeof v !== 'string') return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type string`);
      if (s.enum && !s.enum.includes(v)) {
        return fail(issues, path, `Unsupported value: ${JSON.stringify(v)}: supported values: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
      }
      const len = [...v].length;
      if (s.minLength !== undefined && len < s.minLength) {
        return fail(issues, path, `Invalid value: ${JSON.stringify(v)}: must be at least ${s.minLength} chars long`);
      }
      if (s.maxLength !== undefined && len > s.maxLength) {
        return fail(issues, path, `Too long: may not be longer than ${s.maxLength}`);
      }
      if (s.pattern !== undefined && !pattern(s.pattern).test(v)) {
        return fail(issues, path, `Invalid value: ${JSON.stringify(v)}: should match '${s.pattern}'`);
      }
      return v;
    }
    case 'integer': {
      if (typeof v !== 'number' || !Number.isInteger(v)) {
        return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type integer`);
      }
      if (s.minimum !== undefined && v < s.minimum) return fail(issues, path, `Invalid value: ${v}: must be greater than or equal to ${s.minimum}`);
      if (s.maximum !== undefined && v > s.maximum) return fail(issues, path, `Invalid value: ${v}: must be less than or equal to ${s.maximum}`);
      // Every integer in these CRDs is format: int32.
      if (v < INT32_MIN || v > INT32_MAX) return fail(issues, path, `Invalid value: ${v}: must be a 32-bit integer`);
      return v;
    }
    case 'boolean':
      if (typeof v !== 'boolean') return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type boolean`);
      return v;
    case 'array': {
      if (!Array.isArray(v)) return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type array`);
      if (s.maxItems !== undefined && v.length > s.maxItems) return fail(issues, path, `Too many: ${v.length}: must have at most ${s.maxItems} items`);
      if (s.minItems !== undefined && v.length < s.minItems) return fail(issues, path, `Invalid value: ${v.length}: must have at least ${s.minItems} items`);
      const before = issues.length;
      const out = v.map((item, i) => walk(item, s.items, `${path}[${i}]`, issues));
      return issues.length === before ? out : undefined;
    }
    case 'object': {
      if (!isPlainObject(v)) return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type object`);
      const before = issues.length;
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v)) {
        const value = v[key];
        if (value === null || value === undefined) continue;
        const prop = s.properties?.[key];
        if (prop !== undefined) {
          const r = walk(value, prop, child(path, key), issues);
          if (r !== undefined) out[key] = r;
        } else if (s.values !== undefined) {
          const r = walk(value, s.values, `${path}[${key}]`, issues);
          if (r !== undefined) out[key] = r;
        } else if (!s.ignoreUnknown) {
          issues.push({ field: child(path, key), message: `unknown field ${JSON.stringify(key)}` });
        }
      }
      for (const [key, prop] of Object.entries(s.properties ?? {})) {
        if (out[key] === undefined && 'default' in prop && prop.default !== undefined && (v[key] === undefined || v[key] === null)) {
          out[key] = prop.default;
        }
      }
      // After defaulting, as the API server does: a defaulted required field is satisfied.
      for (const key of s.required ?? []) {
        if ((v[key] === undefined || v[key] === null) && out[key] === undefined) issues.push({ field: child(path, key), message: 'Required value' });
      }
      return issues.length === before ? out : undefined;
    }
  }
}

function fail(issues: Issue[], field: string, message: string): undefined {
  issues.push({ field, message });
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Schemas, transcribed from Kthena's CRDs (charts/kthena/charts/networking/crds upstream);
// test/unit/validate.test.ts checks them against copies in test/fixtures/crds/.
// ---------------------------------------------------------------------------------------------

export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const str = (o: Omit<Extract<Schema, { t: 'string' }>, 't'> = {}): Schema => ({ t: 'string', ...o });
export const int = (o: Omit<Extract<Schema, { t: 'integer' }>, 't'> = {}): Schema => ({ t: 'integer', ...o });
export const arr = (items: Schema, o: { minItems?: number; maxItems?: number } = {}): Schema => ({ t: 'array', items, ...o });
export const obj = (properties: Record<string, Schema>, required: string[] = [], o: { ignoreUnknown?: boolean } = {}): Schema => ({ t: 'object', properties, required, ...o });
export const map = (values: Schema): Schema => ({ t: 'object', values });
export const ANY: Schema = { t: 'any' };

const stringMatchSchema = obj({ exact: str(), prefix: str(), regex: str() });

export const modelRouteSpecSchema: Schema = obj({
  loraAdapters: arr(str(), { maxItems: 10 }),
  modelName: str(),
  parentRefs: arr(obj({
    group: str({ default: 'gateway.networking.k8s.io', maxLength: 253, pattern: `^$|${DNS1123_SUBDOMAIN}` }),
    kind: str({ default: 'Gateway', minLength: 1, maxLength: 63, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$' }),
    name: str({ minLength: 1, maxLength: 253 }),
    namespace: str({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL }),
    port: int({ minimum: 1, maximum: 65535 }),
    sectionName: str({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN }),
  }, ['name'])),
  rateLimit: obj({
    global: obj({ redis: obj({ address: str() }, ['address']) }),
    inputTokensPerUnit: int({ minimum: 1 }),
    outputTokensPerUnit: int({ minimum: 1 }),
    unit: str({ enum: ['second', 'minute', 'hour', 'day', 'month'], default: 'second' }),
  }, ['unit']),
  // Kthena's session-sticky proposal (volcano-sh/kthena:docs/proposal/infer-gateway-session-sticky.md);
  // not in Kthena's CRD at the version this router follows (test/unit/validate.test.ts lists it as ours).
  sessionSticky: obj({
    sessionAffinitySeconds: int({ minimum: 1 }),
    sources: arr(obj({
      type: str({ enum: ['Header', 'Query', 'Cookie', 'JWTClaim'] }),
      name: str({ minLength: 1 }),
    }, ['type', 'name']), { minItems: 1, maxItems: 16 }),
  }, ['sources']),
  rules: arr(obj({
    modelMatch: obj({
      body: obj({ model: str() }),
      headers: map(stringMatchSchema),
      uri: stringMatchSchema,
    }),
    name: str(),
    targetModels: arr(obj({
      externalModelProviderName: str(),
      modelServerName: str(),
      weight: int({ minimum: 0, maximum: 100, default: 100 }),
    }), { minItems: 1, maxItems: 16 }),
  }, ['targetModels']), { maxItems: 16 }),
}, ['rules']);

export const modelServerSpecSchema: Schema = obj({
  // Kthena's authorization proposal (Authorization_of_kthena_router.md); not in Kthena's CRD.
  apiKeyRules: arr(obj({
    fromHeader: str({ minLength: 1, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }),
    fromParam: str({ minLength: 1 }),
    labelSelector: map(str()),
    secretName: obj({ name: str({ minLength: 1 }), namespace: str() }, ['name']),
  }), { maxItems: 16 }),
  inferenceEngine: str({ enum: ['vLLM', 'SGLang'] }),
  kvConnector: obj({ type: str({ enum: ['http', 'lmcache', 'nixl', 'mooncake'], default: 'http' }) }),
  model: str({ maxLength: 256 }),
  trafficPolicy: obj({
    retry: obj({ attempts: int(), retryInterval: str({ default: '100ms' }) }),
    timeout: str(),
  }),
  workloadPort: obj({
    port: int({ minimum: 1, maximum: 65535 }),
    protocol: str({ enum: ['http', 'https'], default: 'http' }),
  }, ['port']),
  workloadSelector: obj({
    matchLabels: map(str()),
    pdGroup: obj({ decodeLabels: map(str()), groupKey: str(), prefillLabels: map(str()) }, ['decodeLabels', 'groupKey', 'prefillLabels']),
  }),
}, ['inferenceEngine', 'workloadPort', 'workloadSelector']);

/** ObjectMeta: the fields kubectl can send; unknown ones are rejected like strict field validation. */
const objectMetaSchema: Schema = obj({
  name: str(),
  generateName: str(),
  namespace: str(),
  selfLink: str(),
  uid: str(),
  resourceVersion: str(),
  generation: { t: 'integer' },
  creationTimestamp: ANY,
  deletionTimestamp: ANY,
  deletionGracePeriodSeconds: { t: 'integer' },
  labels: map(str()),
  annotations: map(str()),
  ownerReferences: arr(ANY),
  finalizers: arr(str()),
  managedFields: arr(ANY),
});

// Pods are read, never served: only the fields the router reads are checked, the rest of the (large)
// Pod schema is ignored, and file-mode pods need no containers.
const podSpecSchema: Schema = obj({ nodeName: str() }, [], { ignoreUnknown: true });
const podStatusSchema: Schema = obj({
  podIP: str(),
  phase: str({ enum: ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] }),
  startTime: ANY,
  conditions: arr(obj({ type: str(), status: str() }, ['type', 'status'], { ignoreUnknown: true })),
  containerStatuses: arr(obj({ state: obj({ running: obj({ startedAt: ANY }, [], { ignoreUnknown: true }) }, [], { ignoreUnknown: true }) }, [], { ignoreUnknown: true })),
}, [], { ignoreUnknown: true });

const TOP_LEVEL_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

// ---------------------------------------------------------------------------------------------
// Metadata helpers (messages as in k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function subdomainErrors(v: string): string[] {
  const errs: string[] = [];
  if (v.length > 253) errs.push('must be no more than 253 characters');
  if (!pattern(DNS1123_SUBDOMAIN).test(v)) errs.push(SUBDOMAIN_MSG);
  return errs;
}

/** Errors of one label key (a qualified name), as apimachinery's IsQualifiedName words them. */
function labelKeyErrors(k: string): string[] {
  const errs: string[] = [];
  const slash = k.indexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : null;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== null) {
    if (prefix === '') errs.push('prefix part must be non-empty');
    else for (const e of subdomainErrors(prefix)) errs.push(`prefix part ${e}`);
  }
  if (name === '') errs.push('name part must be non-empty');
  else {
    if (name.length > 63) errs.push('name part must be no more than 63 characters');
    if (!QUALIFIED_NAME_RE.test(name)) errs.push(QUALIFIED_NAME_MSG);
  }
  return errs;
}

function labelValueErrors(v: string): string[] {
  const errs: string[] = [];
  if (v.length > 63) errs.push('must be no more than 63 characters');
  if (!LABEL_VALUE_RE.test(v)) errs.push(LABEL_VALUE_MSG);
  return errs;
}

/** Label key (qualified name) and value errors, each as `Invalid value: "x": reason`. */
export function labelErrors(labels: Record<string, string>): string[] {
  const errs: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    for (const e of labelKeyErrors(k)) errs.push(`Invalid value: ${JSON.stringify(k)}: ${e}`);
    for (const e of labelValueErrors(v)) errs.push(`Invalid value: ${JSON.stringify(v)}: ${e}`);
  }
  return errs;
}

/**
 * The first error metav1.LabelSelectorAsSelector reports for matchLabels (labels.NewRequirement:
 * `key: Invalid value: "k": …` or `values[0]: Invalid value: "v": …`, reasons joined by "; "),
 * keys in sorted order where Go would take map order. null when the selector is valid.
 */
function selectorError(labels: Record<string, string>): string | null {
  for (const k of Object.keys(labels).sort()) {
    const ke = labelKeyErrors(k);
    if (ke.length > 0) return `key: Invalid value: ${JSON.stringify(k)}: ${ke.join('; ')}`;
    const ve = labelValueErrors(labels[k]);
    if (ve.length > 0) return `values[0]: Invalid value: ${JSON.stringify(labels[k])}: ${ve.join('; ')}`;
  }
  return null;
}

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** RFC 3339 in UTC, milliseconds only when non-zero; null when not a valid timestamp. */
export function normalizeTimestamp(v: unknown): string | null {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'string' && RFC3339_RE.test(v)) ms = Date.parse(v);
  else return null;
  if (!Number.isFinite(ms)) return null;
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

// ---------------------------------------------------------------------------------------------
// Regexes: Go RE2 semantics checked with JavaScript's engine
// ---------------------------------------------------------------------------------------------

/**
 * Kthena compiles match regexes with Go's regexp (RE2), and so do our workers (re2js, RE2
 * semantics: src/shared/re2.ts). A regex is accepted exactly when Go's regexp.Compile accepts it,
 * and refused with Go's own error text (lookaround, backreferences, `\u0041`, repeat counts above
 * 1000, syntax errors), as Kthena's webhook reports it.
 * Returns the error message, or null when the regex is fine.
 */
export function regexError(re: string): string | null {
  return re2SyntaxError(re);
}

// ---------------------------------------------------------------------------------------------
// parseManifestObject
// ---------------------------------------------------------------------------------------------

=======
>>>>>>> main
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
<<<<<<< HEAD

  const issues: Issue[] = [];
  for (const key of Object.keys(raw)) {
    if (!TOP_LEVEL_KEYS.has(key)) issues.push({ field: key, message: `unknown field ${JSON.stringify(key)}` });
  }
  const meta = parseMetadata(raw.metadata, issues);

  if (kind === 'Pod') {
    const spec = raw.spec === undefined || raw.spec === null ? {} : walk(raw.spec, podSpecSchema, 'spec', issues) as { nodeName?: string } | undefined;
    const status = raw.status === undefined || raw.status === null ? {} : walk(raw.status, podStatusSchema, 'status', issues) as PodStatusRaw | undefined;
    let startTime: string | undefined;
    if (status?.startTime !== undefined) {
      const t = normalizeTimestamp(status.startTime);
      if (t === null) issues.push({ field: 'status.startTime', message: `Invalid value: ${show(status.startTime)}: must be an RFC 3339 timestamp` });
      else startTime = t;
    }
    // Kthena's kvcache-aware drops KV blocks written before the newest running container started
    // (a restarted container lost its cache even though the pod's startTime did not move).
    let containersStartedAt: string | undefined;
    (status?.containerStatuses ?? []).forEach((c, i) => {
      const v = c.state?.running?.startedAt;
      if (v === undefined) return;
      const t = normalizeTimestamp(v);
      if (t === null) issues.push({ field: `status.containerStatuses[${i}].state.running.startedAt`, message: `Invalid value: ${show(v)}: must be an RFC 3339 timestamp` });
      else if (containersStartedAt === undefined || Date.parse(t) > Date.parse(containersStartedAt)) containersStartedAt = t;
    });
    if (status?.podIP !== undefined && isIP(status.podIP) === 0) {
      issues.push({ field: 'status.podIP', message: `Invalid value: ${JSON.stringify(status.podIP)}: must be a valid IP address` });
    }
    if (issues.length > 0 || meta === undefined || spec === undefined || status === undefined) return rejected(issues);
    const podSpec: Pod['spec'] = {};
    if (spec.nodeName !== undefined) podSpec.nodeName = spec.nodeName;
    const podStatus: Pod['status'] = {
      ready: (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    };
    if (status.podIP !== undefined) podStatus.podIP = status.podIP;
    if (status.phase !== undefined) podStatus.phase = status.phase;
    if (startTime !== undefined) podStatus.startTime = startTime;
    if (containersStartedAt !== undefined) podStatus.containersStartedAt = containersStartedAt;
    const pod: Pod = {
      apiVersion: 'v1', kind: 'Pod',
      metadata: finishMeta(meta, 'Pod', podSpec, ctx),
      spec: podSpec,
      status: podStatus,
    };
    return { resource: deepFreeze(pod), problems: [] };
  }

  if (raw.spec === undefined || raw.spec === null) {
    issues.push({ field: 'spec', message: 'Required value' });
    return rejected(issues);
  }

  if (kind === 'ModelRoute') {
    const spec = walk(raw.spec, modelRouteSpecSchema, 'spec', issues) as ModelRoute['spec'] | undefined;
    if (spec !== undefined) modelRouteCel(spec, ctx.previous, issues);
    if (issues.length > 0 || meta === undefined || spec === undefined) return rejected(issues);
    issues.push(...modelRouteWebhook(spec).map(fileIssue));
    if (issues.length > 0) return rejected(issues);
    const route: ModelRoute = {
      apiVersion: KTHENA_API_VERSION, kind: 'ModelRoute',
      metadata: finishMeta(meta, 'ModelRoute', spec, ctx),
      spec,
    };
    return { resource: deepFreeze(route), problems: [] };
  }

  // ModelServer
  const written = walk(raw.spec, modelServerSpecSchema, 'spec', issues) as ModelServerSpecRaw | undefined;
  let spec: ModelServer['spec'] | undefined;
  if (written !== undefined) spec = modelServerTyped(written, issues);
  if (issues.length > 0 || meta === undefined || spec === undefined) return rejected(issues);
  issues.push(...modelServerWebhook(spec).map(fileIssue));
  if (issues.length > 0) return rejected(issues);
  const server: ModelServer = {
    apiVersion: KTHENA_API_VERSION, kind: 'ModelServer',
    metadata: finishMeta(meta, 'ModelServer', spec, ctx),
    spec,
    rawSpec: structuredClone(raw.spec),
  };
  return { resource: deepFreeze(server), problems: [] };
}

interface PodStatusRaw {
  podIP?: string;
  phase?: string;
  startTime?: unknown;
  conditions?: { type: string; status: string }[];
  containerStatuses?: { state?: { running?: { startedAt?: unknown } } }[];
}

export interface MetaRaw {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels: Record<string, string>;
}

export function parseMetadata(rawMeta: unknown, issues: Issue[]): MetaRaw | undefined {
  if (rawMeta === undefined || rawMeta === null) {
    issues.push({ field: 'metadata.name', message: 'Required value: name is required' });
    return undefined;
  }
  const before = issues.length;
  const m = walk(rawMeta, objectMetaSchema, 'metadata', issues) as Record<string, unknown> | undefined;
  if (m === undefined) return undefined;
  const name = m.name as string | undefined;
  if (name === undefined || name === '') {
    // generateName gives a random name per load; file mode needs a stable identity.
    issues.push({ field: 'metadata.name', message: 'Required value: name is required' });
  } else {
    for (const e of subdomainErrors(name)) issues.push({ field: 'metadata.name', message: `Invalid value: ${JSON.stringify(name)}: ${e}` });
  }
  const namespace = (m.namespace as string | undefined) || 'default';
  if (namespace.length > 63) issues.push({ field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(namespace)}: must be no more than 63 characters` });
  else if (!pattern(DNS1123_LABEL).test(namespace)) issues.push({ field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(namespace)}: ${LABEL_MSG}` });
  const labels = (m.labels as Record<string, string> | undefined) ?? {};
  for (const e of labelErrors(labels)) issues.push({ field: 'metadata.labels', message: e });
  const out: MetaRaw = { name: name ?? '', namespace, labels };
  for (const key of ['creationTimestamp', 'deletionTimestamp'] as const) {
    if (m[key] === undefined) continue;
    const t = normalizeTimestamp(m[key]);
    if (t === null) issues.push({ field: `metadata.${key}`, message: `Invalid value: ${show(m[key])}: must be an RFC 3339 timestamp` });
    else out[key] = t;
  }
  if (typeof m.uid === 'string' && m.uid !== '') out.uid = m.uid;
  if (typeof m.resourceVersion === 'string') out.resourceVersion = m.resourceVersion;
  return issues.length === before ? out : undefined;
}

export function finishMeta(m: MetaRaw, kind: string, spec: unknown, ctx: { now: () => string; previous?: { kind: string; spec?: unknown; metadata: ObjectMeta }; generation?: number }): ObjectMeta {
  const prev = ctx.previous !== undefined && ctx.previous.kind === kind ? ctx.previous : undefined;
  let generation = 1;
  if (ctx.generation !== undefined) generation = ctx.generation;
  else if (prev !== undefined) {
    generation = stableJson(prev.spec) === stableJson(spec) ? prev.metadata.generation : prev.metadata.generation + 1;
  }
  const created = m.creationTimestamp ?? prev?.metadata.creationTimestamp ?? normalizeTimestamp(ctx.now()) ?? ctx.now();
  const meta: ObjectMeta = {
    name: m.name,
    namespace: m.namespace,
    creationTimestamp: created,
    resourceVersion: m.resourceVersion ?? '',
    generation,
    labels: m.labels,
    uid: m.uid ?? derivedUid(kind, m.namespace, m.name),
  };
  if (m.deletionTimestamp !== undefined) meta.deletionTimestamp = m.deletionTimestamp;
  return meta;
}

/** A UUID-shaped name-based id (RFC 4122 version 5 layout over SHA-1), stable across reloads. */
function derivedUid(kind: string, namespace: string, name: string): string {
  const h = createHash('sha1').update(`kthena-router/${kind}/${namespace}/${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function modelRouteCel(spec: ModelRoute['spec'], previous: AnyResource | undefined, issues: Issue[]): void {
  if ((spec.modelName ?? '') === '' && (spec.loraAdapters ?? []).length === 0) {
    issues.push({ field: 'spec', message: 'ModelName and LoraAdapters cannot both be empty' });
  }
  spec.rules.forEach((rule, i) => rule.targetModels.forEach((t, j) => {
    if (((t.modelServerName ?? '') !== '') === ((t.externalModelProviderName ?? '') !== '')) {
      issues.push({ field: `spec.rules[${i}].targetModels[${j}]`, message: 'exactly one of modelServerName or externalModelProviderName must be set' });
    }
  }));
  // A CEL transition rule (self == oldSelf) runs only when the field exists in both versions.
  if (previous !== undefined && previous.kind === 'ModelRoute' && previous.spec.modelName !== undefined &&
    spec.modelName !== undefined && previous.spec.modelName !== spec.modelName) {
    issues.push({ field: 'spec.modelName', message: 'modelName is immutable' });
  }
}

/**
 * Kthena's webhook rules for ModelRoute (pkg/kthena-router/webhook/validator.go), in its order.
 * The rules the CRD's CEL already enforces are repeated, as Kthena's webhook does, so that the
 * admission webhook answers like Kthena's even behind an older CRD.
 */
export function modelRouteWebhook(spec: ModelRoute['spec']): FieldError[] {
  const errs: FieldError[] = [];
  const lora = spec.loraAdapters ?? [];
  if ((spec.modelName ?? '') === '' && lora.length === 0) {
    errs.push({ field: 'spec', type: 'Required', detail: 'either modelName or loraAdapters must be specified' });
  }
  lora.forEach((a, i) => {
    if (a === '') errs.push({ field: `spec.loraAdapters[${i}]`, type: 'Invalid', value: a, detail: 'lora adapter name cannot be an empty string' });
  });
  spec.rules.forEach((rule, i) => {
    const rf = `spec.rules[${i}]`;
    if (rule.targetModels.length === 0) {
      errs.push({ field: `${rf}.targetModels`, type: 'Required', detail: 'each rule must have at least one target model' });
      return;
    }
    let total = 0;
    rule.targetModels.forEach((t, j) => {
      const server = t.modelServerName ?? '';
      const provider = t.externalModelProviderName ?? '';
      if ((server !== '') === (provider !== '')) {
        errs.push({ field: `${rf}.targetModels[${j}]`, type: 'Invalid', value: `${server}/${provider}`, detail: 'exactly one of modelServerName or externalModelProviderName must be set' });
      }
      if (provider !== '' && lora.length > 0) {
        errs.push({ field: `${rf}.targetModels[${j}].externalModelProviderName`, type: 'Invalid', value: provider, detail: 'lora routes must target modelServerName' });
      }
      total += t.weight;
    });
    if (total === 0) errs.push({ field: `${rf}.targetModels`, type: 'Invalid', value: total, detail: 'total weight must be greater than zero' });
    const mm = rule.modelMatch;
    if (mm === undefined) return;
    for (const [key, sm] of Object.entries(mm.headers ?? {})) {
      // Not a Kthena rule: an empty name reads as a missing header, which no request can send.
      if (key === '') errs.push({ field: `${rf}.modelMatch.headers`, type: 'Invalid', value: key, detail: 'header name must not be empty' });
      if (sm.regex === undefined) continue;
      const err = regexError(sm.regex);
      if (err !== null) errs.push({ field: `${rf}.modelMatch.headers[${key}].regex`, type: 'Invalid', value: sm.regex, detail: err });
    }
    if (mm.uri?.regex !== undefined) {
      const err = regexError(mm.uri.regex);
      if (err !== null) errs.push({ field: `${rf}.modelMatch.uri.regex`, type: 'Invalid', value: mm.uri.regex, detail: err });
    }
  });
  return errs;
}

interface ModelServerSpecRaw {
  model?: string;
  inferenceEngine: 'vLLM' | 'SGLang';
  workloadSelector: { matchLabels?: Record<string, string>; pdGroup?: { groupKey: string; prefillLabels: Record<string, string>; decodeLabels: Record<string, string> } };
  workloadPort: { port: number; protocol: 'http' | 'https' };
  trafficPolicy?: { timeout?: string; retry?: { attempts?: number; retryInterval: string } };
  kvConnector?: { type: 'http' | 'lmcache' | 'nixl' | 'mooncake' };
  apiKeyRules?: ApiKeyRule[];
}

const DURATION_HINT = 'must be a non-negative duration such as "10s", "1m30s" or "500ms"';

/** Durations parsed to ms; an invalid one rejects the object (Kthena's informer would fail to decode it). */
function modelServerTyped(w: ModelServerSpecRaw, issues: Issue[]): ModelServer['spec'] | undefined {
  const spec: ModelServer['spec'] = {
    inferenceEngine: w.inferenceEngine,
    workloadSelector: { matchLabels: w.workloadSelector.matchLabels ?? {} },
    workloadPort: w.workloadPort,
  };
  if (w.model !== undefined) spec.model = w.model;
  if (w.workloadSelector.pdGroup !== undefined) spec.workloadSelector.pdGroup = w.workloadSelector.pdGroup;
  if (w.kvConnector !== undefined) spec.kvConnector = w.kvConnector;
  const before = issues.length;
  if (w.apiKeyRules !== undefined) {
    w.apiKeyRules.forEach((r, i) => {
      if (r.secretName === undefined && Object.keys(r.labelSelector ?? {}).length === 0) {
        issues.push({ field: `spec.apiKeyRules[${i}]`, message: 'Required value: one of secretName or labelSelector is required' });
      }
    });
    spec.apiKeyRules = w.apiKeyRules;
  }
  if (w.trafficPolicy !== undefined) {
    const tp: NonNullable<ModelServer['spec']['trafficPolicy']> = {};
    if (w.trafficPolicy.timeout !== undefined) {
      const ms = parseDurationMs(w.trafficPolicy.timeout);
      if (ms === null) issues.push({ field: 'spec.trafficPolicy.timeout', message: `Invalid value: ${JSON.stringify(w.trafficPolicy.timeout)}: ${DURATION_HINT}` });
      else tp.timeoutMs = ms;
    }
    const retry = w.trafficPolicy.retry;
    if (retry !== undefined) {
      const ms = parseDurationMs(retry.retryInterval);
      if (ms === null) issues.push({ field: 'spec.trafficPolicy.retry.retryInterval', message: `Invalid value: ${JSON.stringify(retry.retryInterval)}: ${DURATION_HINT}` });
      // attempts is a plain int32 in Kthena's Go type: unset reads as 0.
      else tp.retry = { attempts: retry.attempts ?? 0, retryIntervalMs: ms };
    }
    spec.trafficPolicy = tp;
  }
  return issues.length === before ? spec : undefined;
}

/** Kthena's webhook rules for ModelServer, in its order. */
export function modelServerWebhook(spec: ModelServer['spec']): FieldError[] {
  const errs: FieldError[] = [];
  const ws = 'spec.workloadSelector';
  const selector = (field: string, labels: Record<string, string>): void => {
    if (Object.keys(labels).length === 0) {
      errs.push({ field, type: 'Required', detail: 'labels must contain at least one label' });
      return;
    }
    const e = selectorError(labels);
    if (e !== null) errs.push({ field, type: 'Invalid', value: labels, detail: `invalid selector: ${e}` });
  };
  selector(`${ws}.matchLabels`, spec.workloadSelector.matchLabels);
  const pd = spec.workloadSelector.pdGroup;
  if (pd !== undefined) {
    if (pd.groupKey === '') errs.push({ field: `${ws}.pdGroup.groupKey`, type: 'Required', detail: 'groupKey must be specified' });
    selector(`${ws}.pdGroup.prefillLabels`, pd.prefillLabels);
    selector(`${ws}.pdGroup.decodeLabels`, pd.decodeLabels);
  }
  return errs;
=======
  return parseKind(rules, raw, ctx);
>>>>>>> main
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
    if (r.kind === 'ModelRoute' || r.kind === 'ModelServer' || r.kind === 'Pod') kthena.push(r);
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
