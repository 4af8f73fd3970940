/**
 * HTTPRoute (gateway.networking.k8s.io v1, v1beta1): schema, the CEL rules on parentRefs, matches,
 * filters and timeouts, and the Go-regex check of RegularExpression matches.
 */
import { GATEWAY_GROUP, type HTTPRoute, type HTTPRouteFilter, type HTTPRouteRule } from '../../gateway.js';
import { gepDurationMs } from '../../../util/duration.js';
import { type Issue, ANY, arr, int, obj, str, walk } from '../schema.js';
import { DNS1123_SUBDOMAIN } from '../names.js';
import { regexError } from '../regex.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import { GATEWAY_API_VERSIONS, group, hostname, kind, namespaceName, objectName, port, sectionName } from './gateway-api-fields.js';

const HEADER_NAME = '^[A-Za-z0-9!#$%&\'*+\\-.^_\\x60|~]+$';
const DURATION = '^([0-9]{1,5}(h|m|s|ms)){1,4}$';
const preciseHostname = str({ minLength: 1, maxLength: 253, pattern: `^${DNS1123_SUBDOMAIN.slice(1)}` });

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

export const httpRoute: KindRules<HTTPRoute> = {
  kind: 'HTTPRoute',
  apiVersions: GATEWAY_API_VERSIONS,
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const spec = walk(raw.spec ?? {}, httpRouteSpecSchema, 'spec', issues) as RawRouteSpec | undefined;
    const typed = spec !== undefined ? httpRouteTyped(spec, issues) : undefined;
    if (issues.length > 0 || typed === undefined) return undefined;
    return { generationOf: typed, build: (metadata, apiVersion) => ({ apiVersion, kind: 'HTTPRoute', metadata, spec: typed }) };
  },
};
