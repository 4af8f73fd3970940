import { emptyGatewayIR } from '../../src/ir/gateway.js';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopbackHost, startDebugServer, type DebugSource } from '../../src/admin/debug.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import type { RoutingIR } from '../../src/ir/types.js';
import type { ModelRoute, ModelServer, ObjectMeta, Pod, Problem, ResourceSet } from '../../src/resources/types.js';

function meta(namespace: string, name: string, labels: Record<string, string> = {}): ObjectMeta {
  return {
    namespace, name, labels, creationTimestamp: '2025-01-01T00:00:00Z', resourceVersion: '1', generation: 1,
    uid: `${namespace}-${name}`,
  };
}

const route: ModelRoute = {
  apiVersion: 'networking.serving.volcano.sh/v1alpha1',
  kind: 'ModelRoute',
  metadata: meta('default', 'llama-route'),
  spec: { modelName: 'llama', rules: [{ name: 'r0', targetModels: [{ modelServerName: 'llama-ms', weight: 100 }] }] },
};

const rawSpec = {
  model: 'meta/llama-3',
  inferenceEngine: 'vLLM',
  workloadSelector: { matchLabels: { app: 'llama' } },
  workloadPort: { port: 8000 },
  trafficPolicy: { timeout: '30s' },
};
const server: ModelServer = {
  apiVersion: 'networking.serving.volcano.sh/v1alpha1',
  kind: 'ModelServer',
  metadata: meta('default', 'llama-ms'),
  spec: {
    model: 'meta/llama-3', inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: 'llama' } },
    workloadPort: { port: 8000, protocol: 'http' }, trafficPolicy: { timeoutMs: 30_000 },
  },
  rawSpec,
};
const idleServer: ModelServer = { ...server, metadata: meta('default', 'idle-ms'), rawSpec: { ...rawSpec, model: 'x' } };

function pod(name: string, ip: string): Pod {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: meta('default', name, { app: 'llama' }), spec: { nodeName: 'node-1' },
    status: { podIP: ip, phase: 'Running', ready: true, startTime: '2025-01-02T03:04:05.678Z' },
  };
}

const ir: RoutingIR = {
  routes: [],
  servers: [
    { key: 'default/idle-ms', namespace: 'default', name: 'idle-ms', model: 'x', engine: 'SGLang', port: 30000, timeoutMs: 0, retryAttempts: -1, retryIntervalMs: 0, endpoints: [], unsupported: '', pdGroups: [], connector: '' },
    { key: 'default/llama-ms', namespace: 'default', name: 'llama-ms', model: 'meta/llama-3', engine: 'vLLM', port: 8000, timeoutMs: 30_000, retryAttempts: -1, retryIntervalMs: 0, endpoints: [0, 1], unsupported: '', pdGroups: [], connector: '' },
  ],
  endpoints: [
    { key: 'default/llama-0', namespace: 'default', name: 'llama-0', ip: '127.0.0.10', slot: 0, gen: 1, startedAtSec: 0 },
    { key: 'default/llama-1', namespace: 'default', name: 'llama-1', ip: '127.0.0.11', slot: 1, gen: 1, startedAtSec: 0 },
  ],
  scheduler: DEFAULT_SCHEDULER,
  modelNames: [],
  modelIds: [],
  gateway: emptyGatewayIR(),
};

const problem: Problem = {
  kind: 'ModelRoute', namespace: 'default', name: 'broken', file: 'routes.yaml', field: 'spec.rules[0].targetModels',
  message: 'at least one target is required', severity: 'rejected',
};

function source(overrides: Partial<DebugSource> = {}): DebugSource {
  const resources: ResourceSet = {
    modelRoutes: [route],
    modelServers: [idleServer, server],
    // "other" is not selected by any ModelServer in the snapshot: unknown to the debug dump.
    pods: [pod('llama-0', '127.0.0.10'), pod('llama-1', '127.0.0.11'), pod('other', '127.0.0.12')],
  };
  return {
    resources: () => resources,
    problems: () => [problem],
    ir: () => ir,
    generation: () => 3,
    initialConfig: () => Object.freeze({ port: 8080, workers: 2 }),
    ...overrides,
  };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function start(src: DebugSource = source()): Promise<string> {
  const s = await startDebugServer(src, { port: 0 });
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

// Dumps are free-form JSON; the assertions below check their shape.
type Json = any;

async function get(base: string, path: string): Promise<{ status: number; type: string | null; body: Json }> {
  const res = await fetch(base + path);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
}

describe('debug server binding', () => {
  it('listens on 127.0.0.1 by default', async () => {
    const s = await startDebugServer(source(), { port: 0 });
    servers.push(s);
    expect((s.address() as AddressInfo).address).toBe('127.0.0.1');
  });

  it('refuses a host that is not loopback, before binding anything', async () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
      await expect(startDebugServer(source(), { port: 0, host })).rejects.toMatchObject({ code: 'RTR_ERR_CONFIG_INVALID' });
    }
  });

  it('recognises loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'localhost']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '128.0.0.1', '::', '::2', 'localhost.example.com', '']) expect(isLoopbackHost(h)).toBe(false);
  });
});

describe('Kthena config dumps', () => {
  it('lists ModelRoutes with name, namespace and spec', async () => {
    const base = await start();
    const r = await get(base, '/debug/config_dump/modelroutes');
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/json; charset=utf-8');
    expect(r.body).toEqual({ modelroutes: [{ name: 'llama-route', namespace: 'default', spec: route.spec }] });
  });

  it('lists ModelServers with the spec as written and their pods; empty pod lists are left out as in Kthena', async () => {
    const base = await start();
    const r = await get(base, '/debug/config_dump/modelservers');
    expect(r.body).toEqual({
      modelservers: [
        { name: 'idle-ms', namespace: 'default', spec: { ...rawSpec, model: 'x' } },
        { name: 'llama-ms', namespace: 'default', spec: rawSpec, associatedPods: ['default/llama-0', 'default/llama-1'] },
      ],
    });
    expect(r.body.modelservers[1].spec.trafficPolicy.timeout).toBe('30s');
  });

  it('lists decodePods and prefillPods of a ModelServer with PD groups, as Kthena', async () => {
    const pdIr: RoutingIR = {
      ...ir,
      servers: [ir.servers[0], { ...ir.servers[1], connector: 'http', pdGroups: [{ name: 'g0', decode: [0], prefill: [1] }] }],
    };
    const base = await start(source({ ir: () => pdIr }));
    const r = await get(base, '/debug/config_dump/modelservers');
    expect(r.body.modelservers[1]).toMatchObject({
      name: 'llama-ms', associatedPods: ['default/llama-0', 'default/llama-1'], decodePods: ['default/llama-0'], prefillPods: ['default/llama-1'],
    });
    expect(r.body.modelservers[0].decodePods).toBeUndefined();
  });

  it('lists only pods a ModelServer selects, with zero metrics until a scraper exists', async () => {
    const base = await start();
    const r = await get(base, '/debug/config_dump/pods');
    const zeros = { gpuCacheUsage: 0, requestWaitingNum: 0, requestRunningNum: 0, tpot: 0, ttft: 0 };
    expect(r.body).toEqual({
      pods: [
        { name: 'llama-0', namespace: 'default', engine: 'vLLM', metrics: zeros, models: [], modelServers: ['default/llama-ms'] },
        { name: 'llama-1', namespace: 'default', engine: 'vLLM', metrics: zeros, models: [], modelServers: ['default/llama-ms'] },
      ],
    });
    expect(Object.keys(r.body.pods[0])).toEqual(['name', 'namespace', 'engine', 'metrics', 'models', 'modelServers']);
  });

  it('takes pod metrics and models from the podMetrics hook when present', async () => {
    const base = await start(source({
      podMetrics: (key) => (key === 'default/llama-0'
        ? { gpuCacheUsage: 0.5, requestWaitingNum: 2, requestRunningNum: 3, tpot: 0.02, ttft: 0.3, models: ['llama', 'lora-a'] }
        : undefined),
    }));
    const r = await get(base, '/debug/config_dump/pods');
    expect(r.body.pods[0].metrics).toEqual({ gpuCacheUsage: 0.5, requestWaitingNum: 2, requestRunningNum: 3, tpot: 0.02, ttft: 0.3 });
    expect(r.body.pods[0].models).toEqual(['llama', 'lora-a']);
    expect(r.body.pods[1].metrics.gpuCacheUsage).toBe(0);
  });

  it('answers null lists when nothing is known, as Kthena', async () => {
    const empty: ResourceSet = { modelRoutes: [], modelServers: [], pods: [] };
    const base = await start(source({ resources: () => empty, ir: () => null }));
    for (const [path, key] of [
      ['modelroutes', 'modelroutes'], ['modelservers', 'modelservers'], ['pods', 'pods'],
      ['gateways', 'gateways'], ['httproutes', 'httproutes'], ['inferencepools', 'inferencepools'],
    ]) {
      expect((await get(base, `/debug/config_dump/${path}`)).body).toEqual({ [key]: null });
    }
  });

  it('dumps single objects by namespace and name', async () => {
    const base = await start();
    expect((await get(base, '/debug/config_dump/namespaces/default/modelroutes/llama-route')).body)
      .toEqual({ name: 'llama-route', namespace: 'default', spec: route.spec });
    expect((await get(base, '/debug/config_dump/namespaces/default/modelservers/llama-ms')).body)
      .toEqual({ name: 'llama-ms', namespace: 'default', spec: rawSpec, associatedPods: ['default/llama-0', 'default/llama-1'] });
    const p = await get(base, '/debug/config_dump/namespaces/default/pods/llama-1');
    expect(p.status).toBe(200);
    expect(p.body).toEqual({
      name: 'llama-1', namespace: 'default',
      podInfo: { podIP: '127.0.0.11', nodeName: 'node-1', phase: 'Running', startTime: '2025-01-02T03:04:05Z', labels: { app: 'llama' } },
      engine: 'vLLM',
      metrics: { gpuCacheUsage: 0, requestWaitingNum: 0, requestRunningNum: 0, tpot: 0, ttft: 0 },
      models: [],
      modelServers: ['default/llama-ms'],
    });
    expect(Object.keys(p.body)).toEqual(['name', 'namespace', 'podInfo', 'engine', 'metrics', 'models', 'modelServers']);
  });

  it('answers 404 with Kthena\'s messages for unknown objects', async () => {
    const base = await start();
    const cases: Array<[string, string]> = [
      ['modelroutes/nope', 'ModelRoute not found'],
      ['modelservers/nope', 'ModelServer not found'],
      ['pods/nope', 'Pod not found'],
      // Exists as a manifest but no ModelServer selects it.
      ['pods/other', 'Pod not found'],
      ['gateways/gw', 'Gateway not found'],
      ['httproutes/hr', 'HTTPRoute not found'],
      ['inferencepools/pool', 'InferencePool not found'],
    ];
    for (const [path, error] of cases) {
      const r = await get(base, `/debug/config_dump/namespaces/default/${path}`);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error });
    }
    const wrongNs = await get(base, '/debug/config_dump/namespaces/other/modelroutes/llama-route');
    expect(wrongNs.status).toBe(404);
  });
});

describe('our dumps', () => {
  it('lists every problem with file and field', async () => {
    const base = await start();
    expect((await get(base, '/debug/config_dump/problems')).body).toEqual({ problems: [problem] });
  });

  it('dumps the live snapshot with its generation', async () => {
    const base = await start();
    expect((await get(base, '/debug/config_dump/snapshot')).body).toEqual({ generation: 3, ir });
  });

  it('dumps the frozen initial config', async () => {
    const base = await start();
    expect((await get(base, '/debug/config_dump/initial_config')).body).toEqual({ port: 8080, workers: 2 });
  });
});

describe('everything else', () => {
  it('answers unknown paths with a JSON 404', async () => {
    const base = await start();
    for (const path of ['/', '/debug', '/debug/config_dump/whatever', '/debug/config_dump/namespaces/default/modelroutes']) {
      const r = await get(base, path);
      expect(r.status).toBe(404);
      expect(r.type).toBe('application/json; charset=utf-8');
      expect(r.body).toEqual({ error: 'not found' });
    }
  });

  it('points pprof users to the Node.js inspector', async () => {
    const base = await start();
    for (const path of ['/debug/pprof/', '/debug/pprof/heap', '/debug/pprof/profile']) {
      const r = await get(base, path);
      expect(r.status).toBe(404);
      expect(r.body.error).toContain('--inspect');
    }
  });

  it('answers 500 with the message when the source throws', async () => {
    const base = await start(source({ problems: () => { throw new Error('boom'); } }));
    const r = await get(base, '/debug/config_dump/problems');
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ error: 'boom' });
  });
});
