/**
 * ExternalModelProvider rules one by one: validation (schema, CEL, webhook), credential
 * resolution, URL joining, the header allow-list, the body rewrite, and usage parsing for each
 * API shape (docs/traffic-policy.md#external-model-providers; Kthena's providers/*.go).
 */
import { describe, expect, it } from 'vitest';
import { providerConfigError, resolveCredential, type ExternalModelProvider } from '../../src/resources/external-provider.js';
import { parseManifestObject } from '../../src/resources/validate.js';
import type { Secret } from '../../src/resources/gateway.js';
import { compileProvider, type CompiledProvider } from '../../workers/provider/compile.js';
import { providerBody, providerHeaders, providerPath, supportsPath } from '../../workers/provider/request.js';
import { ANTHROPIC_USAGE, RESPONSES_USAGE } from '../../workers/provider/usage.js';
import { OPENAI_USAGE } from '../../workers/sse.js';
import type { ProviderIR } from '../../src/ir/types.js';

const G = 'networking.serving.volcano.sh/v1alpha1';
const parse = (spec: unknown, extra: Record<string, unknown> = {}) =>
  parseManifestObject({ apiVersion: G, kind: 'ExternalModelProvider', metadata: { name: 'p', namespace: 'ns' }, spec, ...extra }, { file: 'f.yaml', now: () => '2026-01-01T00:00:00Z' });
const problems = (spec: unknown, extra: Record<string, unknown> = {}): [string, string][] => parse(spec, extra).problems.map((p) => [p.field, p.message]);

describe('ExternalModelProvider validation', () => {
  it('defaults providerType and insecureSkipVerify as the CRD does', () => {
    const r = parse({ baseURL: 'https://api.example.com' });
    expect(r.problems).toEqual([]);
    expect((r.resource as ExternalModelProvider).spec).toEqual({ providerType: 'OpenAI', baseURL: 'https://api.example.com', insecureSkipVerify: false });
    expect(Object.isFrozen(r.resource!.spec)).toBe(true);
  });

  it('refuses what the CRD schema, its CEL rule and Kthena\'s webhook refuse, with their messages', () => {
    expect(problems({ baseURL: 'http://api.example.com' })).toEqual([['spec.baseURL', 'Invalid value: "http://api.example.com": should match \'^https://.+\'']]);
    expect(problems({})).toEqual([['spec.baseURL', 'Required value']]);
    expect(problems({ baseURL: 'https://u:p@api.example.com' })).toEqual([['spec.baseURL', 'baseURL must not contain userinfo, query, or fragment']]);
    expect(problems({ baseURL: 'https://api.example.com/v1?x=1' })).toEqual([['spec.baseURL', 'baseURL must not contain userinfo, query, or fragment']]);
    expect(problems({ baseURL: 'https:///nohost' })).toEqual([['spec.baseURL', 'baseURL must use https']]);
    expect(problems({ baseURL: 'https://h', providerType: 'Gemini' })).toEqual([['spec.providerType', 'Unsupported value: "Gemini": supported values: "OpenAI", "Anthropic"']]);
    expect(problems({ baseURL: 'https://h', headers: { 'X-API-Key': 'k', Host: 'h', 'bad name': 'v', 'X-Ok': 'a\nb' } })).toEqual([
      ['spec.headers[Host]', 'header is reserved and cannot be configured as a static header'],
      ['spec.headers[X-API-Key]', 'header is reserved and cannot be configured as a static header'],
      ['spec.headers[X-Ok]', 'header value is invalid'],
      ['spec.headers[bad name]', 'header name is invalid'],
    ]);
    expect(problems({ baseURL: 'https://h', auth: { secretRef: { name: 's', key: 'k', optional: true } } })).toEqual([['spec.auth', 'secretRef.optional must be false or unset']]);
    expect(problems({ baseURL: 'https://h', auth: { secretRef: { key: 'k' } } })).toEqual([['spec.auth.secretRef.name', 'secret name is required']]);
    expect(problems({ baseURL: 'https://h', auth: { scheme: 'Basic', secretRef: { name: 's', key: 'k' } } })).toEqual([['spec.auth.scheme', 'Unsupported value: "Basic": supported values: "Bearer", "APIKey"']]);
    expect(problems({ baseURL: 'https://h', model: 'x'.repeat(257) })).toEqual([['spec.model', 'Too long: may not be longer than 256']]);
    expect(problems({ baseURL: 'https://h' }, { extra: 1 })).toEqual([['extra', 'unknown field "extra"']]);
  });

  it("Kthena's ValidateConfiguration over a raw spec (the status of versions the webhook never saw)", () => {
    expect(providerConfigError({ baseURL: 'https://h/x' })).toBeNull();
    expect(providerConfigError({ baseURL: 'http://h' })).toMatch(/must use https/);
    expect(providerConfigError({ baseURL: 'https://h', providerType: 'X' })).toBe('unsupported provider type "X"');
    expect(providerConfigError({ baseURL: 'https://h', headers: { Cookie: 'c' } })).toBe('static header "Cookie" is reserved');
    expect(providerConfigError({ baseURL: 'https://h', auth: { scheme: 'Basic' } })).toBe('unsupported provider auth scheme "Basic"');
  });
});

const secret = (name: string, data: Record<string, string>, labelled = true): [string, Secret] => [
  `ns/${name}`,
  { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'ns', creationTimestamp: '', resourceVersion: '', generation: 1, labels: {}, uid: '' }, type: 'Opaque', ...(labelled ? { credentials: data } : {}) },
];

describe('credential resolution', () => {
  const secrets = new Map([secret('ok', { k: ' \tsk-1\n' }), secret('empty', { k: '' }), secret('blank', { k: '   ' }), secret('ctl', { k: 'a\u0000b' }), secret('nolabel', { k: 'x' }, false)]);
  const resolve = (name: string, key = 'k') => resolveCredential({ auth: { secretRef: { name, key } } }, 'ns', secrets);
  it('trims the value and checks it, as Kthena', () => {
    expect(resolveCredential({}, 'ns', secrets)).toEqual({ reason: 'CredentialNotRequired', message: 'No credential is configured', value: '' });
    expect(resolve('ok')).toEqual({ reason: 'CredentialResolved', message: 'Credential Secret and key are available', value: 'sk-1' });
    expect(resolve('absent').reason).toBe('CredentialNotFound');
    expect(resolve('nolabel').reason).toBe('CredentialNotFound');
    expect(resolve('ok', 'other').reason).toBe('CredentialKeyNotFound');
    expect(resolve('empty').reason).toBe('CredentialKeyNotFound');
    expect(resolve('blank').reason).toBe('CredentialInvalid');
    expect(resolve('ctl').reason).toBe('CredentialInvalid');
    expect(resolveCredential({ auth: { secretRef: { name: 'ok', key: 'k' } } }, 'other-ns', secrets).reason).toBe('CredentialNotFound');
  });
});

function compiled(o: Partial<ProviderIR> = {}): CompiledProvider {
  return compileProvider({
    key: 'ns/p', namespace: 'ns', name: 'p', type: 'OpenAI', model: '', origin: 'https://h', basePath: '', insecureSkipVerify: false,
    headers: [], authHeader: '', authValue: '', notReady: '', ...o,
  });
}

describe('provider URL', () => {
  it.each([
    ['OpenAI', '', '/v1/chat/completions', '', '/v1/chat/completions'],
    ['OpenAI', '/api/v1', '/v1/chat/completions', '', '/api/v1/chat/completions'],
    ['OpenAI', '/openai', '/v1/responses', 'a=1&b=2', '/openai/responses?a=1&b=2'],
    ['OpenAI', '', '/v1/completions', 'x=1', '/v1/completions?x=1'],
    ['Anthropic', '', '/v1/messages', '', '/v1/messages'],
    ['Anthropic', '/v1', '/v1/messages', '', '/v1/messages'],
    ['Anthropic', '/proxy', '/v1/messages', '', '/proxy/v1/messages'],
    ['Anthropic', '/proxy/v1', '/v1/messages', '', '/proxy/v1/messages'],
  ] as const)('%s base %j + %s?%s -> %s', (type, base, path, query, want) => {
    expect(providerPath(type, base, path, query)).toBe(want);
  });

  it('serves only the paths of its type', () => {
    expect(['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/messages', '/v1/embeddings'].map((p) => supportsPath('OpenAI', p))).toEqual([true, true, true, false, false]);
    expect(['/v1/messages', '/v1/chat/completions'].map((p) => supportsPath('Anthropic', p))).toEqual([true, false]);
  });
});

describe('provider headers', () => {
  const client = ['content-type', 'application/json', 'authorization', 'Bearer client', 'x-api-key', 'c', 'cookie', 'a=b', 'accept', 'text/event-stream',
    'x-request-id', 'r1', 'traceparent', 't', 'x-b3-sampled', '1', 'anthropic-version', '2023', 'anthropic-beta', 'b', 'x-forwarded-for', '1.2.3.4', 'user-agent', 'ua'];
  it('OpenAI: the allow-list, static headers replacing client ones, then the credential', () => {
    const p = compiled({ headers: ['Accept', 'application/json', 'X-Org', 'o1'], authHeader: 'authorization', authValue: 'Bearer sk' });
    expect(providerHeaders(p, client)).toEqual([
      'content-type', 'application/json', 'x-request-id', 'r1', 'traceparent', 't', 'x-b3-sampled', '1',
      'Accept', 'application/json', 'X-Org', 'o1', 'authorization', 'Bearer sk',
    ]);
  });
  it('Anthropic: its protocol headers too; content-type added when the client sent none', () => {
    const p = compiled({ type: 'Anthropic', authHeader: 'x-api-key', authValue: 'sk' });
    expect(providerHeaders(p, ['anthropic-version', '2023', 'anthropic-beta', 'b', 'authorization', 'x'])).toEqual([
      'anthropic-version', '2023', 'anthropic-beta', 'b', 'content-type', 'application/json', 'x-api-key', 'sk',
    ]);
  });
  it('no credential configured: no auth header at all (the client\'s never passes)', () => {
    expect(providerHeaders(compiled(), ['authorization', 'Bearer x'])).toEqual(['content-type', 'application/json']);
  });
});

describe('provider body', () => {
  const body = (p: CompiledProvider, text: string, path = '/v1/chat/completions') => {
    const r = providerBody(p, path, Buffer.from(text), text, JSON.parse(text));
    return { text: r.body.toString(), injected: r.injected };
  };
  it('unchanged bytes when nothing applies', () => {
    const t = '{"model":"m", "x":12345678901234567890}';
    const r = providerBody(compiled(), '/v1/chat/completions', Buffer.from(t), t, JSON.parse(t));
    expect(Buffer.isBuffer(r.body)).toBe(true);
    expect(r.body.toString()).toBe(t);
  });
  it('spec.model replaces the model', () => {
    expect(body(compiled({ model: 'up' }), '{"model":"m","n":1}')).toEqual({ text: '{"model":"up","n":1}', injected: false });
  });
  it.each([
    ['{"model":"m","stream":true}', '{"model":"m","stream":true,"stream_options":{"include_usage":true}}', true],
    ['{"model":"m","stream":true,"stream_options":{"a":1}}', '{"model":"m","stream":true,"stream_options":{"a":1,"include_usage":true}}', true],
    ['{"model":"m","stream":true,"stream_options":{"include_usage":false}}', '{"model":"m","stream":true,"stream_options":{"include_usage":true}}', true],
    ['{"model":"m","stream":true,"stream_options":{"include_usage":true}}', null, false],
    ['{"model":"m","stream":true,"stream_options":{"include_usage":"yes"}}', null, false],
    ['{"model":"m","stream":true,"stream_options":null}', null, false],
    ['{"model":"m","stream":true,"stream_options":[1]}', null, false],
    ['{"model":"m","stream":"true"}', null, false],
    ['{"model":"m","stream":false}', null, false],
  ])('include_usage for %s', (text, want, injected) => {
    expect(body(compiled(), text)).toEqual({ text: want ?? text, injected });
  });
  it('never for the Responses API or Anthropic', () => {
    const t = '{"model":"m","stream":true}';
    expect(body(compiled(), t, '/v1/responses')).toEqual({ text: t, injected: false });
    expect(body(compiled({ type: 'Anthropic' }), t, '/v1/messages')).toEqual({ text: t, injected: false });
  });
});

/** Feeds `text` to a stream scanner in chunks of `size` bytes; returns the forwarded bytes and usage. */
function scan(shape: typeof RESPONSES_USAGE, text: string, size: number, suppress = false): { out: string; usage: unknown } {
  const s = shape.stream(suppress);
  const buf = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(s.push(buf.subarray(i, i + size)));
  const tail = s.flush();
  if (tail !== null) parts.push(tail);
  return { out: Buffer.concat(parts).toString(), usage: s.usage };
}

describe('usage parsing', () => {
  const responses = [
    'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n',
    'data: {"type":"response.output_text.delta","delta":"\\"usage\\": not this"}\n\n',
    'data: {"type":"response.completed","response":{"usage":{"input_tokens":13,"output_tokens":4,"total_tokens":17}}}\n\n',
  ].join('');
  const anthropic = [
    'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":20,"cache_creation_input_tokens":4,"cache_read_input_tokens":6,"output_tokens":1}}}\n\n',
    'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n',
    'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n',
    'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  ].join('');

  it.each([1, 7, 64, 100_000])('Responses stream, chunks of %i bytes: usage of response.completed, bytes unchanged', (size) => {
    expect(scan(RESPONSES_USAGE, responses, size)).toEqual({ out: responses, usage: { prompt: 13, completion: 4 } });
  });
  it('Responses stream that never completed: no usage', () => {
    const cut = responses.slice(0, responses.indexOf('data: {"type":"response.completed"'));
    expect(scan(RESPONSES_USAGE, cut + 'data: {"type":"response.in_progress","response":{"usage":{"input_tokens":1,"output_tokens":1}}}\n\n', 9).usage).toBeNull();
  });
  it.each([1, 13, 100_000])('Anthropic stream, chunks of %i bytes: cache tokens are input, output from message_delta', (size) => {
    expect(scan(ANTHROPIC_USAGE, anthropic, size)).toEqual({ out: anthropic, usage: { prompt: 30, completion: 9 } });
  });
  it('Anthropic stream without message_stop: no usage', () => {
    expect(scan(ANTHROPIC_USAGE, anthropic.slice(0, anthropic.indexOf('event: message_stop')), 5).usage).toBeNull();
  });
  it('bodies', () => {
    expect(RESPONSES_USAGE.body(Buffer.from('{"usage":{"input_tokens":12,"output_tokens":3}}'))).toEqual({ prompt: 12, completion: 3 });
    expect(RESPONSES_USAGE.body(Buffer.from('{"usage":{"input_tokens":0,"output_tokens":0,"total_tokens":0}}'))).toBeNull();
    expect(ANTHROPIC_USAGE.body(Buffer.from('{"usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":5}}'))).toEqual({ prompt: 15, completion: 5 });
    expect(ANTHROPIC_USAGE.body(Buffer.from('not json'))).toBeNull();
    expect(OPENAI_USAGE.body(Buffer.from('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'))).toEqual({ prompt: 3, completion: 2 });
  });
  it('chat/completions stream: the injected usage-only event is withheld', () => {
    const text = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\ndata: [DONE]\n\n';
    const r = scan(OPENAI_USAGE, text, 11, true);
    expect(r.usage).toEqual({ prompt: 3, completion: 2 });
    expect(r.out).toBe('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n');
  });
});

it('a provider IR compiles with its usage shapes', () => {
  const p: ExternalModelProvider['spec']['providerType'] = 'Anthropic';
  expect(compiled({ type: p }).usage).toBe(ANTHROPIC_USAGE);
  expect(compiled().responsesUsage).toBe(RESPONSES_USAGE);
  expect(compiled({ headers: ['X-A', '1'] }).staticNames.has('x-a')).toBe(true);
});

describe('fallback opt-in (translator)', () => {
  const doc = (kind: string, name: string, spec: object, annotations?: Record<string, string>) =>
    parseManifestObject({ apiVersion: G, kind, metadata: { name, namespace: 'ns', ...(annotations ? { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', ...annotations } } : {}) }, spec }, { file: 'f', now: () => '2026-01-01T00:00:00Z' }).resource!;
  const rules = [
    { targetModels: [{ modelServerName: 's', weight: 90 }, { externalModelProviderName: 'p', weight: 0 }] },
    { targetModels: [{ modelServerName: 's' }] },
  ];
  const load = async (annotation?: string) => {
    const { translate } = await import('../../src/translator/index.js');
    const { toResourceSet } = await import('../../src/resources/validate.js');
    const route = doc('ModelRoute', 'r', { modelName: 'm', rules }, annotation === undefined ? undefined : { 'kthena-router.volcano.sh/provider-fallback': annotation });
    return translate(toResourceSet([route, doc('ExternalModelProvider', 'p', { baseURL: 'https://h' }), doc('ModelServer', 's', { inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { a: 'b' } }, workloadPort: { port: 1 } })]));
  };
  it('keeps only the router\'s annotations, and marks the provider target of rules that have both kinds', async () => {
    const route = doc('ModelRoute', 'r', { modelName: 'm', rules }, { 'kthena-router.volcano.sh/provider-fallback': 'true' });
    expect(route.metadata.annotations).toEqual({ 'kthena-router.volcano.sh/provider-fallback': 'true' });
    const on = await load('true');
    expect(on.ir.routes[0]!.rules.map((r) => r.fallback)).toEqual([1, undefined]);
    for (const v of [undefined, 'false']) expect((await load(v)).ir.routes[0]!.rules.map((r) => r.fallback)).toEqual([undefined, undefined]);
    const bad = await load('yes');
    expect(bad.ir.routes[0]!.rules[0]!.fallback).toBeUndefined();
    expect(bad.problems.map((p) => p.message)).toContain('"yes" is neither "true" nor "false"; read as "false"');
  });
});
