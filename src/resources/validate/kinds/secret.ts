/**
 * Secret (v1): read, never served. data is base64 and stringData wins for the same key, as the API
 * server merges them; a kubernetes.io/tls Secret must carry tls.crt and tls.key. What a Secret
 * keeps beyond TLS material depends on its purpose label (src/resources/secret.ts).
 */
import type { Secret } from '../../gateway.js';
import { type Issue, show, typeName } from '../schema.js';
import { isPlainObject } from '../util.js';
import type { KindRules } from '../kind.js';
import { secretContent } from '../../secret.js';

const SECRET_KEYS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'metadata', 'type', 'data', 'stringData', 'immutable']);

function secretOf(r: Record<string, unknown>, issues: Issue[]): { type: string; tls?: { cert: string; key: string }; values: Record<string, string> } | undefined {
  const before = issues.length;
  const type = r.type === undefined || r.type === null ? 'Opaque' : r.type;
  if (typeof type !== 'string') issues.push({ field: 'type', message: `Invalid value: ${show(typeName(type))}: must be of type string` });
  const values: Record<string, string> = {};
  for (const [field, decode] of [['data', true], ['stringData', false]] as const) {
    const d = r[field];
    if (d === undefined || d === null) continue;
    if (!isPlainObject(d)) {
      issues.push({ field, message: `Invalid value: ${show(typeName(d))}: must be of type object` });
      continue;
    }
    for (const [k, v] of Object.entries(d)) {
      if (typeof v !== 'string') {
        issues.push({ field: `${field}[${k}]`, message: `Invalid value: ${show(typeName(v))}: must be of type string` });
      } else if (decode && !/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v)) {
        issues.push({ field: `${field}[${k}]`, message: 'Invalid value: illegal base64 data' });
      } else {
        // stringData wins over data for the same key, as the API server merges them.
        values[k] = decode ? Buffer.from(v, 'base64').toString('utf8') : v;
      }
    }
  }
  if (type === 'kubernetes.io/tls') {
    for (const k of ['tls.crt', 'tls.key']) if (values[k] === undefined) issues.push({ field: `data[${k}]`, message: 'Required value' });
  }
  if (issues.length > before) return undefined;
  const out: { type: string; tls?: { cert: string; key: string }; values: Record<string, string> } = { type: type as string, values };
  if (values['tls.crt'] !== undefined && values['tls.key'] !== undefined) out.tls = { cert: values['tls.crt'], key: values['tls.key'] };
  return out;
}

export const secret: KindRules<Secret> = {
  kind: 'Secret',
  apiVersions: ['v1'],
  topLevelKeys: SECRET_KEYS,
  specRequired: false,
  parse(raw, issues, _ctx, meta) {
    const s = secretOf(raw, issues);
    if (issues.length > 0 || meta === undefined || s === undefined) return undefined;
    // The decoded values stop here: only what a labelled purpose keeps goes on (secret.ts).
    const { values, ...kept } = s;
    const typed = { ...kept, ...secretContent(meta.labels, meta.name, values) };
    return { generationOf: typed, build: (metadata) => ({ apiVersion: 'v1', kind: 'Secret', metadata, ...typed }) };
  },
};
