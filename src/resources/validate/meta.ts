/**
 * ObjectMeta: checked as the API server checks it (strict fields, name, namespace, labels,
 * timestamps) and completed as it would be (generation, uid, creationTimestamp), for every kind.
 */
import { routerAnnotations } from '../annotations.js';
import { createHash } from 'node:crypto';
import type { ObjectMeta } from '../types.js';
import { type Issue, type Schema, ANY, arr, map, obj, pattern, show, str, walk } from './schema.js';
import { DNS1123_LABEL, LABEL_MSG, labelErrors, subdomainErrors } from './names.js';
import { stableJson } from './util.js';

/** ObjectMeta: the fields kubectl can send; unknown ones are rejected like strict field validation. */
const objectMetaSchema: Schema = obj({
  name: str(),
  generateName: str(),
  namespace: str(),
  selfLink: str(),
  uid: str(),
  resourceVersion: str(),
  generation: { t: 'integer' },
  creationTimestamp: ANY,
  deletionTimestamp: ANY,
  deletionGracePeriodSeconds: { t: 'integer' },
  labels: map(str()),
  annotations: map(str()),
  ownerReferences: arr(ANY),
  finalizers: arr(str()),
  managedFields: arr(ANY),
});

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** RFC 3339 in UTC, milliseconds only when non-zero; null when not a valid timestamp. */
export function normalizeTimestamp(v: unknown): string | null {
  let ms: number;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'string' && RFC3339_RE.test(v)) ms = Date.parse(v);
  else return null;
  if (!Number.isFinite(ms)) return null;
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

export interface MetaRaw {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels: Record<string, string>;
  /** The router's own annotations (src/resources/annotations.ts); absent when none. */
  annotations?: Record<string, string>;
}

export function parseMetadata(rawMeta: unknown, issues: Issue[]): MetaRaw | undefined {
  if (rawMeta === undefined || rawMeta === null) {
    issues.push({ field: 'metadata.name', message: 'Required value: name is required' });
    return undefined;
  }
  const before = issues.length;
  const m = walk(rawMeta, objectMetaSchema, 'metadata', issues) as Record<string, unknown> | undefined;
  if (m === undefined) return undefined;
  const name = m.name as string | undefined;
  if (name === undefined || name === '') {
    // generateName gives a random name per load; file mode needs a stable identity.
    issues.push({ field: 'metadata.name', message: 'Required value: name is required' });
  } else {
    for (const e of subdomainErrors(name)) issues.push({ field: 'metadata.name', message: `Invalid value: ${JSON.stringify(name)}: ${e}` });
  }
  const namespace = (m.namespace as string | undefined) || 'default';
  if (namespace.length > 63) issues.push({ field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(namespace)}: must be no more than 63 characters` });
  else if (!pattern(DNS1123_LABEL).test(namespace)) issues.push({ field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(namespace)}: ${LABEL_MSG}` });
  const labels = (m.labels as Record<string, string> | undefined) ?? {};
  for (const e of labelErrors(labels)) issues.push({ field: 'metadata.labels', message: e });
  const out: MetaRaw = { name: name ?? '', namespace, labels };
  const annotations = routerAnnotations(m.annotations as Record<string, string> | undefined);
  if (annotations !== undefined) out.annotations = annotations;
  for (const key of ['creationTimestamp', 'deletionTimestamp'] as const) {
    if (m[key] === undefined) continue;
    const t = normalizeTimestamp(m[key]);
    if (t === null) issues.push({ field: `metadata.${key}`, message: `Invalid value: ${show(m[key])}: must be an RFC 3339 timestamp` });
    else out[key] = t;
  }
  if (typeof m.uid === 'string' && m.uid !== '') out.uid = m.uid;
  if (typeof m.resourceVersion === 'string') out.resourceVersion = m.resourceVersion;
  return issues.length === before ? out : undefined;
}

export function finishMeta(m: MetaRaw, kind: string, spec: unknown, ctx: { now: () => string; previous?: { kind: string; spec?: unknown; metadata: ObjectMeta }; generation?: number }): ObjectMeta {
  const prev = ctx.previous !== undefined && ctx.previous.kind === kind ? ctx.previous : undefined;
  let generation = 1;
  if (ctx.generation !== undefined) generation = ctx.generation;
  else if (prev !== undefined) {
    generation = stableJson(prev.spec) === stableJson(spec) ? prev.metadata.generation : prev.metadata.generation + 1;
  }
  const created = m.creationTimestamp ?? prev?.metadata.creationTimestamp ?? normalizeTimestamp(ctx.now()) ?? ctx.now();
  const meta: ObjectMeta = {
    name: m.name,
    namespace: m.namespace,
    creationTimestamp: created,
    resourceVersion: m.resourceVersion ?? '',
    generation,
    labels: m.labels,
    uid: m.uid ?? derivedUid(kind, m.namespace, m.name),
  };
  if (m.deletionTimestamp !== undefined) meta.deletionTimestamp = m.deletionTimestamp;
  if (m.annotations !== undefined) meta.annotations = m.annotations;
  return meta;
}

/** A UUID-shaped name-based id (RFC 4122 version 5 layout over SHA-1), stable across reloads. */
function derivedUid(kind: string, namespace: string, name: string): string {
  const h = createHash('sha1').update(`kthena-router/${kind}/${namespace}/${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
