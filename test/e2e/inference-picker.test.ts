/**
 * InferencePool scheduling end to end over the real CLI (file mode, simulated pods on 127.0.27.x).
 *
 * Default (Kthena's way): Kthena's own InferencePool.yaml + HTTPRoute.yaml + Gateway.yaml examples,
 * copied byte for byte into test/fixtures/kthena-examples/, serve traffic: their endpointPickerRef
 * names a placeholder Service that does not exist, and the pool is scheduled in-process.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, docs, eventually, httpRequest, ROOT, startPods, startRouter, tempDir, writeFile, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

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
    await router.waitReady();
  }, 60_000);

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
