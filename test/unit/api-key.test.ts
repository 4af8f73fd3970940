/**
 * API keys: the translator's table (ModelServer.spec.apiKeyRules x labelled Secrets), the snapshot
 * codec, the worker's compiled rules and the check itself (locations, digests, 401/403).
 */
import { describe, expect, it } from 'vitest';
import { apiKeysIR } from '../../src/translator/api-keys.js';
import { translate } from '../../src/translator/index.js';
import { parseGatewayObject } from '../../src/resources/validate.js';
import { parseManifestObject } from '../../src/resources/validate.js';
import type { Secret } from '../../src/resources/gateway.js';
import type { ModelServer, Problem } from '../../src/resources/types.js';
import { apiKeyDigest } from '../../src/shared/api-key.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/shared/snapshot-codec.js';
import { checkApiKey, compileApiKeys, presentedKey, queryWithout, type CompiledApiKeyRule } from '../../workers/auth/api-key.js';
import { compileSnapshot } from '../../workers/compile.js';
import { apiKeyAuth, stripApiKey } from '../../workers/request/api-key.js';

const ctx = { file: 'x.yaml', now: () => '2026-01-01T00:00:00Z' };

function secret(name: string, keys: Record<string, string>, labels: Record<string, string> = {}, namespace = 'default'): Secret {
  const r = parseGatewayObject({
    apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, labels: { 'networking.serving.volcano.sh/api-key': 'true', ...labels } }, stringData: keys,
  }, ctx);
  return r.resource as Secret;
}

function server(name: string, apiKeyRules: unknown[] | undefined, namespace = 'default'): ModelServer {
  const r = parseManifestObject({
    apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ModelServer', metadata: { name, namespace },
    spec: { inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: name } }, workloadPort: { port: 8000 }, ...(apiKeyRules ? { apiKeyRules } : {}) },
  }, ctx);
  expect(r.problems).toEqual([]);
  return r.resource as ModelServer;
}

const headers = (h: Record<string, string>) => (name: string): string => h[name] ?? '';

describe('ModelServer.spec.apiKeyRules validation', () => {
  it('needs secretName or labelSelector, and a header that is an HTTP token', () => {
    const parse = (rules: unknown[]) => parseManifestObject({
      apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ModelServer', metadata: { name: 's' },
      spec: { inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: 's' } }, workloadPort: { port: 8000 }, apiKeyRules: rules },
    }, ctx).problems.map((p) => `${p.field}: ${p.message}`);
    expect(parse([{ fromHeader: 'X-API-Key' }])).toEqual(['spec.apiKeyRules[0]: Required value: one of secretName or labelSelector is required']);
    expect(parse([{ fromHeader: 'bad header', secretName: { name: 'k' } }])[0]).toMatch(/^spec\.apiKeyRules\[0\]\.fromHeader: Invalid value/);
    expect(parse([{ fromParam: 'key', labelSelector: { team: 'a' } }, { secretName: { name: 'k', namespace: 'other' } }])).toEqual([]);
  });
});

describe('apiKeysIR (translator)', () => {
  it('is absent without rules, and selects Secrets by name (default namespace: the server\'s) or by labels', () => {
    const problems: Problem[] = [];
    expect(apiKeysIR([server('open', undefined)], [secret('a', { k: 'sk-a' })], problems, false)).toBeUndefined();
    const secrets = [
      secret('a', { k: 'sk-a' }), secret('b', { k: 'sk-b' }, { team: 'x', 'networking.serving.volcano.sh/api-key-user': 'bob' }),
      secret('c', { k: 'sk-c' }, { team: 'x' }, 'other'), secret('d', { k: 'sk-d' }, {}, 'other'),
    ];
    const ir = apiKeysIR([
      server('by-name', [{ secretName: { name: 'a' } }, { fromHeader: 'X-API-Key', fromParam: 'key', secretName: { name: 'd', namespace: 'other' } }]),
      server('by-label', [{ labelSelector: { team: 'x' } }]),
    ], secrets, problems, false)!;
    expect(problems).toEqual([]);
    expect(ir.known).toEqual(['sk-a', 'sk-b', 'sk-c', 'sk-d'].map(apiKeyDigest).sort());
    expect(ir.servers).toEqual([
      { server: 'default/by-label', rules: [{ header: 'authorization', param: '', keys: [[apiKeyDigest('sk-b'), 'bob']] }] },
      {
        server: 'default/by-name', rules: [
          { header: 'authorization', param: '', keys: [[apiKeyDigest('sk-a'), 'a']] },
          { header: 'x-api-key', param: 'key', keys: [[apiKeyDigest('sk-d'), 'd']] },
        ],
      },
    ]);
  });

  it('warns (and admits nothing) for a missing or unlabelled Secret, an ignored secretName, and a key in Authorization while JWT is on', () => {
    const unlabelled = parseGatewayObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'plain' }, stringData: { k: 'sk-p' } }, ctx).resource as Secret;
    const problems: Problem[] = [];
    const ir = apiKeysIR([server('s', [{ secretName: { name: 'plain' } }, { labelSelector: { none: 'x' }, secretName: { name: 'plain' } }])], [unlabelled], problems, true)!;
    expect(ir.servers[0]!.rules.map((r) => r.keys)).toEqual([[], []]);
    expect(problems.map((p) => `${p.field}: ${p.severity}`)).toEqual([
      'spec.apiKeyRules[0]: warning', 'spec.apiKeyRules[0].secretName: warning',
      'spec.apiKeyRules[1]: warning', 'spec.apiKeyRules[1].secretName: warning', 'spec.apiKeyRules[1].labelSelector: warning',
    ]);
    expect(problems[1]!.message).toContain('default/plain is not found or does not carry the label networking.serving.volcano.sh/api-key=true');
    expect(JSON.stringify(problems)).not.toContain('sk-p');
  });

  it('goes through translate, the snapshot codec and the worker\'s compile', () => {
    const s = server('s', [{ fromHeader: 'X-API-Key', secretName: { name: 'a' } }]);
    const { ir } = translate({ modelRoutes: [], modelServers: [s], pods: [], secrets: [secret('a', { k1: 'sk-1', k2: 'sk-2' })] });
    const back = decodeSnapshot(encodeSnapshot(ir));
    expect(back.apiKeys).toEqual(ir.apiKeys);
    const snap = compileSnapshot(back, 1, () => null);
    expect(snap.apiKeysKnown).toEqual(new Set([apiKeyDigest('sk-1'), apiKeyDigest('sk-2')]));
    // Without rules the IR carries nothing and no server needs a key.
    const open = translate({ modelRoutes: [], modelServers: [server('o', undefined)], pods: [] }).ir;
    expect(open.apiKeys).toBeUndefined();
    expect(decodeSnapshot(encodeSnapshot(open)).apiKeys).toBeUndefined();
  });
});

describe('checkApiKey (worker)', () => {
  const compiled = compileApiKeys({
    servers: [
      { server: 'ns/a', rules: [{ header: 'authorization', param: '', keys: [[apiKeyDigest('sk-alice'), 'alice']] }] },
      { server: 'ns/b', rules: [
        { header: 'x-api-key', param: '', keys: [[apiKeyDigest('sk-bob'), 'bob']] },
        { header: '', param: 'api_key', keys: [[apiKeyDigest('sk-carol'), 'carol']] },
      ] },
    ],
    known: ['sk-alice', 'sk-bob', 'sk-carol'].map(apiKeyDigest),
  })!;
  const a = compiled.byServer.get('ns/a')!;
  const b = compiled.byServer.get('ns/b')!;

  it('admits the key at the rule\'s location and names its user', () => {
    const ok = checkApiKey(a, compiled.known, headers({ authorization: 'bearer sk-alice' }), '');
    expect(ok).toMatchObject({ ok: true, user: 'alice' });
    expect(checkApiKey(a, compiled.known, headers({ authorization: '  Bearer   sk-alice ' }), '')).toMatchObject({ ok: true, user: 'alice' });
    expect(checkApiKey(b, compiled.known, headers({ 'x-api-key': ' sk-bob ' }), '')).toMatchObject({ ok: true, user: 'bob' });
    expect(checkApiKey(b, compiled.known, headers({}), 'x=1&api_key=sk-carol')).toMatchObject({ ok: true, user: 'carol' });
    // A wrong key at the first location does not stop the second rule.
    expect(checkApiKey(b, compiled.known, headers({ 'x-api-key': 'nope' }), 'api_key=sk-carol')).toMatchObject({ ok: true, user: 'carol' });
  });

  it('401 missing, 401 invalid, 403 for a key another ModelServer admits', () => {
    expect(checkApiKey(a, compiled.known, headers({}), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_MISSING' });
    // Not a bearer credential: no key at this location.
    expect(checkApiKey(a, compiled.known, headers({ authorization: 'Basic sk-alice' }), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_MISSING' });
    expect(checkApiKey(a, compiled.known, headers({ authorization: 'Bearer sk-alicf' }), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_INVALID' });
    expect(checkApiKey(a, compiled.known, headers({ authorization: 'Bearer sk-alice2' }), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_INVALID' });
    expect(checkApiKey(a, compiled.known, headers({ authorization: 'Bearer sk-bob' }), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_FORBIDDEN' });
    // Header names are matched as the worker stores them (lower case); a key elsewhere is not looked for.
    expect(checkApiKey(b, compiled.known, headers({ authorization: 'Bearer sk-bob' }), '')).toMatchObject({ ok: false, code: 'RTR_ERR_API_KEY_MISSING' });
  });

  it('reads and strips a query parameter', () => {
    const rule: CompiledApiKeyRule = { header: '', param: 'key', keys: new Map() };
    expect(presentedKey(rule, headers({}), 'key=sk%2Fx&a=1')).toBe('sk/x');
    expect(presentedKey(rule, headers({}), 'key=&a=1')).toBe('');
    expect(queryWithout('a=1&key=sk-x&b=2', 'key')).toBe('a=1&b=2');
    expect(queryWithout('key=sk-x', 'key')).toBe('');
  });
});

describe('the request stage (workers/request/api-key.ts)', () => {
  const snap = compileSnapshot(translate({
    modelRoutes: [], pods: [],
    modelServers: [server('s', [{ fromHeader: 'X-API-Key', fromParam: 'api_key', secretName: { name: 'a' } }])],
    secrets: [secret('a', { k: 'sk-a' }, { 'networking.serving.volcano.sh/api-key-user': 'alice' })],
  }).ir, 1, () => null);
  // The stage reads only the server's key and rules.
  const compiledServer = (): Parameters<typeof apiKeyAuth>[2] =>
    ({ key: 'default/s', apiKeys: compileApiKeys(snap.ir.apiKeys)!.byServer.get('default/s')! }) as unknown as Parameters<typeof apiKeyAuth>[2];
  const state = (h: Record<string, string>, query = '', userId = '') => ({
    userId, apiKeyRule: null as CompiledApiKeyRule | null, query, upstreamPath: '', rec: { path: '/v1/chat/completions' },
    upstreamHeaders: Object.entries(h).flat(), headerValue: (n: string) => h[n] ?? '',
  });

  it('makes the key\'s user the request\'s user unless a JWT already named one, and strips the key', () => {
    const st = state({ 'x-api-key': 'sk-a', accept: '*/*' }, 'a=1&api_key=sk-a');
    expect(apiKeyAuth(st as never, snap as never, compiledServer())).toBe(true);
    expect(st.userId).toBe('alice');
    stripApiKey(st as never, st.apiKeyRule!);
    expect(st.upstreamHeaders).toEqual(['accept', '*/*']);
    expect(st.upstreamPath).toBe('/v1/chat/completions?a=1');
    const jwt = state({ 'x-api-key': 'sk-a' }, '', 'sub-from-jwt');
    expect(apiKeyAuth(jwt as never, snap as never, compiledServer())).toBe(true);
    expect(jwt.userId).toBe('sub-from-jwt');
  });
});
