/**
 * Kthena's JWT authentication (docs/reference/kthena-behaviour.md §5.2; volcano-sh/kthena:pkg/kthena-router/filters/auth/
 * authentication.go), one instance per worker and per `auth:` configuration.
 *
 * - `Authorization: Bearer <token>` (scheme case-insensitive, exactly two fields), else
 *   "Authorization header missing or invalid".
 * - Signature against the JWKS at `jwksUri` (RS*, PS*, ES*, EdDSA; never HS* or none), fetched when
 *   the authenticator starts, refreshed every `refreshMs` in the background, and at once when a
 *   token names a `kid` the set does not hold (at most once per `cooldownMs`).
 * - Claims as Kthena: `iss` equal to `issuer`; `aud` (string or list) containing one of
 *   `audiences` when any are configured; `exp` required and not past; `nbf` not in the future;
 *   `iat` at most one minute in the future. Unlike Kthena, `sub` is required: it is the request's
 *   user id.
 * - A verified token is cached until it expires (bounded), so a client reusing its token costs one
 *   Map lookup; the signature check itself runs in WebCrypto, off the event loop.
 * Failures are answered "Unauthorized: <reason>" with Kthena's reasons. Neither the token nor any
 * part of it is logged or echoed.
 */
import { compactVerify, createRemoteJWKSet, errors } from 'jose';

export interface AuthConfig {
  issuer: string;
  audiences: string[];
  jwksUri: string;
}

/** A verified token: its `sub` (the user id) and every claim (JWTClaim session-sticky sources). */
export interface AuthOk { readonly ok: true; readonly sub: string; readonly claims: Readonly<Record<string, unknown>> }

export type AuthOutcome =
  | AuthOk
  | { ok: false; code: 'RTR_ERR_AUTH_MISSING' | 'RTR_ERR_UNAUTHORIZED'; detail: string };

export interface JwtAuthenticatorOptions {
  log: (level: 'info' | 'warn' | 'error', obj: object, msg: string) => void;
  /** Background JWKS refresh period, ms. Default 1 hour (Kthena: 7 days). */
  refreshMs?: number;
  /** Least time between two fetches caused by unknown key ids, ms. Default 30 s. */
  cooldownMs?: number;
  /** Bound on one JWKS fetch, ms. Default 5 s. */
  fetchTimeoutMs?: number;
  /** Verified tokens kept. Default 10,000. */
  cacheEntries?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

/** Asymmetric algorithms only: a JWKS never carries the secret of an HMAC. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const kIatSkewMs = 60_000;
const MISSING: AuthOutcome = Object.freeze({ ok: false, code: 'RTR_ERR_AUTH_MISSING', detail: '' });

/** Cached per token and returned as the outcome itself (no allocation for a reused token). */
interface Verified extends AuthOk { expMs: number; nbfMs: number }

const decoder = new TextDecoder();

/** The token of `Authorization: Bearer <token>`, or '' (Kthena's extractTokenFromHeader). */
export function bearerToken(header: string): string {
  const fields = header.trim().split(/\s+/);
  if (fields.length !== 2 || fields[0].toLowerCase() !== 'bearer') return '';
  return fields[1];
}

export class JwtAuthenticator {
  readonly config: Readonly<AuthConfig>;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  readonly #log: JwtAuthenticatorOptions['log'];
  readonly #now: () => number;
  readonly #cache = new Map<string, Verified>();
  readonly #inflight = new Map<string, Promise<AuthOutcome>>();
  readonly #cacheEntries: number;
  readonly #refreshMs: number;
  #timer: NodeJS.Timeout | null = null;
  #jwksFailing = false;

  constructor(config: AuthConfig, opts: JwtAuthenticatorOptions) {
    this.config = Object.freeze({ ...config, audiences: [...config.audiences] });
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#cacheEntries = opts.cacheEntries ?? 10_000;
    this.#refreshMs = opts.refreshMs ?? 3_600_000;
    this.#jwks = createRemoteJWKSet(new URL(config.jwksUri), {
      cooldownDuration: opts.cooldownMs ?? 30_000,
      // Refreshed by our timer, so that no request ever waits for a periodic refresh.
      cacheMaxAge: Infinity,
      timeoutDuration: opts.fetchTimeoutMs ?? 5000,
    });
  }

  /** Fetches the JWKS now and keeps refreshing it. Resolves when the first fetch ended (either way). */
  start(): Promise<void> {
    if (this.#timer === null) {
      this.#timer = setInterval(() => { void this.#reload(); }, this.#refreshMs);
      this.#timer.unref();
    }
    return this.#reload();
  }

  async #reload(): Promise<void> {
    try {
      await this.#jwks.reload();
      if (this.#jwksFailing) this.#log('info', { jwksUri: this.config.jwksUri }, 'JWKS fetched again');
      this.#jwksFailing = false;
    } catch (err) {
      if (!this.#jwksFailing) this.#log('warn', { jwksUri: this.config.jwksUri, err: (err as Error).message }, 'cannot fetch the JWKS; tokens are checked against the last keys fetched (none: every request is refused)');
      this.#jwksFailing = true;
    }
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#cache.clear();
  }

  /**
   * The outcome for one request's Authorization header ('' when absent): synchronous for a token
   * verified before and still valid, a promise (never rejecting) otherwise.
   */
  authenticate(header: string): AuthOutcome | Promise<AuthOutcome> {
    const token = bearerToken(header);
    if (token === '') return MISSING;
    const hit = this.#cache.get(token);
    if (hit !== undefined) {
      const now = this.#now();
      if (now <= hit.expMs && now >= hit.nbfMs) return hit;
      if (now > hit.expMs) this.#cache.delete(token);
    }
    let p = this.#inflight.get(token);
    if (p === undefined) {
      p = this.#verify(token).finally(() => this.#inflight.delete(token));
      this.#inflight.set(token, p);
    }
    return p;
  }

  async #verify(token: string): Promise<AuthOutcome> {
    let payload: Uint8Array;
    try {
      ({ payload } = await compactVerify(token, this.#jwks, { algorithms: ALGORITHMS }));
    } catch (err) {
      return unauthorized(verifyFailure(err));
    }
    let claims: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(decoder.decode(payload));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return unauthorized('failed to parse jwt: the payload is not a JSON object');
      claims = parsed as Record<string, unknown>;
    } catch {
      return unauthorized('failed to parse jwt: the payload is not JSON');
    }
    const problem = this.#claimsProblem(claims);
    if (problem !== '') return unauthorized('failed to validate claims: ' + problem);
    const sub = claims.sub as string;
    const v: Verified = Object.freeze({
      ok: true as const, sub, claims: Object.freeze(claims), expMs: (claims.exp as number) * 1000, nbfMs: typeof claims.nbf === 'number' ? claims.nbf * 1000 : -Infinity,
    });
    if (this.#cache.size >= this.#cacheEntries) {
      // Oldest insertion first (Map order); the set only needs to stay bounded.
      const first = this.#cache.keys().next();
      if (!first.done) this.#cache.delete(first.value);
    }
    this.#cache.set(token, v);
    return v;
  }

  #claimsProblem(c: Record<string, unknown>): string {
    const cfg = this.config;
    if (c.iss !== cfg.issuer) return `issuer validation failed: invalid issuer: expected ${cfg.issuer}, got ${typeof c.iss === 'string' ? c.iss : String(c.iss ?? '')}`;
    if (cfg.audiences.length > 0) {
      const aud = c.aud;
      if (aud === undefined || aud === null) return 'audience validation failed: audience claim missing';
      const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
      if (!list.some((a) => typeof a === 'string' && cfg.audiences.includes(a))) return 'audience validation failed: audience mismatch';
    }
    const now = this.#now();
    if (c.exp === undefined) return 'time claims validation failed: expiration claim (exp) missing';
    if (typeof c.exp !== 'number' || !Number.isFinite(c.exp)) return 'time claims validation failed: invalid exp value';
    if (now > c.exp * 1000) return 'time claims validation failed: token has expired';
    if (c.nbf !== undefined) {
      if (typeof c.nbf !== 'number' || !Number.isFinite(c.nbf)) return 'time claims validation failed: invalid nbf value';
      if (now < c.nbf * 1000) return 'time claims validation failed: token not yet valid';
    }
    if (c.iat !== undefined) {
      if (typeof c.iat !== 'number' || !Number.isFinite(c.iat)) return 'time claims validation failed: invalid iat value';
      if (now + kIatSkewMs < c.iat * 1000) return 'time claims validation failed: token issued in the future';
    }
    if (typeof c.sub !== 'string' || c.sub === '') return 'subject claim (sub) missing';
    return '';
  }
}

function unauthorized(detail: string): AuthOutcome {
  return { ok: false, code: 'RTR_ERR_UNAUTHORIZED', detail };
}

/** Kthena-style reasons for a failed signature step; never the token or its parts. */
function verifyFailure(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'ERR_JWKS_NO_MATCHING_KEY': return 'failed to parse jwt: no key in the JWKS matches the token';
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS': return 'failed to parse jwt: several keys in the JWKS match the token';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'failed to parse jwt: signature verification failed';
    case 'ERR_JOSE_ALG_NOT_ALLOWED': return 'failed to parse jwt: signature algorithm not allowed';
    case 'ERR_JWS_INVALID': return 'failed to parse jwt: invalid compact JWS';
    case 'ERR_JOSE_NOT_SUPPORTED': return 'failed to parse jwt: unsupported key or algorithm';
    case 'ERR_JWKS_INVALID': case 'ERR_JWKS_TIMEOUT': return 'no JWKS available for token validation';
    default:
      return err instanceof errors.JOSEError ? 'failed to parse jwt: invalid token' : 'no JWKS available for token validation';
  }
}
