/**
 * The local rate-limit buckets under contention from real worker threads: every thread of a
 * router draws from one budget, so N threads must grant exactly what one thread would.
 *
 * Worker threads get no vitest transform, so beforeAll transpiles the modules the fixture imports
 * (workers/ratelimit/bucket.ts, src/shared/layout.ts) into a temporary directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { allocateRateLimitRegion } from '../../src/shared/layout.js';
import { SharedBuckets, type BucketSpec } from '../../workers/ratelimit/bucket.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = path.join(root, 'test/unit/fixtures/ratelimit-worker.mjs');
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ratelimit-threads-'));
  for (const rel of ['workers/ratelimit/bucket.ts', 'src/shared/layout.ts']) {
    const js = ts.transpileModule(fs.readFileSync(path.join(root, rel), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: rel,
    }).outputText;
    const dst = path.join(dir, rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.writeFileSync(dst, js);
  }
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// A monthly unit: the refill during the test (a few seconds) is far below one token.
const kMonthMs = 2_592_000_000;
const monthly = (capacity: number): BucketSpec => ({ slot: 1, gen: 0, capacity, msPerToken: kMonthMs / capacity });

async function run(threads: number, mode: string, spec: BucketSpec, attempts: number, size: number, sab: SharedArrayBuffer) {
  const control = new SharedArrayBuffer(4);
  const workers = Array.from({ length: threads }, () => new Worker(fixture, {
    workerData: { dir, sab, control, threads, mode, spec, attempts, size },
  }));
  try {
    return await Promise.all(workers.map((w) => new Promise<{ granted: number; tokens: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

describe('shared token buckets across worker threads', () => {
  it('four threads grant exactly the capacity in single-token draws, no more, no less', async () => {
    const sab = allocateRateLimitRegion(4);
    const spec = monthly(20_000);
    const results = await run(4, 'take', spec, 10_000, 1, sab);
    expect(results.reduce((s, r) => s + r.granted, 0)).toBe(20_000);
    expect(new SharedBuckets(sab).available(spec)).toBeLessThan(1);
  }, 30_000);

  it('draws of mixed sizes never overdraw: tokens granted stay within the capacity and fill it to the last draw', async () => {
    const sab = allocateRateLimitRegion(4);
    const spec = monthly(50_000);
    const results = await run(4, 'take', spec, 20_000, 7, sab);
    const tokens = results.reduce((s, r) => s + r.tokens, 0);
    expect(tokens).toBeLessThanOrEqual(50_000);
    // Once a draw was refused, only smaller ones could still fit: at most 6 tokens stay unused.
    expect(tokens).toBeGreaterThan(50_000 - 7);
    // What is left is the remainder plus the refill of the few hundred ms the test took (< 0.05 token).
    expect(new SharedBuckets(sab).available(spec)).toBeCloseTo(50_000 - tokens, 1);
  }, 30_000);

  it('concurrent output charges are all counted (no lost update): the debt is the exact sum', async () => {
    const sab = allocateRateLimitRegion(4);
    const spec = monthly(1000);
    const results = await run(4, 'charge', spec, 5000, 3, sab);
    const charged = results.reduce((s, r) => s + r.tokens, 0);
    expect(charged).toBe(60_000);
    expect(new SharedBuckets(sab).available(spec)).toBeCloseTo(1000 - 60_000, 1);
  }, 30_000);

  it('takes and refunds interleaved across threads leave the bucket where it started', async () => {
    const sab = allocateRateLimitRegion(4);
    const spec = monthly(100);
    const b = new SharedBuckets(sab);
    expect(b.take(spec, 40)).toBe(true);
    const results = await run(4, 'take-refund', spec, 20_000, 5, sab);
    expect(results.every((r) => r.granted > 0)).toBe(true);
    expect(b.available(spec)).toBeCloseTo(60, 2);
  }, 30_000);
});
