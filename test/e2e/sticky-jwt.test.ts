/**
 * Session-sticky routing keyed by a claim of the verified JWT (a `JWTClaim` source), over the real
 * CLI with two worker threads: a local JWKS on 127.0.0.1, simulated vLLM pods on 127.0.73.x, the
 * random scorer alone so that only stickiness keeps a session on one pod. The same claim in
 * different tokens is the same session; a token without the claim falls through to the next
 * source.
 */
import path from 'node:path';
import { SignJWT, type CryptoKey } from 'jose';
import { serveJwks, type LocalJwks } from '../helpers/jwks.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, docs, podYaml, serverYaml, startPods, startRouter, tempDir, writeFile, type RouterProc } from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PODS = ['j-0', 'j-1', 'j-2'];
const ip = (i: number): string => `127.0.73.${i + 1}`;
const ISS = 'https://issuer.test';

let fleet: SimFleet;
let jwks: LocalJwks;
let priv: CryptoKey;
let dir = '';
let router: RouterProc;

async function token(claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: ISS, sub: 'someone', iat: now, exp: now + 600, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(priv);
}

async function pod(tok: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}`, ...headers },
    body: JSON.stringify({ model: 'jwt-sticky', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
  });
  await res.text();
  expect(res.status).toBe(200);
  return res.headers.get('x-sim-pod') ?? '';
}

beforeAll(async () => {
  jwks = await serveJwks();
  priv = jwks.privateKey;
  const jwksUri = jwks.uri;
  fleet = await startPods(PODS.map((name, i) => ({ name, ip: ip(i), port: 8000, models: ['jwt-sticky'], ttftMs: 1, outputTokens: 1 })));
  dir = await tempDir('kthena-e2e-sticky-jwt-');
  await writeFile(path.join(dir, 'all.yaml'), docs(
    serverYaml('pool', { port: 8000 }),
    [
      'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', 'metadata:', '  name: jwt-sticky', '  namespace: default', 'spec:',
      '  modelName: jwt-sticky', '  sessionSticky:', '    sources:', '    - {type: JWTClaim, name: sid}', '    - {type: Header, name: X-Session-ID}',
      '  rules:', '  - name: all', '    targetModels:', '    - modelServerName: pool',
    ].join('\n'),
    ...PODS.map((p, i) => podYaml(p, ip(i))),
  ));
  const cfg = `${dir}-router.yaml`;
  await writeFile(cfg, `auth:\n  issuer: "${ISS}"\n  jwksUri: "${jwksUri}"\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n`);
  router = await startRouter({ dir, workers: 2, args: ['--router-config', cfg] });
  await router.waitReady(60_000);
}, 90_000);

afterAll(async () => {
  await router?.stop();
  await fleet?.close();
  await jwks?.close();
  if (dir) {
    await cleanup(`${dir}-router.yaml`);
    await cleanup(dir);
  }
});

describe('session-sticky routing on a JWT claim', () => {
  it('keeps the tokens carrying one claim value on one pod, across tokens, connections and workers', async () => {
    const seen = new Set<string>();
    // A fresh token each time (another sub too): only the sid claim is shared.
    for (let i = 0; i < 10; i++) seen.add(await pod(await token({ sid: 'conv-1', sub: `u${i}` }), { connection: 'close' }));
    expect(seen.size).toBe(1);
    // A numeric claim is a key too.
    const num = new Set<string>();
    for (let i = 0; i < 8; i++) num.add(await pod(await token({ sid: 42 })));
    expect(num.size).toBe(1);
    // Other sessions spread (random scorer over 3 pods).
    const others = new Set<string>();
    for (let i = 0; i < 12; i++) others.add(await pod(await token({ sid: `conv-other-${i}` })));
    expect(others.size).toBeGreaterThan(1);
  });

  it('falls through to the next source when the token has no such claim, and spreads without any key', async () => {
    const noClaim = await token({});
    const byHeader = new Set<string>();
    for (let i = 0; i < 8; i++) byHeader.add(await pod(noClaim, { 'x-session-id': 'hdr-1' }));
    expect(byHeader.size).toBe(1);
    const none = new Set<string>();
    for (let i = 0; i < 15; i++) none.add(await pod(noClaim));
    expect(none.size).toBeGreaterThan(1);
  });
});
