/**
 * Session-sticky routing over the real CLI with two worker threads (the binding table is shared
 * memory, one per router): ModelRoute.spec.sessionSticky as Kthena's proposal defines it, with the
 * random scorer alone so that only stickiness can keep a session on one pod. Simulated vLLM pods on
 * 127.0.59.x. Proposal cases: SS-01 basic, SS-02 isolation, SS-03 no key, SS-04 no sessionSticky,
 * SS-05 query, SS-06 cookie, SS-07 TTL, SS-08 failover, SS-11 source order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { docs, eventually, podYaml, serverYaml, startPods, startRouter, tempDir, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';

const PODS = ['s-0', 's-1', 's-2'];
const ip = (i: number): string => `127.0.59.${i + 1}`;

function route(name: string, model: string, sticky: string[]): string {
  return [
    'apiVersion: networking.serving.volcano.sh/v1alpha1',
    'kind: ModelRoute',
    'metadata:',
    `  name: ${name}`,
    '  namespace: default',
    'spec:',
    `  modelName: ${model}`,
    ...sticky,
    '  rules:',
    '  - name: all',
    '    targetModels:',
    '    - modelServerName: pool',
  ].join('\n');
}

const STICKY = [
  '  sessionSticky:',
  '    sessionAffinitySeconds: 2',
  '    sources:',
  '    - {type: Header, name: X-Session-ID}',
  '    - {type: Query, name: session}',
  '    - {type: Cookie, name: chat_session}',
];

async function pod(url: string, model: string, o: { headers?: Record<string, string>; query?: string } = {}): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions${o.query ?? ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...o.headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
  });
  await res.text();
  expect(res.status).toBe(200);
  return res.headers.get('x-sim-pod') ?? '';
}

async function pods(n: number, f: () => Promise<string>): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await f());
  return seen;
}

describe('session-sticky routing (ModelRoute.spec.sessionSticky)', () => {
  let dir = '';
  let fleet: SimFleet;
  let router: RouterProc;
  const write = (live: string[]): Promise<void> => writeFile(path.join(dir, 'all.yaml'), docs(
    serverYaml('pool', { port: 8000 }),
    route('sticky', 'sticky', STICKY),
    route('plain', 'plain', []),
    ...live.map((p) => podYaml(p, ip(PODS.indexOf(p)))),
  ));

  beforeAll(async () => {
    dir = await tempDir();
    fleet = await startPods(PODS.map((name, i) => ({ name, ip: ip(i), port: 8000, models: ['sticky', 'plain'], ttftMs: 1, outputTokens: 1 })));
    await write(PODS);
    await writeFile(path.join(dir, 'random.yaml.cfg'), 'scheduler:\n  plugins:\n    Score:\n      enabled:\n      - {name: random, weight: 1}\n');
    router = await startRouter({ dir, workers: 2, args: ['--router-config', path.join(dir, 'random.yaml.cfg')] });
    await router.waitReady();
  }, 30_000);

  afterAll(async () => {
    await router?.stop();
    await fleet?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps a session on one pod across connections and workers, and each session on its own (SS-01, SS-02)', async () => {
    const a = await pods(12, () => pod(router.url, 'sticky', { headers: { 'x-session-id': 'alice', connection: 'close' } }));
    expect(a.size).toBe(1);
    const first = [...a][0];
    // Other sessions spread over the pods (random scorer), alice stays where she is.
    const others = new Set<string>();
    for (let i = 0; i < 12; i++) others.add(await pod(router.url, 'sticky', { headers: { 'x-session-id': `user-${i}` } }));
    expect(others.size).toBeGreaterThan(1);
    expect(await pod(router.url, 'sticky', { headers: { 'x-session-id': 'alice' } })).toBe(first);
  });

  it('spreads requests without a session key, and ignores the header on a route without sessionSticky (SS-03, SS-04)', async () => {
    expect((await pods(15, () => pod(router.url, 'sticky'))).size).toBeGreaterThan(1);
    expect((await pods(15, () => pod(router.url, 'plain', { headers: { 'x-session-id': 'bob' } }))).size).toBeGreaterThan(1);
  });

  it('reads the key from the query and from a cookie, the first source that has one winning (SS-05, SS-06, SS-11)', async () => {
    expect((await pods(8, () => pod(router.url, 'sticky', { query: '?session=q1' }))).size).toBe(1);
    expect((await pods(8, () => pod(router.url, 'sticky', { headers: { cookie: 'theme=dark; chat_session=c1' } }))).size).toBe(1);
    // Header first: the same header with varying query values stays on the header's pod.
    const h = await pod(router.url, 'sticky', { headers: { 'x-session-id': 'h1' } });
    for (let i = 0; i < 8; i++) expect(await pod(router.url, 'sticky', { headers: { 'x-session-id': 'h1' }, query: `?session=q${i + 10}` })).toBe(h);
  });

  it('lets a binding expire after sessionAffinitySeconds without requests (SS-07)', async () => {
    // Fresh sessions each time: after the TTL the next request is scheduled anew; over several
    // sessions at least one lands elsewhere (random scorer, 3 pods).
    let moved = 0;
    const first: string[] = [];
    for (let i = 0; i < 10; i++) first.push(await pod(router.url, 'sticky', { headers: { 'x-session-id': `ttl-${i}` } }));
    await new Promise((r) => setTimeout(r, 3100));
    for (let i = 0; i < 10; i++) if (await pod(router.url, 'sticky', { headers: { 'x-session-id': `ttl-${i}` } }) !== first[i]) moved++;
    expect(moved).toBeGreaterThan(0);
  }, 20_000);

  it('binds the session again when its pod leaves, and logs the failover (SS-08)', async () => {
    const bound = await pod(router.url, 'sticky', { headers: { 'x-session-id': 'carol' } });
    await write(PODS.filter((p) => p !== bound));
    // The pod disappears from the snapshot (a removal applies after the file provider's grace period).
    await eventually(async () => (await pod(router.url, 'sticky', { headers: { 'x-session-id': 'dave' } })) !== bound
      && (await pod(router.url, 'sticky', { headers: { 'x-session-id': 'carol' } })) !== bound, 8000, 'bound pod gone');
    const now = await pod(router.url, 'sticky', { headers: { 'x-session-id': 'carol' } });
    expect(now).not.toBe(bound);
    expect((await pods(6, () => pod(router.url, 'sticky', { headers: { 'x-session-id': 'carol' } })))).toEqual(new Set([now]));
    await router.waitForLog((l) => l.includes('session-sticky pod is no longer schedulable'), 5000, 'stderr');
    await write(PODS);
  }, 20_000);
});
