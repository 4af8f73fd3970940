/**
 * A small structural-schema walker: the subset of OpenAPI v3 the CRDs this router reads use, with
 * the API server's order (nulls pruned, defaults applied, then required checked) and kubectl's
 * wording. Field paths use the Kubernetes field.Path notation (`spec.rules[0].targetModels[1].weight`,
 * map keys in brackets: `spec.rules[0].modelMatch.headers[user-type].regex`).
 */
import { isPlainObject } from './util.js';

/** The subset of OpenAPI v3 the CRDs use; deploy/crds is generated from the Kthena kinds' schemas. */
export type Schema =
  | { t: 'string'; enum?: readonly string[]; minLength?: number; maxLength?: number; pattern?: string; default?: string }
  | { t: 'integer'; minimum?: number; maximum?: number; default?: number }
  | { t: 'boolean'; default?: boolean }
  | { t: 'array'; items: Schema; minItems?: number; maxItems?: number }
  | {
    t: 'object';
    properties?: Readonly<Record<string, Schema>>;
    required?: readonly string[];
    /** Map values (additionalProperties). */
    values?: Schema;
    /** Keep unknown keys out of the result without rejecting them (schemas we only read from). */
    ignoreUnknown?: boolean;
  }
  | { t: 'any' };

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export interface Issue { field: string; message: string }

/**
 * One webhook-rule failure, kept structured (the shape of Go's field.Error) so that file mode and
 * the admission webhook render it from one place: file mode shows `detail` under `field`, the
 * webhook renders Kthena's `field: Type: value: detail` text (src/webhook/messages.ts).
 * 'Schema' carries a message already in that form (an OpenAPI or CEL failure).
 */
export interface FieldError {
  field: string;
  type: 'Required' | 'Invalid' | 'NotSupported' | 'Schema';
  /** The offending value (Invalid, NotSupported). */
  value?: unknown;
  /** NotSupported: the accepted values. */
  supported?: readonly string[];
  detail: string;
}

/** A webhook-rule failure as file mode shows it: the detail under the field. */
export function fileIssue(e: FieldError): Issue {
  return { field: e.field, message: e.detail };
}

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(typeName(v));
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const compiledPatterns = new Map<string, RegExp>();
export function pattern(p: string): RegExp {
  let re = compiledPatterns.get(p);
  if (re === undefined) {
    re = new RegExp(p);
    compiledPatterns.set(p, re);
  }
  return re;
}
/**
 * Returns a fresh, cleaned copy: nulls pruned (the API server prunes nulls of non-nullable fields
 * before defaulting), defaults applied, only declared keys kept. undefined when the value is invalid.
 */
export function walk(v: unknown, s: Schema, path: string, issues: Issue[]): unknown {
  switch (s.t) {
    case 'any':
      return structuredClone(v);
    case 'string': {
      if (typeof v !== 'string') return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type string`);
      if (s.enum && !s.enum.includes(v)) {
        return fail(issues, path, `Unsupported value: ${JSON.stringify(v)}: supported values: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
      }
      const len = [...v].length;
      if (s.minLength !== undefined && len < s.minLength) {
        return fail(issues, path, `Invalid value: ${JSON.stringify(v)}: must be at least ${s.minLength} chars long`);
      }
      if (s.maxLength !== undefined && len > s.maxLength) {
        return fail(issues, path, `Too long: may not be longer than ${s.maxLength}`);
      }
      if (s.pattern !== undefined && !pattern(s.pattern).test(v)) {
        return fail(issues, path, `Invalid value: ${JSON.stringify(v)}: should match '${s.pattern}'`);
      }
      return v;
    }
    case 'integer': {
      if (typeof v !== 'number' || !Number.isInteger(v)) {
        return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type integer`);
      }
      if (s.minimum !== undefined && v < s.minimum) return fail(issues, path, `Invalid value: ${v}: must be greater than or equal to ${s.minimum}`);
      if (s.maximum !== undefined && v > s.maximum) return fail(issues, path, `Invalid value: ${v}: must be less than or equal to ${s.maximum}`);
      // Every integer in these CRDs is format: int32.
      if (v < INT32_MIN || v > INT32_MAX) return fail(issues, path, `Invalid value: ${v}: must be a 32-bit integer`);
      return v;
    }
    case 'boolean':
      if (typeof v !== 'boolean') return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type boolean`);
      return v;
    case 'array': {
      if (!Array.isArray(v)) return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type array`);
      if (s.maxItems !== undefined && v.length > s.maxItems) return fail(issues, path, `Too many: ${v.length}: must have at most ${s.maxItems} items`);
      if (s.minItems !== undefined && v.length < s.minItems) return fail(issues, path, `Invalid value: ${v.length}: must have at least ${s.minItems} items`);
      const before = issues.length;
      const out = v.map((item, i) => walk(item, s.items, `${path}[${i}]`, issues));
      return issues.length === before ? out : undefined;
    }
    case 'object': {
      if (!isPlainObject(v)) return fail(issues, path, `Invalid value: ${show(typeName(v))}: must be of type object`);
      const before = issues.length;
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v)) {
        const value = v[key];
        if (value === null || value === undefined) continue;
        const prop = s.properties?.[key];
        if (prop !== undefined) {
          const r = walk(value, prop, child(path, key), issues);
          if (r !== undefined) out[key] = r;
        } else if (s.values !== undefined) {
          const r = walk(value, s.values, `${path}[${key}]`, issues);
          if (r !== undefined) out[key] = r;
        } else if (!s.ignoreUnknown) {
          issues.push({ field: child(path, key), message: `unknown field ${JSON.stringify(key)}` });
        }
      }
      for (const [key, prop] of Object.entries(s.properties ?? {})) {
        if (out[key] === undefined && 'default' in prop && prop.default !== undefined && (v[key] === undefined || v[key] === null)) {
          out[key] = prop.default;
        }
      }
      // After defaulting, as the API server does: a defaulted required field is satisfied.
      for (const key of s.required ?? []) {
        if ((v[key] === undefined || v[key] === null) && out[key] === undefined) issues.push({ field: child(path, key), message: 'Required value' });
      }
      return issues.length === before ? out : undefined;
    }
  }
}

function fail(issues: Issue[], field: string, message: string): undefined {
  issues.push({ field, message });
  return undefined;
}

/** Schema builders, so that a CRD's schema transcribes into a few readable lines. */
export const str = (o: Omit<Extract<Schema, { t: 'string' }>, 't'> = {}): Schema => ({ t: 'string', ...o });
export const int = (o: Omit<Extract<Schema, { t: 'integer' }>, 't'> = {}): Schema => ({ t: 'integer', ...o });
export const arr = (items: Schema, o: { minItems?: number; maxItems?: number } = {}): Schema => ({ t: 'array', items, ...o });
export const obj = (properties: Record<string, Schema>, required: string[] = [], o: { ignoreUnknown?: boolean } = {}): Schema => ({ t: 'object', properties, required, ...o });
export const map = (values: Schema): Schema => ({ t: 'object', values });
export const ANY: Schema = { t: 'any' };
