/**
 * Validation and defaulting of Gateway API, Inference Extension and core manifests
 * (src/resources/validate.ts, kinds in src/resources/validate/kinds/): what the API server would default, and the CRD schema and
 * CEL rules it would refuse, with the CRDs' messages.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gatewayIdentityOf, isGatewayManifest, parseGatewayObject, toFullResourceSet } from '../../src/resources/validate.js';
import { gepDurationMs } from '../../src/util/duration.js';
import type { Gateway, HTTPRoute, InferenceObjective, InferencePool, Secret, Service } from '../../src/resources/gateway.js';
import { FileProvider, type FileSnapshot } from '../../src/provider/file/index.js';

const NOW = '2025-01-01T00:00:00Z';
type Obj = Record<string, unknown>;

function parse(raw: Obj) {
  return parseGatewayObject(raw, { file: 't.yaml', now: () => NOW });
}
function accepted<T>(raw: Obj): T {
  const r = parse(raw);
  expect(r.problems).toEqual([]);
  return r.resource as T;
}
function rejected(raw: Obj): [string, string][] {
  const r = parse(raw);
  expect(r.resource).toBeUndefined();
  return r.problems.map((p) => [p.field, p.message]);
}

const route = (spec: Obj): Obj => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns' }, spec });
const gateway = (listeners: Obj[], extra: Obj = {}): Obj => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'ns' }, spec: { gatewayClassName: 'kthena-router', listeners, ...extra },
});
const pool = (spec: Obj): Obj => ({ apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', metadata: { name: 'p', namespace: 'ns' }, spec });

describe('kinds and identities', () => {
  it('recognises the served group/versions only', () => {
    expect(isGatewayManifest({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'HTTPRoute' })).toBe(true);
    expect(isGatewayManifest({ apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferenceObjective' })).toBe(true);
    expect(isGatewayManifest({ apiVersion: 'llm-d.ai/v1alpha2', kind: 'InferenceObjective' })).toBe(true);
    expect(isGatewayManifest({ apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferencePool' })).toBe(false);
    expect(isGatewayManifest({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'TCPRoute' })).toBe(false);
  });

  it('gives cluster-scoped kinds an empty namespace', () => {
    expect(gatewayIdentityOf({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'c', namespace: 'x' } })?.key).toBe('GatewayClass//c');
    expect(gatewayIdentityOf({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } })?.key).toBe('Service/default/s');
  });
});

describe('HTTPRoute defaults', () => {
  it('defaults rules, matches, parentRef group/kind, backendRef group/kind/weight, header match type, redirect status', () => {
    const r = accepted<HTTPRoute>(route({
      parentRefs: [{ name: 'gw' }],
      hostnames: ['Example.COM'.toLowerCase()],
      rules: [
        { backendRefs: [{ name: 's', port: 80 }] },
        { matches: [{ headers: [{ name: 'x', value: 'y' }] }], filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'a.b' } }] },
      ],
    }));
    expect(r.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }]);
    expect(r.spec.rules[0]!.matches).toEqual([{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
    expect(r.spec.rules[0]!.backendRefs).toEqual([{ group: '', kind: 'Service', name: 's', port: 80, weight: 1, filters: [] }]);
    expect(r.spec.rules[1]!.matches[0]!.headers).toEqual([{ type: 'Exact', name: 'x', value: 'y' }]);
    expect(r.spec.rules[1]!.filters[0]!.requestRedirect!.statusCode).toBe(302);
    expect(accepted<HTTPRoute>(route({})).spec.rules).toHaveLength(1);
  });

  it('parses timeouts (GEP-2257)', () => {
    const r = accepted<HTTPRoute>(route({ rules: [{ timeouts: { request: '1h2m3s4ms', backendRequest: '0s' } }] }));
    expect(r.spec.rules[0]!.timeouts).toEqual({ requestMs: 3723004, backendRequestMs: 0 });
    expect(gepDurationMs('500ms')).toBe(500);
  });
});

describe('HTTPRoute CEL rules', () => {
  it.each([
    ['a relative path', { rules: [{ matches: [{ path: { type: 'Exact', value: 'abc' } }] }] },
      'spec.rules[0].matches[0].path', "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"],
    ['a // in a prefix', { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a//b' } }] }] },
      'spec.rules[0].matches[0].path', "must not contain '//' when type one of ['Exact', 'PathPrefix']"],
    ['a redirect beside backendRefs', { rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: {} }], backendRefs: [{ name: 's', port: 1 }] }] },
      'spec.rules[0]', 'RequestRedirect filter must not be used together with backendRefs'],
    ['a Service backendRef without port', { rules: [{ backendRefs: [{ name: 's' }] }] },
      'spec.rules[0].backendRefs[0]', 'Must have port for Service reference'],
    ['ReplacePrefixMatch without a single PathPrefix match', { rules: [{ matches: [{ path: { type: 'Exact', value: '/a' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }], backendRefs: [{ name: 's', port: 1 }] }] },
      'spec.rules[0]', 'When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified'],
    ['a repeated filter', { rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: {} }, { type: 'RequestHeaderModifier', requestHeaderModifier: {} }] }] },
      'spec.rules[0].filters', 'RequestHeaderModifier filter cannot be repeated'],
    ['a filter body that does not match its type', { rules: [{ filters: [{ type: 'URLRewrite', requestHeaderModifier: {} }] }] },
      'spec.rules[0].filters[0]', 'filter.requestHeaderModifier must be nil if the filter.type is not RequestHeaderModifier'],
    ['backendRequest longer than request', { rules: [{ timeouts: { request: '1s', backendRequest: '2s' } }] },
      'spec.rules[0].timeouts', 'backendRequest timeout cannot be longer than request timeout'],
    ['an unsupported redirect status', { rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 304 } }] }] },
      'spec.rules[0].filters[0].requestRedirect.statusCode', 'Unsupported value: 304: supported values: 301, 302, 303, 307, 308'],
    ['a regex RE2 refuses', { rules: [{ matches: [{ path: { type: 'RegularExpression', value: '(?=x)' } }] }] },
      'spec.rules[0].matches[0].path.value', 'error parsing regexp: invalid or unsupported Perl syntax: `(?=`'],
    ['the same parent twice without sectionName', { parentRefs: [{ name: 'gw' }, { name: 'gw', sectionName: 'a' }] },
      'spec.parentRefs', 'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent'],
    ['a bad hostname', { hostnames: ['Upper.example.com'] },
      'spec.hostnames[0]', `Invalid value: "Upper.example.com": should match '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'`],
  ] as [string, Obj, string, string][])('refuses %s', (_name, spec, field, message) => {
    expect(rejected(route(spec))).toContainEqual([field, message]);
  });
});

describe('Gateway', () => {
  it('defaults allowedRoutes to Same and tls mode to Terminate', () => {
    const g = accepted<Gateway>(gateway([
      { name: 'a', port: 80, protocol: 'HTTP' },
      { name: 'b', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'c' }] } },
    ]));
    expect(g.spec.listeners[0]!.allowedRoutes).toEqual({ namespaces: { from: 'Same' }, kinds: [] });
    expect(g.spec.listeners[1]!.tls).toEqual({ mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: 'c' }] });
  });

  it.each([
    ['duplicate listener names', [{ name: 'a', port: 80, protocol: 'HTTP' }, { name: 'a', port: 81, protocol: 'HTTP' }], 'Listener name must be unique within the Gateway'],
    ['duplicate port/protocol/hostname', [{ name: 'a', port: 80, protocol: 'HTTP' }, { name: 'b', port: 80, protocol: 'HTTP' }], 'Combination of port, protocol and hostname must be unique for each listener'],
    ['tls on HTTP', [{ name: 'a', port: 80, protocol: 'HTTP', tls: { certificateRefs: [{ name: 'c' }] } }], "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"],
  ] as [string, Obj[], string][])('refuses %s', (_name, listeners, message) => {
    expect(rejected(gateway(listeners)).map((p) => p[1])).toContain(message);
  });

  it('refuses a listener without port and no listeners at all', () => {
    expect(rejected(gateway([{ name: 'a', protocol: 'HTTP' }]))).toContainEqual(['spec.listeners[0].port', 'Required value']);
    expect(rejected(gateway([]))).toContainEqual(['spec.listeners', 'Invalid value: 0: must have at least 1 items']);
  });
});

describe('InferencePool and InferenceObjective', () => {
  it('defaults appProtocol and failureMode, keeps up to 8 unique ports', () => {
    const p = accepted<InferencePool>(pool({
      selector: { matchLabels: { app: 'x' } }, targetPorts: [{ number: 8000 }, { number: 8001 }],
      endpointPickerRef: { name: 'epp', port: { number: 9002 } },
    }));
    expect(p.spec.appProtocol).toBe('http');
    expect(p.spec.endpointPickerRef).toEqual({ group: '', kind: 'Service', name: 'epp', port: { number: 9002 }, failureMode: 'FailClose' });
  });

  it.each([
    ['duplicate ports', { selector: { matchLabels: { a: 'b' } }, targetPorts: [{ number: 1 }, { number: 1 }] }, 'spec.targetPorts', 'port number must be unique'],
    ['nine ports', { selector: { matchLabels: { a: 'b' } }, targetPorts: [1, 2, 3, 4, 5, 6, 7, 8, 9].map((number) => ({ number })) }, 'spec.targetPorts', 'Too many: 9: must have at most 8 items'],
    ['an empty selector', { selector: { matchLabels: {} }, targetPorts: [{ number: 1 }] }, 'spec.selector.matchLabels', 'Invalid value: 0: must have at least 1 properties'],
    ['an EPP Service without port', { selector: { matchLabels: { a: 'b' } }, targetPorts: [{ number: 1 }], endpointPickerRef: { name: 'e' } }, 'spec.endpointPickerRef', "port is required when kind is 'Service' or unspecified (defaults to 'Service')"],
    ['an unknown appProtocol', { selector: { matchLabels: { a: 'b' } }, targetPorts: [{ number: 1 }], appProtocol: 'grpc' }, 'spec.appProtocol', 'Unsupported value: "grpc": supported values: "http", "kubernetes.io/h2c"'],
  ] as [string, Obj, string, string][])('refuses %s', (_name, spec, field, message) => {
    expect(rejected(pool(spec))).toContainEqual([field, message]);
  });

  it('accepts InferenceObjective under both groups; GIE requires poolRef', () => {
    const o = accepted<InferenceObjective>({ apiVersion: 'llm-d.ai/v1alpha2', kind: 'InferenceObjective', metadata: { name: 'o' }, spec: { poolRefs: [{ name: 'p' }], priority: -2 } });
    expect(o.spec).toEqual({ priority: -2, poolRefs: [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'p' }] });
    expect(rejected({ apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferenceObjective', metadata: { name: 'o' }, spec: { priority: 1 } }))
      .toContainEqual(['spec.poolRef', 'Required value']);
  });
});

describe('core kinds', () => {
  it('reads a Service with targetPort defaulting to port and named ports', () => {
    const s = accepted<Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { selector: { app: 'a' }, ports: [{ name: 'h', port: 80 }, { name: 'm', port: 81, targetPort: 'metrics' }], clusterIP: '10.0.0.1' } });
    expect(s.spec.ports.map((p) => p.targetPort)).toEqual([80, 'metrics']);
    expect(s.spec.type).toBe('ClusterIP');
  });

  it('decodes a TLS Secret and refuses one without a key', () => {
    const s = accepted<Secret>({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 't' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from('CERT').toString('base64') }, stringData: { 'tls.key': 'KEY' } });
    expect(s.tls).toEqual({ cert: 'CERT', key: 'KEY' });
    expect(rejected({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 't' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': 'C' } })).toEqual([['data[tls.key]', 'Required value']]);
  });

  it('builds a full ResourceSet sorted by namespace/name', () => {
    const a = accepted<Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'b', namespace: 'x' }, spec: {} });
    const b = accepted<Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'x' }, spec: {} });
    const set = toFullResourceSet([a, b]);
    expect(set.services!.map((s) => s.metadata.name)).toEqual(['a', 'b']);
    expect(set.httpRoutes).toEqual([]);
    expect(set.modelRoutes).toEqual([]);
  });
});

describe('file provider', () => {
  it('loads Gateway API manifests from the directory and reports invalid ones', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gw-provider-'));
    try {
      writeFileSync(path.join(dir, 'a.yaml'), `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok}
spec: {rules: [{backendRefs: [{name: s, port: 80}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec: {rules: [{backendRefs: [{name: s}]}]}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: x}}, targetPorts: [{number: 8000}]}
`);
      let snap: FileSnapshot | undefined;
      const fp = new FileProvider(dir, { onChange: (s) => { snap = s; }, pollMs: 60000, now: () => NOW });
      await fp.start();
      await fp.stop();
      expect(snap!.resources.httpRoutes!.map((r) => r.metadata.name)).toEqual(['ok']);
      expect(snap!.resources.inferencePools!.map((r) => r.metadata.name)).toEqual(['pool']);
      expect(snap!.problems.map((p) => [p.kind, p.name, p.severity, p.message])).toEqual([
        ['HTTPRoute', 'bad', 'rejected', 'Must have port for Service reference'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
