/**
 * Reader/writer concurrency suite for the shared prefix index (the counterpart of Kthena's
 * datastore/datarace_test.go): two real worker threads insert and match on the same
 * SharedArrayBuffer, then the main thread recounts the table.
 *
 * Worker threads get no vitest transform, so beforeAll transpiles the three TypeScript modules
 * (prefix-index, prefix-hash, layout) with the TypeScript compiler API into a temporary directory
 * that test/unit/fixtures/prefix-index-worker.mjs imports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import {
  allocatePrefixIndex, epIndex, kEndpointStride, kEpGen, kEpPrefixEntries,
  kPxHashHi, kPxHashLo, kPxHdrBuckets, kPxHdrEntries, kPxHdrEvictions, kPxSeq, kPxSlot, kPxSlotGen, kPxWays,
  pxWayIndex,
} from '../../src/shared/layout.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = path.join(root, 'test/unit/fixtures/prefix-index-worker.mjs');
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prefix-index-threads-'));
  for (const rel of ['workers/scheduler/prefix-index.ts', 'workers/scheduler/prefix-hash.ts', 'src/shared/layout.ts']) {
    const src = fs.readFileSync(path.join(root, rel), 'utf8');
    const js = ts.transpileModule(src, {
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

interface Pod { slot: number; gen: number; modelId: number }
interface Report {
  role: string; ops: number; torn: number; firstTorn: unknown[]; matches: number; crossMatches: number;
  evictionsByModelId: number[];
}

const podA: Pod = { slot: 1, gen: 5, modelId: 0 };
const podB: Pod = { slot: 2, gen: 7, modelId: 1 };

function regions(entries: number) {
  const prefixSab = allocatePrefixIndex(entries);
  const endpointSab = new SharedArrayBuffer(4 * kEndpointStride * 4);
  const ep = new Int32Array(endpointSab);
  ep[epIndex(podA.slot, kEpGen)] = podA.gen;
  ep[epIndex(podB.slot, kEpGen)] = podB.gen;
  ep[epIndex(3, kEpGen)] = 9;
  return { prefixSab, endpointSab, ep, px: new Int32Array(prefixSab) };
}

interface Opts { cap: number; hammerShared: boolean; pod?: Pod }

function start(r: ReturnType<typeof regions>, control: SharedArrayBuffer, role: 'A' | 'B', { pod: podOverride, ...opts }: Opts) {
  const pod = podOverride ?? (role === 'A' ? podA : podB);
  const other = role === 'A' ? podB : podA;
  const worker = new Worker(fixture, {
    workerData: {
      dir, prefixSab: r.prefixSab, endpointSab: r.endpointSab, control, role, pod, other,
      iterations: 400_000, timeBudgetMs: 1500, ...opts,
    },
  });
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<(m: Record<string, unknown>) => void> = [];
  worker.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m); else messages.push(m);
  });
  const failed = new Promise<never>((_, reject) => {
    worker.on('error', reject);
  });
  const next = () => Promise.race([
    failed,
    new Promise<Record<string, unknown>>((resolve) => {
      const m = messages.shift();
      if (m) resolve(m); else waiters.push(resolve);
    }),
  ]);
  return { worker, next };
}

function census(r: ReturnType<typeof regions>) {
  let occupied = 0;
  const live = new Map<number, number>();
  const buckets = r.px[kPxHdrBuckets];
  for (let b = 0; b < buckets; b++) {
    for (let w = 0; w < kPxWays; w++) {
      const p = pxWayIndex(b, w);
      expect(Atomics.load(r.px, p + kPxSeq) & 1).toBe(0); // no way left locked
      if (r.px[p + kPxHashLo] === 0 && r.px[p + kPxHashHi] === 0) continue;
      occupied++;
      const slot = r.px[p + kPxSlot];
      expect(r.px[p + kPxSlotGen]).toBe(r.ep[epIndex(slot, kEpGen)]);
      live.set(slot, (live.get(slot) ?? 0) + 1);
    }
  }
  return { occupied, live };
}

describe('prefix index shared by two worker threads', () => {
  it('never serves a torn entry, keeps counters exact, and shows each thread the other one\'s inserts', async () => {
    const r = regions(32); // 4 buckets of 8 ways: every insert contends and evicts
    const control = new SharedArrayBuffer(16);
    const a = start(r, control, 'A', { cap: 1_000_000, hammerShared: false });
    const b = start(r, control, 'B', { cap: 1_000_000, hammerShared: false });
    try {
      const [ra, rb] = await Promise.all([a.next(), b.next()]) as unknown as [Report, Report];
      expect(ra.firstTorn).toEqual([]);
      expect(rb.firstTorn).toEqual([]);
      expect(ra.torn + rb.torn).toBe(0);
      expect(ra.ops).toBeGreaterThan(10_000);
      expect(rb.ops).toBeGreaterThan(10_000);
      expect(ra.matches).toBeGreaterThan(0);
      expect(ra.crossMatches + rb.crossMatches).toBeGreaterThan(0);

      const { occupied, live } = census(r);
      expect(Atomics.load(r.px, kPxHdrEntries)).toBe(occupied);
      expect(occupied).toBe(32);
      expect(Atomics.load(r.ep, epIndex(podA.slot, kEpPrefixEntries))).toBe(live.get(podA.slot) ?? 0);
      expect(Atomics.load(r.ep, epIndex(podB.slot, kEpPrefixEntries))).toBe(live.get(podB.slot) ?? 0);
      const evictions = Atomics.load(r.px, kPxHdrEvictions);
      expect(evictions).toBeGreaterThan(0);
      // Every eviction was counted once, by the worker that made it, under the evicted entry's model.
      const perModel = [0, 1].map((m) => ra.evictionsByModelId[m] + rb.evictionsByModelId[m]);
      expect(perModel[0] + perModel[1]).toBe(evictions);

      // Handshake: a prefix inserted by thread A is matched by thread B, and the other way round.
      a.worker.postMessage({ type: 'insert-marker', lo: 0x7ab0, hi: 0x7ab1 });
      expect(await a.next()).toEqual({ type: 'inserted' });
      b.worker.postMessage({ type: 'match-marker', lo: 0x7ab0, hi: 0x7ab1 });
      expect(await b.next()).toEqual({ type: 'matched', found: 1, matchLen: 1 });
      b.worker.postMessage({ type: 'insert-marker', lo: 0x7ac0, hi: 0x7ac1 });
      expect(await b.next()).toEqual({ type: 'inserted' });
      a.worker.postMessage({ type: 'match-marker', lo: 0x7ac0, hi: 0x7ac1 });
      expect(await a.next()).toEqual({ type: 'matched', found: 1, matchLen: 1 });
    } finally {
      await Promise.all([a.worker.terminate(), b.worker.terminate()]);
    }
  });

  it('holds the per-pod cap within one entry per concurrent writer', async () => {
    const r = regions(256); // 32 buckets
    // Both threads insert the shared family for the same pod (slot 1, gen 5) with cap 20.
    const control = new SharedArrayBuffer(16);
    const cap = 20;
    const a = start(r, control, 'A', { cap, hammerShared: true });
    const b = start(r, control, 'B', { cap, hammerShared: true, pod: podA });
    try {
      const [ra, rb] = await Promise.all([a.next(), b.next()]) as unknown as [Report, Report];
      expect(ra.torn + rb.torn).toBe(0);
      const { occupied, live } = census(r);
      const held = Atomics.load(r.ep, epIndex(podA.slot, kEpPrefixEntries));
      expect(held).toBe(live.get(podA.slot) ?? 0);
      expect(held).toBeGreaterThanOrEqual(cap);
      expect(held).toBeLessThanOrEqual(cap + 1);
      expect(Atomics.load(r.px, kPxHdrEntries)).toBe(occupied);
    } finally {
      await Promise.all([a.worker.terminate(), b.worker.terminate()]);
    }
  });
});
