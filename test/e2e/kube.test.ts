/**
 * Kubernetes mode end to end: the real CLI (`kthena-router serve --kubeconfig FILE`) against the
 * in-process fake API server on 127.0.40.x, simulated vLLM pods on 127.0.41.x. Objects created,
 * changed and deleted in the API change routing within a second; statuses are written once per
 * change; two routers elect one status writer; an unreachable API server leaves the router
 * running and not ready; --enable-gateway-api bootstraps the GatewayClass and default Gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import https from 'node:https';
import path from 'node:path';
import { FakeApiServer, writeKubeconfig, type KObj } from '../helpers/fake-apiserver.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { chat, cleanup, eventually, freePort, startPods, startRouter, tempDir, type RouterProc } from './harness.js';
import { createTestCa, startMockProvider } from '../helpers/mock-provider.js';

const G = 'networking.serving.volcano.sh/v1alpha1';
const IP = (n: number): string => `127.0.41.${n}`;
/** The issue's bound for a change in the API to reach routing. */
const WITHIN = 1000;

const route = (name: string, model: string, server: string): KObj => ({
  apiVersion: G, kind: 'ModelRoute', metadata: { name, namespace: 'default' },
  spec: { modelName: model, rules: [{ targetModels: [{ modelServerName: server }] }] },
});
const server = (name: string, app: string, port: number): KObj => ({
  apiVersion: G, kind: 'ModelServer', metadata: { name, namespace: 'default' },
  spec: { model: 'org/base', inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app } }, workloadPort: { port } },
});
const pod = (name: string, app: string, ip: string): KObj => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app } },
  spec: { containers: [{ name: 'engine', image: 'sim' }] },
  status: { phase: 'Running', podIP: ip, startTime: '2026-01-01T00:00:00Z', conditions: [{ type: 'Ready', status: 'True' }] },
});

let dir: string;
let fleet: SimFleet;
let api: FakeApiServer;
let kubeconfig: string;
let port: number;
const routers: RouterProc[] = [];

async function podOf(url: string, model: string): Promise<string | number> {
  const r = await chat(url, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  return r.status === 200 ? r.headers.get('x-sim-pod') ?? 'no-header' : r.status;
}

/** A router in Kubernetes mode; the webhook (Kthena's default: on, port 8443) only where a test asks for it. */
async function kubeRouter(args: string[] = [], kc = kubeconfig): Promise<RouterProc> {
  const webhook = args.some((a) => a.startsWith('--webhook-port')) ? [] : ['--enable-webhook=false'];
  const r = await startRouter({ dir: '', workers: 1, args: ['--kubeconfig', kc, ...webhook, ...args], env: { POD_NAMESPACE: 'kthena-system', METRICS_SCRAPE_INTERVAL: '200ms' } });
  routers.push(r);
  return r;
}

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-kube-');
  port = await freePort();
  fleet = await startPods([1, 2, 3].map((n) => ({ name: `pod-${n}`, ip: IP(n), port, models: ['org/base'] })));
  api = new FakeApiServer();
  await api.listen('127.0.40.3');
  kubeconfig = await api.writeKubeconfig(path.join(dir, 'kubeconfig'));
  api.apply(server('srv-a', 'a', port));
  api.apply(server('srv-b', 'b', port));
  api.apply(pod('pod-1', 'a', IP(1)));
  api.apply(pod('pod-3', 'b', IP(3)));
  api.apply(route('chat', 'chat-model', 'srv-a'));
});

afterAll(async () => {
  await Promise.all(routers.map((r) => r.stop()));
  await api?.close();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('kthena-router serve --kubeconfig', () => {
  let r: RouterProc;

  it('becomes ready once synced and routes by the API objects', async () => {
    r = await kubeRouter();
    await r.waitReady();
    expect(await podOf(r.url, 'chat-model')).toBe('pod-1');
  });

  it('follows creates, changes and deletes within a second', async () => {
    // Create a route.
    api.apply(route('late', 'late-model', 'srv-b'));
    await eventually(async () => (await podOf(r.url, 'late-model')) === 'pod-3', WITHIN, 'new ModelRoute routable');
    // A new pod joins srv-a and the old one goes.
    api.apply(pod('pod-2', 'a', IP(2)));
    api.remove('v1', 'Pod', 'default', 'pod-1');
    await eventually(async () => (await podOf(r.url, 'chat-model')) === 'pod-2', WITHIN, 'pod replaced');
    // The route is pointed at another server.
    api.apply(route('chat', 'chat-model', 'srv-b'));
    await eventually(async () => (await podOf(r.url, 'chat-model')) === 'pod-3', WITHIN, 'route retargeted');
    // The route is deleted.
    api.remove(G, 'ModelRoute', 'default', 'late');
    await eventually(async () => (await podOf(r.url, 'late-model')) === 404, WITHIN, 'deleted ModelRoute gone');
  });

  it('writes statuses once per change', async () => {
    await eventually(() => api.get(G, 'ModelRoute', 'default', 'chat')?.status?.observedGeneration === 2, 5000, 'chat status at generation 2');
    const chatStatus = api.get(G, 'ModelRoute', 'default', 'chat')!.status;
    expect(chatStatus.conditions.map((c: any) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'ResolvedRefs=True']);
    await new Promise((res) => setTimeout(res, 500));
    const writes = api.statusWrites.filter((w) => w.name === 'chat');
    // Generation 1 (at start) and generation 2 (retargeted): nothing else changed its conditions.
    expect(writes.map((w) => w.status.observedGeneration)).toEqual([1, 2]);
    const srvA = api.statusWrites.filter((w) => w.name === 'srv-a').map((w) => w.status.conditions[1].message);
    // pod-1 ready (1 pod), pod-2 added (2 pods), pod-1 removed (1 pod); an intermediate state may coalesce.
    expect(srvA[0]).toBe('1 ready pod selected');
    expect(srvA[srvA.length - 1]).toBe('1 ready pod selected');
    expect(new Set(srvA.slice(1, -1)).size).toBeLessThanOrEqual(1);
  });

  it('an invalid change is reported in status and the last valid version keeps routing', async () => {
    const bad = route('chat', 'chat-model', 'srv-a');
    bad.spec.rules[0].targetModels[0].weight = 1000;
    api.apply(bad);
    await eventually(() => api.get(G, 'ModelRoute', 'default', 'chat')?.status?.conditions?.[0]?.status === 'False', 5000, 'Accepted=False');
    const st = api.get(G, 'ModelRoute', 'default', 'chat')!.status;
    expect(st.observedGeneration).toBe(3);
    expect(st.conditions[0].reason).toBe('Invalid');
    expect(st.conditions[0].message).toContain('spec.rules[0].targetModels[0].weight');
    expect(await podOf(r.url, 'chat-model')).toBe('pod-3');
    // Fixed again: accepted at generation 4 (a router started now must see a valid version).
    api.apply(route('chat', 'chat-model', 'srv-b'));
    await eventually(() => api.get(G, 'ModelRoute', 'default', 'chat')?.status?.conditions?.[0]?.status === 'True', 5000, 'Accepted=True again');
    expect(api.get(G, 'ModelRoute', 'default', 'chat')!.status.observedGeneration).toBe(4);
  });

  it('hot reloads the router configuration from ConfigMap kthena-router-config', async () => {
    api.apply({
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kthena-router-config', namespace: 'kthena-system' },
      data: { routerConfiguration: 'scheduler:\n  plugins:\n    Score:\n      enabled:\n      - {name: random, weight: 1}\n' },
    });
    await r.waitForLog((l) => l.includes('router configuration reloaded') && l.includes('random'), 5000, 'stderr');
    expect(await podOf(r.url, 'chat-model')).toBe('pod-3');
  });

  it('ExternalModelProviders and their labelled credential Secrets: watched, statuses written, credentials rotated', async () => {
    const mock = await startMockProvider(createTestCa('kube-provider-ca').issue(['127.0.0.1']), (_call, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}');
    });
    try {
      const credLabel = { 'networking.serving.volcano.sh/external-model-provider-credential': 'true' };
      const secret = (value: string, labelled = true): KObj => ({
        apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cred', namespace: 'default', labels: labelled ? credLabel : {} }, type: 'Opaque',
        data: { apiKey: Buffer.from(value).toString('base64') },
      });
      api.apply({ apiVersion: G, kind: 'ExternalModelProvider', metadata: { name: 'prov', namespace: 'default' },
        spec: { baseURL: mock.url, insecureSkipVerify: true, auth: { secretRef: { name: 'cred', key: 'apiKey' } } } });
      api.apply({ apiVersion: G, kind: 'ModelRoute', metadata: { name: 'ext', namespace: 'default' },
        spec: { modelName: 'ext-model', rules: [{ targetModels: [{ externalModelProviderName: 'prov' }] }] } });
      const conds = (): string[] => (api.get(G, 'ExternalModelProvider', 'default', 'prov')?.status?.conditions ?? []).map((c: any) => `${c.type}=${c.status}/${c.reason}`);
      await eventually(() => conds().join() === 'CredentialsResolved=False/CredentialNotFound,Ready=False/CredentialNotFound', 5000, 'provider not ready');
      expect(await podOf(r.url, 'ext-model')).toBe(503);
      api.apply(secret('  key-one\n'));
      await eventually(() => conds().join() === 'CredentialsResolved=True/CredentialResolved,Ready=True/Ready', 5000, 'provider ready');
      await eventually(async () => (await podOf(r.url, 'ext-model')) === 'no-header', 5000, 'routed to the provider');
      expect(mock.calls[mock.calls.length - 1]!.headers.authorization).toBe('Bearer key-one');
      api.apply(secret('key-two'));
      await eventually(async () => { await podOf(r.url, 'ext-model'); return mock.calls[mock.calls.length - 1]!.headers.authorization === 'Bearer key-two'; }, 5000, 'rotated key used');
      // The label removed: the Secret is no longer read (Kthena's labelled Secret cache).
      api.apply(secret('key-two', false));
      await eventually(async () => (await podOf(r.url, 'ext-model')) === 503, 5000, 'unlabelled Secret not used');
      expect(api.get(G, 'ExternalModelProvider', 'default', 'prov')!.status.observedGeneration).toBe(1);
    } finally {
      await mock.close();
    }
  });

  it('two routers: one Lease holder writes statuses, both route', async () => {
    const second = await kubeRouter();
    await second.waitReady();
    expect(await podOf(second.url, 'chat-model')).toBe('pod-3');
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'kthena-system', 'kthena-router')!;
    const holder = lease.spec.holderIdentity as string;
    expect(holder).not.toBe('');
    const before = api.statusWrites.length;
    api.apply(pod('pod-4', 'b', IP(3)));
    await eventually(() => api.get(G, 'ModelServer', 'default', 'srv-b')?.status?.conditions?.[1]?.message === '2 ready pods selected', 5000, 'srv-b status');
    await new Promise((res) => setTimeout(res, 500));
    // Exactly one write for the change although two routers computed it.
    expect(api.statusWrites.slice(before).filter((w) => w.name === 'srv-b')).toHaveLength(1);
    expect(api.get('coordination.k8s.io/v1', 'Lease', 'kthena-system', 'kthena-router')!.spec.holderIdentity).toBe(holder);
    await second.stop();
  });

  it('relists after 410 Gone and resumes after dropped connections', async () => {
    api.dropWatches();
    api.apply(route('after-drop', 'drop-model', 'srv-a'));
    await eventually(async () => (await podOf(r.url, 'drop-model')) === 'pod-2', 5000, 'route created during a dropped watch');
    await eventually(() => api.watchCount() > 0, 5000, 'watches re-established');
    api.dropWatches();
    api.remove(G, 'ModelRoute', 'default', 'after-drop');
    api.compact();
    await eventually(async () => (await podOf(r.url, 'drop-model')) === 404, 5000, 'deletion seen through a relist');
    const res = await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/kthena_router_kube_watch_restarts_total\{kind="ModelRoute",reason="expired"\} [1-9]/);
    expect(text).toMatch(/kthena_router_kube_informer_synced\{kind="ModelRoute"\} 1/);
    expect(text).toMatch(/kthena_router_leader 1/);
  });

  it('--enable-gateway-api creates GatewayClass kthena-router and the default Gateway', async () => {
    const g = await kubeRouter(['--enable-gateway-api']);
    await g.waitReady();
    await eventually(() => api.get('gateway.networking.k8s.io/v1', 'Gateway', 'kthena-system', 'default') !== undefined, 5000, 'default Gateway');
    const gc = api.get('gateway.networking.k8s.io/v1', 'GatewayClass', undefined, 'kthena-router')!;
    expect(gc.spec).toEqual({ controllerName: 'volcano.sh/kthena-router' });
    const gw = api.get('gateway.networking.k8s.io/v1', 'Gateway', 'kthena-system', 'default')!;
    expect(gw.spec).toEqual({ gatewayClassName: 'kthena-router', listeners: [{ name: 'default', port: g.port, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } }] });
    // The first router releases the Lease; this one takes over and writes the Gateway API statuses.
    await r.stop();
    const cond = (o: any, type: string): string | undefined => o?.status?.conditions?.find((c: any) => c.type === type)?.status;
    await eventually(() => cond(api.get('gateway.networking.k8s.io/v1', 'Gateway', 'kthena-system', 'default'), 'Programmed') === 'True', 15_000, 'Gateway Programmed');
    const st = api.get('gateway.networking.k8s.io/v1', 'Gateway', 'kthena-system', 'default')!.status;
    expect(cond({ status: st }, 'Accepted')).toBe('True');
    expect(st.listeners.map((l: any) => [l.name, l.conditions.find((c: any) => c.type === 'Programmed').status])).toEqual([['default', 'True']]);
    await eventually(() => cond(api.get('gateway.networking.k8s.io/v1', 'GatewayClass', undefined, 'kthena-router'), 'Accepted') === 'True', 5000, 'GatewayClass Accepted');
    // Kthena §6.3: a ModelRoute without parentRefs binds only to Gateways of its own namespace, so
    // the default Gateway (kthena-system) does not serve the route in namespace default.
    expect(await podOf(g.url, 'chat-model')).toBe(404);
    await g.stop();
  });
});

describe('the validating webhook in Kubernetes mode', () => {
  it('gets its certificate through the API (Secret created) and answers AdmissionReviews over TLS', async () => {
    const webhookPort = await freePort();
    const r = await kubeRouter(['--webhook-port', String(webhookPort)]);
    await r.waitReady();
    await eventually(() => api.get('v1', 'Secret', 'kthena-system', 'kthena-router-webhook-certs') !== undefined, 10_000, 'certificate Secret');
    const secret = api.get('v1', 'Secret', 'kthena-system', 'kthena-router-webhook-certs')!;
    const ca = Buffer.from(secret.data!['ca.crt']!, 'base64').toString('utf8');
    const review = (modelName: string) => JSON.stringify({
      apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
      request: { uid: 'u1', operation: 'CREATE', namespace: 'default', object: { ...route('x', modelName, 'srv-a'), spec: { ...route('x', modelName, 'srv-a').spec, ...(modelName === '' ? { modelName: undefined } : {}) } } },
    });
    const post = (body: string) => new Promise<any>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: webhookPort, path: '/validate/modelroute', method: 'POST', ca, servername: 'kthena-router-webhook.kthena-system.svc',
        headers: { 'content-type': 'application/json' }, agent: false,
      }, (res) => { let t = ''; res.on('data', (c) => { t += c; }); res.on('end', () => resolve(JSON.parse(t))); });
      req.on('error', reject);
      req.end(body);
    });
    await eventually(async () => { try { await post(review('ok')); return true; } catch { return false; } }, 10_000, 'webhook listening');
    expect((await post(review('ok'))).response).toMatchObject({ uid: 'u1', allowed: true });
    const denied = (await post(review(''))).response;
    expect(denied.allowed).toBe(false);
    await r.stop();
  });
});

describe('an unreachable API server', () => {
  it('keeps the router running and not ready, and it becomes ready once the server appears', async () => {
    const late = new FakeApiServer();
    await late.listen('127.0.40.4');
    const url = new URL(late.url);
    await late.close();
    const kc = await writeKubeconfig(url.origin, path.join(dir, 'kubeconfig-late'));
    const r = await kubeRouter([], kc);
    // Listening and healthy, but not ready, for a while.
    await eventually(async () => { try { return (await fetch(`${r.url}/healthz`)).status === 200; } catch { return false; } }, 30_000, 'healthz'); // a hang bound: start-up alone took over 10 s on a loaded 2-core machine
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${r.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ message: 'router is not ready' });
      await new Promise((res2) => setTimeout(res2, 100));
    }
    expect(r.proc.exitCode).toBeNull();
    expect(r.stderr.some((l) => l.includes('Kubernetes list/watch failed; retrying'))).toBe(true);
    // The API server comes up at that address: the router syncs and becomes ready.
    const srv = new FakeApiServer();
    await new Promise<void>((resolve) => srv.server.listen(Number(url.port), url.hostname, resolve));
    srv.url = url.origin;
    srv.apply(server('srv-a', 'a', port));
    srv.apply(pod('pod-2', 'a', IP(2)));
    srv.apply(route('chat', 'chat-model', 'srv-a'));
    try {
      await r.waitReady(40_000);
      expect(await podOf(r.url, 'chat-model')).toBe('pod-2');
    } finally {
      await r.stop();
      await srv.close();
    }
  });
});
