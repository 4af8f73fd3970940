import { emptyGatewayIR } from '../../src/ir/gateway.js';
import { describe, it, expect } from 'vitest';
import { compileSnapshot, testMatch } from '../../workers/compile.js';
import type { RoutingIR, RouteIR } from '../../src/ir/types.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';

function route(name: string, modelName: string, lora: string[] = [], hasParentRefs = false): RouteIR {
  return {
    key: `ns/${name}`, namespace: 'ns', name, modelName, loraAdapters: lora, hasParentRefs, rateLimit: null,
    rules: [{
      name: 'r',
      match: { headers: [{ name: 'x-tier', type: 'regex', value: '^gold$' }], uri: { type: 'prefix', value: '/v1/chat' }, bodyModel: null },
      targets: [{ kind: 'server', key: 'ns/a', server: 0, weight: 70 }, { kind: 'server', key: 'ns/b', server: -1, weight: 30 }],
      totalWeight: 100,
    }],
  };
}

const ir: RoutingIR = {
  routes: [route('old', 'm'), route('new', 'm', ['lora-x']), route('lora-only', '', ['lora-a'])],
  servers: [{ key: 'ns/a', namespace: 'ns', name: 'a', model: 'up', engine: 'vLLM', port: 8000, timeoutMs: 0, retryAttempts: -1, retryIntervalMs: 0, endpoints: [0, 1], unsupported: '', pdGroups: [], connector: '' }],
  endpoints: [
    { key: 'ns/p1', namespace: 'ns', name: 'p1', ip: '127.0.0.5', slot: 3, gen: 2, startedAtSec: 1700000000 },
    { key: 'ns/p2', namespace: 'ns', name: 'p2', ip: 'fd00::1', slot: 7, gen: 5, startedAtSec: 0 },
  ],
  scheduler: DEFAULT_SCHEDULER,
  modelNames: ['lora-a', 'lora-x', 'm'],
  modelIds: [4, -1, 0],
  gateway: emptyGatewayIR(),
};

describe('compileSnapshot: prefill/decode tables', () => {
  const pdIr: RoutingIR = {
    ...ir,
    routes: [route('pd', 'pd-model')],
    servers: [{
      ...ir.servers[0], endpoints: [0, 1, 2, 3], connector: 'nixl',
      pdGroups: [{ name: 'g0', decode: [0], prefill: [2] }, { name: 'g1', decode: [1, 3], prefill: [] }],
    }],
    endpoints: ['d0', 'd1', 'p0', 'd2'].map((n, i) => ({ key: `ns/${n}`, namespace: 'ns', name: n, ip: `127.0.0.${i + 1}`, slot: i, gen: 1, startedAtSec: 0 })),
  };
  const server = compileSnapshot(pdIr, 1, () => null).byModel.get('pd-model')![0].rules[0].targets[0].server!;

  it('lists every decode endpoint with its group, and the prefill endpoints per group', () => {
    const pd = server.pd!;
    expect(pd.connector).toBe('nixl');
    expect(pd.decode.map((e) => e.podName)).toEqual(['d0', 'd1', 'd2']);
    expect([...pd.decodeGroup]).toEqual([0, 1, 1]);
    expect(pd.prefillByGroup.map((g) => g.map((e) => e.podName))).toEqual([['p0'], []]);
  });

  it('shares endpoint objects with the server list (the scheduler caches per endpoint)', () => {
    expect(server.pd!.decode[0]).toBe(server.endpoints[0]);
    expect(server.pd!.prefillByGroup[0][0]).toBe(server.endpoints[2]);
  });

  it('maps each decode and prefill endpoint to its index in the server list (kvcache-aware scores gathered per phase)', () => {
    const pd = server.pd!;
    expect([...pd.decodeIdx]).toEqual([0, 1, 3]);
    expect(pd.prefillIdxByGroup.map((g) => [...g])).toEqual([[2], []]);
    pd.decode.forEach((e, i) => expect(server.endpoints[pd.decodeIdx[i]]).toBe(e));
  });

  it('has no PD tables for a server without pdGroup', () => {
    expect(compileSnapshot(ir, 1, () => null).byModel.get('m')![0].rules[0].targets[0].server!.pd).toBeNull();
  });
});

describe('compileSnapshot', () => {
  const profiles: unknown[] = [];
  const snap = compileSnapshot(ir, 4, (s) => { profiles.push(s); return 'profile'; });

  it('compiles the scheduling profile once, from the snapshot\'s scheduler section', () => {
    expect(profiles).toEqual([DEFAULT_SCHEDULER]);
    expect(snap.profile).toBe('profile');
  });

  it('maps model names to their bit ids, leaving out names without one', () => {
    expect([...snap.modelIds]).toEqual([['lora-a', 4], ['m', 0]]);
  });

  it('carries slot generation, namespace, IP and pod start time into each endpoint', () => {
    const eps = snap.byModel.get('m')![0].rules[0].targets[0].server!.endpoints;
    expect(eps.map((e) => [e.namespace, e.ip, e.gen, e.startedAtSec])).toEqual([['ns', '127.0.0.5', 2, 1700000000], ['ns', 'fd00::1', 5, 0]]);
  });

  it('keeps candidates oldest first per model name and indexes LoRA adapters separately', () => {
    expect(snap.byModel.get('m')!.map((r) => r.key)).toEqual(['ns/old', 'ns/new']);
    expect(snap.byLora.get('lora-x')!.map((r) => r.key)).toEqual(['ns/new']);
    expect(snap.byLora.get('lora-a')!.map((r) => r.key)).toEqual(['ns/lora-only']);
    expect(snap.byModel.has('')).toBe(false);
  });

  it('builds the /v1/models body once, sorted, with Kthena\'s fields', () => {
    expect(JSON.parse(snap.modelsBody)).toEqual({
      object: 'list',
      data: ['lora-a', 'lora-x', 'm'].map((id) => ({ id, object: 'model', created: 0, owned_by: 'kthena' })),
    });
  });

  it('precomputes cumulative weights, server links and endpoint origins (IPv6 bracketed)', () => {
    const rule = snap.byModel.get('m')![0].rules[0];
    expect([...rule.cumulative]).toEqual([70, 100]);
    expect(rule.targets[0].server!.model).toBe('up');
    expect(rule.targets[1].server).toBeNull();
    expect(rule.targets[0].server!.endpoints.map((e) => [e.origin, e.slot, e.podName])).toEqual([
      ['http://127.0.0.5:8000', 3, 'p1'], ['http://[fd00::1]:8000', 7, 'p2'],
    ]);
    expect([...snap.origins].sort()).toEqual(['http://127.0.0.5:8000', 'http://[fd00::1]:8000']);
    expect(snap.maxEndpoints).toBe(2);
  });

  it('compiles exact, prefix and unanchored-unless-anchored regex matchers', () => {
    const rule = snap.byModel.get('m')![0].rules[0];
    expect(testMatch(rule.headers[0], 'gold')).toBe(true);
    expect(testMatch(rule.headers[0], 'golden')).toBe(false);
    expect(testMatch(rule.uri!, '/v1/chat/completions')).toBe(true);
    expect(testMatch(rule.uri!, '/v1/completions')).toBe(false);
    expect(rule.matchAll).toBe(false);
  });
});
