/**
 * Request framing and bytes checked before anything else runs (issue 18, defects 5 and 9): what the
 * upstream client would refuse is a client error, answered 400 here, never a pod failure (undici
 * refused a duplicate Host, 0x7f in a header value or raw UTF-8 in the path; the router then tried
 * 3 pods, counted a failure against each and answered 503). And the Transfer-Encoding /
 * Content-Length shapes a front proxy and the pinned uWS build might read differently (request
 * smuggling) are refused outright (RFC 9112 §6.1, §6.3).
 *
 * One pass over the copied headers, one regex test per name and per value; nothing allocated on
 * a valid request.
 */
import type { ErrorCode } from '../../src/errors.js';

/** undici's header-value rule: tab, printable ASCII and 0x80-0xff (obs-text) only. */
const kBadValue = /[^\t\x20-\x7e\x80-\xff]/;
/** An HTTP token (RFC 9110 §5.6.2); uWS gives names lower-cased. */
const kBadName = /[^!#$%&'*+\-.^_`|~0-9a-z]/;
/** RFC 3986: anything outside printable ASCII must be percent-encoded. */
const kBadPathByte = /[^\x21-\x7e]/;
const kDigits = /^\d{1,16}$/;

export interface FramingProblem {
  code: ErrorCode;
  detail: string;
}

/**
 * Checks `headers` (flat name/value pairs as copied from uWS), the path and the query. Returns
 * the first problem, or null.
 */
export function checkRequestBytes(headers: readonly string[], path: string, query: string): FramingProblem | null {
  if (kBadPathByte.test(path) || (query !== '' && kBadPathByte.test(query))) {
    return { code: 'RTR_ERR_BAD_PATH', detail: 'bytes outside printable ASCII must be percent-encoded' };
  }
  let hosts = 0;
  let te = 0;
  let teValue = '';
  let cl: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const k = headers[i];
    const v = headers[i + 1];
    if (k.length === 0 || kBadName.test(k)) return { code: 'RTR_ERR_BAD_HEADER', detail: `header name ${JSON.stringify(k)} is not a token` };
    if (kBadValue.test(v)) return { code: 'RTR_ERR_BAD_HEADER', detail: `header ${k} holds a control character or a character above 0xff` };
    switch (k) {
      case 'host':
        if (++hosts > 1) return { code: 'RTR_ERR_BAD_HEADER', detail: 'more than one Host header' };
        break;
      case 'transfer-encoding':
        te++;
        teValue = v;
        break;
      case 'content-length':
        if (!kDigits.test(v)) return { code: 'RTR_ERR_BAD_FRAMING', detail: `Content-Length ${JSON.stringify(v)} is not a decimal number` };
        if (cl !== null && cl !== v) return { code: 'RTR_ERR_BAD_FRAMING', detail: 'two different Content-Length values' };
        cl = v;
        break;
    }
  }
  if (te > 0) {
    if (te > 1) return { code: 'RTR_ERR_BAD_FRAMING', detail: 'more than one Transfer-Encoding header' };
    if (teValue.trim().toLowerCase() !== 'chunked') return { code: 'RTR_ERR_BAD_FRAMING', detail: `Transfer-Encoding ${JSON.stringify(teValue)} (only "chunked" is accepted)` };
    if (cl !== null) return { code: 'RTR_ERR_BAD_FRAMING', detail: 'both Transfer-Encoding and Content-Length' };
  }
  return null;
}

/** Deepest nesting accepted in a JSON body (arrays and objects). */
export const kMaxJsonDepth = 64;

/**
 * True when `v` nests arrays/objects deeper than `limit`. Walks the parsed value (cost per node,
 * not per byte: a chat body is a few dozen nodes); recursion is bounded by `limit` itself.
 */
export function jsonTooDeep(v: unknown, limit = kMaxJsonDepth): boolean {
  return depthExceeds(v, limit);
}

function depthExceeds(v: unknown, left: number): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (left === 0) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (x !== null && typeof x === 'object' && depthExceeds(x, left - 1)) return true;
    }
    return false;
  }
  for (const k in v as Record<string, unknown>) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null && typeof x === 'object' && depthExceeds(x, left - 1)) return true;
  }
  return false;
}
