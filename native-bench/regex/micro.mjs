#!/usr/bin/env node
/**
 * Micro-benchmark of one route-regex match: re2js (RE2 semantics, linear time; what the workers
 * use since issue 18: src/shared/re2.ts) against V8's backtracking RegExp, on the shapes ModelRoute
 * and HTTPRoute manifests use (a header value, a URI, an anchored Gateway path), plus the
 * catastrophic `^(a+)+$` that made a 30-byte header block a worker for 3.9 s on V8.
 *
 * Timing: process.hrtime.bigint() around batches of 1,000 matches, ns per match, p50 and p99 over
 * batches. Run on a shared machine, compare the two columns of one run, not absolute figures.
 *
 * Run:  npm run build && node native-bench/regex/micro.mjs [--batches 300]
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const batches = Number(opt('--batches', '300'));
const dist = path.resolve(opt('--dist', path.join(here, '..', '..', 'dist')));
const { compileRe2, compileRe2Anchored } = await import(pathToFileURL(path.join(dist, 'src', 'shared', 're2.js')).href);

const CASES = [
  { name: 'header ^premium$ (hit)', re: '^premium$', input: 'premium' },
  { name: 'header gold|silver (miss)', re: 'gold|silver', input: 'bronze-tier-customer' },
  { name: 'uri ^/v1/(chat/)?completions$', re: '^/v1/(chat/)?completions$', input: '/v1/chat/completions' },
  { name: 'header [a-z]+-\\d{2,4}', re: '[a-z]+-\\d{2,4}', input: 'x-request-team-2041' },
  { name: 'gateway path /api/v[0-9]+/.* (anchored)', re: '/api/v[0-9]+/.*', input: '/api/v2/users/42/profile', anchored: true },
];
const BATCH = 1000;

function measure(test, input) {
  for (let i = 0; i < 20_000; i++) test(input);
  const per = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) test(input);
    per.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
  per.sort((a, b) => a - b);
  return { p50: per[Math.floor(per.length * 0.5)], p99: per[Math.floor(per.length * 0.99)] };
}

const rows = [];
for (const c of CASES) {
  const v8 = c.anchored ? new RegExp(`^(?:${c.re})$`) : new RegExp(c.re);
  const re2 = c.anchored ? compileRe2Anchored(c.re) : compileRe2(c.re);
  if (v8.test(c.input) !== re2.test(c.input)) throw new Error(`${c.name}: engines disagree`);
  const a = measure((s) => v8.test(s), c.input);
  const b = measure((s) => re2.test(s), c.input);
  rows.push(`| ${c.name} | ${a.p50.toFixed(0)} / ${a.p99.toFixed(0)} | ${b.p50.toFixed(0)} / ${b.p99.toFixed(0)} | ${(b.p50 / a.p50).toFixed(1)}x |`);
}

// The pathological case: V8's time doubles with each byte, RE2's grows linearly.
const patho = [];
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

console.log(`Node ${process.version}, ${batches} batches of ${BATCH} matches per cell (shared machine: compare within a row)\n`);
console.log('| pattern | V8 RegExp ns/match p50 / p99 | re2js ns/match p50 / p99 | re2js / V8 (p50) |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('\n| `^(a+)+$` against a^n b | V8 RegExp ms | re2js ms |');
console.log('|---|---|---|');
for (const r of patho) console.log(r);
