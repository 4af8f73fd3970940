/**
 * The one place where validation failures become Kthena's admission messages.
 *
 * src/resources/validate.ts keeps each webhook-rule failure structured (FieldError, the shape of
 * apimachinery's field.Error); file mode shows only its detail, and this module renders the text
 * Kthena's webhook sends (pkg/kthena-router/webhook/validator.go):
 *
 *   ModelRoute, ExternalModelProvider:  "validation failed:\n  - <err>\n  - <err>"
 *   ModelServer (no newlines):          "validation failed:   - <err>  - <err>"
 *
 * where <err> is field.Error.Error(): `<field>: <Type>: <value>: <detail>`, the value printed as
 * apimachinery prints it (strings Go-quoted, numbers and booleans bare, nil as null, maps and
 * slices as JSON with sorted keys).
 */
import type { AdmissionKind, FieldError } from '../resources/validate.js';

/** strconv.Quote: printable runes kept, the rest escaped the way Go escapes them. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\x07': out += '\\a'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\v': out += '\\v'; continue;
    }
    if (c === 0x20 || /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(ch)) out += ch;
    else if (c < 0x80) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else if (c <= 0xffff) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += `\\U${c.toString(16).padStart(8, '0')}`;
  }
  return out + '"';
}

/** encoding/json output: map keys sorted, and <, >, & escaped as Go's HTML-safe encoder does. */
function goJson(v: unknown): string {
  const sorted = JSON.stringify(v, (_k, val: unknown) => {
    if (val !== null && typeof val === 'object' && !Array.isArray(val)) {
      const o = val as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
    }
    return val;
  });
  return sorted.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function goValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goQuote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return goJson(v);
}

/** field.Error.Error() for one failure. */
export function fieldErrorText(e: FieldError): string {
  switch (e.type) {
    case 'Schema':
      return `${e.field}: ${e.detail}`;
    case 'Required':
      return e.detail === '' ? `${e.field}: Required value` : `${e.field}: Required value: ${e.detail}`;
    case 'NotSupported': {
      const supported = (e.supported ?? []).map(goQuote).join(', ');
      return `${e.field}: Unsupported value: ${goValue(e.value)}: supported values: ${supported}`;
    }
    case 'Invalid':
      return e.detail === '' ? `${e.field}: Invalid value: ${goValue(e.value)}` : `${e.field}: Invalid value: ${goValue(e.value)}: ${e.detail}`;
  }
}

/** The `result.message` of a denied AdmissionReview, exactly as Kthena joins it per kind. */
export function denialMessage(kind: AdmissionKind, errors: readonly FieldError[]): string {
  const items = errors.map((e) => `  - ${fieldErrorText(e)}`);
  return kind === 'ModelServer' ? `validation failed: ${items.join('')}` : `validation failed:\n${items.join('\n')}`;
}
