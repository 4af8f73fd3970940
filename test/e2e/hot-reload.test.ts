/**
 * Hot reload end to end: the test edits the manifest directory while the router (real CLI) runs
 * and traffic flows. Pods are simulated on 127.0.11.x. One router for the whole file; each test
 * owns its model names and files.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import {
  chat, cleanup, configProblems, docs, eventually, freePort, modelRouteYaml, podYaml, rename, serverYaml, spread, startPods,
  startRouter, tempDir, unlink, writeFile, type ModelRouteSpec, type RouterProc,
} from './harness.js';

const IP = (n: number): string => `127.0.11.${n}`;

let dir: string;
let port: number;
let fleet: SimFleet;
let router: RouterProc;
let url: string;

const f = (name: string): string => path.join(dir, name);
const writeRoute = (file: string, name: string, spec: ModelRouteSpec): Promise<void> => writeFile(f(file), docs(modelRouteYaml(name, spec)));
let asked = 0;
const ask = (model: string, headers: Record<string, string> = {}) => chat(url, { model, messages: [{ role: 'user', content: `hi ${asked++}` }], max_tokens: 1 }, headers);
/** The pod that answered, or `status:<code>`. */
async function who(model: string): Promise<string> {
  const r = await ask(model);
  return r.status === 200 ? (r.headers.get('x-sim-pod') ?? 'none') : `status:${r.status}`;
}
const only = (counts: Record<string, number>, pod: string): boolean => Object.keys(counts).length === 1 && counts[pod] !== undefined;

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-hotreload-');
  port = await freePort();
  const pod = (name: string, ip: string, model: string) => ({ name, ip, port, models: [model], ttftMs: 0, itlMs: 0, outputTokens: 1 });
  fleet = await startPods([
    pod('hr-a1', IP(1), 'org/a'),
    pod('hr-b1', IP(2), 'org/b'),
    pod('hr-p1', IP(3), 'org/p'),
    pod('hr-p2', IP(4), 'org/p'),
    pod('hr-r1', IP(5), 'org/r'),
    pod('hr-r2', IP(6), 'org/r'),
    pod('hr-m1', IP(7), 'org/m'),
    pod('hr-m2', IP(8), 'org/m'),
  ]);
  await writeFile(f('servers.yaml'), docs(
    serverYaml('hr-a-ms', { port, model: 'org/a', labels: { app: 'hr-a' } }),
    serverYaml('hr-b-ms', { port, model: 'org/b', labels: { app: 'hr-b' } }),
    serverYaml('hr-pods-ms', { port, model: 'org/p', labels: { app: 'hr-p' } }),
    serverYaml('hr-ready-ms', { port, model: 'org/r', labels: { app: 'hr-r' } }),
    podYaml('hr-a1', IP(1), { labels: { app: 'hr-a' } }),
    podYaml('hr-b1', IP(2), { labels: { app: 'hr-b' } }),
    serverYaml('hr-move-ms', { port, model: 'org/m', labels: { app: 'hr-m' } }),
  ));
  // A second ModelServer over hr-a's pod, in its own file (deleted and restored by a test).
  await writeFile(f('server-c.yaml'), docs(serverYaml('hr-c-ms', { port, model: 'org/a', labels: { app: 'hr-a' } })));
  // One Pod manifest whose podIP a test edits.
  await writeFile(f('pod-hr-move.yaml'), docs(podYaml('hr-move', IP(7), { labels: { app: 'hr-m' } })));
  // Pods whose manifests the tests add, remove or edit live in their own files.
  await writeFile(f('pod-hr-p1.yaml'), docs(podYaml('hr-p1', IP(3), { labels: { app: 'hr-p' } })));
  await writeFile(f('pod-hr-r1.yaml'), docs(podYaml('hr-r1', IP(5), { labels: { app: 'hr-r' } })));
  await writeFile(f('pod-hr-r2.yaml'), docs(podYaml('hr-r2', IP(6), { labels: { app: 'hr-r' } })));
  await writeRoute('route-steady.yaml', 'steady', { modelName: 'steady-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
  await writeRoute('route-keep.yaml', 'keep-route', { modelName: 'keep-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
  await writeRoute('route-succ-old.yaml', 'succ-old', { modelName: 'succ-model', creationTimestamp: '2024-01-01T00:00:00Z', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
  await writeRoute('route-succ-new.yaml', 'succ-new', { modelName: 'succ-model', creationTimestamp: '2025-01-01T00:00:00Z', rules: [{ targets: [{ server: 'hr-b-ms' }] }] });
  // No creationTimestamp: the router stamps it when it first loads the object.
  await writeRoute('route-ren.yaml', 'zzz-ren-first', { modelName: 'ren-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
  await writeRoute('route-pods.yaml', 'pods-route', { modelName: 'pods-model', rules: [{ targets: [{ server: 'hr-pods-ms' }] }] });
  await writeRoute('route-c.yaml', 'c-route', { modelName: 'c-model', rules: [{ targets: [{ server: 'hr-c-ms' }] }] });
  await writeRoute('route-half.yaml', 'half-route', { modelName: 'half-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
  await writeRoute('route-move.yaml', 'move-route', { modelName: 'move-model', rules: [{ targets: [{ server: 'hr-move-ms' }] }] });
  await writeRoute('route-ready.yaml', 'ready-route', { modelName: 'ready-model', rules: [{ targets: [{ server: 'hr-ready-ms' }] }] });
  router = await startRouter({ dir, workers: 2 });
  await router.waitReady();
  url = router.url;
});

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  if (dir) await cleanup(dir);
});

describe('ModelRoute changes', () => {
  it('a new ModelRoute file is served within seconds', async () => {
    expect(await who('new-model')).toBe('status:404');
    await writeRoute('route-new.yaml', 'new-route', { modelName: 'new-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
    await eventually(async () => (await who('new-model')) === 'hr-a1', 5000, 'new route served');
    const counts = await spread(url, { model: 'new-model', messages: [{ role: 'user', content: 'x' }] }, 10);
    expect(counts).toEqual({ 'hr-a1': 10 });
  });

  it('editing weights 100/0 to 0/100 flips the traffic', async () => {
    const spec = (a: number, b: number): ModelRouteSpec => ({ modelName: 'flip-model', rules: [{ targets: [{ server: 'hr-a-ms', weight: a }, { server: 'hr-b-ms', weight: b }] }] });
    await writeRoute('route-flip.yaml', 'flip-route', spec(100, 0));
    await eventually(async () => (await who('flip-model')) === 'hr-a1', 8000, 'flip route served');
    expect(await spread(url, { model: 'flip-model', messages: [{ role: 'user', content: 'x' }] }, 20)).toEqual({ 'hr-a1': 20 });

    await writeRoute('route-flip.yaml', 'flip-route', spec(0, 100));
    await eventually(async () => (await who('flip-model')) === 'hr-b1', 8000, 'weights flipped');
    expect(await spread(url, { model: 'flip-model', messages: [{ role: 'user', content: 'x' }] }, 20)).toEqual({ 'hr-b1': 20 });
  });

  it('deleting the oldest route of a modelName lets the next oldest take over', async () => {
    expect(await spread(url, { model: 'succ-model', messages: [{ role: 'user', content: 'x' }] }, 10)).toEqual({ 'hr-a1': 10 });
    await unlink(f('route-succ-old.yaml'));
    await eventually(async () => (await who('succ-model')) === 'hr-b1', 8000, 'successor route serving');
    expect(await spread(url, { model: 'succ-model', messages: [{ role: 'user', content: 'x' }] }, 20)).toEqual({ 'hr-b1': 20 });
  });

  it('renaming a route file keeps the route (and its age) without a single failed request', async () => {
    // A younger route for the same model whose name sorts first: it must stay second after the rename.
    await writeRoute('route-ren-later.yaml', 'aaa-ren-later', { modelName: 'ren-model', rules: [{ targets: [{ server: 'hr-b-ms' }] }] });
    await eventually(async () =>
      (await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/modelroutes`).then((r) => r.text())).includes('aaa-ren-later'), 8000, 'younger route loaded');
    expect(await spread(url, { model: 'ren-model', messages: [{ role: 'user', content: 'x' }] }, 10)).toEqual({ 'hr-a1': 10 });

    const counts: Record<string, number> = {};
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const w = await who('ren-model');
        counts[w] = (counts[w] ?? 0) + 1;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const loads = (): number => router.stderr.filter((l) => l.includes('manifests loaded')).length;
    const loadsBefore = loads();
    await rename(f('route-ren.yaml'), f('route-renamed.yaml'));
    // The router saw the new file list (and then some traffic still flows).
    await eventually(() => loads() > loadsBefore, 8000, 'rename noticed');
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await loop;
    expect(counts).toEqual({ 'hr-a1': counts['hr-a1'] });
    expect(counts['hr-a1']).toBeGreaterThan(10);
    const routes = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/modelroutes`).then((r) => r.text());
    expect(routes).toContain('zzz-ren-first');
  });
});

describe('invalid manifests', () => {
  it('invalid manifests dropped in while traffic flows: no failed request, problems reported with file and field', async () => {
    let stop = false;
    const results: number[] = [];
    const loop = async (): Promise<void> => {
      while (!stop) results.push((await ask('steady-model')).status);
    };
    const loops = [loop(), loop(), loop()];
    try {
      await new Promise((r) => setTimeout(r, 200));
      await writeRoute('bad-weight.yaml', 'bad-weight', { modelName: 'bad-weight-model', rules: [{ targets: [{ server: 'hr-a-ms', weight: 500 }] }] });
      await writeFile(f('bad-missing.yaml'), [
        'apiVersion: networking.serving.volcano.sh/v1alpha1',
        'kind: ModelRoute',
        'metadata:',
        '  name: bad-missing',
        '  namespace: default',
        'spec:',
        '  modelName: bad-missing-model',
        '  rules:',
        '  - name: no-targets',
        '',
      ].join('\n'));
      type P = Awaited<ReturnType<typeof configProblems>>[number];
      let weightP: P | undefined;
      let missingP: P | undefined;
      await eventually(async () => {
        const ps = await configProblems(router);
        weightP = ps.find((p) => p.name === 'bad-weight' && p.field === 'spec.rules[0].targetModels[0].weight');
        missingP = ps.find((p) => p.name === 'bad-missing' && p.field === 'spec.rules[0].targetModels');
        return weightP !== undefined && missingP !== undefined;
      }, 8000, 'problems reported');
      expect(weightP!.kind).toBe('ModelRoute');
      expect(weightP!.namespace).toBe('default');
      expect(path.basename(weightP!.file ?? '')).toBe('bad-weight.yaml');
      expect(weightP!.message).toMatch(/100/);
      expect(path.basename(missingP!.file ?? '')).toBe('bad-missing.yaml');
      // Keep the traffic flowing a little after the reload.
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((s) => s !== 200)).toEqual([]);

    // The rejected routes never went live.
    expect(await who('bad-weight-model')).toBe('status:404');
    expect(await who('bad-missing-model')).toBe('status:404');

    // The router's log names the file and the field.
    const weightLog = await router.waitForLog((l) => l.includes('bad-weight.yaml') && l.includes('spec.rules[0].targetModels[0].weight'), 5000, 'stderr');
    expect(JSON.parse(weightLog).level).toBeGreaterThanOrEqual(40);
    await router.waitForLog((l) => l.includes('bad-missing.yaml') && l.includes('"spec.rules[0].targetModels"'), 5000, 'stderr');

    // Removing the bad files clears their problems.
    await unlink(f('bad-weight.yaml'));
    await unlink(f('bad-missing.yaml'));
    await eventually(async () => (await configProblems(router)).every((p) => !/bad-(weight|missing)/.test(p.name)), 8000, 'problems cleared');
  });

  it('an edit that makes a live route invalid keeps its last valid version serving; a valid edit then applies', async () => {
    expect(await spread(url, { model: 'keep-model', messages: [{ role: 'user', content: 'x' }] }, 5)).toEqual({ 'hr-a1': 5 });
    await writeRoute('route-keep.yaml', 'keep-route', { modelName: 'keep-model', rules: [{ targets: [{ server: 'hr-b-ms', weight: 500 }] }] });
    await eventually(async () => (await configProblems(router)).some((p) => p.name === 'keep-route' && p.field === 'spec.rules[0].targetModels[0].weight'), 8000, 'rejection reported');
    const ps = (await configProblems(router)).filter((p) => p.name === 'keep-route');
    expect(ps.some((p) => /last valid version/.test(p.message))).toBe(true);
    expect(await spread(url, { model: 'keep-model', messages: [{ role: 'user', content: 'x' }] }, 20)).toEqual({ 'hr-a1': 20 });

    await writeRoute('route-keep.yaml', 'keep-route', { modelName: 'keep-model', rules: [{ targets: [{ server: 'hr-b-ms', weight: 50 }] }] });
    await eventually(async () => (await who('keep-model')) === 'hr-b1', 8000, 'valid edit applied');
    expect(await spread(url, { model: 'keep-model', messages: [{ role: 'user', content: 'x' }] }, 10)).toEqual({ 'hr-b1': 10 });
    expect((await configProblems(router)).filter((p) => p.name === 'keep-route')).toEqual([]);
  });
});

describe('ModelServer and file-level changes', () => {
  it('deleting a ModelServer makes its routes answer "can\'t find model server"; restoring it restores traffic', async () => {
    expect(await who('c-model')).toBe('hr-a1');
    const text = docs(serverYaml('hr-c-ms', { port, model: 'org/a', labels: { app: 'hr-a' } }));
    await unlink(f('server-c.yaml'));
    await eventually(async () => (await who('c-model')) === 'status:404', 8000, 'ModelServer removed');
    const r = await ask('c-model');
    expect(r.json()).toEqual({ error: { message: "can't find model server: default/hr-c-ms", type: 'not_found_error', code: 'RTR_ERR_MODEL_SERVER_NOT_FOUND' } });
    await writeFile(f('server-c.yaml'), text);
    await eventually(async () => (await who('c-model')) === 'hr-a1', 8000, 'ModelServer restored');
  });

  it('a route file with a YAML syntax error keeps its last valid routes serving, and the error is reported', async () => {
    const before = await configProblems(router);
    expect(before.filter((p) => p.file !== undefined && path.basename(p.file) === 'route-half.yaml')).toEqual([]);
    expect(await who('half-model')).toBe('hr-a1');
    // A half-saved file: an unterminated flow sequence.
    await writeFile(f('route-half.yaml'), 'apiVersion: networking.serving.volcano.sh/v1alpha1\nkind: ModelRoute\nmetadata: [name, half-route\n');
    await eventually(async () => (await configProblems(router)).some((p) => p.file !== undefined && path.basename(p.file) === 'route-half.yaml' && /YAML/i.test(p.message)), 8000, 'syntax error reported');
    expect(await spread(url, { model: 'half-model', messages: [{ role: 'user', content: 'x' }] }, 10)).toEqual({ 'hr-a1': 10 });
    await router.waitForLog((l) => l.includes('route-half.yaml') && /YAML/i.test(l), 5000, 'stderr');
    // Fixed again: the problem goes away and the route still serves.
    await writeRoute('route-half.yaml', 'half-route', { modelName: 'half-model', rules: [{ targets: [{ server: 'hr-a-ms' }] }] });
    await eventually(async () => !(await configProblems(router)).some((p) => p.file !== undefined && path.basename(p.file) === 'route-half.yaml'), 8000, 'syntax error cleared');
    expect(await who('half-model')).toBe('hr-a1');
  });
});

describe('Pod changes', () => {
  const body = { model: 'pods-model', messages: [{ role: 'user', content: 'x' }] };

  it('adding a Pod manifest adds an endpoint; removing one removes it', async () => {
    const p1 = fleet.pod('hr-p1');
    const p2 = fleet.pod('hr-p2');
    expect(await spread(url, body, 10)).toEqual({ 'hr-p1': 10 });
    expect(p2.requests).toHaveLength(0);

    await writeFile(f('pod-hr-p2.yaml'), docs(podYaml('hr-p2', IP(4), { labels: { app: 'hr-p' } })));
    await eventually(async () => (await who('pods-model')) === 'hr-p2', 8000, 'new pod receiving traffic');
    const both = await spread(url, body, 40, { concurrency: 4 });
    expect(Object.keys(both).sort()).toEqual(['hr-p1', 'hr-p2']);

    await unlink(f('pod-hr-p1.yaml'));
    await eventually(async () => only(await spread(url, body, 10), 'hr-p2'), 8000, 'removed pod out of rotation');
    p1.clearRequests();
    expect(await spread(url, body, 20, { concurrency: 4 })).toEqual({ 'hr-p2': 20 });
    expect(p1.requests).toHaveLength(0);
  });

  it('a Pod marked not Ready stops receiving traffic, and gets it back once Ready again', async () => {
    const rbody = { model: 'ready-model', messages: [{ role: 'user', content: 'x' }] };
    const r2 = fleet.pod('hr-r2');
    const before = await spread(url, rbody, 30, { concurrency: 3 });
    expect(Object.keys(before).sort()).toEqual(['hr-r1', 'hr-r2']);

    await writeFile(f('pod-hr-r2.yaml'), docs(podYaml('hr-r2', IP(6), { labels: { app: 'hr-r' }, ready: false })));
    await eventually(async () => only(await spread(url, rbody, 10), 'hr-r1'), 8000, 'unready pod out of rotation');
    r2.clearRequests();
    expect(await spread(url, rbody, 20, { concurrency: 4 })).toEqual({ 'hr-r1': 20 });
    expect(r2.requests).toHaveLength(0);

    await writeFile(f('pod-hr-r2.yaml'), docs(podYaml('hr-r2', IP(6), { labels: { app: 'hr-r' } })));
    await eventually(async () => (await who('ready-model')) === 'hr-r2', 8000, 'ready pod back in rotation');
  });

  it('editing a Pod\'s podIP moves its traffic to the new address', async () => {
    const body = { model: 'move-model', messages: [{ role: 'user', content: 'x' }] };
    expect(await spread(url, body, 5)).toEqual({ 'hr-m1': 5 });
    await writeFile(f('pod-hr-move.yaml'), docs(podYaml('hr-move', IP(8), { labels: { app: 'hr-m' } })));
    await eventually(async () => (await who('move-model')) === 'hr-m2', 8000, 'traffic at the new podIP');
    fleet.pod('hr-m1').clearRequests();
    expect(await spread(url, body, 20, { concurrency: 4 })).toEqual({ 'hr-m2': 20 });
    expect(fleet.pod('hr-m1').requests).toHaveLength(0);
  });

  it('a terminating Pod (deletionTimestamp) stops receiving traffic', async () => {
    const rbody = { model: 'ready-model', messages: [{ role: 'user', content: 'x' }] };
    await writeFile(f('pod-hr-r2.yaml'), docs(podYaml('hr-r2', IP(6), { labels: { app: 'hr-r' }, terminating: true })));
    await eventually(async () => only(await spread(url, rbody, 10), 'hr-r1'), 8000, 'terminating pod out of rotation');
    const r2 = fleet.pod('hr-r2');
    r2.clearRequests();
    expect(await spread(url, rbody, 20, { concurrency: 4 })).toEqual({ 'hr-r1': 20 });
    expect(r2.requests).toHaveLength(0);
  });
});
