/**
 * The Kubernetes provider against the in-process fake API server (127.0.40.x): initial sync,
 * create/change/delete, validation exactly as in file mode, 410 relist, bookmark resume, dropped
 * connections, backoff after errors, an unreachable server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeApiServer, type KObj } from '../helpers/fake-apiserver.js';
import { KubeClient } from '../../src/kube/client.js';
import { KubeProvider, type KubeSnapshot } from '../../src/provider/kube/index.js';
import { backoffDelay } from '../../src/kube/backoff.js';
import { KTHENA_GROUP_VERSION } from '../../src/provider/kube/kinds.js';
import { FileProvider, type FileSnapshot } from '../../src/provider/file/index.js';
import { KubeConfig } from '@kubernetes/client-node';
import { apiKeyDigest } from '../../src/shared/api-key.js';

const HOST = '127.0.40.1';
const WAIT = { timeout: 5000, interval: 10 };
const G = KTHENA_GROUP_VERSION;

export function route(name: string, model: string, server: string, o: { namespace?: string; created?: string } = {}): KObj {
  return {
    apiVersion: G, kind: 'ModelRoute',
    metadata: { name, namespace: o.namespace ?? 'default', ...(o.created ? { creationTimestamp: o.created } : {}) },
    spec: { modelName: model, rules: [{ targetModels: [{ modelServerName: server }] }] },
  };
}

export function server(name: string, app: string, port = 8000, o: { created?: string } = {}): KObj {
  return {
    apiVersion: G, kind: 'ModelServer', metadata: { name, namespace: 'default', ...(o.created ? { creationTimestamp: o.created } : {}) },
    spec: { inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app } }, workloadPort: { port } },
  };
}

export function pod(name: string, app: string, ip: string, o: { created?: string; ready?: boolean } = {}): KObj {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app }, ...(o.created ? { creationTimestamp: o.created } : {}), managedFields: [{ manager: 'kubelet' }], annotations: { big: 'x'.repeat(100) } },
    spec: { nodeName: 'node-1', containers: [{ name: 'vllm', image: 'vllm/vllm-openai', env: [{ name: 'A', value: 'b' }] }] },
    status: {
      phase: 'Running', podIP: ip, startTime: '2026-01-01T00:00:00Z',
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True', lastTransitionTime: '2026-01-01T00:00:01Z' }],
      containerStatuses: [{ name: 'vllm', ready: true, state: { running: { startedAt: '2026-01-01T00:00:02Z' } } }],
    },
  };
}

interface H {
  api: FakeApiServer;
  provider: KubeProvider;
  snaps: KubeSnapshot[];
  last(): KubeSnapshot;
  until(pred: (s: KubeSnapshot) => boolean): Promise<KubeSnapshot>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function clientFor(url: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return new KubeClient(kc, { timeoutMs: 2000 });
}

async function setup(objs: KObj[] = [], o: { api?: FakeApiServer; gatewayApi?: boolean; inferenceExtension?: boolean; watchIdleMs?: number } = {}): Promise<H> {
  const api = o.api ?? new FakeApiServer();
  if (o.api === undefined) {
    await api.listen(HOST);
    cleanups.push(() => api.close());
  }
  for (const obj of objs) api.apply(obj);
  const snaps: KubeSnapshot[] = [];
  const provider = new KubeProvider({
    client: clientFor(api.url),
    context: { podNamespace: 'kthena-system', gatewayApi: o.gatewayApi ?? false, inferenceExtension: o.inferenceExtension ?? false },
    onChange: (s) => snaps.push(s),
    backoff: { initialMs: 20, maxMs: 200 },
    debounceMs: 5,
    watchIdleMs: o.watchIdleMs,
  });
  await provider.start();
  cleanups.push(() => provider.stop());
  const h: H = {
    api, provider, snaps,
    last: () => snaps[snaps.length - 1]!,
    async until(pred) {
      await expect.poll(() => snaps.length > 0 && pred(h.last()), WAIT).toBe(true);
      return h.last();
    },
  };
  return h;
}

const names = (s: KubeSnapshot): string[] => [
  ...s.resources.modelRoutes.map((r) => `MR:${r.metadata.name}`),
  ...s.resources.modelServers.map((r) => `MS:${r.metadata.name}`),
  ...s.resources.pods.map((r) => `Pod:${r.metadata.name}`),
];

describe('KubeProvider', () => {
  it('restarts a watch that stays silent past the idle timeout (a hung API server), and keeps following changes', async () => {
    const h = await setup([route('r1', 'm1', 's1')], { watchIdleMs: 300 });
    await h.until((s) => names(s).includes('MR:r1'));
    const inf = h.provider.informers.find((i) => i.kind.kind === 'ModelRoute')!;
    const before = inf.watches;
    // No event and no bookmark: the fake server's watches just stay open.
    await expect.poll(() => inf.watches, { timeout: 5000, interval: 20 }).toBeGreaterThanOrEqual(before + 2);
    expect(inf.failures).toBeGreaterThanOrEqual(2);
    h.api.apply(route('r2', 'm2', 's1'));
    await h.until((s) => names(s).includes('MR:r2'));
  });


  it('emits nothing until every informer has synced, then the full set', async () => {
    const h = await setup([route('r1', 'm1', 's1'), server('s1', 'a'), pod('p1', 'a', '127.0.41.1')]);
    const s = await h.until((x) => x.resources.pods.length === 1);
    expect(h.provider.synced).toBe(true);
    expect(names(s).sort()).toEqual(['MR:r1', 'MS:s1', 'Pod:p1']);
    // The first emitted snapshot already holds everything: nothing partial before sync.
    expect(names(h.snaps[0]!).sort()).toEqual(['MR:r1', 'MS:s1', 'Pod:p1']);
    expect(s.routerConfig).toBeNull();
  });

  it('keeps only the Pod fields the translator reads', async () => {
    const h = await setup([pod('p1', 'a', '127.0.41.1')]);
    await h.until((x) => x.resources.pods.length === 1);
    const cached = h.provider.get('Pod', 'default', 'p1')!;
    expect(JSON.stringify(cached)).not.toContain('managedFields');
    expect(JSON.stringify(cached)).not.toContain('vllm/vllm-openai');
    expect(cached.status).toEqual({
      phase: 'Running', podIP: '127.0.41.1', startTime: '2026-01-01T00:00:00Z', conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ state: { running: { startedAt: '2026-01-01T00:00:02Z' } } }],
    });
  });

  it('emits the same ResourceSet as the file provider for the same objects', async () => {
    const created = '2026-03-01T10:00:00Z';
    const objs = [route('r1', 'm1', 's1', { created }), server('s1', 'a', 8000, { created }), pod('p1', 'a', '127.0.41.1', { created }), pod('p2', 'a', '127.0.41.2', { created, ready: false })];
    const h = await setup(objs);
    const kube = await h.until((x) => x.resources.pods.length === 2);

    const dir = await mkdtemp(path.join(tmpdir(), 'kthena-kp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'all.yaml'), objs.map((o) => JSON.stringify(o)).join('\n---\n'));
    let file: FileSnapshot | null = null;
    const fp = new FileProvider(dir, { onChange: (s) => { file = s; } });
    await fp.start();
    await fp.stop();
    expect(file).not.toBeNull();
    // uid and resourceVersion are the API server's; everything else must be identical.
    const strip = (rs: unknown): unknown => JSON.parse(JSON.stringify(rs, (k, v) => (k === 'uid' || k === 'resourceVersion' ? undefined : v)));
    expect(strip(kube.resources)).toEqual(strip(file!.resources));
    expect(kube.problems).toEqual([]);
  });

  it('Gateway API kinds: the same typed resources as the file provider', async () => {
    const created = '2026-03-01T10:00:00Z';
    const objs: KObj[] = [
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'kthena-router', creationTimestamp: created }, spec: { controllerName: 'volcano.sh/kthena-router' } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'default', creationTimestamp: created },
        spec: { gatewayClassName: 'kthena-router', listeners: [{ name: 'http', port: 8080, protocol: 'HTTP' }] },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'hr', namespace: 'default', creationTimestamp: created },
        spec: { parentRefs: [{ name: 'g' }], rules: [{ backendRefs: [{ name: 'svc', port: 80 }] }] },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'default', creationTimestamp: created }, spec: { type: 'ClusterIP', ports: [{ port: 80, targetPort: 8000 }] } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { team: 'a' }, creationTimestamp: created } },
    ];
    const h = await setup(objs, { gatewayApi: true });
    const kube = await h.until((x) => (x.resources.httpRoutes ?? []).length === 1 && (x.resources.namespaces ?? []).length === 1);
    expect(kube.problems).toEqual([]);

    const dir = await mkdtemp(path.join(tmpdir(), 'kthena-kp-gw-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'all.yaml'), objs.map((o) => JSON.stringify(o)).join('\n---\n'));
    let file: FileSnapshot | null = null;
    const fp = new FileProvider(dir, { onChange: (s) => { file = s; } });
    await fp.start();
    await fp.stop();
    const strip = (rs: unknown): unknown => JSON.parse(JSON.stringify(rs, (k, v) => (k === 'uid' || k === 'resourceVersion' ? undefined : v)));
    expect(strip(kube.resources)).toEqual(strip(file!.resources));
    expect(kube.resources.gatewayClasses!.map((g) => g.metadata.namespace)).toEqual(['']);
  });

  it('follows creates, changes and deletes', async () => {
    const h = await setup([server('s1', 'a')]);
    await h.until((x) => x.resources.modelServers.length === 1);
    h.api.apply(route('r1', 'm1', 's1'));
    h.api.apply(pod('p1', 'a', '127.0.41.1'));
    await h.until((x) => x.resources.modelRoutes.length === 1 && x.resources.pods.length === 1);
    h.api.apply(route('r1', 'm1', 's2'));
    let s = await h.until((x) => x.resources.modelRoutes[0]?.spec.rules[0]!.targetModels[0]!.modelServerName === 's2');
    expect(s.resources.modelRoutes[0]!.metadata.generation).toBe(2);
    h.api.remove('v1', 'Pod', 'default', 'p1');
    s = await h.until((x) => x.resources.pods.length === 0);
    expect(s.resources.modelRoutes).toHaveLength(1);
  });

  it('reports an invalid version as a problem and keeps the last valid one, like the file provider', async () => {
    const h = await setup([route('r1', 'm1', 's1')]);
    await h.until((x) => x.resources.modelRoutes.length === 1);
    const bad = route('r1', 'm1', 's1');
    bad.spec.rules[0].targetModels[0].weight = 1000;
    h.api.apply(bad);
    const s = await h.until((x) => x.problems.length > 0);
    expect(s.resources.modelRoutes[0]!.metadata.generation).toBe(1);
    expect(s.problems.map((p) => [p.kind, p.name, p.field, p.severity])).toEqual([
      ['ModelRoute', 'r1', '', 'warning'],
      ['ModelRoute', 'r1', 'spec.rules[0].targetModels[0].weight', 'rejected'],
    ]);
    expect(s.problems[0]!.message).toBe('this version is rejected; the last valid version (generation 1) stays in use');
    expect(s.problems.every((p) => p.file === undefined)).toBe(true);
    // A brand-new invalid object is reported and left out.
    const fresh = route('r2', '', 's1');
    delete fresh.spec.modelName;
    h.api.apply(fresh);
    const s2 = await h.until((x) => x.problems.some((p) => p.name === 'r2'));
    expect(s2.resources.modelRoutes.map((r) => r.metadata.name)).toEqual(['r1']);
  });

  it('relists after 410 Gone and sees what changed meanwhile, deletions included', async () => {
    const h = await setup([route('r1', 'm1', 's1'), route('r2', 'm2', 's1')]);
    await h.until((x) => x.resources.modelRoutes.length === 2);
    const inf = h.provider.informers.find((i) => i.kind.kind === 'ModelRoute')!;
    expect(inf.lists).toBe(1);
    // Changes while the watch is down, then the log is compacted: the resume version is gone.
    h.api.dropWatches();
    h.api.remove(G, 'ModelRoute', 'default', 'r1');
    h.api.apply(route('r3', 'm3', 's1'));
    h.api.compact();
    const s = await h.until((x) => x.resources.modelRoutes.map((r) => r.metadata.name).join() === 'r2,r3');
    expect(s.resources.modelRoutes).toHaveLength(2);
    expect(inf.lists).toBeGreaterThanOrEqual(2);
  });

  it('relists when the watch request itself is answered 410 Gone', async () => {
    const h = await setup([route('r1', 'm1', 's1')]);
    await h.until((x) => x.resources.modelRoutes.length === 1);
    const inf = h.provider.informers.find((i) => i.kind.kind === 'ModelRoute')!;
    h.api.expiredAsHttpStatus = true;
    h.api.dropWatches();
    h.api.apply(route('r2', 'm2', 's1'));
    h.api.compact();
    await h.until((x) => x.resources.modelRoutes.length === 2);
    expect(inf.lists).toBe(2);
  });

  it('resumes from a bookmark instead of relisting', async () => {
    const h = await setup([route('r1', 'm1', 's1')]);
    await h.until((x) => x.resources.modelRoutes.length === 1);
    const inf = h.provider.informers.find((i) => i.kind.kind === 'ModelRoute')!;
    await expect.poll(() => h.api.watchCount(`${G}/modelroutes`), WAIT).toBe(1);
    const watchesBefore = h.api.requests.filter((r) => r.path.endsWith('/modelroutes') && r.query.watch === 'true');
    expect(watchesBefore.every((r) => r.query.allowWatchBookmarks === 'true')).toBe(true);
    // Other kinds move the version on; the bookmark tells the watch, then the log is compacted.
    h.api.advance(50);
    expect(h.api.bookmark()).toBeGreaterThan(0);
    const bookmarkRv = String(h.api.rv);
    await new Promise((r) => setTimeout(r, 50));
    h.api.compact();
    h.api.dropWatches();
    await expect.poll(() => h.api.requests.some((r) => r.path.endsWith('/modelroutes') && r.query.watch === 'true' && r.query.resourceVersion === bookmarkRv), WAIT).toBe(true);
    h.api.apply(route('r2', 'm2', 's1'));
    await h.until((x) => x.resources.modelRoutes.length === 2);
    expect(inf.lists).toBe(1);
  });

  it('recovers from dropped connections without losing events', async () => {
    const h = await setup([server('s1', 'a')]);
    await h.until((x) => x.resources.modelServers.length === 1);
    for (let i = 0; i < 3; i++) {
      await expect.poll(() => h.api.watchCount(`${G}/modelservers`), WAIT).toBe(1);
      h.api.dropWatches();
      h.api.apply(server(`s${i + 2}`, 'a'));
    }
    const s = await h.until((x) => x.resources.modelServers.length === 4);
    expect(s.resources.modelServers.map((r) => r.metadata.name)).toEqual(['s1', 's2', 's3', 's4']);
  });

  it('an in-stream ERROR other than 410 counts as a failure (backoff), then the watch resumes', async () => {
    const h = await setup([server('s1', 'a')]);
    await h.until((x) => x.resources.modelServers.length === 1);
    const inf = h.provider.informers.find((i) => i.kind.kind === 'ModelServer')!;
    await expect.poll(() => h.api.watchCount(`${G}/modelservers`), WAIT).toBe(1);
    expect(inf.failures).toBe(0);
    h.api.errorWatches(500);
    await expect.poll(() => inf.failures, WAIT).toBe(1);
    h.api.apply(server('s2', 'a'));
    await h.until((x) => x.resources.modelServers.length === 2);
    expect(inf.lists).toBe(1);
  });

  it('a pod update touching only fields the router drops triggers no rebuild', async () => {
    const h = await setup([pod('p1', 'a', '127.0.41.1')]);
    await h.until((x) => x.resources.pods.length === 1);
    const n = h.snaps.length;
    const p = pod('p1', 'a', '127.0.41.1');
    p.status.conditions[0].lastProbeTime = '2026-01-01T00:01:00Z';
    p.metadata.annotations = { changed: 'yes' };
    h.api.apply(p);
    await expect.poll(() => h.provider.get('Pod', 'default', 'p1')?.metadata.resourceVersion, WAIT).toBe(String(h.api.rv));
    await new Promise((r) => setTimeout(r, 100)); // several debounce periods
    expect(h.snaps.length).toBe(n);
    // A real change afterwards is seen, and it is the only new snapshot.
    h.api.apply(pod('p1', 'a', '127.0.41.9'));
    await h.until((x) => x.resources.pods[0]!.status.podIP === '127.0.41.9');
    expect(h.snaps.length).toBe(n + 1);
  });

  it('backs off and retries failed lists, then syncs', async () => {
    const api = new FakeApiServer();
    await api.listen(HOST);
    cleanups.push(() => api.close());
    api.failRequests = 12;
    api.apply(route('r1', 'm1', 's1'));
    const h = await setup([], { api });
    await h.until((x) => x.resources.modelRoutes.length === 1);
    expect(h.provider.informers.reduce((n, i) => n + i.failures, 0)).toBeGreaterThan(0);
  });

  it('against an unreachable API server: never synced, never emits, keeps retrying, never throws', async () => {
    const api = new FakeApiServer();
    await api.listen(HOST);
    const url = api.url;
    await api.close();
    const snaps: KubeSnapshot[] = [];
    const provider = new KubeProvider({
      client: clientFor(url), context: { podNamespace: 'default', gatewayApi: false, inferenceExtension: false },
      onChange: (s) => snaps.push(s), backoff: { initialMs: 10, maxMs: 50 },
    });
    await provider.start();
    cleanups.push(() => provider.stop());
    await expect.poll(() => provider.informers.every((i) => i.failures >= 3), WAIT).toBe(true);
    expect(provider.synced).toBe(false);
    expect(snaps).toEqual([]);
  });

  it('reads the router configuration from ConfigMap kthena-router-config in POD_NAMESPACE', async () => {
    const cm = (ns: string, text: string): KObj => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kthena-router-config', namespace: ns }, data: { routerConfiguration: text } });
    const h = await setup([cm('other', 'ignored: true'), cm('kthena-system', 'scheduler: {}')]);
    const s = await h.until((x) => x.routerConfig !== null);
    expect(s.routerConfig).toBe('scheduler: {}');
    h.api.apply(cm('kthena-system', 'scheduler: {plugins: {}}'));
    await h.until((x) => x.routerConfig === 'scheduler: {plugins: {}}');
    h.api.remove('v1', 'ConfigMap', 'kthena-system', 'kthena-router-config');
    await h.until((x) => x.routerConfig === null);
  });

  it('keeps only Secrets labelled for a purpose and validates Gateway API kinds when enabled', async () => {
    const secret = (name: string, labelled: boolean): KObj => ({
      apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default', labels: labelled ? { 'networking.serving.volcano.sh/external-model-provider-credential': 'true' } : {} },
      data: { apiKey: Buffer.from('k').toString('base64') },
    });
    const gw: KObj = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'g', namespace: 'default' }, spec: { gatewayClassName: 'kthena-router', listeners: [{ name: 'http', port: 8080, protocol: 'HTTP' }] } };
    const pem = (what: string) => Buffer.from(`-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`).toString('base64');
    const tls: KObj = {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'cert', namespace: 'default' },
      data: { 'tls.crt': pem('CERTIFICATE'), 'tls.key': pem('PRIVATE KEY'), other: 'eA==' },
    };
    const h = await setup([secret('cred', true), secret('other', false), gw, tls], { gatewayApi: true });
    const s = await h.until((x) => (x.resources.secrets ?? []).length === 2);
    // Credential values live in the typed Secret only, never in the raw map (statuses read the typed one).
    expect(s.raw.Secret).toBeUndefined();
    expect(s.resources.gateways!.map((o) => o.metadata.name)).toEqual(['g']);
    // Listener certificates: TLS Secrets only (field selector type=kubernetes.io/tls), typed.
    expect(s.resources.secrets!.map((o) => [o.metadata.name, o.type, o.tls?.cert.startsWith('-----BEGIN CERTIFICATE'), o.credentials])).toEqual([
      ['cert', 'kubernetes.io/tls', true, undefined], ['cred', 'Opaque', undefined, { apiKey: 'k' }],
    ]);
    expect(JSON.stringify(h.provider.get('Secret/tls', 'default', 'cert'))).not.toContain('"other"');
    // ReferenceGrant is optional (CRD may be absent): the fake server has it, so it synced empty.
    expect(h.provider.syncState().every((x) => x.synced)).toBe(true);
  });

  it('watches API-key Secrets by label, caches only digests, and follows adds, rotations and removals', async () => {
    const keySecret = (name: string, data: Record<string, string>, labels: Record<string, string> = {}): KObj => ({
      apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default', labels: { 'networking.serving.volcano.sh/api-key': 'true', ...labels } },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
    const unlabelled: KObj = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'plain', namespace: 'default' }, data: { k: Buffer.from('sk-plain').toString('base64') } };
    const h = await setup([keySecret('team-a', { k1: 'sk-alpha\n', k2: 'sk-beta' }), unlabelled]);
    const keysOf = (x: KubeSnapshot) => (x.resources.secrets ?? []).map((o) => [o.metadata.name, o.apiKeys?.user, o.apiKeys?.digests]);
    let s = await h.until((x) => (x.resources.secrets ?? []).length === 1);
    expect(keysOf(s)).toEqual([['team-a', 'team-a', [apiKeyDigest('sk-alpha'), apiKeyDigest('sk-beta')].sort()]]);
    // The informer's cache and the snapshot hold digests, never a raw key.
    const cached = JSON.stringify(h.provider.get('Secret/api-key', 'default', 'team-a'));
    const snapJson = JSON.stringify(s);
    for (const raw of ['sk-alpha', 'sk-beta', 'sk-plain']) {
      for (const form of [raw, Buffer.from(raw).toString('base64'), Buffer.from(raw + '\n').toString('base64')]) {
        expect(cached).not.toContain(form);
        expect(snapJson).not.toContain(form);
      }
    }
    // Rotation (k1 replaced), a user label, a second Secret; then a removal.
    h.api.apply(keySecret('team-a', { k1: 'sk-gamma', k2: 'sk-beta' }, { 'networking.serving.volcano.sh/api-key-user': 'alice' }));
    h.api.apply(keySecret('team-b', { k: 'sk-delta' }));
    s = await h.until((x) => (x.resources.secrets ?? []).length === 2 && x.resources.secrets![0].apiKeys?.user === 'alice');
    expect(keysOf(s)).toEqual([
      ['team-a', 'alice', [apiKeyDigest('sk-gamma'), apiKeyDigest('sk-beta')].sort()],
      ['team-b', 'team-b', [apiKeyDigest('sk-delta')]],
    ]);
    h.api.remove('v1', 'Secret', 'default', 'team-a');
    s = await h.until((x) => (x.resources.secrets ?? []).length === 1);
    expect(keysOf(s)).toEqual([['team-b', 'team-b', [apiKeyDigest('sk-delta')]]]);
  });

  it('holds a Secret labelled for two purposes once, with both contents', async () => {
    const both: KObj = {
      apiVersion: 'v1', kind: 'Secret',
      metadata: { name: 'both', namespace: 'default', labels: { 'networking.serving.volcano.sh/api-key': 'true', 'networking.serving.volcano.sh/external-model-provider-credential': 'true' } },
      data: { key: Buffer.from('sk-both').toString('base64') },
    };
    const h = await setup([both]);
    const s = await h.until((x) => (x.resources.secrets ?? []).length === 1);
    expect(s.resources.secrets![0].credentials).toEqual({ key: 'sk-both' });
    expect(s.resources.secrets![0].apiKeys).toEqual({ user: 'both', digests: [apiKeyDigest('sk-both')] });
    h.api.remove('v1', 'Secret', 'default', 'both');
    await h.until((x) => (x.resources.secrets ?? []).length === 0);
  });

  it('speaks HTTPS with the kubeconfig\'s CA and bearer token', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kthena-kp-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const host = '127.0.40.5';
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=fake-apiserver',
      '-addext', `subjectAltName=IP:${host}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    const tls = { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), cert: await readFile(path.join(dir, 'cert.pem'), 'utf8') };
    const api = new FakeApiServer({ tls });
    await api.listen(host);
    cleanups.push(() => api.close());
    api.apply(route('r1', 'm1', 's1'));
    const start = async (kubeconfig: string) => {
      const snaps: KubeSnapshot[] = [];
      const p = new KubeProvider({
        client: KubeClient.load({ kubeconfig, inCluster: false }), context: { podNamespace: 'default', gatewayApi: false, inferenceExtension: false },
        onChange: (s) => snaps.push(s), backoff: { initialMs: 20, maxMs: 100 },
      });
      await p.start();
      cleanups.push(() => p.stop());
      return { p, snaps };
    };
    // Trusting the server's CA, with a token: synced, and every request carried the token.
    const good = await start(await api.writeKubeconfig(path.join(dir, 'good'), { ca: tls.cert, token: 'sekret' }));
    await expect.poll(() => good.snaps.length, WAIT).toBe(1);
    expect(good.snaps[0]!.resources.modelRoutes).toHaveLength(1);
    expect(api.requests.length).toBeGreaterThan(0);
    expect(api.requests.every((r) => r.authorization === 'Bearer sekret')).toBe(true);
    // Another CA: the certificate is refused, nothing syncs.
    const other = path.join(dir, 'other');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=other',
      '-keyout', `${other}-key.pem`, '-out', `${other}-cert.pem`], { stdio: 'ignore' });
    await expect.poll(() => api.watchCount(), WAIT).toBe(good.p.informers.length);
    const n = api.requests.length;
    const bad = await start(await api.writeKubeconfig(other, { ca: await readFile(`${other}-cert.pem`, 'utf8') }));
    await expect.poll(() => bad.p.informers.every((i) => i.failures >= 2), WAIT).toBe(true);
    expect(bad.p.synced).toBe(false);
    expect(api.requests.length).toBe(n);
  });

  it('in-cluster: the service account token and CA from their mounted files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kthena-kp-sa-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const host = '127.0.40.6';
    const sa = path.join(dir, 'var/run/secrets/kubernetes.io/serviceaccount');
    await mkdir(sa, { recursive: true });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=kubernetes',
      '-addext', `subjectAltName=IP:${host}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(sa, 'ca.crt')], { stdio: 'ignore' });
    await writeFile(path.join(sa, 'token'), 'token-1');
    const api = new FakeApiServer({ tls: { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), cert: await readFile(path.join(sa, 'ca.crt'), 'utf8') } });
    await api.listen(host);
    cleanups.push(() => api.close());
    api.apply(server('s1', 'a'));
    const saved = { h: process.env.KUBERNETES_SERVICE_HOST, p: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = host;
    process.env.KUBERNETES_SERVICE_PORT = new URL(api.url).port;
    let client: KubeClient;
    try {
      client = KubeClient.load({ kubeconfig: '', inCluster: true, serviceAccountRoot: dir });
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.h], ['KUBERNETES_SERVICE_PORT', saved.p]] as const) {
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
      }
    }
    const snaps: KubeSnapshot[] = [];
    const p = new KubeProvider({ client, context: { podNamespace: 'default', gatewayApi: false, inferenceExtension: false }, onChange: (s) => snaps.push(s) });
    await p.start();
    cleanups.push(() => p.stop());
    await expect.poll(() => snaps.length, WAIT).toBe(1);
    expect(snaps[0]!.resources.modelServers).toHaveLength(1);
    expect(new Set(api.requests.map((r) => r.authorization))).toEqual(new Set(['Bearer token-1']));
  });

  it('an optional kind whose CRD is absent (404) does not hold readiness back', async () => {
    const api = new FakeApiServer();
    await api.listen(HOST);
    cleanups.push(() => api.close());
    api.unserved.add('inference.networking.x-k8s.io/v1alpha2/inferenceobjectives');
    api.apply(route('r1', 'm1', 's1'));
    const h = await setup([], { api, gatewayApi: true, inferenceExtension: true });
    await h.until((x) => x.resources.modelRoutes.length === 1);
    expect(h.provider.syncState().find((x) => x.kind === 'InferenceObjective')).toMatchObject({ synced: true });
    expect(h.last().resources.inferenceObjectives).toEqual([]);
    // A required kind that is absent does hold it back.
    const api2 = new FakeApiServer();
    await api2.listen(HOST);
    cleanups.push(() => api2.close());
    api2.unserved.add('inference.networking.k8s.io/v1/inferencepools');
    const h2 = await setup([], { api: api2, gatewayApi: true, inferenceExtension: true });
    await expect.poll(() => h2.provider.informers.find((i) => i.kind.kind === 'InferencePool')!.failures, WAIT).toBeGreaterThan(1);
    expect(h2.provider.synced).toBe(false);
    expect(h2.snaps).toEqual([]);
  });

  it('backoff grows exponentially with jitter and is capped', () => {
    const o = { initialMs: 100, maxMs: 1000 };
    expect(backoffDelay(1, { ...o, random: () => 0 })).toBe(50);
    expect(backoffDelay(1, { ...o, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(3, { ...o, random: () => 0 })).toBe(200);
    expect(backoffDelay(10, { ...o, random: () => 0 })).toBe(500);
    expect(backoffDelay(10, { ...o, random: () => 0.999999 })).toBe(1000);
  });
});
