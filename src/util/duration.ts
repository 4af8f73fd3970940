/**
 * The two duration syntaxes manifests and flags use: Go's time.ParseDuration (Kthena's
 * metav1.Duration fields, router flags and environment) and Gateway API's GEP-2257 (HTTPRoute
 * timeouts). Pure functions; the validators decide what an invalid value means.
 */

const NS_PER_UNIT: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_INT64 = (1n << 63n) - 1n;

/**
 * Go `time.ParseDuration` (the format of metav1.Duration), returned in milliseconds, possibly
 * fractional ("500us" is 0.5). null for a syntax error, an overflow of Go's int64 nanoseconds, or a
 * negative duration (no Kthena duration field has a meaning for one). Integer parts are computed
 * with BigInt and fractions with float64, as Go does, so that values round the same way.
 */
export function parseDurationMs(s: string): number | null {
  if (typeof s !== 'string') return null;
  let rest = s;
  let neg = false;
  if (rest !== '' && (rest[0] === '-' || rest[0] === '+')) {
    neg = rest[0] === '-';
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') return null;
  let total = 0n;
  while (rest !== '') {
    const c = rest[0];
    if (!(c === '.' || (c >= '0' && c <= '9'))) return null;
    const intMatch = /^[0-9]*/.exec(rest)![0];
    const pre = intMatch.length > 0;
    let v = pre ? BigInt(intMatch) : 0n;
    if (v > MAX_INT64) return null;
    rest = rest.slice(intMatch.length);
    let frac = 0;
    let scale = 1;
    let post = false;
    if (rest[0] === '.') {
      rest = rest.slice(1);
      const fracMatch = /^[0-9]*/.exec(rest)![0];
      post = fracMatch.length > 0;
      // Go stops accumulating digits once the fraction would overflow; 15 digits keep float64 exact.
      for (const d of fracMatch.slice(0, 15)) {
        frac = frac * 10 + (d.charCodeAt(0) - 48);
        scale *= 10;
      }
      rest = rest.slice(fracMatch.length);
    }
    if (!pre && !post) return null;
    let i = 0;
    while (i < rest.length && rest[i] !== '.' && !(rest[i] >= '0' && rest[i] <= '9')) i++;
    if (i === 0) return null;
    const unit = NS_PER_UNIT[rest.slice(0, i)];
    if (unit === undefined) return null;
    rest = rest.slice(i);
    if (v > MAX_INT64 / unit) return null;
    v *= unit;
    if (frac > 0) {
      v += BigInt(Math.trunc(frac * (Number(unit) / scale)));
      if (v > MAX_INT64) return null;
    }
    total += v;
    if (total > MAX_INT64) return null;
  }
  if (neg && total > 0n) return null;
  const wholeMs = total / 1_000_000n;
  const remNs = total % 1_000_000n;
  return Number(wholeMs) + Number(remNs) / 1e6;
}

/** GEP-2257 duration ("1h30m", "500ms"), already checked against the CRD pattern, in ms. */
export function gepDurationMs(s: string): number {
  let total = 0;
  for (const m of s.matchAll(/([0-9]{1,5})(h|ms|m|s)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return total;
}
