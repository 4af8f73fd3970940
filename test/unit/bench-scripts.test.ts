/**
 * The stand-alone benchmark scripts of native-bench (scheduler, regex and rate-limit
 * micro-benchmarks, the rate-limit and scrape benchmarks): their option parsing, and the CLI's
 * refusal of bad options with exit code 2 before anything is measured.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { main } from '../../native-bench/src/cli.js';
import { parseRatelimitMicroArgs } from '../../native-bench/src/micro/ratelimit.js';
import { parseRegexMicroArgs } from '../../native-bench/src/micro/regex.js';
import { parseSchedulerMicroArgs } from '../../native-bench/src/micro/scheduler.js';
import { parseRatelimitBenchArgs } from '../../native-bench/src/ratelimit-bench.js';
import { ipAt, parseMockPodsArgs } from '../../native-bench/src/scrape/mock-pods.js';
import { parseScrapeBenchArgs } from '../../native-bench/src/scrape/parse-bench.js';
import { isMain, positive, positiveList, repoRoot, ScriptUsageError } from '../../native-bench/src/script.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('native-bench scheduler options', () => {
  it('defaults to every scenario, the repository dist/ and writing the result', () => {
    expect(parseSchedulerMicroArgs([], '/repo')).toEqual({
      help: false, dist: '/repo/dist', quick: false, sizes: [8, 64, 512, 4096], prompts: [1024, 102400], rps: 1000, write: true,
    });
  });

  it('takes another compiled tree, a subset and --no-write', () => {
    const o = parseSchedulerMicroArgs(['--dist', '/tmp/build', '--quick', '--sizes', '64', '--prompts', '1024,2048', '--rps', '100', '--no-write'], '/repo');
    expect(o).toMatchObject({ dist: '/tmp/build', quick: true, sizes: [64], prompts: [1024, 2048], rps: 100, write: false });
  });

  it('refuses a bad list, a bad number and an unknown option, naming it', () => {
    expect(() => parseSchedulerMicroArgs(['--sizes', '8,,64'], '/repo')).toThrow(/--sizes must be a comma-separated list/);
    expect(() => parseSchedulerMicroArgs(['--sizes', '8,x'], '/repo')).toThrow(ScriptUsageError);
    expect(() => parseSchedulerMicroArgs(['--rps', '0'], '/repo')).toThrow(/--rps must be a positive number, got "0"/);
    expect(() => parseSchedulerMicroArgs(['--size', '8'], '/repo')).toThrow(/--size/);
  });
});

describe('native-bench regex and ratelimit-micro options', () => {
  it('default and override', () => {
    expect(parseRegexMicroArgs([], '/r')).toEqual({ help: false, batches: 300, dist: '/r/dist' });
    expect(parseRegexMicroArgs(['--batches', '5', '--dist', 'rel'], '/r').batches).toBe(5);
    expect(parseRegexMicroArgs(['--dist', 'rel'], '/r').dist).toBe(path.resolve('rel'));
    expect(parseRatelimitMicroArgs([], '/r')).toEqual({ help: false, requests: 2_000_000, rounds: 3, dist: '/r/dist' });
    expect(parseRatelimitMicroArgs(['--requests', '10', '--rounds', '1'], '/r')).toMatchObject({ requests: 10, rounds: 1 });
  });

  it('refuses fractions and negatives where an integer count is needed', () => {
    expect(() => parseRegexMicroArgs(['--batches', '2.5'], '/r')).toThrow(/--batches must be a positive integer, got "2.5"/);
    expect(() => parseRatelimitMicroArgs(['--rounds', '-1'], '/r')).toThrow(/--rounds/);
  });
});

describe('native-bench ratelimit options', () => {
  it('defaults as the script always had them', () => {
    expect(parseRatelimitBenchArgs([])).toEqual({ help: false, workers: 1, concurrency: 32, roundMs: 3000, rounds: 3, port: 18480, redisPort: 18479 });
    expect(parseRatelimitBenchArgs(['--round-s', '0.5', '--workers', '2']).roundMs).toBe(500);
  });

  it('refuses a port out of range', () => {
    expect(() => parseRatelimitBenchArgs(['--port', '70000'])).toThrow(/--port must be a port/);
    expect(() => parseRatelimitBenchArgs(['--redis-port', 'x'])).toThrow(/--redis-port/);
  });
});

describe('native-bench scrape options', () => {
  it('defaults and the live mode', () => {
    expect(parseScrapeBenchArgs([], '/r')).toEqual({
      help: false, http: false, dist: '/r/dist', pods: 1000, iterations: 20000, seconds: 10, intervalMs: 1000, port: 18100, write: true,
    });
    expect(parseScrapeBenchArgs(['--http', '--pods', '20', '--seconds', '1.5', '--no-write'], '/r')).toMatchObject({ http: true, pods: 20, seconds: 1.5, write: false });
  });

  it('mock pods: loopback addresses only, counted up from the base', () => {
    expect(parseMockPodsArgs([])).toEqual({ pods: 1000, base: '127.0.40.1', port: 18100 });
    expect(() => parseMockPodsArgs(['--base', '10.0.0.1'])).toThrow(/--base must be a loopback IPv4 address/);
    expect(() => parseMockPodsArgs(['--base', '127.0.300.1'])).toThrow(/--base/);
    expect(ipAt('127.0.40.1', 0)).toBe('127.0.40.1');
    expect(ipAt('127.0.40.250', 10)).toBe('127.0.41.4');
  });
});

describe('script helpers', () => {
  it('positive and positiveList', () => {
    expect(positive(undefined, 'x')).toBeUndefined();
    expect(positive('3', 'x')).toBe(3);
    expect(() => positive(' ', 'x')).toThrow(/--x/);
    expect(positiveList('1, 2,3', 'x')).toEqual([1, 2, 3]);
  });

  it('finds the repository root and knows it is not the program', () => {
    expect(repoRoot(import.meta.url)).toBe(ROOT);
    expect(isMain(import.meta.url)).toBe(false);
  });
});

describe('the native-bench CLI', () => {
  it('answers a bad option of a script command with exit 2 and the message, measuring nothing', async () => {
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
    try {
      expect(await main(['regex', '--batches', '0'])).toBe(2);
      expect(await main(['ratelimit', '--port', '0'])).toBe(2);
      expect(await main(['ratelimit-micro', '--requests', 'many'])).toBe(2);
      expect(await main(['regex', '--bogus'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(err.join('')).toMatch(/native-bench regex: --batches must be a positive integer, got "0"/);
    expect(err.join('')).toMatch(/native-bench ratelimit: --port must be a positive integer/);
    expect(err.join('')).toMatch(/native-bench ratelimit-micro: --requests/);
    expect(err.join('')).toMatch(/native-bench regex: Unknown option '--bogus'/);
  });
});
