/**
 * A drop-in for Kthena's image: Kthena's own Helm chart (test/fixtures/kthena-chart, unchanged) is
 * rendered, and the real CLI is started with exactly the Deployment's `args` (no command: the
 * chart's args replace the image's CMD) and `env` (resolved as the kubelet does), plus `--config DIR`
 * (file mode) or `--kubeconfig FILE` (Kubernetes mode, the fake API server) to stand in for the
 * cluster. With the chart's defaults it serves; with every switch on, the features this router has
 * are honoured and the ones it has not built yet (fairness, session boost) are refused with exit 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { renderChart } from '../helpers/helm-render.js';
import { FakeApiServer, type KObj } from '../helpers/fake-apiserver.js';
import { generateWebhookCertificate } from '../../src/webhook/certs.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { ROOT, cleanup, docs, eventually, freePort, podYaml, routeYaml, serverYaml, startPods, tempDir } from './harness.js';

const CHART = path.join(ROOT, 'test', 'fixtures', 'kthena-chart');
const NS = 'default';
const POD_IP = '127.0.47.1';
const API_HOST = '127.0.47.10';
type Obj = Record<string, any>;

/** Every switch of Kthena's values.yaml turned on. */
const ALL_ON = {
  global: { certManagementMode: 'cert-manager' },
  kthenaRouter: {
    tls: { enabled: true },
    metrics: { exposeOnRouterPort: true },
    webhook: { enabled: true },
    gatewayAPI: { enabled: true, inferenceExtension: true },
    kubeAPIQPS: 2.5,
    kubeAPIBurst: 20,
    accessLog: { enabled: true, format: 'json', output: 'stderr' },
    drainTimeout: '20s',
    fairness: { enabled: true, maxConcurrent: 4 },
    sessionBoost: { enabled: true },
  },
};
/** ALL_ON without the two queues (fairness and session boost are mutually exclusive). */
const ALL_BUILT = { ...ALL_ON, kthenaRouter: { ...ALL_ON.kthenaRouter, fairness: { enabled: false }, sessionBoost: { enabled: false } } };

function deployment(values: unknown, ports: { router: number; metrics: number; debug: number; webhook: number }): Obj {
  const withPorts = {
    ...(values as Obj),
    kthenaRouter: { ...((values as Obj).kthenaRouter ?? {}), port: ports.router, debugPort: ports.debug, metrics: { ...((values as Obj).kthenaRouter?.metrics ?? {}), port: ports.metrics }, webhook: { ...((values as Obj).kthenaRouter?.webhook ?? {}), port: ports.webhook } },
  };
  const objs = renderChart(CHART, { namespace: NS, values: withPorts }).renderObjects();
  const d = objs.find((o) => o.object.kind === 'Deployment');
  if (!d) throw new Error('the chart rendered no Deployment');
  return (d.object as Obj).spec.template.spec.containers[0];
}

/** The container's environment as the kubelet resolves it (optional references may be absent). */
function resolveEnv(container: Obj, cluster: { configMaps: Record<string, Record<string, string>>; secrets: Record<string, Record<string, string>> }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env as Obj[]) {
    if (e.value !== undefined) { env[e.name] = String(e.value); continue; }
    const from = e.valueFrom;
    let v: string | undefined;
    if (from.fieldRef) v = from.fieldRef.fieldPath === 'metadata.namespace' ? NS : undefined;
    else if (from.configMapKeyRef) v = cluster.configMaps[from.configMapKeyRef.name]?.[from.configMapKeyRef.key];
    else if (from.secretKeyRef) v = cluster.secrets[from.secretKeyRef.name]?.[from.secretKeyRef.key];
    if (v === undefined && !(from.configMapKeyRef?.optional || from.secretKeyRef?.optional || from.fieldRef)) throw new Error(`env ${e.name}: unresolved`);
    if (v !== undefined) env[e.name] = v;
  }
  return env;
}

interface Proc { stdout: string[]; stderr: string[]; exited: Promise<number | null>; running(): boolean; kill(): Promise<number | null> }

function start(args: string[], env: Record<string, string>): Proc {
  // Only the container's environment (and PATH): nothing leaks in from the test runner.
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'kthena-router.js'), ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  proc.stdout!.on('data', (b: Buffer) => stdout.push(...b.toString('utf8').split('\n').filter(Boolean)));
  proc.stderr!.on('data', (b: Buffer) => stderr.push(...b.toString('utf8').split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    stdout, stderr, exited,
    running: () => proc.exitCode === null,
    async kill() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

const insecure = new Agent({ connect: { rejectUnauthorized: false } });

async function get(url: string, init: { method?: string; body?: string } = {}): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const r = await request(url, {
    method: (init.method ?? 'GET') as 'GET', body: init.body, dispatcher: insecure,
    headers: init.body !== undefined ? { 'content-type': 'application/json' } : {},
  });
  return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
}

async function waitReady(p: Proc, base: string): Promise<void> {
  await eventually(async () => {
    if (!p.running()) throw new Error(`router exited: ${p.stderr.join('\n')}`);
    try { return (await get(`${base}/readyz`)).status === 200; } catch { return false; }
  // Generous: in Kubernetes mode with the chart's default webhook the router first generates its
  // webhook certificate (RSA in JavaScript), which takes seconds on a loaded machine.
  }, 45_000, 'router ready');
}

async function chatPod(base: string): Promise<string | number> {
  const r = await get(`${base}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'chat-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
  return r.status === 200 ? String(r.headers['x-sim-pod']) : r.status;
}

let dir: string;
let manifests: string;
let fleet: SimFleet;
let api: FakeApiServer;
let kubeconfig: string;
let enginePort: number;
const procs: Proc[] = [];

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-chart-');
  enginePort = await freePort();
  fleet = await startPods([{ name: 'engine-1', ip: POD_IP, port: enginePort, models: ['org/base'] }]);
  manifests = path.join(dir, 'manifests');
  await mkdir(manifests);
  await writeFile(path.join(manifests, 'all.yaml'), docs(
    podYaml('engine-1', POD_IP, { labels: { app: 'engine' } }),
    serverYaml('srv', { labels: { app: 'engine' }, port: enginePort, model: 'org/base' }),
    routeYaml('chat', 'chat-model', 'srv'),
  ));
  // The Secret that cert-manager would have mounted at /etc/router-tls.
  const tls = generateWebhookCertificate(['localhost']);
  await mkdir(path.join(dir, 'router-tls'));
  await writeFile(path.join(dir, 'router-tls', 'tls.crt'), tls.certPem);
  await writeFile(path.join(dir, 'router-tls', 'tls.key'), tls.keyPem);

  api = new FakeApiServer();
  await api.listen(API_HOST);
  kubeconfig = await api.writeKubeconfig(path.join(dir, 'kubeconfig'));
  const G = 'networking.serving.volcano.sh/v1alpha1';
  api.apply({ apiVersion: G, kind: 'ModelServer', metadata: { name: 'srv', namespace: NS }, spec: { model: 'org/base', inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: 'engine' } }, workloadPort: { port: enginePort } } } as KObj);
  api.apply({ apiVersion: G, kind: 'ModelRoute', metadata: { name: 'chat', namespace: NS }, spec: { modelName: 'chat-model', rules: [{ targetModels: [{ modelServerName: 'srv' }] }] } } as KObj);
  api.apply({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'engine-1', namespace: NS, labels: { app: 'engine' } }, spec: { containers: [{ name: 'engine', image: 'sim' }] },
    status: { phase: 'Running', podIP: POD_IP, startTime: '2026-01-01T00:00:00Z', conditions: [{ type: 'Ready', status: 'True' }] },
  } as KObj);
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await api?.close();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

const REDIS = { configMaps: { 'redis-config': { REDIS_HOST: '127.0.0.1', REDIS_PORT: '6390' } }, secrets: { 'redis-secret': { password: 'sekret' } } };
const NONE = { configMaps: {}, secrets: {} };

async function chartRun(values: unknown, cluster: typeof NONE, mode: 'file' | 'kubernetes', extra: string[] = []): Promise<{ proc: Proc; args: string[]; env: Record<string, string>; ports: Record<string, number> }> {
  const ports = { router: await freePort(), metrics: await freePort(), debug: await freePort(), webhook: await freePort() };
  const c = deployment(values, ports);
  // The router-TLS Secret's mount point, stood in by a temp directory.
  const args = (c.args as string[]).map((a) => a.replace('/etc/router-tls/', `${path.join(dir, 'router-tls')}/`));
  const env = resolveEnv(c, cluster);
  const stand = mode === 'file' ? ['--config', manifests] : ['--kubeconfig', kubeconfig];
  const proc = start([...args, ...stand, ...extra], env);
  procs.push(proc);
  return { proc, args, env, ports };
}

describe.each(['file', 'kubernetes'] as const)('Kthena\'s chart starts this router (%s mode)', (mode) => {
  it('with the chart\'s default values: flags alone (no command), and it serves', async () => {
    const { proc, args, env, ports } = await chartRun({}, NONE, mode);
    // What Kthena's chart passes by default.
    expect(args).toEqual([
      `--port=${ports.router}`, `--metrics-port=${ports.metrics}`, '--expose-metrics-on-router-port=false', `--debug-port=${ports.debug}`,
      '--enable-webhook=true', '--enable-gateway-api=false', `--webhook-port=${ports.webhook}`, '--webhook-tls-cert-file=/etc/tls/tls.crt',
      '--webhook-tls-private-key-file=/etc/tls/tls.key', '--cert-secret-name=kthena-router-webhook-certs', '--webhook-service-name=kthena-router-webhook',
    ]);
    expect(env).toEqual({ POD_NAMESPACE: NS, ACCESS_LOG_ENABLED: 'true', ACCESS_LOG_FORMAT: 'text', ACCESS_LOG_OUTPUT: 'stdout', DRAIN_TIMEOUT: '5m' });
    const base = `http://127.0.0.1:${ports.router}`;
    await waitReady(proc, base);
    expect(await chatPod(base)).toBe('engine-1');
    // Kthena's text access log on stdout.
    await eventually(() => proc.stdout.some((l) => l.includes('model_name=chat-model')), 5000, 'access log line');
    const cfg = JSON.parse((await get(`http://127.0.0.1:${ports.debug}/debug/config_dump/initial_config`)).text);
    expect(cfg).toMatchObject({ enableWebhook: true, drainTimeoutMs: 300_000, podNamespace: NS, logLevel: 'info', redis: { host: 'redis-server', port: 6379 } });
    expect(await proc.kill()).toBe(0);
  });

  it('with every switch on except fairness and session boost: each is honoured', async () => {
    const { proc, args, env, ports } = await chartRun(ALL_BUILT, REDIS, mode, ['--v=4']);
    expect(args).toEqual(expect.arrayContaining(['--expose-metrics-on-router-port=true', '--enable-gateway-api=true', '--enable-gateway-api-inference-extension=true',
      '--kube-api-qps=2.5', '--kube-api-burst=20', `--tls-cert=${dir}/router-tls/tls.crt`]));
    expect(env).toMatchObject({ REDIS_HOST: '127.0.0.1', REDIS_PORT: '6390', REDIS_PASSWORD: 'sekret', ACCESS_LOG_FORMAT: 'json', ACCESS_LOG_OUTPUT: 'stderr' });
    const base = `https://127.0.0.1:${ports.router}`;
    await waitReady(proc, base);
    expect(await chatPod(base)).toBe('engine-1');
    // JSON access log on stderr; /metrics on the router port; --v=4 is debug.
    await eventually(() => proc.stderr.some((l) => l.includes('"model_name":"chat-model"')), 5000, 'JSON access log line on stderr');
    expect((await get(`${base}/metrics`)).text).toContain('kthena_router_requests_total');
    const cfg = JSON.parse((await get(`http://127.0.0.1:${ports.debug}/debug/config_dump/initial_config`)).text);
    expect(cfg).toMatchObject({
      enableGatewayApi: true, enableGatewayApiInferenceExtension: true, exposeMetricsOnRouterPort: true, kubeApiQps: 2.5, kubeApiBurst: 20,
      drainTimeoutMs: 20_000, logLevel: 'debug', klogVerbosity: 4, redis: { host: '127.0.0.1', port: 6390, password: '***' },
      fairness: { enabled: false }, sessionBoost: { enabled: false },
    });
    expect(await proc.kill()).toBe(0);
  });

  it('with every switch on: fairness and session boost together are refused (mutually exclusive) with exit 2', async () => {
    const { proc, env } = await chartRun(ALL_ON, REDIS, mode);
    expect(env).toMatchObject({ ENABLE_FAIRNESS_SCHEDULING: 'true', FAIRNESS_WINDOW_SIZE: '1h', FAIRNESS_MAX_CONCURRENT: '4', ENABLE_SESSION_BOOST: 'true', SESSION_BOOST_HEADER: 'X-Session-ID', SESSION_BOOST_TIMEOUT: '30s' });
    expect(await proc.exited).toBe(2);
    const err = proc.stderr.join('\n');
    expect(err).toMatch(/ENABLE_FAIRNESS_SCHEDULING and ENABLE_SESSION_BOOST are mutually exclusive/);
    expect(proc.stdout).toEqual([]);
  });

  it.each([
    ['fairness', { fairness: { enabled: true, maxConcurrent: 4 }, sessionBoost: { enabled: false } }, { fairness: { enabled: true, maxConcurrent: 4 } }],
    ['session boost', { fairness: { enabled: false }, sessionBoost: { enabled: true } }, { sessionBoost: { enabled: true, header: 'X-Session-ID' } }],
  ])('with %s switched on (the other queue off): it serves through that queue', async (name, queues, want) => {
    // Gateway API off: in Kubernetes mode the default Gateway an earlier router of this file
    // bootstrapped in the fake API server still names that router's port.
    const values = { ...ALL_ON, kthenaRouter: { ...ALL_ON.kthenaRouter, gatewayAPI: { enabled: false }, ...queues } };
    const { proc, ports } = await chartRun(values, REDIS, mode);
    const base = `https://127.0.0.1:${ports.router}`;
    await waitReady(proc, base);
    expect(await chatPod(base)).toBe('engine-1');
    const cfg = JSON.parse((await get(`http://127.0.0.1:${ports.debug}/debug/config_dump/initial_config`)).text);
    expect(cfg).toMatchObject(want);
    const metrics = (await get(`${base}/metrics`)).text;
    expect(metrics).toContain(name === 'fairness'
      ? 'kthena_router_fairness_queue_dequeue_total{model="chat-model",user_id="_all"} 1'
      : 'kthena_router_session_boost_queue_dequeue_total{model="chat-model"} 1');
    expect(await proc.kill()).toBe(0);
  });
});
