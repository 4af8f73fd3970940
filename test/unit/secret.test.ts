/**
 * Secrets read for a purpose (src/resources/secret.ts) through the same parse file mode and
 * Kubernetes mode use: API keys kept as digests only, provider credentials as decoded, nothing kept
 * of an unlabelled Secret.
 */
import { describe, expect, it } from 'vitest';
import { parseGatewayObject } from '../../src/resources/validate.js';
import type { Secret } from '../../src/resources/gateway.js';
import { apiKeyDigest, secretValueDigest } from '../../src/shared/api-key.js';
import { API_KEY_LABEL, API_KEY_USER_LABEL, PROVIDER_CREDENTIAL_LABEL, digestSecretData, secretContent } from '../../src/resources/secret.js';

const ctx = { file: 'x.yaml', now: () => '2026-01-01T00:00:00Z' };
const b64 = (s: string) => Buffer.from(s).toString('base64');

function parse(doc: object): { secret?: Secret; problems: string[] } {
  const r = parseGatewayObject({ apiVersion: 'v1', kind: 'Secret', ...doc }, ctx);
  return { secret: r.resource as Secret | undefined, problems: r.problems.map((p) => `${p.field}: ${p.message}`) };
}

describe('Secrets by purpose', () => {
  it('keeps API keys as sorted, unique SHA-256 digests of the trimmed values, never the values', () => {
    const { secret, problems } = parse({
      metadata: { name: 'keys', labels: { [API_KEY_LABEL]: 'true' } },
      data: { a: b64('sk-one\n'), b: b64('sk-two'), blank: b64('  ') },
      stringData: { c: 'sk-one' },
    });
    expect(problems).toEqual([]);
    expect(secret!.apiKeys).toEqual({ user: 'keys', digests: [apiKeyDigest('sk-one'), apiKeyDigest('sk-two')].sort() });
    expect(secret!.credentials).toBeUndefined();
    const json = JSON.stringify(secret);
    for (const v of ['sk-one', 'sk-two', b64('sk-one\n'), b64('sk-two')]) expect(json).not.toContain(v);
  });

  it('takes the user id from the user label, else the Secret name', () => {
    const { secret } = parse({ metadata: { name: 'keys', labels: { [API_KEY_LABEL]: 'true', [API_KEY_USER_LABEL]: 'alice' } }, stringData: { k: 'sk-a' } });
    expect(secret!.apiKeys!.user).toBe('alice');
  });

  it('accepts a digest in place of a key (sha256:<hex>)', () => {
    const d = apiKeyDigest('sk-secret');
    const { secret } = parse({ metadata: { name: 'keys', labels: { [API_KEY_LABEL]: 'true' } }, stringData: { k: `sha256:${d}` } });
    expect(secret!.apiKeys!.digests).toEqual([d]);
    expect(secretValueDigest(`sha256:${d}`)).toBe(d);
    // Not a digest (upper case, short): hashed like any key.
    expect(secretValueDigest(`sha256:${d.toUpperCase()}`)).toBe(apiKeyDigest(`sha256:${d.toUpperCase()}`));
  });

  it('keeps provider credentials as decoded values, and nothing of an unlabelled Secret', () => {
    const cred = parse({ metadata: { name: 'cred', labels: { [PROVIDER_CREDENTIAL_LABEL]: 'true' } }, data: { apiKey: b64(' sk-prov \n') } });
    expect(cred.secret!.credentials).toEqual({ apiKey: ' sk-prov \n' });
    expect(cred.secret!.apiKeys).toBeUndefined();
    const plain = parse({ metadata: { name: 'plain', labels: { [API_KEY_LABEL]: 'yes' } }, data: { k: b64('sk-plain') } });
    expect(plain.problems).toEqual([]);
    expect(JSON.stringify(plain.secret)).not.toContain('sk-plain');
    expect(plain.secret!.apiKeys).toBeUndefined();
  });

  it('names the field, never the value, when a value is invalid', () => {
    const r = parse({ metadata: { name: 'bad', labels: { [API_KEY_LABEL]: 'true' } }, data: { k: 'sk-not*base64' } });
    expect(r.secret).toBeUndefined();
    expect(r.problems).toEqual(['data[k]: Invalid value: illegal base64 data']);
  });

  it('digestSecretData (the Kubernetes informer cache) reads back as the same digests', () => {
    const data = { a: b64('sk-one\n'), b: b64(''), c: b64(`sha256:${apiKeyDigest('x')}`) };
    const cached = digestSecretData(data);
    expect(Object.keys(cached)).toEqual(['a', 'c']);
    const decoded = Object.fromEntries(Object.entries(cached).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    expect(secretContent({ [API_KEY_LABEL]: 'true' }, 's', decoded).apiKeys!.digests).toEqual([apiKeyDigest('sk-one'), apiKeyDigest('x')].sort());
  });
});
