/**
 * `auth:` of Kthena's routerConfiguration (docs/reference/kthena-behaviour.md §5.2): JWT authentication of every /v1/*
 * request against a JWKS. Kthena enables it only when `jwksUri` is set; so do we (a block without
 * one is a warning). Unlike Kthena, an `issuer` is required with it (Kthena compared every
 * token's `iss` with "" and refused them all), and unknown fields are errors.
 */
import type { AuthIR } from '../ir/types.js';

type At = (field: string, message: string, severity?: 'rejected' | 'warning') => void;

/** The validated auth block, null when authentication is off; problems go through `at`. */
export function parseAuth(v: unknown, at: At): AuthIR | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) { at('auth', 'must be a mapping {issuer, audiences, jwksUri}'); return null; }
  const a = v as Record<string, unknown>;
  let ok = true;
  for (const k of Object.keys(a)) {
    if (k !== 'issuer' && k !== 'audiences' && k !== 'jwksUri') { at(`auth.${k}`, `unknown field "${k}" (known: issuer, audiences, jwksUri)`); ok = false; }
  }
  const str = (k: string): string => {
    const x = a[k];
    if (x === undefined || x === null) return '';
    if (typeof x !== 'string') { at(`auth.${k}`, 'must be a string'); ok = false; return ''; }
    return x.trim();
  };
  const issuer = str('issuer');
  const jwksUri = str('jwksUri');
  let audiences: string[] = [];
  if (a.audiences !== undefined && a.audiences !== null) {
    if (!Array.isArray(a.audiences) || a.audiences.some((x) => typeof x !== 'string' || x === '')) {
      at('auth.audiences', 'must be a list of non-empty strings'); ok = false;
    } else audiences = [...new Set(a.audiences as string[])];
  }
  if (jwksUri === '') {
    if (ok && (issuer !== '' || audiences.length > 0)) at('auth.jwksUri', 'not set: authentication is off, as in Kthena', 'warning');
    return null;
  }
  let url: URL | null = null;
  try { url = new URL(jwksUri); } catch { /* below */ }
  if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) { at('auth.jwksUri', `"${jwksUri}" is not an http(s) URL`); ok = false; }
  else if (url.username !== '' || url.password !== '') { at('auth.jwksUri', 'must not carry credentials'); ok = false; }
  if (issuer === '') { at('auth.issuer', 'required with jwksUri: every token\'s iss is compared with it'); ok = false; }
  return ok ? { issuer, audiences, jwksUri } : null;
}
