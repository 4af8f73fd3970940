import { describe, expect, it } from 'vitest';
import { compileRe2, compileRe2Anchored, re2SyntaxError } from '../../src/shared/re2.js';

describe('route regexes with RE2 semantics', () => {
  it.each([
    ['(?i)premium', 'PREMIUM-tier', true],
    ['\\Aabc\\z', 'abc', true],
    ['\\Aabc\\z', 'abc\n', false],
    ['[[:digit:]]+', 'v42', true],
    ['\\pL', '1é', true],
    ['[]a]', ']', true],
    ['^gold$', 'xgold', false],
    ['gold', 'xgoldx', true],
  ])('%j against %j: %s', (re, v, want) => {
    expect(compileRe2(re).test(v)).toBe(want);
  });

  it('anchored matches need the whole value', () => {
    expect(compileRe2Anchored('/v1/.*').test('/v1/chat')).toBe(true);
    expect(compileRe2Anchored('/v1').test('/v1/chat')).toBe(false);
    expect(compileRe2Anchored('a|b').test('ab')).toBe(false);
  });

  it('matches a catastrophic-backtracking pattern in linear time', () => {
    const re = compileRe2('^(a+)+$');
    const t0 = performance.now();
    // V8's RegExp needs ~2^n steps here (n = 30: 3.9 s); RE2 is linear.
    expect(re.test('a'.repeat(5000) + 'b')).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('a pattern RE2 refuses matches nothing, and its error reads as Go writes it', () => {
    expect(compileRe2('(?=x)').test('x')).toBe(false);
    expect(re2SyntaxError('(?=x)')).toBe('error parsing regexp: invalid or unsupported Perl syntax: `(?=`');
    expect(re2SyntaxError('\\')).toBe('error parsing regexp: trailing backslash at end of expression: ``');
    expect(re2SyntaxError('a+')).toBeNull();
  });
});
