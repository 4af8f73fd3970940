/** `native-bench policy`: argument handling, the figures of a configuration, and the report shape. */
import { describe, expect, it } from 'vitest';

import { imbalance, parsePolicyArgs, policyTable, quantile, summarize, words, type Sample } from '../../native-bench/src/policy.js';
import { Rng } from '../../native-bench/src/rng.js';
import { main } from '../../native-bench/src/cli.js';

const s = (user: string, ttftMs: number, o: Partial<Sample> = {}): Sample => ({ user, ttftMs, e2eMs: ttftMs + 10, promptTokens: 100, cachedTokens: 0, pod: 'p0', ok: true, ...o });

describe('native-bench policy arguments', () => {
  it('requires a known scenario and positive numbers', () => {
    expect(parsePolicyArgs(['--scenario', 'fairness', '--seconds', '12.5', '--users', '3', '--json', 'x.json'])).toEqual({
      scenario: 'fairness', seconds: 12.5, timeScale: undefined, pods: undefined, users: 3, seed: undefined, json: 'x.json',
    });
    expect(parsePolicyArgs(['-h'])).toBe('help');
    expect(() => parsePolicyArgs([])).toThrow(/--scenario must be one of fairness, multi-turn, replicas/);
    expect(() => parsePolicyArgs(['--scenario', 'replicas', '--pods', '2.5'])).toThrow(/--pods must be a positive integer/);
    expect(() => parsePolicyArgs(['--scenario', 'replicas', '--seconds', '0'])).toThrow(/--seconds must be a positive number/);
  });

  it('answers a usage error with exit code 2 through the CLI', async () => {
    const err = process.stderr.write;
    let text = '';
    process.stderr.write = ((c: string) => { text += c; return true; }) as typeof process.stderr.write;
    try {
      expect(await main(['policy', '--scenario', 'nope'])).toBe(2);
    } finally {
      process.stderr.write = err;
    }
    expect(text).toMatch(/native-bench policy: --scenario must be one of/);
  });
});

describe('native-bench policy figures', () => {
  it('splits light and heavy users, and counts errors apart', () => {
    const samples = [s('heavy', 900), s('heavy', 1100), s('light-0', 50), s('light-1', 70), s('light-0', 60, { ok: false, ttftMs: -1 })];
    const r = summarize('fairness on', samples, 10, (u) => u !== 'heavy');
    expect(r).toMatchObject({ name: 'fairness on', requests: 4, errors: 1, requests_per_s: 0.4, light_requests: 2, heavy_requests: 2, light_ttft_p50_ms: 50, light_ttft_p99_ms: 70, heavy_ttft_p50_ms: 900 });
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([5, 1, 3], 0.5)).toBe(3);
  });

  it('computes the prefix-cache hit rate from the engines\' usage, and requests per pod', () => {
    const r = summarize('sticky', [s('a', 10, { promptTokens: 1000, cachedTokens: 900, pod: 'p1' }), s('b', 20, { promptTokens: 1000, cachedTokens: 100, pod: 'p0' })], 1);
    expect(r.cache_hit_rate).toBe(0.5);
    expect(r.backends).toEqual({ p0: 1, p1: 1 });
  });

  it('measures imbalance as the mean spread and coefficient of variation of per-pod in-flight, idle samples left out', () => {
    const im = imbalance([[2, 2, 2, 0], [1, 1, 1, 1], [0, 0, 0, 0]]);
    expect(im.spread).toBe(1);
    expect(im.cv).toBeCloseTo((Math.sqrt(0.75) / 1.5 + 0) / 2, 9);
    expect(imbalance([])).toEqual({ spread: null, cv: null });
  });

  it('prints one table per scenario with one row per configuration', () => {
    const f = policyTable({ scenario: 'fairness', rows: [summarize('fairness off', [s('heavy', 600), s('light-0', 700)], 1, (u) => u !== 'heavy')] });
    expect(f.split('\n')[0]).toMatch(/^\| configuration \| light users TTFT p50 ms \|/);
    expect(f).toMatch(/\| fairness off \| 700 \| 700 \| 600 \| 1 \| 1 \| 0 \|/);
    const m = policyTable({ scenario: 'multi-turn', rows: [summarize('default scheduler', [s('c', 55, { cachedTokens: 68 })], 1)] });
    expect(m).toMatch(/\| default scheduler \| 55 \| 55 \| 68% \| 1\.00 \| 0 \|/);
    const row = { ...summarize('shared in-flight (Redis)', [s('u0', 16, { pod: 'p1' }), s('u1', 18, { pod: 'p0' })], 2), imbalance_spread: 1.03, imbalance_cv: 0.43 };
    expect(policyTable({ scenario: 'replicas', rows: [row] })).toMatch(/\| shared in-flight \(Redis\) \| 1\.03 \| 0\.43 \| 16 \| 18 \| 1\.00 \| 1 \/ 1 \| 0 \|/);
  });

  it('makes deterministic filler text of the asked length, distinct per tag', () => {
    const a = words(new Rng(1), 'conv-1', 64);
    expect(a).toHaveLength(256);
    expect(words(new Rng(1), 'conv-1', 64)).toBe(a);
    expect(words(new Rng(1), 'conv-2', 64).startsWith('conv-2 ')).toBe(true);
  });
});
