/**
 * Status conditions (pure), the status writer (only when changed, 409 conflicts retried) and
 * Lease leader election (two candidates, one writer, takeover) against the fake API server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, type KObj } from '../helpers/fake-apiserver.js';
import { KubeClient } from '../../src/kube/client.js';
import { KubernetesMode } from '../../src/control/kubernetes.js';
import { desiredStatuses } from '../../src/control/statuses.js';
import { LeaderElector } from '../../src/status/leader.js';
import { computeStatuses, gatewayStatusEntries, type DesiredStatus, type StatusInput } from '../../src/translator/status.js';
import { StatusWriter } from '../../src/status/writer.js';
import type { GatewayStatuses } from '../../src/ir/gateway.js';
import { translate } from '../../src/translator/index.js';
import { parseManifestObject } from '../../src/resources/validate.js';
import { parseGatewayObject, toFullResourceSet } from '../../src/resources/validate.js';
import type { GatewayResource } from '../../src/resources/gateway.js';
import type { AnyResource } from '../../src/resources/types.js';

const HOST = '127.0.40.2';
const G = 'networking.serving.volcano.sh/v1alpha1';
const WAIT = { timeout: 8000, interval: 10 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function clientFor(url: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return new KubeClient(kc, { timeoutMs: 2000 });
}

const route = (name: string, server: string, extra: Record<string, unknown> = {}): KObj => ({
  apiVersion: G, kind: 'ModelRoute', metadata: { name, namespace: 'default', generation: 3 },
  spec: { modelName: name, rules: [{ targetModels: [{ modelServerName: server }] }], ...extra },
});
const server = (name: string, app: string): KObj => ({
  apiVersion: G, kind: 'ModelServer', metadata: { name, namespace: 'default', generation: 1 },
  spec: { inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app } }, workloadPort: { port: 8000 } },
});
const pod = (name: string, app: string, ip: string): KObj => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app } },
  status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
});
const provider = (name: string, spec: Record<string, unknown>): KObj => ({ apiVersion: G, kind: 'ExternalModelProvider', metadata: { name, namespace: 'default', generation: 2 }, spec });
const secret = (name: string, data: Record<string, string>, labelled = true): KObj => ({
  apiVersion: 'v1', kind: 'Secret',
  metadata: { name, namespace: 'default', labels: labelled ? { 'networking.serving.volcano.sh/external-model-provider-credential': 'true' } : {} },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});

/** The input the control plane would build: validated resources, all problems, raw objects. */
function input(objs: KObj[]): StatusInput {
  const valid: (AnyResource | GatewayResource)[] = [];
  const problems = [];
  for (const o of objs) {
    const ctx = { file: '', now: () => '2026-01-01T00:00:00Z', generation: o.metadata.generation };
    // ExternalModelProviders as the API server holds them: the status reads the raw spec (objects).
    const r = o.kind === 'Secret' ? parseGatewayObject(o, ctx)
      : o.kind === 'ExternalModelProvider' ? { problems: [] }
        : parseManifestObject(o, ctx);
    problems.push(...r.problems);
    if (r.resource) valid.push(r.resource);
  }
  const resources = toFullResourceSet(valid);
  problems.push(...translate(resources).problems);
  const objects: Record<string, KObj[]> = {};
  for (const o of objs) (objects[o.kind] ??= []).push(o);
  return { resources, problems, objects };
}

interface Condition { type: string; status: string; reason: string; message: string; observedGeneration?: number }
/** DesiredStatus.status is open-ended (any kind's fields); these tests read the conditions of it. */
const conditionsOf = (d: DesiredStatus): Condition[] => d.status.conditions as Condition[];
const conds = (d: DesiredStatus): string[] => conditionsOf(d).map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('status conditions (pure)', () => {
  it('ModelRoute: Accepted and ResolvedRefs, with observedGeneration', () => {
    const out = computeStatuses(input([route('ok', 's1'), route('dangling', 'nope'), server('s1', 'a')]));
    const byName = new Map(out.map((d) => [`${d.kind}/${d.name}`, d]));
    expect(conds(byName.get('ModelRoute/ok')!)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
    expect(byName.get('ModelRoute/ok')!.status.observedGeneration).toBe(3);
    expect(conditionsOf(byName.get('ModelRoute/ok')!).every((c) => c.observedGeneration === 3)).toBe(true);
    const d = byName.get('ModelRoute/dangling')!;
    expect(conds(d)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound']);
    expect(conditionsOf(d!)[1]!.message).toBe('ModelServer default/nope not found');
  });

  it('ModelRoute: an invalid version is Accepted=False with the validation messages', () => {
    const bad = route('bad', 's1');
    bad.spec.rules[0].targetModels[0].weight = 1000;
    const [d] = computeStatuses(input([bad])).filter((x) => x.name === 'bad');
    expect(conds(d!)).toEqual(['Accepted=False/Invalid', 'ResolvedRefs=False/Invalid']);
    expect(conditionsOf(d!)[0]!.message).toContain('spec.rules[0].targetModels[0].weight');
  });

  it('ModelRoute: warnings keep Accepted=True and are named in the message', () => {
    const limited = route('limited', 's1', { rateLimit: { inputTokensPerUnit: 10, unit: 'minute', global: { redis: { address: 'redis://x' } } } });
    const [d] = computeStatuses(input([limited, server('s1', 'a')])).filter((x) => x.name === 'limited');
    expect(conds(d!)[0]).toBe('Accepted=True/Accepted');
    expect(conditionsOf(d!)[0]!.message).toMatch(/^ModelRoute is accepted with warnings: spec.rateLimit.global.redis.address: "redis:\/\/x" is not host:port/);
  });

  it('ModelServer: Ready counts the selected Running and Ready pods', () => {
    let [d] = computeStatuses(input([server('s1', 'a')])).filter((x) => x.kind === 'ModelServer');
    expect(conds(d!)).toEqual(['Accepted=True/Accepted', 'Ready=False/NoReadyEndpoints']);
    [d] = computeStatuses(input([server('s1', 'a'), pod('p1', 'a', '127.0.41.1'), pod('p2', 'a', '127.0.41.2'), pod('x', 'b', '127.0.41.3')])).filter((x) => x.kind === 'ModelServer');
    expect(conds(d!)).toEqual(['Accepted=True/Accepted', 'Ready=True/EndpointsAvailable']);
    expect(conditionsOf(d!)[1]!.message).toBe('2 ready pods selected');
  });

  it("ExternalModelProvider: Kthena's CredentialsResolved and Ready", () => {
    const base = { providerType: 'OpenAI', baseURL: 'https://api.example.com' };
    const auth = (name: string, key = 'apiKey') => ({ ...base, auth: { secretRef: { name, key } } });
    const out = computeStatuses(input([
      provider('none', base),
      provider('ok', auth('cred')),
      provider('missing', auth('absent')),
      provider('unlabelled', auth('plain')),
      provider('nokey', auth('cred', 'other')),
      provider('empty', auth('blank')),
      provider('control', auth('ctl')),
      provider('zero', auth('zerolen')),
      provider('badurl', { ...base, baseURL: 'http://api.example.com' }),
      provider('badheader', { ...base, headers: { Authorization: 'x' } }),
      secret('cred', { apiKey: ' sk-1 ' }), secret('plain', { apiKey: 'k' }, false), secret('blank', { apiKey: '  ' }), secret('ctl', { apiKey: 'a\u0001b' }), secret('zerolen', { apiKey: '' }),
    ])).filter((d) => d.kind === 'ExternalModelProvider');
    const got = Object.fromEntries(out.map((d) => [d.name, conds(d)]));
    expect(got).toEqual({
      none: ['CredentialsResolved=True/CredentialNotRequired', 'Ready=True/Ready'],
      ok: ['CredentialsResolved=True/CredentialResolved', 'Ready=True/Ready'],
      missing: ['CredentialsResolved=False/CredentialNotFound', 'Ready=False/CredentialNotFound'],
      unlabelled: ['CredentialsResolved=False/CredentialNotFound', 'Ready=False/CredentialNotFound'],
      nokey: ['CredentialsResolved=False/CredentialKeyNotFound', 'Ready=False/CredentialKeyNotFound'],
      empty: ['CredentialsResolved=False/CredentialInvalid', 'Ready=False/CredentialInvalid'],
      control: ['CredentialsResolved=False/CredentialInvalid', 'Ready=False/CredentialInvalid'],
      zero: ['CredentialsResolved=False/CredentialKeyNotFound', 'Ready=False/CredentialKeyNotFound'],
      badurl: ['CredentialsResolved=True/CredentialNotRequired', 'Ready=False/ConfigurationInvalid'],
      badheader: ['CredentialsResolved=True/CredentialNotRequired', 'Ready=False/ConfigurationInvalid'],
    });
    const none = out.find((d) => d.name === 'none')!;
    expect(conditionsOf(none).map((c) => c.message)).toEqual(['No credential is configured', 'External provider configuration is ready']);
    // Kthena's messages (externalmodelprovider_controller.go, adapter.go NormalizeCredential).
    const msgs = Object.fromEntries(out.map((d) => [d.name, conditionsOf(d).map((c) => c.message)]));
    expect(msgs.ok).toEqual(['Credential Secret and key are available', 'External provider configuration is ready']);
    expect(msgs.missing).toEqual(Array(2).fill('Credential Secret is not found or does not have label networking.serving.volcano.sh/external-model-provider-credential=true'));
    expect(msgs.nokey).toEqual(['Credential Secret key is not found', 'Credential Secret key is not found']);
    expect(msgs.empty).toEqual(Array(2).fill('provider credential is empty after trimming whitespace'));
    expect(msgs.control![0]).toBe('provider credential contains invalid HTTP header characters');
    expect(msgs.badurl).toEqual(['No credential is configured', 'External provider configuration is invalid']);
    expect(none.status.observedGeneration).toBe(2);
  });
});

interface Router { mode: KubernetesMode; stop(): Promise<void> }

/** A control plane in miniature: provider -> translate -> statuses, as src/control.ts wires it. */
async function router(api: FakeApiServer, identity: string, lease = { durationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 }): Promise<Router> {
  const mode: KubernetesMode = new KubernetesMode({
    client: clientFor(api.url), podNamespace: 'kthena-system', port: 8080, enableGatewayApi: false, enableGatewayApiInferenceExtension: false,
    onChange: (snap) => {
      const out = translate(snap.resources);
      mode.writeStatuses(desiredStatuses({ resources: snap.resources, problems: [...snap.problems, ...out.problems], objects: snap.raw, gateway: out.gatewayStatuses }));
    },
    backoff: { initialMs: 20, maxMs: 200 }, lease, identity,
  });
  await mode.start();
  let stopped = false;
  const stop = async () => { if (!stopped) { stopped = true; await mode.stop(); } };
  cleanups.push(stop);
  return { mode, stop };
}

async function fakeApi(): Promise<FakeApiServer> {
  const api = new FakeApiServer();
  await api.listen(HOST);
  cleanups.push(() => api.close());
  return api;
}

const writesFor = (api: FakeApiServer, name: string) => api.statusWrites.filter((w) => w.name === name);

describe('status writer and leader election', () => {
  it('writes each status once per change, with lastTransitionTime moving only on status changes', async () => {
    const api = await fakeApi();
    api.apply(server('s1', 'a'));
    api.apply(route('r1', 's1'));
    const r = await router(api, 'one');
    await expect.poll(() => api.get(G, 'ModelRoute', 'default', 'r1')?.status?.conditions?.length, WAIT).toBe(2);
    await expect.poll(() => api.get(G, 'ModelServer', 'default', 's1')?.status?.conditions?.length, WAIT).toBe(2);
    // Settle: the watch delivers our own writes, the router recomputes, and nothing more is written.
    await new Promise((res) => setTimeout(res, 400));
    expect(writesFor(api, 'r1')).toHaveLength(1);
    expect(writesFor(api, 's1')).toHaveLength(1);
    const st = api.get(G, 'ModelRoute', 'default', 'r1')!.status;
    expect(st.observedGeneration).toBe(1);
    const acceptedAt = st.conditions[0].lastTransitionTime;

    // A pod appears: only the ModelServer's Ready changes.
    api.apply(pod('p1', 'a', '127.0.41.1'));
    await expect.poll(() => api.get(G, 'ModelServer', 'default', 's1')?.status?.conditions?.[1]?.status, WAIT).toBe('True');
    await new Promise((res) => setTimeout(res, 300));
    expect(writesFor(api, 's1')).toHaveLength(2);
    expect(writesFor(api, 'r1')).toHaveLength(1);

    // The route's target is changed to a missing server: generation 2, ResolvedRefs False.
    api.apply({ ...route('r1', 'gone'), metadata: { name: 'r1', namespace: 'default' } });
    await expect.poll(() => api.get(G, 'ModelRoute', 'default', 'r1')?.status?.observedGeneration, WAIT).toBe(2);
    const st2 = api.get(G, 'ModelRoute', 'default', 'r1')!.status;
    expect(st2.conditions.map((c: any) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound']);
    expect(st2.conditions[0].lastTransitionTime).toBe(acceptedAt);
    await new Promise((res) => setTimeout(res, 300));
    expect(writesFor(api, 'r1')).toHaveLength(2);
    expect(r.mode.writer.conflicts).toBe(0);
  });

  it('retries a 409 conflict: reads the object again and reapplies', async () => {
    const api = await fakeApi();
    api.apply(server('s1', 'a'));
    const r = await router(api, 'one');
    await expect.poll(() => writesFor(api, 's1').length, WAIT).toBe(1);
    await new Promise((res) => setTimeout(res, 200));
    // Someone else changes the object just before our next write.
    api.touchBeforeNextStatusWrite(G, 'ModelServer', 'default', 's1');
    api.apply(pod('p1', 'a', '127.0.41.1'));
    await expect.poll(() => api.get(G, 'ModelServer', 'default', 's1')?.status?.conditions?.[1]?.status, WAIT).toBe('True');
    expect(r.mode.writer.conflicts).toBe(1);
    expect(api.get(G, 'ModelServer', 'default', 's1')!.metadata.labels?.touched).toBeDefined();
    await new Promise((res) => setTimeout(res, 300));
    expect(writesFor(api, 's1')).toHaveLength(2);
  });

  it('two routers: only the Lease holder writes; the other takes over when it stops', async () => {
    const api = await fakeApi();
    api.apply(server('s1', 'a'));
    const a = await router(api, 'router-a');
    await expect.poll(() => a.mode.elector.isLeader, WAIT).toBe(true);
    const b = await router(api, 'router-b');
    await expect.poll(() => writesFor(api, 's1').length, WAIT).toBe(1);
    // b runs several election rounds without becoming leader or writing.
    await expect.poll(() => api.requests.filter((q) => q.path.endsWith('/leases/kthena-router') && q.method === 'GET').length, WAIT).toBeGreaterThan(8);
    expect(b.mode.elector.isLeader).toBe(false);
    expect(b.mode.writer.writes).toBe(0);
    // The API server records a write before the writer has read its 200: poll the writer's count.
    await expect.poll(() => a.mode.writer.writes, WAIT).toBe(1);
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'kthena-system', 'kthena-router')!;
    expect(lease.spec.holderIdentity).toBe('router-a');
    expect(lease.spec.leaseDurationSeconds).toBe(2);

    // A change while a leads: a writes it, b does not.
    api.apply(pod('p1', 'a', '127.0.41.1'));
    await expect.poll(() => writesFor(api, 's1').length, WAIT).toBe(2);
    expect(b.mode.writer.writes).toBe(0);

    // a stops (releasing the Lease): b takes over and writes the next change.
    await a.stop();
    await expect.poll(() => b.mode.elector.isLeader, WAIT).toBe(true);
    expect(api.get('coordination.k8s.io/v1', 'Lease', 'kthena-system', 'kthena-router')!.spec.leaseTransitions).toBe(1);
    api.remove('v1', 'Pod', 'default', 'p1');
    await expect.poll(() => writesFor(api, 's1').length, WAIT).toBe(3);
    await expect.poll(() => b.mode.writer.writes, WAIT).toBe(1);
    expect(a.mode.writer.writes).toBe(2);
  });

  it('a holder that vanishes without releasing is replaced once the lease expires', async () => {
    const api = await fakeApi();
    const lease = { durationMs: 600, renewDeadlineMs: 400, retryPeriodMs: 50 };
    const events: string[] = [];
    const mk = (id: string) => new LeaderElector({
      client: clientFor(api.url), namespace: 'ns', name: 'l', identity: id,
      leaseDurationMs: lease.durationMs, renewDeadlineMs: lease.renewDeadlineMs, retryPeriodMs: lease.retryPeriodMs,
      onStartedLeading: () => events.push(`${id}+`), onStoppedLeading: () => events.push(`${id}-`),
    });
    const a = mk('a');
    a.start();
    await expect.poll(() => a.isLeader, WAIT).toBe(true);
    const b = mk('b');
    b.start();
    cleanups.push(() => b.stop());
    await new Promise((res) => setTimeout(res, 300));
    expect(b.isLeader).toBe(false);
    await a.stop();
    // A holder that crashed never releases: a ghost holds the Lease and stops renewing.
    const l = api.get('coordination.k8s.io/v1', 'Lease', 'ns', 'l')!;
    api.apply({ ...l, spec: { ...l.spec, holderIdentity: 'ghost', leaseDurationSeconds: 1, renewTime: new Date().toISOString() } });
    const since = Date.now();
    await expect.poll(() => b.isLeader, WAIT).toBe(true);
    // Not before the ghost's lease (1 s, measured locally from when b saw it change) ran out.
    expect(Date.now() - since).toBeGreaterThanOrEqual(800);
    expect(events).toEqual(['a+', 'a-', 'b+']);
  });

  it('Gateway API statuses plug in: nested listener conditions, HTTPRoute parents shared with another controller', async () => {
    const api = await fakeApi();
    const GW = 'gateway.networking.k8s.io/v1';
    api.apply({ apiVersion: GW, kind: 'Gateway', metadata: { name: 'g', namespace: 'default' }, spec: { gatewayClassName: 'kthena-router', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } });
    api.apply({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'hr', namespace: 'default' }, spec: { parentRefs: [{ name: 'g' }, { name: 'other-gw' }] } });
    // Another implementation already reported on its own Gateway.
    const otherParent = {
      parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'other-gw' }, controllerName: 'example.com/other',
      conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'theirs', observedGeneration: 1, lastTransitionTime: '2020-01-01T00:00:00Z' }],
    };
    const hr = api.get(GW, 'HTTPRoute', 'default', 'hr')!;
    api.apply({ ...hr, status: { parents: [otherParent] } });
    const client = clientFor(api.url);
    let clock = 0;
    const writer = new StatusWriter({
      client, isLeader: () => true, now: () => `2026-01-01T00:00:0${clock}Z`,
      current: (kind, ns, name) => api.get(kind === 'Gateway' || kind === 'HTTPRoute' ? GW : G, kind, ns, name),
    });
    cleanups.push(() => writer.stop());
    const cond = (type: string, status: 'True' | 'False', reason: string) => ({ type, status, reason, message: reason, observedGeneration: 1 });
    const statuses = (listenerProgrammed: 'True' | 'False'): GatewayStatuses => ({
      gatewayClasses: [],
      gateways: [{ namespace: 'default', name: 'g', generation: 1, status: {
        conditions: [cond('Accepted', 'True', 'Accepted'), cond('Programmed', 'True', 'Programmed')],
        listeners: [{ name: 'http', supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], attachedRoutes: 1,
          conditions: [cond('Accepted', 'True', 'Accepted'), cond('Programmed', listenerProgrammed, listenerProgrammed === 'True' ? 'Programmed' : 'Invalid')] }],
      } }],
      httpRoutes: [{ namespace: 'default', name: 'hr', generation: 1, status: { parents: [{
        parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'g' }, controllerName: 'volcano.sh/kthena-router',
        conditions: [cond('Accepted', 'True', 'Accepted'), cond('ResolvedRefs', 'True', 'ResolvedRefs')],
      }] } }],
      inferencePools: [],
    });
    writer.update(gatewayStatusEntries(statuses('True')));
    await writer.idle();
    expect(writer.writes).toBe(2);
    const route = api.get(GW, 'HTTPRoute', 'default', 'hr')!.status;
    expect(route.parents.map((p: any) => p.controllerName)).toEqual(['example.com/other', 'volcano.sh/kthena-router']);
    expect(route.parents[0]).toEqual(otherParent);
    const gw = api.get(GW, 'Gateway', 'default', 'g')!.status;
    expect(gw.listeners[0].attachedRoutes).toBe(1);
    expect(gw.listeners[0].conditions.map((c: any) => c.lastTransitionTime)).toEqual(['2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z']);

    // The same statuses again: nothing to write.
    clock = 1;
    writer.update(gatewayStatusEntries(statuses('True')));
    await writer.idle();
    expect(writer.writes).toBe(2);

    // One listener condition flips: only the Gateway is written, only that condition's time moves.
    clock = 2;
    writer.update(gatewayStatusEntries(statuses('False')));
    await writer.idle();
    expect(writer.writes).toBe(3);
    const gw2 = api.get(GW, 'Gateway', 'default', 'g')!.status;
    expect(gw2.conditions.map((c: any) => c.lastTransitionTime)).toEqual(['2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z']);
    expect(gw2.listeners[0].conditions.map((c: any) => `${c.status}@${c.lastTransitionTime}`)).toEqual(['True@2026-01-01T00:00:00Z', 'False@2026-01-01T00:00:02Z']);
    expect(api.statusWrites.filter((w) => w.name === 'hr')).toHaveLength(1);
  });
});
