/**
 * ModelServer.spec.apiKeyRules (Kthena's authorization proposal, Authorization_of_kthena_router.md;
 * not in Kthena's CRD): the schema our CRD declares, and the rule the CRD states in CEL (one of
 * secretName or labelSelector), checked here for file mode. What a rule selects is resolved by the
 * translator (src/translator/api-keys.ts), which warns about Secrets it cannot find.
 */
import type { ApiKeyRule } from '../types.js';
import { type Issue, type Schema, arr, map, obj, str } from './schema.js';

export const apiKeyRulesSchema: Schema = arr(obj({
  // An HTTP token (RFC 9110 field-name).
  fromHeader: str({ minLength: 1, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }),
  fromParam: str({ minLength: 1 }),
  labelSelector: map(str()),
  secretName: obj({ name: str({ minLength: 1 }), namespace: str() }, ['name']),
}), { maxItems: 16 });

export function apiKeyRulesIssues(rules: readonly ApiKeyRule[], issues: Issue[]): void {
  rules.forEach((r, i) => {
    if (r.secretName === undefined && Object.keys(r.labelSelector ?? {}).length === 0) {
      issues.push({ field: `spec.apiKeyRules[${i}]`, message: 'Required value: one of secretName or labelSelector is required' });
    }
  });
}
