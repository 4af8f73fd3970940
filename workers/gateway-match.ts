/**
 * Gateway API request matching over the GatewayIR (src/ir/gateway.ts), for the worker threads.
 *
 * compileGateway() runs once per snapshot generation: regexes compiled (anchored: a
 * RegularExpression matches the whole path or value, as Envoy-based implementations do), hostname
 * tables turned into Maps, backend weights into cumulative Float64Arrays. matchGateway() then runs
 * per request and allocates nothing on the common path: it returns either the compiled entry that
 * won (shared, read-only) or one of the frozen NO_* results. What does cost a string: a Host with
 * a port or upper-case letters when some hostname must be compared, and each query parameter value
 * read by a query match.
 *
 * Header lookups go through a `(lowerCaseName) => string` function returning '' for a missing
 * header, which is what uWS `req.getHeader` does; so an empty header value reads as absent (no
 * header match in the spec can require an empty value: values are 1-4096 characters).
 */
import { compileRe2Anchored, type Re2Matcher } from '../src/shared/re2.js';
import type {
  BackendIR, GatewayIR, HeaderModifierIR, ListenerIR, MatchEntryIR, PathModifierIR, RedirectIR, RuleIR,
} from '../src/ir/gateway.js';

export interface CompiledValueMatch {
  name: string;
  /** Exact value, or null for a regex match. */
  exact: string | null;
  re: Re2Matcher | null;
}

export interface CompiledRule {
  ir: RuleIR;
  /** cumulative[i] = sum of weights of backends 0..i. */
  cumulative: Float64Array;
  total: number;
}

export interface GatewayRouteMatch {
  kind: 'match';
  /** Index into GatewayIR.listeners. */
  listener: number;
  entry: MatchEntryIR;
  rule: CompiledRule;
  /** For ReplacePrefixMatch: the matched prefix ('' for '/'). */
  prefix: string;
  /** Internal: 0 exact hostname, 1 wildcard (host = suffix with the leading '.'), 2 any host. */
  hostKind: 0 | 1 | 2;
  host: string;
  /** Internal: 0 Exact, 1 RegularExpression, 2 PathPrefix. */
  pathKind: 0 | 1 | 2;
  re: Re2Matcher | null;
  method: string;
  headers: CompiledValueMatch[];
  query: CompiledValueMatch[];
}

export type GatewayNoMatch =
  | { readonly kind: 'no-port' }
  /** No listener on the port accepts the Host: 404 (Kthena: "No matching listener found"). */
  | { readonly kind: 'no-listener' }
  /** A listener matched but no rule did: 404 (spec). */
  | { readonly kind: 'no-route' };

export const NO_PORT: GatewayNoMatch = Object.freeze({ kind: 'no-port' });
export const NO_LISTENER: GatewayNoMatch = Object.freeze({ kind: 'no-listener' });
export const NO_ROUTE: GatewayNoMatch = Object.freeze({ kind: 'no-route' });

interface CompiledListener {
  ir: ListenerIR;
  entries: GatewayRouteMatch[];
  /** Some entry has a hostname predicate (else the Host is never read). */
  needsHost: boolean;
}

interface CompiledPort {
  exact: Map<string, number>;
  wildcard: [string, number][];
  any: number;
  /** Some listener on the port has a hostname (else the Host is not needed to pick one). */
  needsHost: boolean;
}

export interface CompiledGateway {
  ir: GatewayIR;
  ports: Map<number, CompiledPort>;
  listeners: CompiledListener[];
  rules: CompiledRule[];
}

const PATH_KIND = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

/** Gateway API regexes match the whole value; RE2 semantics and linear time (src/shared/re2.ts). */
function anchored(re: string): Re2Matcher {
  return compileRe2Anchored(re);
}

function compileValue(m: { name: string; type: 'Exact' | 'RegularExpression'; value: string }): CompiledValueMatch {
  return m.type === 'Exact' ? { name: m.name, exact: m.value, re: null } : { name: m.name, exact: null, re: anchored(m.value) };
}

export function compileGateway(ir: GatewayIR): CompiledGateway {
  const rules: CompiledRule[] = ir.rules.map((r) => {
    const cumulative = new Float64Array(r.backends.length);
    let total = 0;
    r.backends.forEach((b, i) => {
      total += b.weight;
      cumulative[i] = total;
    });
    return { ir: r, cumulative, total };
  });
  const listeners: CompiledListener[] = ir.listeners.map((l, li) => ({
    ir: l,
    needsHost: l.entries.some((e) => e.hostname !== '*'),
    entries: l.entries.map((e): GatewayRouteMatch => ({
      kind: 'match', listener: li, entry: e, rule: rules[e.rule]!, prefix: e.pathType === 'PathPrefix' ? e.path : '',
      hostKind: e.hostname === '*' ? 2 : e.hostname.startsWith('*.') ? 1 : 0,
      host: e.hostname.startsWith('*.') ? e.hostname.slice(1) : e.hostname,
      pathKind: PATH_KIND[e.pathType], re: e.pathType === 'RegularExpression' ? anchored(e.path) : null,
      method: e.method, headers: e.headers.map(compileValue), query: e.queryParams.map(compileValue),
    })),
  }));
  const ports = new Map<number, CompiledPort>(ir.ports.map((p) => [p.port, {
    exact: new Map(p.exact), wildcard: p.wildcard, any: p.any, needsHost: p.exact.length > 0 || p.wildcard.length > 0,
  }]));
  return { ir, ports, listeners, rules };
}

/** The Host header without port, lower-cased (allocates only when it has to). */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* trailing . */) end--;
  const h = end === host.length ? host : host.slice(0, end);
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 65 && c <= 90) return h.toLowerCase();
  }
  return h;
}

function selectBy<T>(host: string, exact: Map<string, T>, wildcard: readonly { 0: string; 1: T }[] | null, any: T | null): T | null {
  const e = exact.get(host);
  if (e !== undefined) return e;
  if (wildcard !== null) {
    for (let i = 0; i < wildcard.length; i++) {
      const w = wildcard[i]!;
      if (host.length > w[0].length && host.endsWith(w[0])) return w[1];
    }
  }
  return any;
}

/**
 * The first value of query parameter `name` in a raw query string (no leading '?'), decoded, or
 * null when absent. The spec recommends matching the first value of a repeated parameter.
 */
export function queryValue(qs: string, name: string): string | null {
  let i = 0;
  while (i <= qs.length) {
    const amp = qs.indexOf('&', i);
    const end = amp < 0 ? qs.length : amp;
    if (qs.startsWith(name, i) && (i + name.length === end || qs.charCodeAt(i + name.length) === 61 /* = */)) {
      const v = i + name.length === end ? '' : qs.slice(i + name.length + 1, end);
      return v.indexOf('%') >= 0 || v.indexOf('+') >= 0 ? safeDecode(v.replace(/\+/g, ' ')) : v;
    }
    if (amp < 0) break;
    i = amp + 1;
  }
  return null;
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function pathMatches(m: GatewayRouteMatch, path: string): boolean {
  switch (m.pathKind) {
    case 0:
      return path === m.entry.path;
    case 1:
      return m.re!.test(path);
    default: {
      const p = m.prefix;
      // Element-wise: /abc matches /abc, /abc/ and /abc/def, never /abcd. '' (from '/') matches all.
      return p.length === 0 || (path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47));
    }
  }
}

function entryMatches(m: GatewayRouteMatch, host: string, method: string, path: string, header: (name: string) => string, query: string): boolean {
  if (m.hostKind === 0 ? host !== m.host : m.hostKind === 1 && !(host.length > m.host.length && host.endsWith(m.host))) return false;
  if (m.method !== '' && m.method !== method) return false;
  if (!pathMatches(m, path)) return false;
  for (let i = 0; i < m.headers.length; i++) {
    const h = m.headers[i]!;
    const v = header(h.name);
    if (v === '') return false;
    if (h.exact !== null ? v !== h.exact : !h.re!.test(v)) return false;
  }
  for (let i = 0; i < m.query.length; i++) {
    const q = m.query[i]!;
    const v = queryValue(query, q.name);
    if (v === null) return false;
    if (q.exact !== null ? v !== q.exact : !q.re!.test(v)) return false;
  }
  return true;
}

/**
 * The listener of GatewayIR.listeners that a request on `port` with this Host header reaches
 * (exact hostname, then longest wildcard, then the listener without hostname), or -1: no Gateway
 * listens there, or none accepts the Host.
 */
export function selectListener(g: CompiledGateway, port: number, host: string): number {
  const p = g.ports.get(port);
  if (p === undefined) return -1;
  const li = p.needsHost ? selectBy<number>(normalizeHost(host), p.exact, p.wildcard, p.any >= 0 ? p.any : null) : p.any;
  return li === null ? -1 : li;
}

/**
 * Selects the listener (by Host on the port), then the first entry, in precedence order, whose
 * predicates (route hostname, method, path, headers, query) all hold. `path` excludes the query
 * string; `query` is the raw query string without '?'.
 */
export function matchGateway(
  g: CompiledGateway, port: number, host: string, method: string, path: string, header: (lowerName: string) => string, query: string,
): GatewayRouteMatch | GatewayNoMatch {
  const p = g.ports.get(port);
  if (p === undefined) return NO_PORT;
  // The Host is normalized only when a hostname decides something: the common single-listener,
  // hostname-less setup never reads it.
  let h = p.needsHost ? normalizeHost(host) : '';
  const li = p.needsHost ? selectBy<number>(h, p.exact, p.wildcard, p.any >= 0 ? p.any : null) : p.any;
  if (li === null || li < 0) return NO_LISTENER;
  const l = g.listeners[li]!;
  if (l.needsHost && !p.needsHost) h = normalizeHost(host);
  const entries = l.entries;
  for (let i = 0; i < entries.length; i++) {
    const m = entries[i]!;
    if (entryMatches(m, h, method, path, header, query)) return m;
  }
  return NO_ROUTE;
}

/**
 * Weighted backend choice: `r` is a uniform random number in [0, 1). Returns an index into
 * rule.ir.backends, or -1 when the rule has no backend with a weight (answer rule.ir.directStatus).
 * A weight-0 backend is never chosen. An invalid backend may be chosen: its share answers 500.
 */
export function pickBackend(rule: CompiledRule, r: number): number {
  if (rule.total <= 0) return -1;
  const target = r * rule.total;
  const c = rule.cumulative;
  for (let i = 0; i < c.length; i++) if (target < c[i]!) return i;
  return c.length - 1;
}

/**
 * The HTTP status a request gets without reaching an endpoint, or 0 to schedule over
 * backend.endpoints (in-process or through the pool's Endpoint Picker): 500 for an invalid
 * backend, 503 for a backend with no ready endpoint.
 */
export function backendStatus(_g: CompiledGateway, b: BackendIR): number {
  if (b.kind === 'invalid') return b.status;
  return b.endpoints.length === 0 ? 503 : 0;
}

/** ReplaceFullPath / ReplacePrefixMatch (element-wise) applied to a path. */
export function modifyPath(mod: PathModifierIR, path: string, matchedPrefix: string): string {
  if (mod.type === 'ReplaceFullPath') return mod.value;
  const rest = path.slice(matchedPrefix.length);
  const base = mod.value.endsWith('/') ? mod.value.slice(0, -1) : mod.value;
  const out = base + rest;
  if (out === '') return '/';
  return out.charCodeAt(0) === 47 ? out : `/${out}`;
}

/**
 * The Location of a RequestRedirect (docs/reference/gateway-api.md §3.3): scheme and hostname default to the
 * request's; the port is the filter's, else the well-known port of a configured scheme, else the
 * listener port; it is left out when it is the scheme's well-known port.
 */
export function redirectLocation(
  r: RedirectIR, req: { scheme: 'http' | 'https'; host: string; path: string; query: string }, listenerPort: number, matchedPrefix: string,
): string {
  const scheme = r.scheme !== '' ? r.scheme : req.scheme;
  const host = r.hostname !== '' ? r.hostname : normalizeHost(req.host);
  const port = r.port !== 0 ? r.port : r.scheme !== '' ? (r.scheme === 'https' ? 443 : 80) : listenerPort;
  const path = r.path !== null ? modifyPath(r.path, req.path, matchedPrefix) : req.path;
  const wellKnown = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  const hostPort = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${hostPort}${wellKnown ? '' : `:${port}`}${path}${req.query !== '' ? `?${req.query}` : ''}`;
}

/**
 * A header modifier applied to a header list (names compared case-insensitively): removed and set
 * names are dropped, then set values written, then added values appended. Returns a new list.
 */
export function applyHeaderModifier(mod: HeaderModifierIR, headers: readonly [string, string][]): [string, string][] {
  const out: [string, string][] = [];
  for (const [n, v] of headers) {
    const ln = n.toLowerCase();
    if (mod.remove.includes(ln) || mod.set.some((s) => s[0] === ln)) continue;
    out.push([n, v]);
  }
  for (const s of mod.set) out.push([s[0], s[1]]);
  for (const a of mod.add) {
    const existing = out.findIndex((h) => h[0].toLowerCase() === a[0]);
    // Add appends to an existing header's value (HTTP list semantics), else creates it.
    if (existing >= 0) out[existing] = [out[existing]![0], `${out[existing]![1]},${a[1]}`];
    else out.push([a[0], a[1]]);
  }
  return out;
}
