/**
 * The traffic-level assertions of the Gateway API HTTPRoute conformance tests and of the Inference
 * Extension conformance tests (reference gateway-api.md §4), ported to the matcher: manifests ->
 * translateGateway -> compileGateway -> matchGateway / pickBackend / redirect and rewrite helpers.
 * "Backend X" in a conformance test becomes "the picked backend is Service X" here; the wire part
 * (sockets, echo servers) belongs to the end-to-end suite once the matcher is wired into workers.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadManifests } from '../helpers/gateway.js';
import { mergeConditions, translateGateway, type GatewayTranslateOptions } from '../../src/translator/gateway/index.js';
import {
  NO_LISTENER, NO_PORT, NO_ROUTE, applyHeaderModifier, backendStatus, compileGateway, matchGateway, modifyPath, normalizeHost, pickBackend,
  queryValue, redirectLocation, type CompiledGateway, type GatewayRouteMatch,
} from '../../workers/gateway-match.js';
import type { ResourceSet } from '../../src/resources/types.js';
import { parseGatewayObject } from '../../src/resources/validate.js';
import { parse } from 'yaml';

const OPTS: GatewayTranslateOptions = { enableGatewayApi: true, enableInferenceExtension: true, podNamespace: 'kthena-system', defaultPort: 8080 };
const testdata = (name: string): string => readFileSync(fileURLToPath(new URL(`../translator/gateway/testdata/${name}.in.yaml`, import.meta.url)), 'utf8');

function build(rs: ResourceSet, opts: GatewayTranslateOptions = OPTS): CompiledGateway {
  return compileGateway(translateGateway(rs, opts).ir);
}

interface Req {
  port?: number;
  host?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  query?: string;
}

function match(g: CompiledGateway, r: Req): ReturnType<typeof matchGateway> {
  // uWS hands header names lower-cased and answers '' for a missing header.
  const headers = new Map(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return matchGateway(g, r.port ?? 80, r.host ?? 'example.com', r.method ?? 'GET', r.path ?? '/', (n) => headers.get(n) ?? '', r.query ?? '');
}

function matched(g: CompiledGateway, r: Req): GatewayRouteMatch {
  const m = match(g, r);
  if (m.kind !== 'match') throw new Error(`expected a match for ${JSON.stringify(r)}, got ${m.kind}`);
  return m;
}

/** The single backend of the matched rule (or the one a 0.5 draw picks), as namespace/name. */
function backendOf(g: CompiledGateway, r: Req): string {
  const m = matched(g, r);
  const i = pickBackend(m.rule, 0.5);
  return i < 0 ? `direct:${m.rule.ir.directStatus}` : m.rule.ir.backends[i]!.key;
}

function ruleName(g: CompiledGateway, r: Req): string {
  const m = matched(g, r);
  return `${g.ir.routes[m.rule.ir.route]!.name}/${m.rule.ir.name}`;
}

/** mulberry32: a small seeded PRNG so that weight tests are deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('HTTPRouteMatchingAcrossRoutes (conformance)', () => {
  const g = build(loadManifests(testdata('matching-across-routes')));
  const ns = 'gateway-conformance-infra';
  it.each([
    [{ host: 'example.com', path: '/' }, 'infra-backend-v1'],
    [{ host: 'example.com', path: '/example' }, 'infra-backend-v1'],
    [{ host: 'example.net', path: '/example' }, 'infra-backend-v1'],
    [{ host: 'example.com', path: '/example', headers: { Version: 'one' } }, 'infra-backend-v1'],
    [{ host: 'example.com', path: '/v2' }, 'infra-backend-v2'],
    [{ host: 'example.net', path: '/v2' }, 'infra-backend-v1'], // v2 matches are limited to *.com
    [{ host: 'example.com', path: '/v2/example' }, 'infra-backend-v2'],
    [{ host: 'example.com', path: '/', headers: { Version: 'two' } }, 'infra-backend-v2'],
  ] as [Req, string][])('%j -> %s', (req, backend) => {
    expect(backendOf(g, req)).toBe(`${ns}/${backend}`);
  });

  it('answers 404 (no route) for a host no attached route serves', () => {
    expect(match(g, { host: 'example.org', path: '/' })).toBe(NO_ROUTE);
  });

  it('ignores the port in the Host header and its case', () => {
    expect(backendOf(g, { host: 'EXAMPLE.com:80', path: '/v2' })).toBe(`${ns}/infra-backend-v2`);
  });
});

/** The conformance base: Gateway same-namespace (HTTP :80, routes from Same) and infra-backend-v1..v3 Services. */
function conformanceInfra(routes: string): ResourceSet {
  const ns = 'gateway-conformance-infra';
  const backends = [1, 2, 3].map((v) => `
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v${v}, namespace: ${ns}}
spec: {selector: {app: infra-backend-v${v}}, ports: [{port: 8080, targetPort: 3000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: infra-backend-v${v}-0, namespace: ${ns}, labels: {app: infra-backend-v${v}}}
status: {phase: Running, podIP: 127.0.43.${100 + v}, conditions: [{type: Ready, status: "True"}]}
`).join('---');
  return loadManifests(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: ${ns}}
spec:
  gatewayClassName: kthena-router
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}]
---${backends}---
${routes}`);
}

describe('HTTPRouteHeaderMatching (conformance)', () => {
  const g = build(conformanceInfra(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: header-matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{headers: [{name: version, value: one}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: two}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{headers: [{name: version, value: two}, {name: color, value: orange}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: color, value: blue}]}, {headers: [{name: color, value: green}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: color, value: red}]}, {headers: [{name: color, value: yellow}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
`));
  it.each([
    [{ Version: 'one' }, 'infra-backend-v1'],
    [{ Version: 'two' }, 'infra-backend-v2'],
    [{ Version: 'two', Color: 'orange' }, 'infra-backend-v1'],
    [{ Version: 'two', Color: 'blue' }, 'infra-backend-v2'], // equal precedence: the first rule in list order
    [{ Color: 'orange' }, 404],
    [{ 'Some-Other-Header': 'one' }, 404],
    [{ Color: 'blue' }, 'infra-backend-v1'],
    [{ Color: 'green' }, 'infra-backend-v1'],
    [{ Color: 'red' }, 'infra-backend-v2'],
    [{ Color: 'yellow' }, 'infra-backend-v2'],
    [{ Color: 'purple' }, 404],
  ] as [Record<string, string>, string | number][])('%j -> %s', (headers, want) => {
    if (want === 404) expect(match(g, { headers })).toBe(NO_ROUTE);
    else expect(backendOf(g, { headers })).toBe(`gateway-conformance-infra/${want}`);
  });
});

describe('HTTPRouteQueryParamMatching (conformance expectations; rules reconstructed from them)', () => {
  const g = build(conformanceInfra(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: query-param-matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}, {name: color, value: blue}]}, {queryParams: [{name: ANIMAL, value: Whale}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: one}], queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
`));
  it.each([
    ['animal=whale', '/', {}, 'infra-backend-v1'],
    ['animal=dolphin', '/', {}, 'infra-backend-v2'],
    ['animal=dolphin&color=blue', '/', {}, 'infra-backend-v3'],
    ['ANIMAL=Whale', '/', {}, 'infra-backend-v3'], // names and values are case-sensitive
    ['animal=whale&otherparam=irrelevant', '/', {}, 'infra-backend-v1'],
    ['animal=dolphin&color=yellow', '/', {}, 'infra-backend-v2'],
    ['color=blue', '/', {}, 404],
    ['animal=dog', '/', {}, 404],
    ['animal=whaledolphin', '/', {}, 404],
    ['', '/', {}, 404],
    ['animal=whale', '/path1', {}, 'infra-backend-v1'],
    ['animal=whale', '/', { version: 'one' }, 'infra-backend-v2'],
  ] as [string, string, Record<string, string>, string | number][])('?%s on %s %j -> %s', (query, path, headers, want) => {
    if (want === 404) expect(match(g, { query, path, headers })).toBe(NO_ROUTE);
    else expect(backendOf(g, { query, path, headers })).toBe(`gateway-conformance-infra/${want}`);
  });
});

describe('HTTPRouteMethodMatching', () => {
  const g = build(conformanceInfra(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: method-matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{method: POST}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{method: GET}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, method: GET}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
`));
  it.each([
    ['POST', '/', 'infra-backend-v1'],
    ['GET', '/', 'infra-backend-v2'],
    ['GET', '/path1', 'infra-backend-v3'],
    ['POST', '/path1', 'infra-backend-v1'],
    ['HEAD', '/', 404],
  ] as [string, string, string | number][])('%s %s -> %s', (method, path, want) => {
    if (want === 404) expect(match(g, { method, path })).toBe(NO_ROUTE);
    else expect(backendOf(g, { method, path })).toBe(`gateway-conformance-infra/${want}`);
  });
});

describe('match precedence across routes (HTTPRoutePathMatchOrder, HTTPRouteMatching, method/header/query matching)', () => {
  const g = build(loadManifests(testdata('precedence')));
  const port = 8081;
  it.each([
    [{ method: 'POST', path: '/v1/chat/completions' }, 'older/exact'],
    [{ path: '/v1/chat/completions/' }, 'newer/prefix-v1'], // Exact does not match a trailing slash
    [{ path: '/v1/models/llama' }, 'older/regex'],
    [{ path: '/v1/models/Llama' }, 'newer/prefix-v1'], // the regex must match the whole path
    [{ path: '/x/v1/models/llama' }, 'newer/catch-all'],
    [{ method: 'POST', path: '/v1/embeddings' }, 'older/method-post'],
    [{ method: 'POST', path: '/v1' }, 'older/method-post'],
    [{ path: '/v1/embeddings', headers: { 'X-Tier': 'gold', 'X-Region': 'eu-west' }, query: 'debug=1' }, 'older/headers-and-query'],
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'gold', 'x-region': 'eu-west' }, query: 'a=b&debug=1&debug=2' }, 'older/headers-and-query'],
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'gold', 'x-region': 'eu-west' }, query: 'debug=2&debug=1' }, 'newer/prefix-v1'], // first value counts
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'Gold', 'x-region': 'eu-west' }, query: 'debug=1' }, 'newer/prefix-v1'], // values are case-sensitive
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'ignored-duplicate', 'x-region': 'eu-west' }, query: 'debug=1' }, 'newer/prefix-v1'], // only the first of equivalent names
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'gold', 'x-region': 'us-east' }, query: 'debug=1' }, 'newer/prefix-v1'],
    [{ path: '/v1/embeddings', headers: { 'x-tier': 'gold', 'x-region': 'eu-west' } }, 'newer/prefix-v1'],
    [{ method: 'POST', path: '/v1/embeddings', headers: { 'x-tier': 'gold', 'x-region': 'eu-west' }, query: 'debug=1' }, 'older/method-post'], // method outranks headers
    [{ path: '/v1' }, 'newer/prefix-v1'], // "/v1/" as a prefix matches /v1 (trailing slash ignored)
    [{ path: '/v1x' }, 'newer/catch-all'], // element-wise: /v1 does not match /v1x
    [{ path: '/tie' }, 'older/same-as-newer'], // equal matches: the oldest route wins
    [{ path: '/tie/more' }, 'older/same-as-newer'],
  ] as [Req, string][])('%j -> %s', (req, name) => {
    expect(ruleName(g, { port, host: 'any.example', ...req })).toBe(name);
  });
});

describe('listener and hostname selection (HTTPRouteListenerHostnameMatching, HTTPRouteHostnameIntersection)', () => {
  const g = build(loadManifests(testdata('hostnames')));
  const port = 8082;
  const listenerOf = (host: string): string => {
    const m = matched(g, { port, host, path: '/' });
    return g.ir.listeners[m.listener]!.name;
  };

  it('picks the exact listener, then the longest wildcard, then the one without hostname', () => {
    expect(listenerOf('foo.example.com')).toBe('exact-foo');
    expect(listenerOf('FOO.Example.com:8082')).toBe('exact-foo');
    expect(listenerOf('x.example.com')).toBe('wildcard');
    expect(listenerOf('a.b.example.com')).toBe('wildcard');
    expect(listenerOf('example.com')).toBe('any'); // a wildcard never matches its apex
    expect(listenerOf('bar.com')).toBe('bar');
    expect(listenerOf('unknown.net')).toBe('any');
  });

  it('serves a route only under the hostnames it shares with the listener', () => {
    expect(backendOf(g, { port, host: 'a.b.example.com' })).toBe('infra/v2'); // r-specific, exact beats r-any's wildcard
    expect(backendOf(g, { port, host: 'x.example.com' })).toBe('infra/v1'); // only r-any
    expect(backendOf(g, { port, host: 'other.org' })).toBe('infra/v2'); // r-specific via the hostname-less listener
    expect(backendOf(g, { port, host: 'bar.com' })).toBe('infra/v1'); // r-specific does not intersect bar.com
    expect(backendOf(g, { port, host: 'foo.example.com', path: '/wild/x' })).toBe('infra/v3'); // *.example.com on foo.example.com
    expect(backendOf(g, { port, host: 'x.example.com', path: '/wild/x' })).toBe('infra/v1'); // attached to exact-foo only
  });

  it('attaches by port (parentRef.port) to every listener on it', () => {
    for (const host of ['foo.example.com', 'x.example.com', 'bar.com', 'zzz.io']) {
      expect(backendOf(g, { port, host, path: '/by-port' })).toBe('infra/v3');
    }
  });

  it('answers no-port and no-listener', () => {
    expect(match(g, { port: 9999, host: 'foo.example.com' })).toBe(NO_PORT);
    const strict = build(loadManifests(testdata('reference-grant')));
    expect(match(strict, { port: 8083, host: 'nope.example.com' })).toBe(NO_LISTENER);
  });

  it('normalizes Host: port, case, trailing dot, IPv6 literal', () => {
    expect(normalizeHost('Foo.Example.COM:8080')).toBe('foo.example.com');
    expect(normalizeHost('foo.example.com.')).toBe('foo.example.com');
    expect(normalizeHost('[::1]:8080')).toBe('[::1]');
    const h = 'already.lower';
    expect(normalizeHost(h)).toBe(h);
  });
});

describe('weights (HTTPRouteWeight, GatewayWeightedAcrossTwoInferencePools)', () => {
  it('splits 3:1:0 between Services with a seeded rng, never picking a weight-0 backend', () => {
    const g = build(loadManifests(testdata('filters')));
    const m = matched(g, { port: 8086, host: 'filters.example.com', path: '/headers' });
    const next = rng(42);
    const counts = new Map<string, number>();
    const n = 10000;
    for (let i = 0; i < n; i++) {
      const b = m.rule.ir.backends[pickBackend(m.rule, next())]!.key;
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
    expect(counts.get('infra/v3')).toBeUndefined();
    expect(Math.abs(counts.get('infra/v1')! / n - 0.75)).toBeLessThan(0.02);
    expect(Math.abs(counts.get('infra/v2')! / n - 0.25)).toBeLessThan(0.02);
  });

  it('splits 70/30 across two InferencePools within the GIE tolerance, every hit on a pod of the chosen pool', () => {
    const g = build(loadManifests(testdata('inference-pool')));
    const m = matched(g, { port: 8084, host: 'whatever', method: 'POST', path: '/v1/completions' });
    const next = rng(7);
    let a = 0;
    const n = 200;
    for (let i = 0; i < n; i++) {
      const b = m.rule.ir.backends[pickBackend(m.rule, next())]!;
      expect(b.kind).toBe('pool');
      const pool = g.ir.pools[b.pool]!;
      expect(b.endpoints).toEqual(pool.endpoints);
      for (const e of b.endpoints) expect(g.ir.endpoints[e]!.pod.startsWith(pool.name === 'pool-a' ? 'a-' : 'b-')).toBe(true);
      if (pool.name === 'pool-a') a++;
    }
    // GIE: |observed - expected| <= max(0.10, 4.5 sigma) of the share.
    const sigma = Math.sqrt(0.7 * 0.3 / n);
    expect(Math.abs(a / n - 0.7)).toBeLessThanOrEqual(Math.max(0.10, 4.5 * sigma));
  });

  it('maps boundary draws to the right backend', () => {
    const g = build(loadManifests(testdata('filters')));
    const m = matched(g, { port: 8086, host: 'filters.example.com', path: '/headers' });
    expect(pickBackend(m.rule, 0)).toBe(0);
    expect(pickBackend(m.rule, 0.7499)).toBe(0);
    expect(pickBackend(m.rule, 0.75)).toBe(1);
    expect(pickBackend(m.rule, 0.999999)).toBe(1);
  });
});

describe('redirects and rewrites (HTTPRouteRedirect*, HTTPRouteRewrite*)', () => {
  const g = build(loadManifests(testdata('filters')));
  const host = 'filters.example.com';
  const locate = (path: string, query = '', listenerPort = 80): { status: number; location: string } => {
    const m = matched(g, { port: 8086, host, path, query });
    const r = m.rule.ir.filters.redirect!;
    return { status: r.statusCode, location: redirectLocation(r, { scheme: 'http', host: `${host}:8086`, path, query }, listenerPort, m.prefix) };
  };

  it('HTTPRouteRedirectHostAndStatus: hostname replaced, 302 by default, path and query kept', () => {
    expect(locate('/hostname-redirect', 'a=1')).toEqual({ status: 302, location: 'http://example.org/hostname-redirect?a=1' });
    // Scheme unset: the listener port is used, and shown when it is not the scheme's well-known port.
    expect(locate('/hostname-redirect', '', 8086)).toEqual({ status: 302, location: 'http://example.org:8086/hostname-redirect' });
  });

  it('HTTPRouteRedirectScheme: the scheme implies its well-known port', () => {
    expect(locate('/scheme-redirect', '', 8086)).toEqual({ status: 301, location: 'https://filters.example.com/scheme-redirect' });
  });

  it('HTTPRouteRedirectPort: an explicit port', () => {
    expect(locate('/port-redirect')).toEqual({ status: 308, location: 'http://filters.example.com:8083/port-redirect' });
  });

  it('HTTPRouteRedirectPath: ReplacePrefixMatch replaces whole path elements', () => {
    expect(locate('/original-prefix/lemon').location).toBe('http://filters.example.com/replacement-prefix/lemon');
    expect(locate('/original-prefix').location).toBe('http://filters.example.com/replacement-prefix');
  });

  it('redirect rules have no backends and are not 500s', () => {
    const m = matched(g, { port: 8086, host, path: '/hostname-redirect' });
    expect(m.rule.ir.backends).toEqual([]);
    expect(m.rule.ir.directStatus).toBe(0);
  });

  it('HTTPRouteRewriteHost / HTTPRouteRewritePath', () => {
    const full = matched(g, { port: 8086, host, path: '/full/two' });
    expect(full.rule.ir.filters.rewrite!.hostname).toBe('one.example.org');
    expect(modifyPath(full.rule.ir.filters.rewrite!.path!, '/full/two', full.prefix)).toBe('/one');
    const strip = matched(g, { port: 8086, host, path: '/strip-prefix/three' });
    expect(modifyPath(strip.rule.ir.filters.rewrite!.path!, '/strip-prefix/three', strip.prefix)).toBe('/three');
    expect(modifyPath(strip.rule.ir.filters.rewrite!.path!, '/strip-prefix', strip.prefix)).toBe('/');
    expect(modifyPath(strip.rule.ir.filters.rewrite!.path!, '/strip-prefix/', strip.prefix)).toBe('/');
    // The remaining conformance cases, on the helper directly.
    const prefix = (value: string) => ({ type: 'ReplacePrefixMatch' as const, value });
    expect(modifyPath(prefix('/one'), '/prefix/one/two', '/prefix/one')).toBe('/one/two');
    expect(modifyPath(prefix('/xyz/'), '/prefix/abc', '/prefix')).toBe('/xyz/abc');
    expect(modifyPath(prefix('/xyz'), '/prefix', '/prefix')).toBe('/xyz');
  });
});

describe('header modifiers (HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier, backend filters)', () => {
  const g = build(loadManifests(testdata('filters')));
  const m = matched(g, { port: 8086, host: 'filters.example.com', path: '/headers' });

  it('sets (overwrites), adds (appends) and removes, names case-insensitive', () => {
    const out = applyHeaderModifier(m.rule.ir.filters.requestHeaders!, [
      ['Some-Other-Header', 'val'], ['X-Header-Set', 'some-other-value'], ['x-header-add', 'something'], ['X-Header-Remove', 'val'],
    ]);
    expect(out).toEqual([['Some-Other-Header', 'val'], ['x-header-add', 'something,add-appends-values'], ['x-header-set', 'set-overwrites-values']]);
    expect(applyHeaderModifier(m.rule.ir.filters.requestHeaders!, [])).toEqual([['x-header-set', 'set-overwrites-values'], ['x-header-add', 'add-appends-values']]);
  });

  it('keeps response and per-backend modifiers apart', () => {
    expect(m.rule.ir.filters.responseHeaders).toEqual({ set: [], add: [['x-response', 'yes']], remove: [] });
    expect(m.rule.ir.backends.map((b) => b.requestHeaders)).toEqual([{ set: [['x-backend', 'v1']], add: [], remove: [] }, null, null]);
  });

  it('carries the route timeouts', () => {
    expect([m.rule.ir.requestTimeoutMs, m.rule.ir.backendRequestTimeoutMs]).toEqual([90000, 500]);
  });
});

describe('invalid backends and empty rules (HTTPRouteNoBackendRefs, HTTPRouteInvalidBackendRefUnknownKind, AllBackendsWeightZero)', () => {
  const g = build(loadManifests(testdata('invalid-objects')));
  const on = (path: string) => matched(g, { port: 9102, host: 'x', path });

  it('answers 500 for a rule without backendRefs and for all weights 0', () => {
    for (const p of ['/no-backends', '/zero']) {
      const m = on(p);
      expect(pickBackend(m.rule, 0.3)).toBe(-1);
      expect(m.rule.ir.directStatus).toBe(500);
    }
  });

  it('answers 500 for a backend of unknown kind or a missing Service port', () => {
    for (const p of ['/unknown-kind', '/wrong-port']) {
      const m = on(p);
      expect(backendStatus(g, m.rule.ir.backends[pickBackend(m.rule, 0.3)]!)).toBe(500);
    }
  });

  it('serves nothing for a dropped rule (unsupported filter) while the rest of the route serves', () => {
    expect(match(g, { port: 9102, host: 'x', path: '/mirror' })).toBe(NO_ROUTE);
    expect(on('/zero').rule.ir.ruleIndex).toBe(3); // the rules after the dropped one still serve
  });

  it('does not program conflicting or invalid listeners, and serves the HTTPS one with its certificate', () => {
    expect(match(g, { port: 9100, host: 'x' })).toBe(NO_PORT); // TCP
    expect(match(g, { port: 9101, host: 'x' })).toBe(NO_PORT); // no HTTPRoute kind
    expect(match(g, { port: 9104, host: 'x' })).toBe(NO_PORT); // Gateway with spec.addresses
    expect(match(g, { port: 9443, host: 'missing.example.com' })).toBe(NO_LISTENER);
    const https = g.ir.ports.find((p) => p.port === 9443)!;
    expect(https.protocol).toBe('HTTPS');
    expect(g.ir.listeners.filter((l) => l.port === 9443).map((l) => [l.name, l.certificates])).toEqual([['https-ok', ['infra/tls-ok']]]);
  });
});

describe('cross-namespace references (HTTPRouteReferenceGrant, HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteCrossNamespace)', () => {
  const rs = loadManifests(testdata('reference-grant'));
  const g = build(rs);

  it('forwards to a Service another namespace grants, answers 500 for one it does not', () => {
    const granted = matched(g, { port: 8083, host: 'all.example.com', path: '/granted' });
    const b = granted.rule.ir.backends[0]!;
    expect([b.kind, b.key, backendStatus(g, b)]).toEqual(['service', 'backends/app', 0]);
    expect(b.endpoints.map((e) => `${g.ir.endpoints[e]!.ip}:${g.ir.endpoints[e]!.port}`)).toEqual(['127.0.43.51:8000']);
    const refused = matched(g, { port: 8083, host: 'all.example.com', path: '/not-granted' });
    expect([refused.rule.ir.backends[0]!.reason, backendStatus(g, refused.rule.ir.backends[0]!)]).toEqual(['RefNotPermitted', 500]);
  });

  it('without the ReferenceGrant, the granted backend is refused too', () => {
    const without = build({ ...rs, referenceGrants: [] });
    const m = matched(without, { port: 8083, host: 'all.example.com', path: '/granted' });
    expect(backendStatus(without, m.rule.ir.backends[0]!)).toBe(500);
    const st = translateGateway({ ...rs, referenceGrants: [] }, OPTS).statuses.httpRoutes.find((r) => r.name === 'granted')!;
    expect(st.status.parents[0]!.conditions.find((c) => c.type === 'ResolvedRefs')!.reason).toBe('RefNotPermitted');
  });

  it('attaches a route from another namespace only where allowedRoutes lets it', () => {
    expect(match(g, { port: 8083, host: 'same.example.com', path: '/granted' })).toBe(NO_ROUTE); // from: Same
    expect(backendOf(g, { port: 8083, host: 'selected.example.com', path: '/granted' })).toBe('backends/app'); // label selector
    expect(backendOf(g, { port: 8083, host: 'by-name.example.com', path: '/' })).toBe('other/local'); // kubernetes.io/metadata.name
  });
});

describe('lifecycle: a Gateway created after its HTTPRoute, a route whose Gateway disappears', () => {
  const gateway = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: late, namespace: infra}
spec:
  gatewayClassName: kthena-router
  listeners: [{name: http, port: 8089, protocol: HTTP}]
`;
  const rest = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: early, namespace: infra}
spec:
  parentRefs: [{name: late}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, namespace: infra}
spec: {selector: {matchLabels: {app: pool}}, targetPorts: [{number: 8000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: p-0, namespace: infra, labels: {app: pool}}
status: {phase: Running, podIP: 127.0.43.91, conditions: [{type: Ready, status: "True"}]}
`;
  const withoutGw = loadManifests(rest);
  const withGw = loadManifests(`${gateway}---${rest}`);

  it('routes once the Gateway appears, with statuses on route, Gateway and pool', () => {
    const before = translateGateway(withoutGw, OPTS);
    expect(match(compileGateway(before.ir), { port: 8089 })).toBe(NO_PORT);
    expect(before.statuses.httpRoutes).toEqual([{ namespace: 'infra', name: 'early', generation: 1, status: { parents: [] } }]);
    expect(before.statuses.inferencePools[0]!.status.parents).toEqual([]);
    // A route no listener of ours accepts costs nothing: no rule, pool or endpoint (slot, scrape).
    expect([before.ir.routes, before.ir.rules, before.ir.pools, before.ir.endpoints]).toEqual([[], [], [], []]);

    const after = translateGateway(withGw, OPTS);
    expect(backendOf(compileGateway(after.ir), { port: 8089, path: '/anything' })).toBe('infra/pool');
    expect(after.ir.endpoints.map((e) => e.key)).toEqual(['infra/p-0:8000']);
    expect(after.statuses.httpRoutes[0]!.status.parents.map((p) => p.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)))
      .toEqual([['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']]);
    expect(after.statuses.gateways.find((s) => s.name === 'late')!.status.listeners[0]!.attachedRoutes).toBe(1);
    expect(after.statuses.inferencePools[0]!.status.parents.map((p) => [p.parentRef.name, p.conditions[0]!.reason])).toEqual([['late', 'Accepted']]);
  });

  it('stops routing and drops every parent status when the Gateway goes away', () => {
    const gone = translateGateway(withoutGw, OPTS);
    expect(match(compileGateway(gone.ir), { port: 8089 })).toBe(NO_PORT);
    expect(gone.statuses.httpRoutes[0]!.status.parents).toEqual([]);
    expect(gone.statuses.inferencePools[0]!.status.parents).toEqual([]);
  });
});

describe('Inference Extension (InferencePoolResolvedRefsCondition, HTTPRouteInvalidInferencePoolRef, multi-port targets, failureMode)', () => {
  const rs = loadManifests(testdata('inference-pool'));
  const out = translateGateway(rs, OPTS);
  const g = compileGateway(out.ir);

  it('gives one endpoint per podIP:targetPort, Ready pods only, and ignores backendRef.port', () => {
    const pool = out.ir.pools.find((p) => p.name === 'pool-a')!;
    expect(pool.endpoints.map((e) => `${out.ir.endpoints[e]!.ip}:${out.ir.endpoints[e]!.port}`)).toEqual([
      '127.0.43.61:8000', '127.0.43.61:8001', '127.0.43.61:8002', '127.0.43.62:8000', '127.0.43.62:8001', '127.0.43.62:8002',
    ]);
    const b = out.ir.pools.find((p) => p.name === 'pool-b')!;
    expect([b.appProtocol, b.endpoints.map((e) => out.ir.endpoints[e]!.port)]).toEqual(['kubernetes.io/h2c', [9000]]);
  });

  it('isolates two Gateways and keys pool parents by Gateway; removing routes removes parents', () => {
    expect(backendOf(g, { port: 8085, host: 'secondary.example.com', path: '/x' })).toBe('app/pool-a');
    expect(match(g, { port: 8085, host: 'primary.example.com', path: '/x' })).toBe(NO_LISTENER);
    const parents = (set: ResourceSet) => translateGateway(set, OPTS).statuses.inferencePools.find((p) => p.name === 'pool-a')!.status.parents.map((p) => p.parentRef.name);
    expect(parents(rs)).toEqual(['primary', 'secondary']);
    expect(parents({ ...rs, httpRoutes: rs.httpRoutes!.filter((r) => r.metadata.name !== 'on-secondary') })).toEqual(['primary']);
    expect(parents({ ...rs, httpRoutes: [] })).toEqual([]);
  });

  it('reports a missing pool as BackendNotFound with the route still Accepted, and answers 500', () => {
    const route = out.statuses.httpRoutes.find((r) => r.name === 'weighted')!.status.parents[0]!;
    expect(route.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound']);
    const m = matched(g, { port: 8084, host: 'x', path: '/missing' });
    expect(backendStatus(g, m.rule.ir.backends[0]!)).toBe(500);
  });

  it('schedules every pool in-process by default, whatever endpointPickerRef names, and says so in the status', () => {
    for (const path of ['/fail-close', '/fail-open']) {
      const m = matched(g, { port: 8084, host: 'x', path });
      expect(backendStatus(g, m.rule.ir.backends[0]!)).toBe(0);
    }
    expect(out.ir.pools.map((p) => [p.name, p.picker, p.epp])).toEqual([
      ['pool-a', 'in-process', null], ['pool-b', 'in-process', null], ['pool-epp-missing', 'in-process', null], ['pool-fail-open', 'in-process', null],
    ]);
    const conds = out.statuses.inferencePools.find((p) => p.name === 'pool-epp-missing')!.status.parents[0]!.conditions;
    expect(conds.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
    expect(conds[0]!.message).toContain('picked in-process');
    expect(conds[1]!.message).toContain('endpointPickerRef app/no-such-epp is not called');
  });

  it('with the external picker, resolves the EPP Service to its ready pods, and a missing one to ResolvedRefs=False', () => {
    const ext = translateGateway(rs, { ...OPTS, inferencePoolPicker: 'external' });
    const pool = (n: string) => ext.ir.pools.find((p) => p.name === n)!;
    expect(pool('pool-a').picker).toBe('in-process');
    expect(pool('pool-epp-missing').epp).toEqual({ service: 'app/no-such-epp', addresses: [], dns: '', failOpen: false, unresolved: 'endpointPickerRef Service app/no-such-epp not found' });
    expect(pool('pool-fail-open').epp).toEqual({ service: 'app/epp', addresses: ['127.0.43.70:9002'], dns: '', failOpen: true, unresolved: '' });
    const conds = (n: string) => ext.statuses.inferencePools.find((p) => p.name === n)!.status.parents[0]!.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`);
    expect(conds('pool-epp-missing')).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=False/InvalidExtensionRef']);
    expect(conds('pool-fail-open')).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
  });

  it('answers 503 for a valid pool without ready endpoints', () => {
    const noPods = compileGateway(translateGateway({ ...rs, pods: [] }, OPTS).ir);
    const m = matched(noPods, { port: 8085, host: 'secondary.example.com' });
    expect(backendStatus(noPods, m.rule.ir.backends[0]!)).toBe(503);
  });

  it('attaches InferenceObjectives from both API groups, by poolRef, poolRefs and poolSelector', () => {
    expect(out.ir.pools.map((p) => [p.name, p.objectives.map((o) => `${o.name}:${o.priority}`)])).toEqual([
      ['pool-a', ['critical:10', 'sheddable:-1']],
      ['pool-b', ['batch-default:0', 'sheddable:-1']],
      ['pool-epp-missing', []],
      ['pool-fail-open', []],
    ]);
  });
});

describe('ModelRoute binding per Gateway (Kthena §6.3)', () => {
  const { ir } = translateGateway(loadManifests(testdata('modelroute-binding')), OPTS);
  const models = (gw: string) => Object.fromEntries(ir.gateways.find((g) => g.name === gw)!.models.map((m) => [m.name, m.routes]));

  it('isolates the same model name on two Gateways', () => {
    expect(models('tenant-a').llama).toEqual(['team/llama-a-older', 'kthena-system/llama-a']);
    expect(models('tenant-b').llama).toEqual(['kthena-system/llama-b']);
    expect(models('tenant-a')['sql-lora']).toEqual(['kthena-system/llama-a']);
  });

  it('binds a route without parentRefs to every Gateway of its namespace only', () => {
    expect(models('default').qwen).toEqual(['kthena-system/no-parents']);
    expect(models('tenant-b').qwen).toEqual(['kthena-system/no-parents']);
    expect(models('default').llama).toBeUndefined();
  });
});

describe('status conditions', () => {
  it('carries observedGeneration from the object generation', () => {
    const raw = parse(testdata('filters').split('---')[0]!) as Record<string, unknown>;
    const v1 = parseGatewayObject(raw, { file: 'x', now: () => '2025-01-01T00:00:00Z' }).resource!;
    const spec = raw.spec as { listeners: { port: number }[] };
    spec.listeners[0]!.port = 8099;
    const v2 = parseGatewayObject(raw, { file: 'x', now: () => '2025-01-01T00:00:00Z', previous: v1 }).resource!;
    expect(v2.metadata.generation).toBe(2);
    const st = translateGateway({ modelRoutes: [], modelServers: [], pods: [], gateways: [v2 as never] }, OPTS).statuses.gateways.find((s) => s.name === 'gw')!;
    expect(st.generation).toBe(2);
    expect([...st.status.conditions, ...st.status.listeners[0]!.conditions].every((c) => c.observedGeneration === 2)).toBe(true);
  });

  it('keeps lastTransitionTime while a condition status holds, stamps now when it flips', () => {
    const prev = [
      { type: 'Accepted', status: 'True' as const, reason: 'Accepted', message: 'm', observedGeneration: 1, lastTransitionTime: 'T0' },
      { type: 'ResolvedRefs', status: 'True' as const, reason: 'ResolvedRefs', message: 'm', observedGeneration: 1, lastTransitionTime: 'T0' },
    ];
    const next = [
      { type: 'Accepted', status: 'True' as const, reason: 'Accepted', message: 'm', observedGeneration: 2 },
      { type: 'ResolvedRefs', status: 'False' as const, reason: 'BackendNotFound', message: 'x', observedGeneration: 2 },
    ];
    expect(mergeConditions(prev, next, 'T1').map((c) => [c.type, c.lastTransitionTime, c.observedGeneration])).toEqual([['Accepted', 'T0', 2], ['ResolvedRefs', 'T1', 2]]);
  });

  it('owns nothing with --enable-gateway-api off', () => {
    const out = translateGateway(loadManifests(testdata('matching-across-routes')), { ...OPTS, enableGatewayApi: false });
    expect(out.ir.ports).toEqual([]);
    expect(out.statuses).toEqual({ gatewayClasses: [], gateways: [], httpRoutes: [], inferencePools: [] });
    expect(out.bootstrap).toEqual([]);
  });

  it('leaves Gateways of another controller alone', () => {
    const out = translateGateway(loadManifests(testdata('invalid-objects')), OPTS);
    expect(out.statuses.gateways.map((g) => g.name)).not.toContain('not-ours');
    expect(out.statuses.gatewayClasses.map((c) => c.name)).toEqual(['kthena-router']);
  });
});

describe('queryValue', () => {
  it('finds the first value, decodes it, distinguishes names that share a prefix', () => {
    expect(queryValue('a=1&ab=2&a=3', 'a')).toBe('1');
    expect(queryValue('ab=2&a=3', 'a')).toBe('3');
    expect(queryValue('x=hello%20world&y=a+b', 'x')).toBe('hello world');
    expect(queryValue('x=hello%20world&y=a+b', 'y')).toBe('a b');
    expect(queryValue('flag&z=1', 'flag')).toBe('');
    expect(queryValue('', 'a')).toBeNull();
    expect(queryValue('bad=%E0%A4%A', 'bad')).toBe('%E0%A4%A');
  });
});
