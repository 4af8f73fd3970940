/**
 * Kthena's JWT authentication over the real CLI (`--router-config` with `auth:`): every /v1/*
 * request (GET /v1/models included) needs a valid bearer token, health and metrics never do;
 * Kthena's 401 messages in our error shape; hot reload of the auth block; and no token ever shows
 * up in logs, metrics, debug dumps or error bodies. A local JWKS server on 127.0.0.1; simulated
 * vLLM pods on 127.0.61.x; 2 worker threads.
 */
import path from 'node:path';
import { generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { serveJwks, type LocalJwks } from '../helpers/jwks.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chat, cleanup, docs, eventually, podYaml, routeYaml, scrape, serverYaml, startPods, startRouter, tempDir, writeFile,
  type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PORT = 8000;
const ip = (n: number): string => `127.0.61.${n}`;
const ISS = 'https://issuer.test';
const HELLO = { model: 'auth-model', messages: [{ role: 'user', content: 'hello' }] };

let fleet: SimFleet;
let jwks: LocalJwks;
let jwksUri = '';
let priv: CryptoKey;
let dir = '';
let router: RouterProc;
const tokens: string[] = [];

const authConfig = (audiences: string[] | null): string => (audiences === null
  ? 'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n'
  : `auth:\n  issuer: "${ISS}"\n  audiences: [${audiences.map((a) => `"${a}"`).join(', ')}]\n  jwksUri: "${jwksUri}"\n` +
    'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}\n');

async function token(claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const t = await new SignJWT({ iss: ISS, aud: 'kthena', sub: 'alice', iat: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(priv);
  tokens.push(t);
  return t;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const r = await fetch(url, { headers });
  return { status: r.status, text: await r.text() };
}

beforeAll(async () => {
  jwks = await serveJwks();
  priv = jwks.privateKey;
  jwksUri = jwks.uri;
  fleet = await startPods([{ name: 'a-1', ip: ip(1), port: PORT, models: ['auth-model'], ttftMs: 1, itlMs: 1, outputTokens: 4 }]);
  dir = await tempDir('kthena-e2e-auth-');
  await writeFile(path.join(dir, 'routes.yaml'), docs(
    routeYaml('auth-route', 'auth-model', 'auth-server'),
    serverYaml('auth-server', { port: PORT, labels: { app: 'auth' } }),
    podYaml('a-1', ip(1), { labels: { app: 'auth' } }),
  ));
  await writeFile(path.join(dir, '..', `${path.basename(dir)}-router.yaml`), authConfig(['kthena']));
  router = await startRouter({ dir, workers: 2, args: ['--router-config', path.join(dir, '..', `${path.basename(dir)}-router.yaml`)] });
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

describe('JWT authentication', () => {
  it('refuses /v1/* without a bearer token with Kthena\'s message; health, readiness and metrics stay open', async () => {
    const r = await chat(router.url, HELLO);
    expect(r.status).toBe(401);
    expect(r.json()).toEqual({ error: { message: 'Authorization header missing or invalid', type: 'invalid_request_error', code: 'RTR_ERR_AUTH_MISSING' } });
    expect((await get(`${router.url}/v1/models`)).status).toBe(401);
    expect((await chat(router.url, HELLO, { authorization: 'Basic dXNlcjpwdw==' })).status).toBe(401);
    expect((await get(`${router.url}/healthz`)).status).toBe(200);
    expect((await get(`${router.url}/readyz`)).status).toBe(200);
    expect((await scrape(router.metricsPort)).status).toBe(200);
  });

  it('serves a request with a valid token, /v1/models included, again and again', async () => {
    const t = await token();
    for (let i = 0; i < 3; i++) expect((await chat(router.url, HELLO, { authorization: `Bearer ${t}` })).status).toBe(200);
    const models = await get(`${router.url}/v1/models`, { authorization: `bearer ${t}` });
    expect(models.status).toBe(200);
    expect(JSON.parse(models.text).data.map((m: { id: string }) => m.id)).toEqual(['auth-model']);
  });

  it('refuses expired, foreign-issuer and wrongly signed tokens with Kthena\'s reasons', async () => {
    const expired = await chat(router.url, HELLO, { authorization: `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) - 10 })}` });
    expect(expired.status).toBe(401);
    expect(expired.json().error).toEqual({ message: 'Unauthorized: failed to validate claims: time claims validation failed: token has expired', type: 'invalid_request_error', code: 'RTR_ERR_UNAUTHORIZED' });
    const foreign = await chat(router.url, HELLO, { authorization: `Bearer ${await token({ iss: 'https://evil.test' })}` });
    expect(foreign.json().error.message).toBe(`Unauthorized: failed to validate claims: issuer validation failed: invalid issuer: expected ${ISS}, got https://evil.test`);
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ iss: ISS, aud: 'kthena', sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    tokens.push(forged);
    const f = await chat(router.url, HELLO, { authorization: `Bearer ${forged}` });
    expect(f.json().error.message).toBe('Unauthorized: failed to parse jwt: signature verification failed');
  });

  it('hot reloads the auth block: a new audience list applies, and removing auth opens the router', async () => {
    const t = await token();
    const file = path.join(dir, '..', `${path.basename(dir)}-router.yaml`);
    await writeFile(file, authConfig(['someone-else']));
    await eventually(async () => (await chat(router.url, HELLO, { authorization: `Bearer ${t}` })).status === 401, 8000, 'new audiences applied');
    const r = await chat(router.url, HELLO, { authorization: `Bearer ${t}` });
    expect(r.json().error.message).toBe('Unauthorized: failed to validate claims: audience validation failed: audience mismatch');
    await writeFile(file, authConfig(null));
    await eventually(async () => (await chat(router.url, HELLO)).status === 200, 8000, 'auth removed');
    await writeFile(file, authConfig(['kthena']));
    await eventually(async () => (await chat(router.url, HELLO)).status === 401, 8000, 'auth back');
    expect((await chat(router.url, HELLO, { authorization: `Bearer ${t}` })).status).toBe(200);
  });

  it('never writes a token, or its signature, to logs, metrics, debug dumps or error bodies', async () => {
    const bodies: string[] = [];
    for (const t of tokens.slice(0, 4)) bodies.push((await chat(router.url, { ...HELLO, model: 'nope' }, { authorization: `Bearer ${t}x` })).text);
    const metrics = (await scrape(router.metricsPort)).text;
    const dumps: string[] = [];
    for (const what of ['modelroutes', 'modelservers', 'pods', 'problems']) dumps.push((await get(`http://127.0.0.1:${router.debugPort}/debug/config_dump/${what}`)).text);
    const everything = [...router.stdout, ...router.stderr, metrics, ...dumps, ...bodies].join('\n');
    expect(tokens.length).toBeGreaterThan(4);
    for (const t of tokens) {
      expect(everything.includes(t)).toBe(false);
      expect(everything.includes(t.split('.')[2])).toBe(false);
    }
  });
});
