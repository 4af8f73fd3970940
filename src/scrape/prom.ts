/**
 * A Prometheus text-format (0.0.4) parser that materialises only the families it is asked for.
 *
 * An engine page is 40-60 KB of which the router reads a handful of samples, so the parser is
 * built around skipping: for every line it finds the end of the metric name with native indexOf
 * (no per-character loop), rejects the name by a 16-bit signature of its length and three of its
 * characters (a precomputed bitmap), and only a name that passes is sliced for one Map lookup.
 * Unwanted lines cost a few amortised indexOf calls and no allocation. Wanted lines get their
 * labels, value and timestamp parsed.
 *
 * Accepted syntax (what prometheus_client, client_golang and the Prometheus text parser accept):
 * - `# HELP name text` (help unescaped: `\\`, `\n`) and `# TYPE name type`; other comments ignored;
 * - blank lines, leading blanks, blanks and tabs between tokens, CRLF line ends;
 * - labels `{a="x",b="y",}` with escapes `\\`, `\"`, `\n` in values, blanks around tokens,
 *   a trailing comma;
 * - values as Go's ParseFloat reads them: decimals, exponents (`1e-05`), `+Inf`/`-Inf`/`Inf`,
 *   `NaN` (case-insensitive), so "3.0" and "7.557572e+06" from prometheus_client both work;
 * - an optional integer timestamp (milliseconds) after the value; anything after it (an
 *   OpenMetrics exemplar `# {...} v`) is ignored;
 * - samples named `family`, `family_total`, `family_bucket`, `family_sum`, `family_count`,
 *   `family_created`, `family_info`, grouped under `family`. prometheus_client declares a counter
 *   as `# TYPE vllm:prefix_cache_hits counter` and writes `vllm:prefix_cache_hits_total`;
 *   client_golang declares and writes `x_total`: asking for `x` finds both. An exact name always
 *   wins over a suffix reading.
 * A wanted line that is malformed throws PromParseError (the scrape fails as a whole, as in
 * Prometheus); malformed lines of families nobody asked for are skipped unread.
 */

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped' | 'info' | 'stateset' | 'gaugehistogram' | 'unknown';

/** What follows the family name in a sample name. */
export type SampleSuffix = '' | '_total' | '_bucket' | '_sum' | '_count' | '_created' | '_info';

export interface PromSample {
  suffix: SampleSuffix;
  /** Label name -> value (a label called `__proto__` is an own property like any other). */
  labels: Record<string, string>;
  value: number;
  /** The timestamp written after the value (milliseconds since the epoch), if any. */
  timestampMs?: number;
}

export interface PromFamily {
  name: string;
  /** From `# TYPE`; 'unknown' when the page had no TYPE line for the family. */
  type: PromType;
  help?: string;
  samples: PromSample[];
}

export class PromParseError extends Error {
  readonly code = 'SCRAPE_PARSE' as const;
  readonly line: number;
  constructor(message: string, line: number) {
    super(`${message} (line ${line})`);
    this.name = 'PromParseError';
    this.line = line;
  }
}

const SUFFIXES: readonly SampleSuffix[] = ['_total', '_bucket', '_sum', '_count', '_created', '_info'];
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'info', 'stateset', 'gaugehistogram', 'unknown']);

const SIG_SIZE = 1 << 16;

/** Length and three characters (last, fourth from last, middle) of a name, hashed to 16 bits. */
function signature(text: string, start: number, len: number): number {
  const last = text.charCodeAt(start + len - 1);
  const fourth = len >= 4 ? text.charCodeAt(start + len - 4) : 0;
  const mid = text.charCodeAt(start + (len >>> 1));
  return (Math.imul(len, 0x9e3779b1) ^ Math.imul(last, 0x85ebca6b) ^ Math.imul(fourth, 0xc2b2ae35) ^ Math.imul(mid, 0x27d4eb2f)) >>> 16;
}

interface SampleTarget {
  family: string;
  suffix: SampleSuffix;
}

export interface FamilySelectorOptions {
  /** Materialise `_bucket` samples. Default true; callers that only need sum/count say false. */
  buckets?: boolean;
  /** Materialise `_created` samples. Default false. */
  created?: boolean;
  /** Read `# HELP` text. Default true; callers that only need values say false. */
  help?: boolean;
}

/**
 * The compiled set of wanted families: build it once (per engine), parse many pages with it.
 */
export class FamilySelector {
  readonly families: readonly string[];
  /** @internal */ readonly help: boolean;
  /** sample name -> (family, suffix) */
  readonly #targets = new Map<string, SampleTarget>();
  /**
   * Bloom-style prefilter: bit signature(name) is set for every wanted sample name. A page line
   * whose name misses it is skipped without slicing or hashing the name (signature() reads three
   * characters and the length); a name longer than every wanted one is rejected at once.
   */
  readonly #sigs = new Uint8Array(SIG_SIZE);
  #maxLen = 0;
  /** TYPE/HELP lines name the family (or, client_golang style, `x_total`). */
  readonly #metaNames = new Map<string, string>();

  constructor(families: Iterable<string>, opts: FamilySelectorOptions = {}) {
    const list = [...new Set(families)];
    this.families = Object.freeze(list);
    const buckets = opts.buckets ?? true;
    this.help = opts.help ?? true;
    const created = opts.created ?? false;
    for (const f of list) {
      if (f === '') throw new TypeError('FamilySelector: empty family name');
      this.#targets.set(f, { family: f, suffix: '' });
      this.#metaNames.set(f, f);
    }
    // A wanted `x_total` declared as `# TYPE x counter` (prometheus_client): the TYPE line names the stem.
    for (const f of list) {
      for (const s of SUFFIXES) {
        if (f.length > s.length && f.endsWith(s) && !this.#metaNames.has(f.slice(0, -s.length))) this.#metaNames.set(f.slice(0, -s.length), f);
      }
    }
    for (const f of list) {
      for (const s of SUFFIXES) {
        if ((s === '_bucket' && !buckets) || (s === '_created' && !created)) continue;
        const name = f + s;
        if (!this.#targets.has(name)) this.#targets.set(name, { family: f, suffix: s });
        if (s === '_total' && !this.#metaNames.has(name)) this.#metaNames.set(name, f);
      }
    }
    for (const name of [...this.#targets.keys(), ...this.#metaNames.keys()]) {
      this.#maxLen = Math.max(this.#maxLen, name.length);
      this.#sigs[signature(name, 0, name.length)] = 1;
    }
  }

  /** @internal Could text[start, start + len) be a wanted name? False positives only. */
  maybe(text: string, start: number, len: number): boolean {
    return len > 0 && len <= this.#maxLen && this.#sigs[signature(text, start, len)] === 1;
  }
  /** @internal */ target(name: string): SampleTarget | undefined { return this.#targets.get(name); }
  /** @internal */ metaFamily(name: string): string | undefined { return this.#metaNames.get(name); }
}

const SPACE = 32;
const TAB = 9;
const CR = 13;
const HASH = 35;
const LBRACE = 123;
const RBRACE = 125;
const QUOTE = 34;
const BACKSLASH = 92;
const EQUALS = 61;
const COMMA = 44;

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === CR;
}

/** Go strconv.ParseFloat spellings of the special values, lower-cased. */
function specialFloat(t: string): number | undefined {
  switch (t.toLowerCase()) {
    case 'inf': case '+inf': case 'infinity': case '+infinity': return Infinity;
    case '-inf': case '-infinity': return -Infinity;
    case 'nan': case '+nan': case '-nan': return NaN;
    default: return undefined;
  }
}

export function parsePromNumber(t: string): number | undefined {
  if (t.length === 0) return undefined;
  const v = Number(t);
  if (!Number.isNaN(v)) {
    // Number() also reads "0x1f", "0b1" and "Infinity"; Go reads hex floats too, the rest are harmless.
    return v;
  }
  return specialFloat(t);
}

/**
 * Parses `text`, returning the wanted families that occur in it (by family name). Families with
 * only HELP/TYPE lines and no samples are returned with an empty sample list.
 */
/**
 * Next backslash at or after the label value being read (-1: none left in the page), shared with
 * parseLabels. Module state is safe: a parse runs synchronously to the end and never re-enters.
 */
let nextBackslash = -2;

export function parsePrometheus(text: string, selector: FamilySelector): Map<string, PromFamily> {
  const out = new Map<string, PromFamily>();
  nextBackslash = -2;
  const len = text.length;
  let pos = 0;
  let lineNo = 0;
  // Next ' ', '{' and tab at or after the current line start (-1: none left), found with native
  // indexOf and reused across lines: each is searched for again only once the scan passed it, so
  // all three scans together stay linear in the page size.
  let nextSpace = -2;
  let nextBrace = -2;
  let nextTab = -2;
  while (pos < len) {
    lineNo++;
    let eol = text.indexOf('\n', pos);
    if (eol < 0) eol = len;
    let p = pos;
    let c = text.charCodeAt(p);
    while (p < eol && (c === SPACE || c === TAB)) c = text.charCodeAt(++p);
    if (p >= eol || c === CR) {
      pos = eol + 1;
      continue;
    }
    if (c === HASH) {
      if (nextTab !== -1 && nextTab < p) nextTab = text.indexOf('\t', p);
      parseComment(text, p + 1, eol, nextTab, selector, out);
      pos = eol + 1;
      continue;
    }
    // Metric name: up to '{', a blank or the end of the line.
    const nameStart = p;
    if (nextSpace !== -1 && nextSpace < p) nextSpace = text.indexOf(' ', p);
    if (nextBrace !== -1 && nextBrace < p) nextBrace = text.indexOf('{', p);
    if (nextTab !== -1 && nextTab < p) nextTab = text.indexOf('\t', p);
    p = eol;
    if (nextSpace >= 0 && nextSpace < p) p = nextSpace;
    if (nextBrace >= 0 && nextBrace < p) p = nextBrace;
    if (nextTab >= 0 && nextTab < p) p = nextTab;
    const nameLen = p - nameStart;
    if (!selector.maybe(text, nameStart, nameLen)) {
      pos = eol + 1;
      continue;
    }
    const target = selector.target(text.slice(nameStart, p));
    if (target === undefined) {
      pos = eol + 1;
      continue;
    }
    const labels: Record<string, string> = {};
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p < eol && text.charCodeAt(p) === LBRACE) p = parseLabels(text, p + 1, eol, labels, lineNo);
    // Value.
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    const vStart = p;
    while (p < eol && !isBlank(text.charCodeAt(p))) p++;
    const value = parsePromNumber(text.slice(vStart, p));
    if (value === undefined) {
      throw new PromParseError(`invalid value ${JSON.stringify(text.slice(vStart, p))} for ${text.slice(nameStart, nameStart + nameLen)}`, lineNo);
    }
    const sample: PromSample = { suffix: target.suffix, labels, value };
    // Optional timestamp.
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p < eol && text.charCodeAt(p) !== HASH) {
      const tStart = p;
      while (p < eol && !isBlank(text.charCodeAt(p))) p++;
      const ts = Number(text.slice(tStart, p));
      if (!Number.isFinite(ts)) throw new PromParseError(`invalid timestamp ${JSON.stringify(text.slice(tStart, p))}`, lineNo);
      sample.timestampMs = ts;
    }
    familyOf(out, target.family).samples.push(sample);
    pos = eol + 1;
  }
  return out;
}

function familyOf(out: Map<string, PromFamily>, name: string): PromFamily {
  let f = out.get(name);
  if (f === undefined) {
    f = { name, type: 'unknown', samples: [] };
    out.set(name, f);
  }
  return f;
}

/** Is text[p, p + 4) the keyword HELP or TYPE? 1 = HELP, 2 = TYPE, 0 = neither (no startsWith: slow at an offset). */
function keyword(text: string, p: number): number {
  const a = text.charCodeAt(p);
  if (a === 72 /* H */) {
    return text.charCodeAt(p + 1) === 69 /* E */ && text.charCodeAt(p + 2) === 76 /* L */ && text.charCodeAt(p + 3) === 80 /* P */ ? 1 : 0;
  }
  if (a === 84 /* T */) {
    return text.charCodeAt(p + 1) === 89 /* Y */ && text.charCodeAt(p + 2) === 80 /* P */ && text.charCodeAt(p + 3) === 69 /* E */ ? 2 : 0;
  }
  return 0;
}

/** `# HELP name text` / `# TYPE name type`; `p` is just after '#'; `nextTab` as in parsePrometheus. */
function parseComment(text: string, p: number, eol: number, nextTab: number, selector: FamilySelector, out: Map<string, PromFamily>): void {
  while (p < eol && isBlank(text.charCodeAt(p))) p++;
  if (p + 4 > eol) return;
  const kw = keyword(text, p);
  if (kw === 0) return;
  const isType = kw === 2;
  if (!isType && !selector.help) return;
  p += 4;
  if (p >= eol || !isBlank(text.charCodeAt(p))) return;
  while (p < eol && isBlank(text.charCodeAt(p))) p++;
  const nameStart = p;
  // The name ends at the next blank: native searches for ' ' and (rare) tab, then a CR at eol.
  p = text.indexOf(' ', nameStart);
  if (p < 0 || p > eol) p = eol;
  // Tabs between '#', the keyword and the name moved past the cached one: look again (rare).
  const tab = nextTab >= 0 && nextTab < nameStart ? text.indexOf('\t', nameStart) : nextTab;
  if (tab >= nameStart && tab < p) p = tab;
  if (p === eol && p > nameStart && text.charCodeAt(p - 1) === CR) p--;
  if (!selector.maybe(text, nameStart, p - nameStart)) return;
  const family = selector.metaFamily(text.slice(nameStart, p));
  if (family === undefined) return;
  while (p < eol && (text.charCodeAt(p) === SPACE || text.charCodeAt(p) === TAB)) p++;
  let end = eol;
  if (end > p && text.charCodeAt(end - 1) === CR) end--;
  const f = familyOf(out, family);
  if (isType) {
    let tEnd = p;
    while (tEnd < end && !isBlank(text.charCodeAt(tEnd))) tEnd++;
    const t = text.slice(p, tEnd);
    f.type = TYPES.has(t) ? (t as PromType) : 'unknown';
  } else {
    f.help = unescapeHelp(text.slice(p, end));
  }
}

function unescapeHelp(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\' && i + 1 < s.length) {
      const n = s[++i];
      out += n === 'n' ? '\n' : n;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Parses `a="x",b="y"}` (p is just after '{') into `labels`; returns the index after '}'. */
function parseLabels(text: string, p: number, eol: number, labels: Record<string, string>, lineNo: number): number {
  for (;;) {
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p >= eol) throw new PromParseError('unterminated label set', lineNo);
    let c = text.charCodeAt(p);
    if (c === RBRACE) return p + 1;
    const nStart = p;
    while (p < eol) {
      c = text.charCodeAt(p);
      if (c === EQUALS || isBlank(c) || c === COMMA || c === RBRACE) break;
      p++;
    }
    if (p === nStart) throw new PromParseError('empty label name', lineNo);
    const name = text.slice(nStart, p);
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p >= eol || text.charCodeAt(p) !== EQUALS) throw new PromParseError(`expected '=' after label ${name}`, lineNo);
    p++;
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p >= eol || text.charCodeAt(p) !== QUOTE) throw new PromParseError(`expected '"' for label ${name}`, lineNo);
    p++;
    // Value: without a backslash before the closing quote it is one native search and one slice.
    const q = text.indexOf('"', p);
    if (q < 0 || q >= eol) throw new PromParseError(`unterminated value of label ${name}`, lineNo);
    if (nextBackslash !== -1 && nextBackslash < p) nextBackslash = text.indexOf('\\', p);
    if (nextBackslash < 0 || nextBackslash > q) {
      setLabel(labels, name, text.slice(p, q));
      p = q + 1;
    } else {
      p = parseEscapedValue(text, p, eol, labels, name, lineNo);
    }
    while (p < eol && isBlank(text.charCodeAt(p))) p++;
    if (p >= eol) throw new PromParseError('unterminated label set', lineNo);
    c = text.charCodeAt(p);
    if (c === COMMA) {
      p++;
      continue;
    }
    if (c === RBRACE) return p + 1;
    throw new PromParseError(`unexpected ${JSON.stringify(text[p])} in label set`, lineNo);
  }
}

/** A plain object gets `__proto__` as an own property, never as its prototype. */
function setLabel(labels: Record<string, string>, name: string, value: string): void {
  if (name === '__proto__') Object.defineProperty(labels, name, { value, enumerable: true, writable: true, configurable: true });
  else labels[name] = value;
}

/** The slow path of a label value with escapes; `p` is just after the opening quote. */
function parseEscapedValue(text: string, p: number, eol: number, labels: Record<string, string>, name: string, lineNo: number): number {
  let c: number;
  let value = '';
  let segStart = p;
  for (;;) {
    if (p >= eol) throw new PromParseError(`unterminated value of label ${name}`, lineNo);
    c = text.charCodeAt(p);
    if (c === QUOTE) break;
    if (c === BACKSLASH) {
      value += text.slice(segStart, p);
      if (p + 1 >= eol) throw new PromParseError(`unterminated value of label ${name}`, lineNo);
      const n = text.charCodeAt(p + 1);
      value += n === 110 /* n */ ? '\n' : String.fromCharCode(n);
      p += 2;
      segStart = p;
      continue;
    }
    p++;
  }
  value += text.slice(segStart, p);
  setLabel(labels, name, value);
  return p + 1; // after the closing quote
}

