/**
 * API keys in Kubernetes mode: the real CLI (`serve --kubeconfig`, 2 worker threads) against the
 * in-process fake API server. Labelled Secrets are watched by label selector (no unselected list
 * of Secrets), and a key created, rotated, unlabelled or deleted in the API applies to requests
 * without a restart. Fake API server on 127.0.40.9, a simulated vLLM pod on 127.0.64.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { FakeApiServer, type KObj } from '../helpers/fake-apiserver.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { chat, cleanup, eventually, freePort, startPods, startRouter, tempDir, type RouterProc } from './harness.js';

const G = 'networking.serving.volcano.sh/v1alpha1';
const BODY = { model: 'keyed-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const KEY_1 = 'sk-kube-one-1111111111';
const KEY_2 = 'sk-kube-two-2222222222';
/** Generous: a watch event on a loaded machine. */
const APPLIES = 10_000;

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const keySecret = (name: string, data: Record<string, string>, labels: Record<string, string>): KObj => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default', labels }, type: 'Opaque',
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});
const LABELS = { 'networking.serving.volcano.sh/api-key': 'true', team: 'a' };

let dir: string;
let fleet: SimFleet;
let api: FakeApiServer;
let router: RouterProc;

const status = async (key: string | null): Promise<number> => (await chat(router.url, BODY, key === null ? {} : { 'x-api-key': key })).status;

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-apikey-kube-');
  const port = await freePort();
  fleet = await startPods([{ name: 'pod-1', ip: '127.0.64.1', port, models: ['keyed-model'] }]);
  api = new FakeApiServer();
  await api.listen('127.0.40.9');
  const kubeconfig = await api.writeKubeconfig(path.join(dir, 'kubeconfig'));
  api.apply({
    apiVersion: G, kind: 'ModelServer', metadata: { name: 'keyed', namespace: 'default' },
    spec: {
      inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: 'k' } }, workloadPort: { port },
      apiKeyRules: [{ fromHeader: 'X-API-Key', labelSelector: { team: 'a' } }],
    },
  });
  api.apply({ apiVersion: G, kind: 'ModelRoute', metadata: { name: 'keyed', namespace: 'default' }, spec: { modelName: 'keyed-model', rules: [{ targetModels: [{ modelServerName: 'keyed' }] }] } });
  api.apply({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pod-1', namespace: 'default', labels: { app: 'k' } },
    spec: { containers: [{ name: 'engine', image: 'sim' }] },
    status: { phase: 'Running', podIP: '127.0.64.1', startTime: '2026-01-01T00:00:00Z', conditions: [{ type: 'Ready', status: 'True' }] },
  });
  router = await startRouter({ dir: '', workers: 2, args: ['--kubeconfig', kubeconfig, '--enable-webhook=false'], env: { POD_NAMESPACE: 'kthena-system' } });
  await router.waitReady(60_000);
}, 90_000);

afterAll(async () => {
  await router?.stop();
  await api?.close();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('API keys, Kubernetes mode', () => {
  it('refuses every request while no labelled Secret holds a key (fail closed)', async () => {
    expect(await status(null)).toBe(401);
    expect(await status(KEY_1)).toBe(401);
  });

  it('follows the watch: a key created, rotated, unlabelled and deleted in the API', async () => {
    api.apply(keySecret('team-a', { k: KEY_1 }, LABELS));
    await eventually(async () => (await status(KEY_1)) === 200, APPLIES, 'created key accepted');
    // Rotation: the entry's value changes.
    api.apply(keySecret('team-a', { k: KEY_2 }, LABELS));
    await eventually(async () => (await status(KEY_1)) === 401, APPLIES, 'old key refused');
    expect(await status(KEY_2)).toBe(200);
    // Without the API-key label the Secret leaves the watch: its keys go with it.
    api.apply(keySecret('team-a', { k: KEY_2 }, { team: 'a' }));
    await eventually(async () => (await status(KEY_2)) === 401, APPLIES, 'unlabelled Secret dropped');
    api.apply(keySecret('team-a', { k: KEY_2 }, LABELS));
    await eventually(async () => (await status(KEY_2)) === 200, APPLIES, 'labelled again');
    api.remove('v1', 'Secret', 'default', 'team-a');
    await eventually(async () => (await status(KEY_2)) === 401, APPLIES, 'deleted Secret revokes its key');
  });

  it('lists and watches Secrets only by label selector', () => {
    const secretCalls = api.requests.filter((r) => r.path.endsWith('/secrets'));
    expect(secretCalls.length).toBeGreaterThan(0);
    for (const r of secretCalls) expect(r.query.labelSelector ?? '').toMatch(/^networking\.serving\.volcano\.sh\/(api-key|external-model-provider-credential)=true$/);
  });
});
