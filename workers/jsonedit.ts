/**
 * Edits top-level members of a JSON object text without re-serializing it. The body was already
 * validated by JSON.parse; re-stringifying the parsed object would lose integer precision beyond
 * 2^53 (seeds, logit_bias keys stay strings but values do not) and cost a second full pass, so
 * the upstream body is the client's text with only the changed members spliced in.
 */

export interface MemberSpan {
  /** Offset of the member's key quote. */
  keyStart: number;
  /** Offset of the first character of the value. */
  valueStart: number;
  /** Offset just past the value. */
  valueEnd: number;
}

const enum C {
  Quote = 34, Backslash = 92, OpenBrace = 123, CloseBrace = 125, OpenBracket = 91, CloseBracket = 93,
  Colon = 58, Comma = 44, Space = 32, Tab = 9, Lf = 10, Cr = 13,
}

function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === C.Space || c === C.Tab || c === C.Lf || c === C.Cr) i++;
    else return i;
  }
}

/** s[i] is a quote; returns the offset just past the closing quote. */
function skipString(s: string, i: number): number {
  i++;
  for (;;) {
    const q = s.indexOf('"', i);
    if (q < 0) return s.length;
    let bs = 0;
    for (let j = q - 1; j >= i && s.charCodeAt(j) === C.Backslash; j--) bs++;
    if ((bs & 1) === 0) return q + 1;
    i = q + 1;
  }
}

/** Offset just past the JSON value starting at s[i]. */
export function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === C.Quote) return skipString(s, i);
  if (c === C.OpenBrace || c === C.OpenBracket) {
    let depth = 0;
    for (;;) {
      const d = s.charCodeAt(i);
      if (d === C.Quote) { i = skipString(s, i); continue; }
      if (d === C.OpenBrace || d === C.OpenBracket) depth++;
      else if (d === C.CloseBrace || d === C.CloseBracket) { depth--; if (depth === 0) return i + 1; }
      else if (Number.isNaN(d)) return s.length;
      i++;
    }
  }
  // number, true, false, null
  for (;;) {
    const d = s.charCodeAt(i);
    if (d === C.Comma || d === C.CloseBrace || d === C.CloseBracket || d === C.Space || d === C.Tab || d === C.Lf || d === C.Cr || Number.isNaN(d)) return i;
    i++;
  }
}

/**
 * Finds the spans of the wanted top-level members (the last occurrence wins, as in JSON.parse) and
 * the offset of the object's closing brace. `text` must be a JSON object accepted by JSON.parse.
 */
export function scanTopLevel(text: string, wanted: readonly string[]): { members: Map<string, MemberSpan>; close: number; count: number } {
  const members = new Map<string, MemberSpan>();
  let count = 0;
  let i = skipWs(text, 0) + 1; // past '{'
  for (;;) {
    i = skipWs(text, i);
    const c = text.charCodeAt(i);
    if (c === C.CloseBrace || Number.isNaN(c)) return { members, close: i, count };
    if (c === C.Comma) { i++; continue; }
    const keyStart = i;
    const keyEnd = skipString(text, i);
    let key = text.slice(keyStart + 1, keyEnd - 1);
    if (key.includes('\\')) key = JSON.parse(text.slice(keyStart, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    i = skipWs(text, i + 1); // past ':'
    const valueStart = i;
    const valueEnd = skipValue(text, i);
    count++;
    if (wanted.includes(key)) members.set(key, { keyStart, valueStart, valueEnd });
    i = valueEnd;
  }
}

export interface Splice {
  start: number;
  end: number;
  text: string;
}

/** Applies non-overlapping splices (any order) to `text`. */
export function applySplices(text: string, splices: Splice[]): string {
  if (splices.length === 0) return text;
  splices.sort((a, b) => a.start - b.start);
  let out = '';
  let pos = 0;
  for (const sp of splices) {
    out += text.slice(pos, sp.start) + sp.text;
    pos = sp.end;
  }
  return out + text.slice(pos);
}
