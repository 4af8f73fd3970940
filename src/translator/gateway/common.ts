/** Small helpers every phase of the Gateway translator uses. */
import { isIP } from 'node:net';
import type { ConditionIR } from '../../ir/gateway.js';
import type { LabelSelector, ReferenceGrant } from '../../resources/gateway.js';
import type { ObjectMeta, Pod, Problem } from '../../resources/types.js';

/** Node's timers fire at once for delays above 2^31-1 ms. */
export const MAX_DURATION_MS = 2147483647;
const EPOCH = '1970-01-01T00:00:00Z';

export function syntheticMeta(namespace: string, name: string): ObjectMeta {
  return { name, namespace, creationTimestamp: EPOCH, resourceVersion: '', generation: 1, labels: {}, uid: '' };
}

export function cond(type: string, status: ConditionIR['status'], reason: string, message: string, m: ObjectMeta): ConditionIR {
  return { type, status, reason, message, observedGeneration: m.generation };
}

/** Running, Ready, not terminating, with an IP (the same rule as translator/index.ts). */
export function eligible(p: Pod): boolean {
  return p.status.phase === 'Running' && p.status.ready && p.metadata.deletionTimestamp === undefined &&
    p.status.podIP !== undefined && isIP(p.status.podIP) !== 0;
}

export function key(o: { metadata: { namespace: string; name: string } }): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function problem(o: { kind: string; metadata: ObjectMeta }, field: string, message: string, severity: Problem['severity']): Problem {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, field, message, severity };
}

export function timeOf(m: ObjectMeta): number {
  const t = Date.parse(m.creationTimestamp);
  return Number.isNaN(t) ? 0 : t;
}

/** Gateway API tie-breaks: oldest creationTimestamp, then "namespace/name". */
export function oldestFirst(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  return timeOf(a.metadata) - timeOf(b.metadata) || cmp(key(a), key(b));
}

export function startedAtSec(p: Pod): number {
  const at = p.status.containersStartedAt ?? p.status.startTime;
  const t = at !== undefined ? Date.parse(at) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions) {
    const v = labels[e.key];
    if (e.operator === 'In' && (v === undefined || !e.values.includes(v))) return false;
    if (e.operator === 'NotIn' && v !== undefined && e.values.includes(v)) return false;
    if (e.operator === 'Exists' && v === undefined) return false;
    if (e.operator === 'DoesNotExist' && v !== undefined) return false;
  }
  return true;
}

/**
 * A ReferenceGrant in the target namespace allows (fromGroup, fromKind, fromNamespace) to refer to
 * (toGroup, toKind[, name]).
 */
export function referenceGranted(
  grants: readonly ReferenceGrant[], fromGroup: string, fromKind: string, fromNamespace: string, toGroup: string, toKind: string, toNamespace: string, toName: string,
): boolean {
  return grants.some((g) => g.metadata.namespace === toNamespace &&
    g.spec.from.some((f) => f.group === fromGroup && f.kind === fromKind && f.namespace === fromNamespace) &&
    g.spec.to.some((t) => t.group === toGroup && t.kind === toKind && (t.name === undefined || t.name === '' || t.name === toName)));
}
