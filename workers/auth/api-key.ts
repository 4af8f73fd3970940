/**
 * API-key authentication of a ModelServer's requests (ModelServer.spec.apiKeyRules; the table is
 * built by src/translator/api-keys.ts and arrives with the snapshot as digests only).
 *
 * A request passes when one rule finds a key at its location (a header, `Authorization: Bearer`,
 * or a query parameter) whose SHA-256 digest that rule admits; the key's user id becomes the
 * request's user. Otherwise: no key at any rule's location is 401 RTR_ERR_API_KEY_MISSING, a key
 * this ModelServer does not admit but another one does is 403 RTR_ERR_API_KEY_FORBIDDEN, any other
 * key 401 RTR_ERR_API_KEY_INVALID.
 *
 * Timing: the key is never compared with a stored key. It is hashed, and the digest is looked up;
 * how long the lookup takes depends only on the digest of what the client sent, which tells the
 * client nothing about any stored key (getting closer byte by byte would take SHA-256 preimages).
 * This is the constant-time comparison the proposal asks for, at O(1) for any number of keys. The
 * raw key is not kept: not in a cache, not in the request state, not in any log line.
 */
import type { ApiKeysIR } from '../../src/ir/types.js';
import { apiKeyDigest } from '../../src/shared/api-key.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';

export interface CompiledApiKeyRule {
  /** Lower-case header name, '' for none. */
  header: string;
  param: string;
  /** digest -> user id. */
  keys: Map<string, string>;
}

export type ApiKeyOutcome =
  | { ok: true; user: string; rule: CompiledApiKeyRule }
  | { ok: false; code: 'RTR_ERR_API_KEY_MISSING' | 'RTR_ERR_API_KEY_INVALID' | 'RTR_ERR_API_KEY_FORBIDDEN'; reason: 'missing' | 'invalid' | 'forbidden' };

const MISSING: ApiKeyOutcome = Object.freeze({ ok: false, code: 'RTR_ERR_API_KEY_MISSING', reason: 'missing' });
const INVALID: ApiKeyOutcome = Object.freeze({ ok: false, code: 'RTR_ERR_API_KEY_INVALID', reason: 'invalid' });
const FORBIDDEN: ApiKeyOutcome = Object.freeze({ ok: false, code: 'RTR_ERR_API_KEY_FORBIDDEN', reason: 'forbidden' });

export interface CompiledApiKeys {
  /** Rules by ModelServer key (namespace/name). */
  byServer: Map<string, CompiledApiKeyRule[]>;
  /** Every digest of every API-key Secret. */
  known: Set<string>;
}

export function compileApiKeys(ir: ApiKeysIR | undefined): CompiledApiKeys | null {
  if (ir === undefined) return null;
  const byServer = new Map<string, CompiledApiKeyRule[]>();
  for (const s of ir.servers) {
    byServer.set(s.server, s.rules.map((r) => ({ header: r.header, param: r.param, keys: new Map(r.keys) })));
  }
  return { byServer, known: new Set(ir.known) };
}

/** The key a rule reads: `Authorization` holds `Bearer <key>` (scheme in any case), other headers the key itself. */
export function presentedKey(rule: CompiledApiKeyRule, header: (name: string) => string, query: string): string {
  if (rule.header !== '') {
    const v = header(rule.header);
    if (v !== '') {
      if (rule.header !== 'authorization') return v.trim();
      const m = /^\s*bearer\s+(\S+)\s*$/i.exec(v);
      if (m !== null) return m[1]!;
    }
  }
  if (rule.param !== '' && query !== '') {
    const v = new URLSearchParams(query).get(rule.param);
    if (v !== null && v.trim() !== '') return v.trim();
  }
  return '';
}

/** Checks a request against a ModelServer's rules (non-empty). */
export function checkApiKey(rules: readonly CompiledApiKeyRule[], known: ReadonlySet<string>, header: (name: string) => string, query: string): ApiKeyOutcome {
  let presented = false;
  let elsewhere = false;
  let lastKey = '';
  let lastDigest = '';
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const key = presentedKey(rule, header, query);
    if (key === '') continue;
    presented = true;
    // Rules reading the same location see the same key: hashed once.
    if (key !== lastKey) { lastKey = key; lastDigest = apiKeyDigest(key); }
    const user = rule.keys.get(lastDigest);
    if (user !== undefined) return { ok: true, user, rule };
    if (known.has(lastDigest)) elsewhere = true;
  }
  if (!presented) return MISSING;
  return elsewhere ? FORBIDDEN : INVALID;
}

/** The query without `param` (the key is not forwarded upstream). */
export function queryWithout(query: string, param: string): string {
  const q = new URLSearchParams(query);
  q.delete(param);
  return q.toString();
}

// Failures by ModelServer and reason (kthena_router_api_key_failures_total), per worker, summed
// across workers by the control thread. Label values come from the snapshot, never the request.
const failures = new Map<string, { value: number; labels: { model_server: string; reason: string } }>();

export function apiKeyFailed(server: string, reason: 'missing' | 'invalid' | 'forbidden'): void {
  const k = server + '\0' + reason;
  let c = failures.get(k);
  if (c === undefined) failures.set(k, c = { value: 0, labels: { model_server: server, reason } });
  c.value++;
}

export const API_KEY_FAILURES = 'kthena_router_api_key_failures_total';

export function apiKeyMetricsJSON(): MetricJSON[] {
  return [{
    name: API_KEY_FAILURES, help: 'Requests refused by API-key authentication, by target ModelServer and reason (missing, invalid, forbidden)',
    type: 'counter', values: [...failures.values()].map((c) => ({ value: c.value, labels: { ...c.labels } })), aggregator: 'sum',
  }];
}
