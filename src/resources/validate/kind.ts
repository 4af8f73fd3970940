/**
 * What a kind's validation rules look like, and the one path every served kind goes through: the
 * API server's order (top-level fields, metadata, spec present), then the kind's own rules (its
 * OpenAPI schema, CEL rules and webhook rules, see kinds/), then the metadata completed. Problems are
 * gathered before rejecting, so one pass reports everything wrong with a manifest.
 */
import type { AnyResource, ObjectMeta, Problem } from '../types.js';
import type { GatewayResource } from '../gateway.js';
import type { FieldError, Issue } from './schema.js';
import { finishMeta, parseMetadata, type MetaRaw } from './meta.js';
import { deepFreeze, isPlainObject } from './util.js';

export const KTHENA_API_VERSION = 'networking.serving.volcano.sh/v1alpha1';

export type Resource = AnyResource | GatewayResource;

export interface KindContext {
  /** Manifest file (file mode) or any source label; copied into every problem. */
  file: string;
  /** RFC 3339 time used as creationTimestamp for an object seen for the first time. */
  now: () => string;
  /** The last valid version of the same kind/namespace/name, when there is one. */
  previous?: Resource;
  /**
   * metadata.generation as the API server keeps it (Kubernetes mode), so that status
   * observedGeneration refers to the server's count. File mode derives it from spec changes.
   */
  generation?: number;
}

/** What a kind's rules make of a valid object, waiting for its completed metadata. */
export interface Parsed<R extends Resource> {
  /** The part whose change bumps metadata.generation (the typed spec, for most kinds). */
  generationOf: unknown;
  build(metadata: ObjectMeta, apiVersion: string): R;
}

/** One served kind: how it is recognised and what makes an object of it valid. */
export interface KindRules<R extends Resource = Resource> {
  readonly kind: R['kind'];
  readonly apiVersions: readonly string[];
  readonly clusterScoped?: boolean;
  /** Top-level keys accepted; null for core kinds, whose many other fields are ignored. */
  readonly topLevelKeys: ReadonlySet<string> | null;
  /** A missing spec rejects the object before the kind's rules run. */
  readonly specRequired: boolean;
  /**
   * The kind's own checks over the whole object. `issues` already holds the envelope's and the
   * metadata's (rules that only run on an otherwise valid object, as a webhook does, test it).
   * undefined when the object is invalid; the issues say why.
   */
  parse(raw: Record<string, unknown>, issues: Issue[], ctx: KindContext, meta: MetaRaw | undefined): Parsed<R> | undefined;
}

/** One kind the validating webhook admits (src/webhook). */
export interface AdmissionRules {
  readonly kind: string;
  /**
   * The spec as the API server stores it in, Kthena's webhook errors out (empty: allowed).
   * undefined when the schema refused it; the issues say why.
   */
  admit(spec: unknown, issues: Issue[]): FieldError[] | undefined;
}

/** A CRD's top level (everything else is an unknown field). */
export const CRD_TOP_LEVEL_KEYS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

/** The namespace an object of this kind lives in as written ('default' when unset). */
export function namespaceOf(rules: KindRules | undefined, meta: Record<string, unknown>): string {
  if (rules?.clusterScoped === true) return '';
  return typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
}

export function problemFor(
  ident: { kind: string; namespace: string; name: string }, file: string, field: string, message: string,
  severity: Problem['severity'] = 'rejected',
): Problem {
  return { kind: ident.kind, namespace: ident.namespace, name: ident.name, file, field, message, severity };
}

/** One object of a served kind in, a validated, defaulted, deep-frozen resource (or problems) out. */
export function parseKind<R extends Resource>(rules: KindRules<R>, r: Record<string, unknown>, ctx: KindContext): { resource?: R; problems: Problem[] } {
  const ident = { kind: rules.kind as string, namespace: '', name: '' };
  if (isPlainObject(r.metadata)) {
    if (typeof r.metadata.name === 'string') ident.name = r.metadata.name;
    ident.namespace = namespaceOf(rules, r.metadata);
  }
  const rejected = (issues: Issue[]): { problems: Problem[] } => ({ problems: issues.map((i) => problemFor(ident, ctx.file, i.field, i.message)) });

  const issues: Issue[] = [];
  if (rules.topLevelKeys !== null) {
    for (const key of Object.keys(r)) if (!rules.topLevelKeys.has(key)) issues.push({ field: key, message: `unknown field ${JSON.stringify(key)}` });
  }
  const meta = parseMetadata(r.metadata, issues);
  if (meta !== undefined && rules.clusterScoped === true) meta.namespace = '';
  if (rules.specRequired && (r.spec === undefined || r.spec === null)) {
    issues.push({ field: 'spec', message: 'Required value' });
    return rejected(issues);
  }
  const parsed = rules.parse(r, issues, ctx, meta);
  if (issues.length > 0 || meta === undefined || parsed === undefined) return rejected(issues);
  const resource = parsed.build(finishMeta(meta, rules.kind, parsed.generationOf, ctx), r.apiVersion as string);
  return { resource: deepFreeze(resource), problems: [] };
}
