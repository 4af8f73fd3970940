/**
 * ModelServer.spec.apiKeyRules into the IR's API-key table (src/ir/types.ts ApiKeysIR): for each
 * rule, where the key is read and the digests (with their user ids) of the Secrets it selects.
 * Pure, like the rest of the translator. Only digests are ever read here (src/resources/secret.ts
 * drops the keys themselves when a Secret is parsed).
 *
 * A rule whose Secrets are missing or unlabelled admits no key: the ModelServer then refuses every
 * request (401) rather than serving without the authentication it asks for, and a warning says why.
 */
import type { ApiKeyRuleIR, ApiKeysIR, ServerApiKeysIR } from '../ir/types.js';
import type { Secret } from '../resources/gateway.js';
import { API_KEY_LABEL } from '../resources/secret.js';
import type { ApiKeyRule, ModelServer, Problem } from '../resources/types.js';

export const DEFAULT_API_KEY_HEADER = 'authorization';

export function apiKeysIR(servers: readonly ModelServer[], secrets: readonly Secret[] | undefined, problems: Problem[], jwtAuth: boolean): ApiKeysIR | undefined {
  const keyed = servers.filter((s) => (s.spec.apiKeyRules ?? []).length > 0);
  if (keyed.length === 0) return undefined;
  const withKeys = [...(secrets ?? [])].filter((s) => s.apiKeys !== undefined)
    .sort((a, b) => cmp(a.metadata.namespace, b.metadata.namespace) || cmp(a.metadata.name, b.metadata.name));
  const known = new Set<string>();
  for (const s of withKeys) for (const d of s.apiKeys!.digests) known.add(d);
  const out: ServerApiKeysIR[] = [];
  for (const server of [...keyed].sort((a, b) => cmp(keyOf(a), keyOf(b)))) {
    const rules = server.spec.apiKeyRules!.map((r, i) => ruleIR(server, r, i, withKeys, problems, jwtAuth));
    out.push({ server: keyOf(server), rules });
  }
  return { servers: out, known: [...known].sort(cmp) };
}

function ruleIR(server: ModelServer, r: ApiKeyRule, i: number, secrets: readonly Secret[], problems: Problem[], jwtAuth: boolean): ApiKeyRuleIR {
  const field = `spec.apiKeyRules[${i}]`;
  const warn = (f: string, message: string): void => {
    problems.push({ kind: 'ModelServer', namespace: server.metadata.namespace, name: server.metadata.name, field: f, severity: 'warning', message });
  };
  const param = r.fromParam ?? '';
  const header = (r.fromHeader ?? '').toLowerCase() || (param === '' ? DEFAULT_API_KEY_HEADER : '');
  if (jwtAuth && header === DEFAULT_API_KEY_HEADER) {
    warn(r.fromHeader === undefined ? field : `${field}.fromHeader`, 'reads the key from the Authorization header, which carries the JWT while auth: is on: no request can pass both; use another header such as X-API-Key');
  }
  const ns = server.metadata.namespace;
  let selected: Secret[];
  const selector = r.labelSelector ?? {};
  if (Object.keys(selector).length > 0) {
    if (r.secretName !== undefined) warn(`${field}.secretName`, 'ignored: labelSelector takes precedence');
    selected = secrets.filter((s) => s.metadata.namespace === ns && Object.entries(selector).every(([k, v]) => s.metadata.labels[k] === v));
    if (selected.length === 0) warn(`${field}.labelSelector`, `no Secret in namespace ${ns} matches it and carries the label ${API_KEY_LABEL}=true: this rule admits no key`);
  } else {
    const name = r.secretName?.name ?? '';
    const sns = r.secretName?.namespace || ns;
    selected = secrets.filter((s) => s.metadata.namespace === sns && s.metadata.name === name);
    if (selected.length === 0) warn(`${field}.secretName`, `Secret ${sns}/${name} is not found or does not carry the label ${API_KEY_LABEL}=true: this rule admits no key`);
  }
  const keys = new Map<string, string>();
  for (const s of selected) {
    for (const d of s.apiKeys!.digests) if (!keys.has(d)) keys.set(d, s.apiKeys!.user);
  }
  return { header, param, keys: [...keys].sort((a, b) => cmp(a[0], b[0])) };
}

function keyOf(o: { metadata: { namespace: string; name: string } }): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
