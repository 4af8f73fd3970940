/**
 * Kthena's JWT authentication (workers/auth/jwt.ts) against a local JWKS server on 127.0.0.1:
 * key types, every claim rule and its message, JWKS fetched at start and again for an unknown key
 * id (rate-limited), and the cache of verified tokens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { bearerToken, JwtAuthenticator, type AuthOk, type AuthOutcome } from '../../workers/auth/jwt.js';

interface Key { kid: string; alg: string; priv: CryptoKey; jwk: JWK }

async function key(kid: string, alg: string, opts: { crv?: string } = {}): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...opts });
  return { kid, alg, priv: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let server: http.Server;
let jwksUri = '';
let published: JWK[] = [];
let hits = 0;
let keys: Record<string, Key>;
const ISS = 'https://issuer.example';

beforeAll(async () => {
  keys = {
    rs: await key('rs', 'RS256'),
    ps: await key('ps', 'PS384'),
    es: await key('es', 'ES256'),
    ed: await key('ed', 'EdDSA', { crv: 'Ed25519' }),
    late: await key('late', 'RS256'),
    later: await key('later', 'ES256'),
  };
  published = ['rs', 'ps', 'es', 'ed'].map((k) => keys[k].jwk);
  server = http.createServer((req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const nowSec = (): number => Math.floor(Date.now() / 1000);

async function token(k: Key, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const body = { iss: ISS, sub: 'alice', aud: 'kthena', exp: nowSec() + 600, iat: nowSec(), ...claims };
  for (const [name, v] of Object.entries(body)) if (v === undefined) delete (body as Record<string, unknown>)[name];
  return new SignJWT(body).setProtectedHeader({ alg: k.alg, kid: k.kid, ...header }).sign(k.priv);
}

function auth(o: { audiences?: string[]; cooldownMs?: number; now?: () => number } = {}): JwtAuthenticator {
  return new JwtAuthenticator({ issuer: ISS, audiences: o.audiences ?? ['kthena'], jwksUri }, { log: () => {}, cooldownMs: o.cooldownMs ?? 30_000, now: o.now });
}

async function check(a: JwtAuthenticator, t: string): Promise<AuthOutcome> {
  return a.authenticate(`Bearer ${t}`);
}

describe('JWT authentication', () => {
  it('reads only "Bearer <token>" (scheme case-insensitive, exactly two fields)', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('  bearer   abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBe('');
    expect(bearerToken('Bearer a b')).toBe('');
    expect(bearerToken('')).toBe('');
    expect(auth().authenticate('')).toEqual({ ok: false, code: 'RTR_ERR_AUTH_MISSING', detail: '' });
  });

  it('fetches the JWKS at start and verifies RS256, PS384, ES256 and EdDSA tokens, keeping sub as the user id', async () => {
    const a = auth();
    const before = hits;
    await a.start();
    expect(hits).toBe(before + 1);
    for (const k of ['rs', 'ps', 'es', 'ed']) {
      expect(await check(a, await token(keys[k], { sub: `user-${k}` }))).toMatchObject({ ok: true, sub: `user-${k}` });
    }
    expect(hits).toBe(before + 1);
    a.close();
  });

  it('refuses each broken claim with Kthena\'s reason', async () => {
    const a = auth();
    await a.start();
    const cases: [Record<string, unknown>, string][] = [
      [{ iss: 'https://other' }, 'failed to validate claims: issuer validation failed: invalid issuer: expected https://issuer.example, got https://other'],
      [{ aud: 'someone-else' }, 'failed to validate claims: audience validation failed: audience mismatch'],
      [{ aud: undefined }, 'failed to validate claims: audience validation failed: audience claim missing'],
      [{ exp: undefined }, 'failed to validate claims: time claims validation failed: expiration claim (exp) missing'],
      [{ exp: nowSec() - 5 }, 'failed to validate claims: time claims validation failed: token has expired'],
      [{ nbf: nowSec() + 300 }, 'failed to validate claims: time claims validation failed: token not yet valid'],
      [{ iat: nowSec() + 120 }, 'failed to validate claims: time claims validation failed: token issued in the future'],
      [{ sub: undefined }, 'failed to validate claims: subject claim (sub) missing'],
    ];
    for (const [claims, detail] of cases) {
      expect(await check(a, await token(keys.rs, claims)), JSON.stringify(claims)).toEqual({ ok: false, code: 'RTR_ERR_UNAUTHORIZED', detail });
    }
    // Within the one-minute iat skew; an audience list containing ours.
    expect(await check(a, await token(keys.rs, { iat: nowSec() + 30, aud: ['x', 'kthena'] }))).toMatchObject({ ok: true, sub: 'alice' });
    // No audiences configured: aud is not checked.
    const open = auth({ audiences: [] });
    await open.start();
    expect(await check(open, await token(keys.rs, { aud: 'anything' }))).toMatchObject({ ok: true, sub: 'alice' });
    a.close();
    open.close();
  });

  it('refuses a forged signature, an HMAC token and garbage, without echoing the token', async () => {
    const a = auth();
    await a.start();
    const good = await token(keys.rs);
    const [h, p] = good.split('.');
    const forged = `${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
    expect(await check(a, forged)).toEqual({ ok: false, code: 'RTR_ERR_UNAUTHORIZED', detail: 'failed to parse jwt: signature verification failed' });
    const hmac = await new SignJWT({ iss: ISS, sub: 'x', exp: nowSec() + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'rs' }).sign(new TextEncoder().encode('0123456789abcdef0123456789abcdef'));
    const r = await check(a, hmac) as { ok: false; detail: string };
    expect(r.ok).toBe(false);
    expect(r.detail).toBe('failed to parse jwt: signature algorithm not allowed');
    const garbage = await check(a, 'abc.def') as { ok: false; detail: string };
    expect(garbage.detail).toBe('failed to parse jwt: invalid compact JWS');
    for (const t of [forged, hmac]) expect(JSON.stringify([r, garbage])).not.toContain(t.split('.')[2]);
    a.close();
  });

  it('fetches again for an unknown key id, at most once per cooldown', async () => {
    const a = auth({ cooldownMs: 60_000 });
    await a.start();
    published = [...published, keys.late.jwk];
    const before = hits;
    // Cooldown since the start fetch: the new key is not fetched yet.
    expect(await check(a, await token(keys.late))).toMatchObject({ ok: false, detail: 'failed to parse jwt: no key in the JWKS matches the token' });
    expect(hits).toBe(before);
    a.close();

    const b = auth({ cooldownMs: 0 });
    await b.start();
    published = [...published, keys.later.jwk];
    const start = hits;
    expect(await check(b, await token(keys.later, { sub: 'rotated' }))).toMatchObject({ ok: true, sub: 'rotated' });
    expect(hits).toBe(start + 1);
    b.close();
  });

  it('answers a token verified before from its cache, synchronously, until the token expires', async () => {
    let now = Date.now();
    const a = auth({ now: () => now });
    await a.start();
    const t = await token(keys.es, { exp: Math.floor(now / 1000) + 60 });
    expect(await check(a, t)).toMatchObject({ ok: true, sub: 'alice' });
    const again = a.authenticate(`Bearer ${t}`);
    expect(again).toMatchObject({ ok: true, sub: 'alice' });
    // Every claim of the token comes with it (JWTClaim session-sticky sources read them).
    expect((again as AuthOk).claims).toMatchObject({ sub: 'alice', iss: expect.any(String), exp: Math.floor(now / 1000) + 60 });
    now += 61_000;
    const later = a.authenticate(`Bearer ${t}`);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toEqual({ ok: false, code: 'RTR_ERR_UNAUTHORIZED', detail: 'failed to validate claims: time claims validation failed: token has expired' });
    a.close();
  });

  it('refuses every token while the JWKS cannot be fetched', async () => {
    const a = new JwtAuthenticator({ issuer: ISS, audiences: [], jwksUri: 'http://127.0.0.1:1/jwks' }, { log: () => {}, fetchTimeoutMs: 500 });
    await a.start();
    expect(await check(a, await token(keys.rs))).toEqual({ ok: false, code: 'RTR_ERR_UNAUTHORIZED', detail: 'no JWKS available for token validation' });
    a.close();
  });
});
