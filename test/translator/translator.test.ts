/**
 * Golden tests: testdata/<case>.in.yaml (manifests) -> testdata/<case>.out.json ({ ir, problems }).
 * `UPDATE_GOLDEN=1 npx vitest run test/translator` rewrites the outputs; review the diff by eye.
 * Parsing goes through parseManifestObject with a fixed clock, no FileProvider.
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseManifestObject } from '../../src/resources/validate.js';
import { isGatewayManifest, parseGatewayObject, toFullResourceSet } from '../../src/resources/validate.js';
import type { GatewayResource } from '../../src/resources/gateway.js';
import { translate, validateIR } from '../../src/translator/index.js';
import type { AnyResource, ResourceSet } from '../../src/resources/types.js';
import type { RoutingIR } from '../../src/ir/types.js';

const testdata = fileURLToPath(new URL('./testdata/', import.meta.url));
const update = process.env.UPDATE_GOLDEN === '1';
const NOW = '2025-01-01T00:00:00Z';

function load(file: string): ResourceSet {
  const resources: (AnyResource | GatewayResource)[] = [];
  for (const doc of parseAllDocuments(readFileSync(path.join(testdata, file), 'utf8'))) {
    expect(doc.errors, `${file}: YAML errors`).toEqual([]);
    const raw: unknown = doc.toJS();
    const ctx = { file, now: () => NOW };
    const r = isGatewayManifest(raw) ? parseGatewayObject(raw, ctx) : parseManifestObject(raw, ctx);
    expect(r.problems, `${file}: every input must be valid`).toEqual([]);
    if (r.resource) resources.push(r.resource);
  }
  return toFullResourceSet(resources);
}

function isDeepFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(isDeepFrozen);
}

const cases = readdirSync(testdata).filter((f) => f.endsWith('.in.yaml')).map((f) => f.slice(0, -'.in.yaml'.length)).sort();

describe('translator golden files', () => {
  it('has the cases the brief asks for', () => {
    for (const c of ['simple-route', 'multi-models-headers', 'subset-70-30', 'lora', 'oldest-first', 'missing-modelserver', 'pod-eligibility', 'pd-group']) {
      expect(cases).toContain(c);
    }
  });

  for (const name of cases) {
    it(`translates ${name}`, () => {
      const out = translate(load(`${name}.in.yaml`));
      const json = `${JSON.stringify(out, null, 2)}\n`;
      const golden = path.join(testdata, `${name}.out.json`);
      if (update) writeFileSync(golden, json);
      expect(existsSync(golden), `${golden} missing: run with UPDATE_GOLDEN=1`).toBe(true);
      expect(json).toBe(readFileSync(golden, 'utf8'));
      expect(validateIR(out.ir)).toEqual([]);
      expect(isDeepFrozen(out.ir)).toBe(true);
    });

    it(`translates ${name} the same whatever the input order`, () => {
      const rs = load(`${name}.in.yaml`);
      const reversed: ResourceSet = {
        ...rs,
        modelRoutes: [...rs.modelRoutes].reverse(),
        modelServers: [...rs.modelServers].reverse(),
        pods: [...rs.pods].reverse(),
        externalModelProviders: [...rs.externalModelProviders ?? []].reverse(),
        secrets: [...rs.secrets ?? []].reverse(),
      };
      expect(JSON.stringify(translate(reversed))).toBe(JSON.stringify(translate(rs)));
    });
  }
});

describe('translator behaviour', () => {
  it('orders routes oldest first, then by resourceVersion as a string, then namespace/name', () => {
    const { ir } = translate(load('oldest-first.in.yaml'));
    expect(ir.routes.map((r) => r.key)).toEqual([
      'aaa/z-oldest', // 2024-01-01, rv "900", ns "aaa" < "default"
      'default/z-oldest', // same instant written with a +02:00 offset
      'default/m-same-time-lower-rv', // 2024-02-01, rv "100" < "20"
      'default/b-same-time-higher-rv', // rv "20", "default" < "other"
      'other/a-same-time-same-rv',
      'default/a-newest',
    ]);
  });

  it('keeps a missing ModelServer as server -1 and reports it as a warning', () => {
    const { ir, problems } = translate(load('missing-modelserver.in.yaml'));
    const split = ir.routes.find((r) => r.name === 'half-missing')!.rules[0]!;
    expect(split.targets.map((t) => [t.key, t.server])).toEqual([['default/present', 0], ['default/absent', -1], ['default/only-in-other-ns', -1]]);
    expect(split.totalWeight).toBe(100);
    expect(problems).toEqual([
      { kind: 'ModelRoute', namespace: 'default', name: 'external', field: 'spec.rules[0].targetModels[0].externalModelProviderName', message: 'ExternalModelProvider default/deepseek-provider not found', severity: 'warning' },
      { kind: 'ModelRoute', namespace: 'default', name: 'half-missing', field: 'spec.rules[0].targetModels[1].modelServerName', message: 'ModelServer default/absent not found', severity: 'warning' },
      { kind: 'ModelRoute', namespace: 'default', name: 'half-missing', field: 'spec.rules[0].targetModels[2].modelServerName', message: 'ModelServer default/only-in-other-ns not found', severity: 'warning' },
    ]);
    const ext = ir.routes.find((r) => r.name === 'external')!.rules[0]!.targets[0]!;
    expect(ext).toEqual({ kind: 'provider', key: 'default/deepseek-provider', server: -1, weight: 100 });
  });

  it('rejects a route with a JWTClaim session source unless JWT authentication is configured', () => {
    const rs = load('simple-route.in.yaml');
    const r = rs.modelRoutes[0]!;
    const sticky = { ...r, spec: { ...r.spec, sessionSticky: { sessionAffinitySeconds: 60, sources: [{ type: 'Header' as const, name: 'X-S' }, { type: 'JWTClaim' as const, name: 'sid' }] } } };
    const set: ResourceSet = { ...rs, modelRoutes: [sticky, ...rs.modelRoutes.slice(1)] };
    const off = translate(set);
    expect(off.ir.routes.find((x) => x.name === r.metadata.name)).toBeUndefined();
    expect(off.problems).toContainEqual({
      kind: 'ModelRoute', namespace: r.metadata.namespace, name: r.metadata.name, field: 'spec.sessionSticky.sources[1].type', severity: 'rejected',
      message: 'a JWTClaim session source needs JWT authentication: set auth.jwksUri and auth.issuer in the router configuration',
    });
    const on = translate(set, undefined, undefined, { jwtAuth: true });
    expect(on.problems).toEqual([]);
    expect(on.ir.routes.find((x) => x.name === r.metadata.name)!.sessionSticky).toEqual({ ttlSec: 60, sources: [{ type: 'Header', name: 'x-s' }, { type: 'JWTClaim', name: 'sid' }] });
  });

  it('lists only Running, Ready, non-terminating pods with an IP, in the server namespace, matching every label', () => {
    const { ir } = translate(load('pod-eligibility.in.yaml'));
    expect(ir.endpoints.map((e) => e.key)).toEqual(['default/ok-a', 'default/ok-b', 'default/ok-cpu']);
    const byName = new Map(ir.servers.map((s) => [s.name, s.endpoints.map((i) => ir.endpoints[i]!.name)]));
    expect(byName.get('app')).toEqual(['ok-a', 'ok-b']);
    expect(byName.get('app-any-tier')).toEqual(['ok-a', 'ok-b', 'ok-cpu']);
    expect(ir.endpoints.every((e) => e.slot === -1)).toBe(true);
  });

  it('compiles string matches with exact > prefix > regex precedence, lower-cased header names, empty conditions dropped', () => {
    const { ir } = translate(load('multi-models-headers.in.yaml'));
    const rules = ir.routes.find((r) => r.name === 'matchers')!.rules;
    expect(rules[0]!.match).toEqual({
      headers: [
        { name: 'x-precedence', type: 'exact', value: 'wins' },
        { name: 'x-region', type: 'regex', value: '^(eu|us)-[a-z]+$' },
        { name: 'x-user-tier', type: 'prefix', value: 'gold' },
      ],
      uri: { type: 'prefix', value: '/v1/chat' },
      bodyModel: 'matchers',
    });
    expect(rules[1]!.match).toEqual({ headers: [], uri: { type: 'regex', value: '^/v1/(chat/)?completions$' }, bodyModel: null });
    expect(rules[2]!.match).toBeNull();
  });

  it('is pure: the same input twice gives deep-equal output and never mutates the input', () => {
    const rs = load('subset-70-30.in.yaml');
    const before = JSON.stringify(rs);
    expect(translate(rs)).toEqual(translate(rs));
    expect(JSON.stringify(rs)).toBe(before);
  });

  it('clamps durations above what a Node timer can hold, with a warning', () => {
    const rs = load('traffic-policy.in.yaml');
    const server = rs.modelServers.find((s) => s.metadata.name === 'no-policy')!;
    const huge = { ...server, spec: { ...server.spec, trafficPolicy: { timeoutMs: 1e12 } } };
    const { ir, problems } = translate({ ...rs, modelServers: [huge] });
    expect(ir.servers[0]!.timeoutMs).toBe(2147483647);
    expect(problems.map((p) => [p.field, p.severity])).toEqual([['spec.trafficPolicy.timeout', 'warning']]);
    expect(validateIR(ir)).toEqual([]);
  });
});

describe('validateIR', () => {
  const good = (): RoutingIR => structuredClone(translate(load('subset-70-30.in.yaml')).ir) as RoutingIR;

  it('accepts what the translator produces', () => {
    expect(validateIR(good())).toEqual([]);
  });

  it('gathers every structural problem instead of stopping at the first', () => {
    const ir = good();
    ir.routes[0]!.rules[0]!.totalWeight = 0;
    ir.routes[0]!.rules[0]!.targets[0]!.server = 7;
    ir.routes.push({ ...ir.routes[0]!, rules: [] });
    ir.servers[0]!.endpoints = [5, 0];
    ir.servers[1]!.port = 0;
    ir.endpoints.push({ ...ir.endpoints[0]! });
    ir.endpoints[1]!.ip = 'nope';
    expect(validateIR(ir)).toEqual([
      'endpoints[1] (default/deepseek-r1-1-5b-v1-1): ip "nope" is not an IP address',
      'endpoints[3] (default/deepseek-r1-1-5b-v1-0): duplicate endpoint key',
      'endpoints[3] (default/deepseek-r1-1-5b-v1-0): endpoints must be sorted by key',
      'servers[0] (default/deepseek-r1-1-5b-v1): endpoints[0] = 5 is out of range',
      'servers[0] (default/deepseek-r1-1-5b-v1): endpoints must be strictly ascending (unique, in key order)',
      'servers[1] (default/deepseek-r1-1-5b-v2): port 0 out of range 1-65535',
      'routes[0] (default/deepseek-subset).rules[0].targets[0]: server index 7 is out of range',
      'routes[0] (default/deepseek-subset).rules[0]: totalWeight 0 must be > 0',
      'routes[1] (default/deepseek-subset): duplicate route key',
    ]);
  });

  it('checks that a target index points at the server it names', () => {
    const ir = good();
    ir.routes[0]!.rules[0]!.targets[0]!.server = 1;
    expect(validateIR(ir)).toEqual([
      'routes[0] (default/deepseek-subset).rules[0].targets[0]: server index 1 is default/deepseek-r1-1-5b-v2, not default/deepseek-r1-1-5b-v1',
    ]);
  });
});

describe('translator defends the snapshot against inputs that skipped validation', () => {
  const base = (): ResourceSet => load('simple-route.in.yaml');
  const withRoute = (rs: ResourceSet, patch: (spec: Record<string, unknown>) => void): ResourceSet => {
    const r = structuredClone(rs.modelRoutes[0]!) as unknown as { spec: Record<string, unknown> };
    patch(r.spec);
    return { ...rs, modelRoutes: [r as unknown as ResourceSet['modelRoutes'][number]] };
  };

  it.each([
    ['zero total weight', (s: Record<string, unknown>) => { (s.rules as { targetModels: { weight: number }[] }[])[0]!.targetModels[0]!.weight = 0; },
      'spec.rules[0].targetModels', 'total weight must be greater than zero'],
    ['no modelName and no adapters', (s: Record<string, unknown>) => { delete s.modelName; },
      'spec', 'ModelName and LoraAdapters cannot both be empty'],
    ['an empty adapter name', (s: Record<string, unknown>) => { s.loraAdapters = ['']; },
      'spec.loraAdapters[0]', 'lora adapter name cannot be an empty string'],
    ['an empty header name', (s: Record<string, unknown>) => { (s.rules as Record<string, unknown>[])[0]!.modelMatch = { headers: { '': { exact: 'x' } } }; },
      'spec.rules[0].modelMatch.headers', 'header name must not be empty'],
    ['a regex JavaScript cannot compile', (s: Record<string, unknown>) => { (s.rules as Record<string, unknown>[])[0]!.modelMatch = { uri: { regex: '(' } }; },
      'spec.rules[0].modelMatch', 'error parsing regexp: missing closing ): `(`'],
  ])('drops a route with %s and reports it', (_name, patch, field, message) => {
    const { ir, problems } = translate(withRoute(base(), patch));
    expect(ir.routes).toEqual([]);
    expect(problems).toEqual([{ kind: 'ModelRoute', namespace: 'default', name: 'deepseek-simple', field, message, severity: 'rejected' }]);
    expect(validateIR(ir)).toEqual([]);
  });

  it('reads negative retry attempts as 0, and skips pods whose IP is not an IP', () => {
    const rs = base();
    const srv = structuredClone(rs.modelServers[0]!);
    srv.spec.trafficPolicy = { retry: { attempts: -3, retryIntervalMs: 100 } };
    const pods = rs.pods.map((p, i) => (i === 0 ? { ...p, status: { ...p.status, podIP: 'bogus' } } : p));
    const { ir, problems } = translate({ ...rs, modelServers: [srv], pods });
    expect(ir.servers[0]!.retryAttempts).toBe(0);
    expect(ir.endpoints.map((e) => e.name)).toEqual(['deepseek-r1-1-5b-1', 'deepseek-r1-1-5b-2']);
    expect(problems.map((p) => p.message)).toEqual(['negative attempts (-3) read as 0']);
    expect(validateIR(ir)).toEqual([]);
  });
});
