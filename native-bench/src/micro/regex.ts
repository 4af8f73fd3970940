/**
 * Micro-benchmark of one route-regex match: re2js (RE2 semantics, linear time; what the workers
 * use since issue 18: src/shared/re2.ts) against V8's backtracking RegExp, on the shapes ModelRoute
 * and HTTPRoute manifests use (a header value, a URI, an anchored Gateway path), plus the
 * catastrophic `^(a+)+$` that made a 30-byte header block a worker for 3.9 s on V8.
 *
 * Timing: process.hrtime.bigint() around batches of 1,000 matches, ns per match, p50 and p99 over
 * batches. Run on a shared machine, compare the two columns of one run, not absolute figures.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

import { importFrom, positive, repoRoot, runIfMain } from '../script.js';

export const REGEX_MICRO_USAGE = `Usage: native-bench regex [--batches N] [--dist DIR]
  (or: node dist/native-bench/src/micro/regex.js [options])

One route-regex match, re2js against V8's RegExp, and the pathological ^(a+)+$.

  --batches N   batches of 1,000 matches per cell (default 300)
  --dist DIR    compiled tree to load src/shared/re2.js from (default: the repository's dist/)
  -h, --help
`;

export interface RegexMicroOptions { help: boolean; batches: number; dist: string }

export function parseRegexMicroArgs(argv: string[], root = repoRoot(import.meta.url)): RegexMicroOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { batches: { type: 'string', default: '300' }, dist: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  return { help: values.help!, batches: positive(values.batches, 'batches')!, dist: path.resolve(values.dist ?? path.join(root, 'dist')) };
}

interface Re2Module {
  compileRe2(re: string): { test(s: string): boolean };
  compileRe2Anchored(re: string): { test(s: string): boolean };
}

const CASES: { name: string; re: string; input: string; anchored?: boolean }[] = [
  { name: 'header ^premium$ (hit)', re: '^premium$', input: 'premium' },
  { name: 'header gold|silver (miss)', re: 'gold|silver', input: 'bronze-tier-customer' },
  { name: 'uri ^/v1/(chat/)?completions$', re: '^/v1/(chat/)?completions$', input: '/v1/chat/completions' },
  { name: 'header [a-z]+-\\d{2,4}', re: '[a-z]+-\\d{2,4}', input: 'x-request-team-2041' },
  { name: 'gateway path /api/v[0-9]+/.* (anchored)', re: '/api/v[0-9]+/.*', input: '/api/v2/users/42/profile', anchored: true },
];
const BATCH = 1000;

function measure(test: (s: string) => boolean, input: string, batches: number): { p50: number; p99: number } {
  for (let i = 0; i < 20_000; i++) test(input);
  const per: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) test(input);
    per.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
  per.sort((a, b) => a - b);
  return { p50: per[Math.floor(per.length * 0.5)], p99: per[Math.floor(per.length * 0.99)] };
}

export async function regexMicroMain(argv: string[]): Promise<number> {
  const o = parseRegexMicroArgs(argv);
  if (o.help) {
    process.stdout.write(REGEX_MICRO_USAGE);
    return 0;
  }
  const { compileRe2, compileRe2Anchored } = await importFrom<Re2Module>(o.dist, 'src/shared/re2.js');
  const rows: string[] = [];
  for (const c of CASES) {
    const v8 = c.anchored ? new RegExp(`^(?:${c.re})$`) : new RegExp(c.re);
    const re2 = c.anchored ? compileRe2Anchored(c.re) : compileRe2(c.re);
    if (v8.test(c.input) !== re2.test(c.input)) throw new Error(`${c.name}: engines disagree`);
    const a = measure((s) => v8.test(s), c.input, o.batches);
    const b = measure((s) => re2.test(s), c.input, o.batches);
    rows.push(`| ${c.name} | ${a.p50.toFixed(0)} / ${a.p99.toFixed(0)} | ${b.p50.toFixed(0)} / ${b.p99.toFixed(0)} | ${(b.p50 / a.p50).toFixed(1)}x |`);
  }

  // The pathological case: V8's time doubles with each byte, RE2's grows linearly.
  const patho: string[] = [];
  for (const n of [16, 20, 22, 24]) {
    const input = 'a'.repeat(n) + 'b';
    let t0 = process.hrtime.bigint();
    /^(a+)+$/.test(input);
    const v8ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const re2 = compileRe2('^(a+)+$');
    t0 = process.hrtime.bigint();
    re2.test(input);
    const re2ms = Number(process.hrtime.bigint() - t0) / 1e6;
    patho.push(`| ${n + 1} bytes | ${v8ms.toFixed(2)} | ${re2ms.toFixed(3)} |`);
  }
  {
    const input = 'a'.repeat(4096) + 'b';
    const re2 = compileRe2('^(a+)+$');
    const t0 = process.hrtime.bigint();
    re2.test(input);
    patho.push(`| 4097 bytes | (not run: ~2^4096 steps) | ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(3)} |`);
  }

  const out = [
    `Node ${process.version}, ${o.batches} batches of ${BATCH} matches per cell (shared machine: compare within a row)`,
    '',
    '| pattern | V8 RegExp ns/match p50 / p99 | re2js ns/match p50 / p99 | re2js / V8 (p50) |',
    '|---|---|---|---|',
    ...rows,
    '',
    '| `^(a+)+$` against a^n b | V8 RegExp ms | re2js ms |',
    '|---|---|---|',
    ...patho,
  ];
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

runIfMain(import.meta.url, regexMicroMain);
