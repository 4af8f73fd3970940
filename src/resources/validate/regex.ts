import { re2SyntaxError } from '../../shared/re2.js';

/**
 * Kthena compiles match regexes with Go's regexp (RE2), and so do our workers (re2js, RE2
 * semantics: src/shared/re2.ts). A regex is accepted exactly when Go's regexp.Compile accepts it,
 * and refused with Go's own error text (lookaround, backreferences, `\u0041`, repeat counts above
 * 1000, syntax errors), as Kthena's webhook reports it.
 * Returns the error message, or null when the regex is fine.
 */
export function regexError(re: string): string | null {
  return re2SyntaxError(re);
}
