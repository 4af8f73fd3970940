/**
 * InferencePool scheduling end to end over the real CLI (file mode, simulated pods on 127.0.27.x).
 *
 * Default (Kthena's way): Kthena's own InferencePool.yaml + HTTPRoute.yaml + Gateway.yaml examples,
 * copied byte for byte into test/fixtures/kthena-examples/, serve traffic: their endpointPickerRef
 * names a placeholder Service that does not exist, and the pool is scheduled in-process.
 *
 * --inference-pool-picker=external: the pools' Endpoint Pickers are in-process ext_proc servers
 * (test/helpers/epp-server.ts) listening on their pods' addresses, over TLS (the default).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, docs, eventually, httpRequest, ROOT, sampleValue, scrape, startPods, startRouter, tempDir, writeFile, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';
import { startEppServer, type EppServer } from '../helpers/epp-server.js';

const ip = (n: number): string => `127.0.27.${n}`;
const EXAMPLES = path.join(ROOT, 'test', 'fixtures', 'kthena-examples');

const podDoc = (name: string, n: number, labels: Record<string, string>): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: {${Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ')}}}
status: {phase: Running, podIP: ${ip(n)}, conditions: [{type: Ready, status: "True"}]}`;

interface PoolStatus { name: string; status: { parents: { parentRef: { name: string; namespace?: string }; conditions: { type: string; status: string; reason: string; message: string }[] }[] } }

async function poolStatus(r: RouterProc, name: string): Promise<PoolStatus | undefined> {
  const res = await fetch(`http://127.0.0.1:${r.debugPort}/debug/config_dump/inferencepools`);
  return ((await res.json()) as { inferencepools: PoolStatus[] }).inferencepools.find((p) => p.name === name);
}

describe("Kthena's Inference Extension example (placeholder endpointPickerRef), default picker", () => {
  let dir = '';
  let router: RouterProc;
  let fleet: SimFleet;

  beforeAll(async () => {
    dir = await tempDir('kthena-e2e-kthena-pool-');
    fleet = await startPods([
      { name: 'deepseek-r1-1-5b-0', ip: ip(2), port: 8000, models: ['deepseek-r1-1-5b'] },
      { name: 'deepseek-r1-1-5b-1', ip: ip(3), port: 8000, models: ['deepseek-r1-1-5b'] },
    ]);
    for (const f of ['InferencePool.yaml', 'HTTPRoute.yaml', 'Gateway.yaml']) await writeFile(path.join(dir, f), await readFile(path.join(EXAMPLES, f), 'utf8'));
    // Only what a cluster would add: the pods the pool selects (Kthena's chart runs in kthena-system).
    await writeFile(path.join(dir, 'pods.yaml'), docs(
      podDoc('deepseek-r1-1-5b-0', 2, { app: 'deepseek-r1-1-5b' }),
      podDoc('deepseek-r1-1-5b-1', 3, { app: 'deepseek-r1-1-5b' }),
    ));
    router = await startRouter({ dir, args: ['--enable-gateway-api', '--enable-gateway-api-inference-extension'], env: { POD_NAMESPACE: 'kthena-system' } });
    await router.waitReady(45_000);
  }, 90_000);

  afterAll(async () => {
    await router?.stop();
    await fleet?.close();
    await cleanup(dir);
  });

  it('routes chat completions to both pods of the pool, in-process', async () => {
    const seen = new Set<string>();
    await eventually(async () => {
      const r = await httpRequest(router.url, {
        method: 'POST', path: '/v1/chat/completions',
        body: { model: 'deepseek-r1-1-5b', messages: [{ role: 'user', content: `hello ${seen.size} ${Math.random()}` }], max_tokens: 2 },
      });
      expect(r.status).toBe(200);
      seen.add(String(r.headers['x-sim-pod']));
      return seen.size === 2;
    }, 10_000, 'both pods served');
    expect([...seen].sort()).toEqual(['deepseek-r1-1-5b-0', 'deepseek-r1-1-5b-1']);
  });

  it('says in the pool status that the router picks in-process and does not call the placeholder', async () => {
    const st = await poolStatus(router, 'deepseek-r1-1-5b');
    expect(st?.status.parents.map((p) => `${p.parentRef.namespace}/${p.parentRef.name}`)).toEqual(['kthena-system/default']);
    const [accepted, resolved] = st!.status.parents[0]!.conditions;
    expect(accepted).toMatchObject({ type: 'Accepted', status: 'True', reason: 'Accepted' });
    expect(accepted!.message).toContain('picked in-process');
    expect(resolved).toMatchObject({ type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs' });
    expect(resolved!.message).toContain('endpointPickerRef default/deepseek-r1-1-5b is not called');
  });
});

describe('--inference-pool-picker=external: the Endpoint Picker protocol', () => {
  let dir = '';
  let router: RouterProc;
  let fleet: SimFleet;
  let main: EppServer;
  let slow: EppServer;
  const P0 = `${ip(10)}:8000`;
  const P1 = `${ip(11)}:8000`;
  const DEAD = `${ip(12)}:8000`;

  const pool = (name: string, selector: string, epp?: string, failureMode = 'FailClose'): string => `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: ${selector}}
  targetPorts: [{number: 8000}]
${epp !== undefined ? `  endpointPickerRef: {name: ${epp}, port: {number: 9002}, failureMode: ${failureMode}}\n` : ''}`;
  const eppService = (name: string, port: number): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: {selector: {app: ${name}}, ports: [{port: 9002, targetPort: ${port}}]}`;
  const pools: [string, string][] = [['pick', 'pool-pick'], ['open-slow', 'pool-open-slow'], ['close-slow', 'pool-close-slow'],
    ['close-missing', 'pool-close-missing'], ['open-missing', 'pool-open-missing'], ['none', 'pool-none']];

  async function send(which: string, headers: Record<string, string> = {}): Promise<{ status: number; pod: string; text: string; ms: number }> {
    const t0 = performance.now();
    const r = await httpRequest(router.url, {
      method: 'POST', path: '/v1/chat/completions', headers: { 'x-pool': which, ...headers },
      body: { model: 'pooled', messages: [{ role: 'user', content: `hi ${Math.random()}` }], max_tokens: 2 },
    });
    return { status: r.status, pod: String(r.headers['x-sim-pod'] ?? ''), text: r.text, ms: performance.now() - t0 };
  }

  beforeAll(async () => {
    dir = await tempDir('kthena-e2e-epp-');
    fleet = await startPods([
      { name: 'p-0', ip: ip(10), port: 8000, models: ['pooled'] },
      { name: 'p-1', ip: ip(11), port: 8000, models: ['pooled'] },
    ]);
    main = await startEppServer({ host: ip(20), tls: true });
    slow = await startEppServer({ host: ip(21), tls: true, behaviour: { delayMs: 8000 } });
    await writeFile(path.join(dir, 'epp.yaml'), docs(
      podDoc('p-0', 10, { app: 'pool', live: 'yes' }),
      podDoc('p-1', 11, { app: 'pool', live: 'yes' }),
      // Ready as far as the API says, but nothing listens: a fallback target.
      podDoc('p-dead', 12, { app: 'pool', live: 'no' }),
      podDoc('epp-main-0', 20, { app: 'epp-main' }),
      podDoc('epp-slow-0', 21, { app: 'epp-slow' }),
      eppService('epp-main', main.port),
      eppService('epp-slow', slow.port),
      pool('pool-pick', '{app: pool}', 'epp-main'),
      pool('pool-open-slow', '{app: pool, live: "yes"}', 'epp-slow', 'FailOpen'),
      pool('pool-close-slow', '{app: pool, live: "yes"}', 'epp-slow'),
      pool('pool-close-missing', '{app: pool, live: "yes"}', 'no-such-epp'),
      pool('pool-open-missing', '{app: pool, live: "yes"}', 'no-such-epp', 'FailOpen'),
      pool('pool-none', '{app: pool, live: "yes"}'),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pools, namespace: default}
spec:
  parentRefs: [{name: default}]
  rules:
${pools.map(([h, p]) => `  - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-pool, value: ${h}}]}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: ${p}}]`).join('\n')}`,
    ));
    router = await startRouter({
      dir, args: ['--enable-gateway-api', '--enable-gateway-api-inference-extension', '--inference-pool-picker', 'external', '--endpoint-picker-timeout', '2s'],
      env: { POD_NAMESPACE: 'default' },
    });
    await router.waitReady(45_000);
  }, 90_000);

  afterAll(async () => {
    await router?.stop();
    await fleet?.close();
    await main?.close();
    await slow?.close();
    await cleanup(dir);
  });

  it('routes to the endpoint the picker names, sends it the body and the subset hint, and reports the served endpoint', async () => {
    main.behaviour = { pick: () => [P1] };
    for (let i = 0; i < 4; i++) {
      const r = await send('pick');
      expect([r.status, r.pod]).toEqual([200, 'p-1']);
    }
    const seen = main.seen.at(-1)!;
    expect(seen.headers[':path']).toBe('/v1/chat/completions');
    expect(JSON.parse(seen.body)).toMatchObject({ model: 'pooled' });
    expect(seen.subset).toEqual([P0, P1, DEAD]);
    await expect.poll(() => seen.served, { timeout: 3000 }).toBe(P1);
    expect(seen.responseStatus).toBe('200');
  });

  it('tries the fallback endpoints in order when the first does not answer', async () => {
    main.behaviour = { pick: () => [DEAD, P0] };
    const r = await send('pick');
    expect([r.status, r.pod]).toEqual([200, 'p-0']);
    const seen = main.seen.at(-1)!;
    await expect.poll(() => seen.served, { timeout: 3000 }).toBe(P0);
  });

  it("never lets a client choose the destination: its x-gateway-destination-endpoint is dropped", async () => {
    main.behaviour = { pick: () => [P1] };
    const r = await send('pick', { 'x-gateway-destination-endpoint': P0 });
    expect([r.status, r.pod]).toEqual([200, 'p-1']);
    expect(main.seen.at(-1)!.headers['x-gateway-destination-endpoint']).toBeUndefined();
    expect(fleet.pod('p-1').requests.at(-1)!.headers['x-gateway-destination-endpoint']).toBeUndefined();
  });

  it("answers the picker's ImmediateResponse as is", async () => {
    main.behaviour = { immediate: { status: 429, body: 'system saturated, sheddable request dropped' } };
    const r = await send('pick');
    expect(r.status).toBe(429);
    expect(r.text).toContain('system saturated');
  });

  it('FailClose: a failing picker answers 503 RTR_ERR_EPP_UNAVAILABLE, a slow one 504 RTR_ERR_EPP_TIMEOUT after the timeout', async () => {
    main.behaviour = { error: 13 };
    const e = await send('pick');
    expect(e.status).toBe(503);
    expect(JSON.parse(e.text).error.code).toBe('RTR_ERR_EPP_UNAVAILABLE');
    main.behaviour = { pick: () => ['10.255.255.1:8000'] };
    const unknown = await send('pick');
    expect(unknown.status).toBe(503);
    expect(JSON.parse(unknown.text).error.message).toContain('10.255.255.1:8000');
    const t = await send('close-slow');
    expect(t.status).toBe(504);
    expect(JSON.parse(t.text).error.code).toBe('RTR_ERR_EPP_TIMEOUT');
    expect(t.ms).toBeGreaterThanOrEqual(1950);
    expect(t.ms).toBeLessThan(7500);
  });

  it('FailOpen: a slow picker is bypassed after the timeout and the router picks in-process', async () => {
    const r = await send('open-slow');
    expect(r.status).toBe(200);
    expect(['p-0', 'p-1']).toContain(r.pod);
    expect(r.ms).toBeGreaterThanOrEqual(1950);
    expect(r.ms).toBeLessThan(7500);
  });

  it('a missing picker Service: ResolvedRefs=False on the pool, 503 with FailClose, in-process with FailOpen; no ref: in-process', async () => {
    const st = await poolStatus(router, 'pool-close-missing');
    expect(st!.status.parents[0]!.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=False/InvalidExtensionRef']);
    const ok = await poolStatus(router, 'pool-pick');
    expect(ok!.status.parents[0]!.conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'ResolvedRefs=True']);
    expect(ok!.status.parents[0]!.conditions[0]!.message).toContain('picked by the Endpoint Picker default/epp-main');
    const closed = await send('close-missing');
    expect(closed.status).toBe(503);
    expect(JSON.parse(closed.text).error.message).toContain('endpointPickerRef Service default/no-such-epp not found');
    const streams = main.streams + slow.streams;
    expect((await send('open-missing')).status).toBe(200);
    expect((await send('none')).status).toBe(200);
    expect(main.streams + slow.streams).toBe(streams);
  });

  it('counts picker outcomes per pool and times the picks', async () => {
    const m = await scrape(router.metricsPort);
    const count = (pool: string, outcome: string) => sampleValue(m.samples, 'kthena_router_endpoint_picker_requests_total', { inference_pool: `default/${pool}`, outcome }) ?? 0;
    expect(count('pool-pick', 'picked')).toBeGreaterThanOrEqual(6);
    expect(count('pool-pick', 'immediate')).toBe(1);
    expect(count('pool-pick', 'failed')).toBe(1);
    expect(count('pool-close-slow', 'timeout')).toBe(1);
    expect(count('pool-close-missing', 'failed')).toBe(1);
    expect(sampleValue(m.samples, 'kthena_router_endpoint_picker_duration_seconds_count', { inference_pool: 'default/pool-open-slow' })).toBe(1);
  });
});
