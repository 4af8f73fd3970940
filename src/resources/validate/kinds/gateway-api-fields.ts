/**
 * Field schemas and helpers the Gateway API (v1.6.1) and Inference Extension (v1) kinds share,
 * transcribed from their CRDs (reference/crds/).
 */
import { type Schema, arr, int, map, obj, str } from '../schema.js';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, labelErrors } from '../names.js';
import { GATEWAY_GROUP, type LabelSelector } from '../../gateway.js';

export const GATEWAY_API_VERSIONS: readonly string[] = [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`];

export const HOSTNAME = '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const GROUP = `^$|${DNS1123_SUBDOMAIN}`;
const KIND = '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$';

export const group = (def?: string): Schema => str({ maxLength: 253, pattern: GROUP, ...(def !== undefined ? { default: def } : {}) });
export const kind = (def?: string): Schema => str({ minLength: 1, maxLength: 63, pattern: KIND, ...(def !== undefined ? { default: def } : {}) });
export const objectName = str({ minLength: 1, maxLength: 253 });
export const namespaceName = str({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });
export const sectionName = str({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });
export const port = int({ minimum: 1, maximum: 65535 });
export const hostname = str({ minLength: 1, maxLength: 253, pattern: HOSTNAME });

export const labelSelectorSchema = obj({
  matchLabels: map(str()),
  matchExpressions: arr(obj({
    key: str(),
    operator: str({ enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
    values: arr(str()),
  }, ['key', 'operator'])),
});

export type RawSelector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };

export function selectorOf(s: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: LabelSelector['matchExpressions'][number]['operator']; values?: string[] }[] }): LabelSelector {
  return {
    matchLabels: s.matchLabels ?? {},
    matchExpressions: (s.matchExpressions ?? []).map((e) => ({ key: e.key, operator: e.operator, values: e.values ?? [] })),
  };
}

/** metav1.LabelSelector validation (the parts a controller relies on to evaluate it). */
export function selectorErrors(s: RawSelector): string[] {
  const errs = labelErrors(s.matchLabels ?? {});
  for (const e of s.matchExpressions ?? []) {
    const n = (e.values ?? []).length;
    if ((e.operator === 'In' || e.operator === 'NotIn') && n === 0) errs.push(`values: Required value: must be specified when \`operator\` is 'In' or 'NotIn'`);
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && n > 0) errs.push(`values: Forbidden: may not be specified when \`operator\` is 'Exists' or 'DoesNotExist'`);
  }
  return errs;
}
