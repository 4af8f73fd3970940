/**
 * API keys over the real CLI (file mode, 2 worker threads): ModelServer.spec.apiKeyRules against
 * labelled Secrets, on top of JWT authentication (`auth:` on: a request must pass both); 401/403
 * bodies from the catalogue; the key's header and parameter not forwarded; hot reload of the
 * Secrets (rotation, a new Secret, removal); the failure metric. Last, the leak check: no API key,
 * JWT or provider credential, in any encoding, in the access log, the application log, /metrics,
 * any debug dump or any error body. A local JWKS server on 127.0.0.1; simulated vLLM pods on
 * 127.0.62.x.
 */
import path from 'node:path';
import { SignJWT, type CryptoKey } from 'jose';
import { serveJwks, type LocalJwks } from '../helpers/jwks.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup, docs, eventually, findSamples, podYaml, routeYaml, sampleValue, scrape, serverYaml, startPods, startRouter, tempDir, unlink, writeFile,
  type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PORT = 8000;
const ip = (n: number): string => `127.0.62.${n}`;
const ISS = 'https://issuer.test';
const KEYED = { model: 'keyed-model', messages: [{ role: 'user', content: 'hello' }] };
const OTHER = { model: 'other-model', messages: [{ role: 'user', content: 'hello' }] };
const OPEN = { model: 'open-model', messages: [{ role: 'user', content: 'hello' }] };

// Every secret value this test ever uses; the leak check looks for each of them.
const KEY_A1 = 'sk-team-a-0123456789abcdef';
const KEY_A2 = 'sk-team-a-rotated-fedcba9876';
const KEY_B = 'sk-team-b-5555555555555555';
const KEY_GOLD = 'sk-gold-77777777777777777';
const PROVIDER_VALUE = 'sk-provider-credential-3141592653';
const secrets = [KEY_A1, KEY_A2, KEY_B, KEY_GOLD, PROVIDER_VALUE];
const tokens: string[] = [];
const bodies: string[] = [];

let fleet: SimFleet;
let jwks: LocalJwks;
let priv: CryptoKey;
let dir = '';
let router: RouterProc;

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function keySecret(name: string, data: Record<string, string>, labels: Record<string, string> = {}): string {
  return [
    'apiVersion: v1', 'kind: Secret', 'metadata:', `  name: ${name}`, '  namespace: default', '  labels:',
    '    networking.serving.volcano.sh/api-key: "true"', ...Object.entries(labels).map(([k, v]) => `    ${k}: "${v}"`),
    'type: Opaque', 'data:', ...Object.entries(data).map(([k, v]) => `  ${k}: ${b64(v + '\n')}`),
  ].join('\n');
}

async function token(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const t = await new SignJWT({ iss: ISS, aud: 'kthena', sub: 'alice', iat: now, exp: now + 600 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(priv);
  tokens.push(t);
  return t;
}

async function send(body: object, headers: Record<string, string> = {}, query = ''): Promise<{ status: number; json: () => any }> {
  const r = await fetch(`${router.url}/v1/chat/completions${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  bodies.push(text);
  return { status: r.status, json: () => JSON.parse(text) };
}

beforeAll(async () => {
  jwks = await serveJwks();
  priv = jwks.privateKey;
  const jwksUri = jwks.uri;
  fleet = await startPods(['k-1', 'o-1', 'p-1'].map((name, i) => ({ name, ip: ip(i + 1), port: PORT, models: [`${['keyed', 'other', 'open'][i]}-model`], ttftMs: 1, itlMs: 1, outputTokens: 4 })));
  dir = await tempDir('kthena-e2e-apikey-');
  await writeFile(path.join(dir, 'routes.yaml'), docs(
    routeYaml('keyed-route', 'keyed-model', 'keyed-server'),
    serverYaml('keyed-server', { port: PORT, labels: { app: 'keyed' } }) + [
      '', '  apiKeyRules:',
      '  - fromHeader: X-API-Key', '    secretName: {name: team-a}',
      '  - fromParam: api_key', '    labelSelector: {tier: gold}',
    ].join('\n'),
    routeYaml('other-route', 'other-model', 'other-server'),
    serverYaml('other-server', { port: PORT, labels: { app: 'other' } }) + '\n  apiKeyRules:\n  - fromHeader: X-API-Key\n    secretName: {name: team-b}',
    routeYaml('open-route', 'open-model', 'open-server'),
    serverYaml('open-server', { port: PORT, labels: { app: 'open' } }),
    podYaml('k-1', ip(1), { labels: { app: 'keyed' } }), podYaml('o-1', ip(2), { labels: { app: 'other' } }), podYaml('p-1', ip(3), { labels: { app: 'open' } }),
    // A provider credential (Kthena's label) used by a provider: sent upstream, never shown.
    ['apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ExternalModelProvider', 'metadata:', '  name: prov', '  namespace: default', 'spec:',
      '  providerType: OpenAI', '  baseURL: https://127.0.0.1:9', '  auth:', '    secretRef: {name: provider-cred, key: apiKey}'].join('\n'),
    ['apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', 'metadata:', '  name: provider-route', '  namespace: default', 'spec:',
      '  modelName: provider-model', '  rules:', '  - targetModels:', '    - externalModelProviderName: prov'].join('\n'),
    ['apiVersion: v1', 'kind: Secret', 'metadata:', '  name: provider-cred', '  labels:', '    networking.serving.volcano.sh/external-model-provider-credential: "true"',
      'stringData:', `  apiKey: "${PROVIDER_VALUE}"`].join('\n'),
  ));
  await writeFile(path.join(dir, 'team-a.yaml'), keySecret('team-a', { k1: KEY_A1 }));
  await writeFile(path.join(dir, 'team-b.yaml'), keySecret('team-b', { k: KEY_B }));
  await writeFile(`${dir}-router.yaml`, `auth:\n  issuer: "${ISS}"\n  audiences: ["kthena"]\n  jwksUri: "${jwksUri}"\n`);
  router = await startRouter({ dir, workers: 2, args: ['--router-config', `${dir}-router.yaml`] });
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

describe('API keys (with JWT authentication on)', () => {
  it('refuses a keyed ModelServer without a key (401), with a wrong key (401) or another ModelServer\'s key (403)', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    const missing = await send(KEYED, auth);
    expect(missing.status).toBe(401);
    expect(missing.json()).toEqual({ error: { message: 'API key missing', type: 'invalid_request_error', code: 'RTR_ERR_API_KEY_MISSING' } });
    const wrong = await send(KEYED, { ...auth, 'x-api-key': `${KEY_A1}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.json()).toEqual({ error: { message: 'Unauthorized: invalid API key', type: 'invalid_request_error', code: 'RTR_ERR_API_KEY_INVALID' } });
    const foreign = await send(KEYED, { ...auth, 'x-api-key': KEY_B });
    expect(foreign.status).toBe(403);
    expect(foreign.json()).toEqual({ error: { message: 'Forbidden: API key not allowed for this model', type: 'invalid_request_error', code: 'RTR_ERR_API_KEY_FORBIDDEN' } });
    expect(fleet.pod('k-1').requests.length).toBe(0);
  });

  it('serves a request carrying both a valid JWT and a valid key, and forwards neither the key header nor the key parameter', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    expect((await send(KEYED, { ...auth, 'x-api-key': KEY_A1 })).status).toBe(200);
    expect((await send(OTHER, { ...auth, 'x-api-key': KEY_B })).status).toBe(200);
    // JWT authentication still applies: a key alone is not enough.
    const noJwt = await send(KEYED, { 'x-api-key': KEY_A1 });
    expect(noJwt.status).toBe(401);
    expect(noJwt.json().error.code).toBe('RTR_ERR_AUTH_MISSING');
    // A ModelServer without rules needs no key.
    expect((await send(OPEN, auth)).status).toBe(200);
    const seen = fleet.pod('k-1').requests;
    expect(seen.length).toBe(1);
    expect(seen[0]!.headers['x-api-key']).toBeUndefined();
    expect(seen[0]!.headers.authorization).toBe(auth.authorization);
  });

  it('hot reloads Secrets: a rotated key replaces the old one, a new labelled Secret adds keys, a removed one revokes them', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    await writeFile(path.join(dir, 'team-a.yaml'), keySecret('team-a', { k1: KEY_A2 }));
    await eventually(async () => (await send(KEYED, { ...auth, 'x-api-key': KEY_A2 })).status === 200, 8000, 'rotated key accepted');
    expect((await send(KEYED, { ...auth, 'x-api-key': KEY_A1 })).status).toBe(401);
    // The second rule: Secrets labelled tier=gold, key in the api_key query parameter.
    expect((await send(KEYED, auth, `?api_key=${KEY_GOLD}`)).status).toBe(401);
    await writeFile(path.join(dir, 'gold.yaml'), keySecret('gold', { k: KEY_GOLD }, { tier: 'gold' }));
    await eventually(async () => (await send(KEYED, auth, `?api_key=${KEY_GOLD}&x=1`)).status === 200, 8000, 'new Secret applied');
    const last = fleet.pod('k-1').requests.at(-1)!;
    expect(last.path).toBe('/v1/chat/completions?x=1');
    await unlink(path.join(dir, 'gold.yaml'));
    await eventually(async () => (await send(KEYED, auth, `?api_key=${KEY_GOLD}`)).status === 401, 8000, 'Secret removed');
    expect((await send(KEYED, { ...auth, 'x-api-key': KEY_A2 })).status).toBe(200);
  });

  it('counts refusals by ModelServer and reason', async () => {
    const samples = (await scrape(router.metricsPort)).samples;
    const v = (reason: string): number => sampleValue(samples, 'kthena_router_api_key_failures_total', { model_server: 'default/keyed-server', reason }) ?? 0;
    expect(v('missing')).toBeGreaterThanOrEqual(1);
    expect(v('invalid')).toBeGreaterThanOrEqual(3);
    expect(v('forbidden')).toBe(1);
    const forbidden = findSamples(samples, 'kthena_router_requests_total', { status_code: '403', error_type: 'authorization', backend_name: 'default/keyed-server' });
    expect(forbidden.reduce((a, x) => a + x.value, 0)).toBe(1);
  });

  it('never writes an API key, a JWT or a provider credential to logs, metrics, debug dumps or error bodies', async () => {
    // Failures that carry the values in every place a client can put them.
    for (const k of [KEY_A1, KEY_B, KEY_GOLD, PROVIDER_VALUE]) {
      await send(KEYED, { authorization: `Bearer ${k}`, 'x-api-key': k }, `?api_key=${k}`);
      await send({ ...KEYED, model: 'nope' }, { authorization: `Bearer ${tokens[0]}`, 'x-api-key': k });
    }
    // The provider leg fails (nothing listens on port 9): its error body and log lines are checked too.
    const viaProvider = await send({ ...KEYED, model: 'provider-model' }, { authorization: `Bearer ${tokens[0]}` });
    expect(viaProvider.status).toBeGreaterThanOrEqual(500);
    const metrics = (await scrape(router.metricsPort)).text;
    const dumps: string[] = [];
    for (const what of ['modelroutes', 'modelservers', 'pods', 'problems', 'snapshot', 'initial_config']) {
      const r = await fetch(`http://127.0.0.1:${router.debugPort}/debug/config_dump/${what}`);
      expect(r.status).toBe(200);
      dumps.push(await r.text());
    }
    // The snapshot dump shows the rules (without digests), so the check above is not vacuous.
    expect(dumps[4]).toContain('"x-api-key"');
    expect(dumps[4]).toContain('<redacted>');
    const everything = [...router.stdout, ...router.stderr, metrics, ...dumps, ...bodies].join('\n');
    expect(router.stdout.length).toBeGreaterThan(10);
    expect(tokens.length).toBeGreaterThanOrEqual(3);
    const forms = (s: string): string[] => [s, b64(s), b64(s + '\n'), encodeURIComponent(s)];
    for (const s of secrets) {
      for (const f of forms(s)) {
        const at = everything.indexOf(f);
        expect(at, `${s.slice(0, 8)}... leaked: ${JSON.stringify(everything.slice(Math.max(0, at - 300), at + 60))}`).toBe(-1);
      }
    }
    for (const t of tokens) {
      expect(everything.includes(t)).toBe(false);
      expect(everything.includes(t.split('.')[2]!)).toBe(false);
    }
  });
});
