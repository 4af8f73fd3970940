/**
 * Manifest regexes (ModelRoute header/uri matches, HTTPRoute path/header/query matches) compiled
 * with RE2 semantics: re2js, a JavaScript port of RE2/J. Kthena compiles them with Go's regexp, so
 * the same pattern means the same thing here (`(?i)`, `\A`, `\z`, `\pL`, `[[:alpha:]]`, a leading
 * `]` in a class...), and matching is linear in the input: V8's backtracking engine took 3.9 s on
 * `^(a+)+$` against a 30-byte header, doubling with each byte, with the worker blocked meanwhile.
 *
 * Shared by validation (src/resources) and the workers, so that what is accepted is exactly what runs.
 *
 * Cost (native-bench regex: native-bench/src/micro/regex.ts, Node 20, shared machine): 0.14-0.83 µs per match on
 * route-shaped patterns against 0.02-0.16 µs for V8's RegExp (2-18x, paid only by routes that use
 * a regex match; a whole request costs tens of µs), and 0.07 ms for `^(a+)+$` against 4 KiB where
 * V8 needs 167 ms at 25 bytes.
 */
import { RE2JS } from 're2js';

export interface Re2Matcher {
  /** True when the pattern matches somewhere in `s` (Go's MatchString). */
  test(s: string): boolean;
}

/** Matches nothing: a pattern that fails to compile here (validation has already reported it). */
const NEVER: Re2Matcher = { test: () => false };

/** Compiles `pattern` (unanchored, as Go's MatchString); a pattern RE2 rejects matches nothing. */
export function compileRe2(pattern: string): Re2Matcher {
  try {
    return RE2JS.compile(pattern);
  } catch {
    return NEVER;
  }
}

/** Compiles `pattern` so that it must match the whole input (Gateway API RegularExpression). */
export function compileRe2Anchored(pattern: string): Re2Matcher {
  return compileRe2(`^(?:${pattern})$`);
}

/**
 * Go's regexp.Compile error text for `pattern` (`error parsing regexp: <code>: \`<expr>\``), or
 * null when RE2 accepts it.
 */
export function re2SyntaxError(pattern: string): string | null {
  try {
    RE2JS.compile(pattern);
    return null;
  } catch (e) {
    const msg = (e as Error).message;
    // RE2/J leaves out the empty expression Go prints (`trailing backslash at end of expression: ``).
    return msg.includes(': `') ? msg : msg + ': ``';
  }
}
