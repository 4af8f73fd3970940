/**
 * The shared session-sticky table: TTL, rebinding, LRU eviction within a bucket, deletion, and two
 * real worker threads writing and reading the same table (no torn binding is ever read).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { allocateStickyTable, kStHdrBuckets } from '../../src/shared/layout.js';
import { StickyTable, stickyKeyHash } from '../../workers/sticky/memory-store.js';

const key = (route: string, session: string): [number, number] => {
  const out = new Int32Array(2);
  stickyKeyHash(route, session, out);
  return [out[0]!, out[1]!];
};

describe('stickyKeyHash', () => {
  it('separates routes and sessions, and never yields the free-way key', () => {
    const seen = new Set<string>();
    let reserved = 0;
    for (const route of ['default/a', 'default/b', 'other/a']) {
      for (let s = 0; s < 2000; s++) {
        const [lo, hi] = key(route, 'session-' + s);
        if (lo === 0 && hi === 0) reserved++;
        seen.add(lo + ':' + hi);
      }
    }
    expect(reserved).toBe(0);
    expect(seen.size).toBe(6000);
    // route "a" + session "bc" must differ from route "ab" + session "c"
    expect(key('a', 'bc')).not.toEqual(key('ab', 'c'));
  });
});

describe('StickyTable', () => {
  let now = 1000;
  const table = (entries = 64): StickyTable => new StickyTable(allocateStickyTable(entries, 1000), () => now);

  it('returns the bound slot and generation until the TTL runs out', () => {
    now = 1000;
    const t = table();
    const [lo, hi] = key('ns/r', 'alice');
    expect(t.get(lo, hi)).toBe(-1);
    expect(t.set(lo, hi, 7, 3, 10)).toBe(true);
    expect(t.get(lo, hi)).toBe(7);
    expect(t.lastGen).toBe(3);
    now = 1009;
    expect(t.get(lo, hi)).toBe(7);
    now = 1010;
    expect(t.get(lo, hi)).toBe(-1);
  });

  it('refreshes the TTL and rebinds on a later set of the same key without a second entry', () => {
    now = 1000;
    const t = table();
    const [lo, hi] = key('ns/r', 'bob');
    t.set(lo, hi, 1, 1, 10);
    now = 1008;
    t.set(lo, hi, 2, 1, 10);
    now = 1015;
    expect(t.get(lo, hi)).toBe(2);
    expect(t.entries).toBe(1);
  });

  it('deletes a binding (failover)', () => {
    now = 1000;
    const t = table();
    const [lo, hi] = key('ns/r', 'carol');
    t.set(lo, hi, 4, 1, 100);
    expect(t.delete(lo, hi)).toBe(true);
    expect(t.get(lo, hi)).toBe(-1);
    expect(t.delete(lo, hi)).toBe(false);
    expect(t.entries).toBe(0);
  });

  it('evicts the least recently used binding of a full bucket, and reuses expired ways first', () => {
    now = 1000;
    const sab = allocateStickyTable(4, 1000); // one bucket of four ways
    expect(new Int32Array(sab)[kStHdrBuckets]).toBe(1);
    const t = new StickyTable(sab, () => now);
    const keys = ['s0', 's1', 's2', 's3', 's4'].map((s) => key('ns/r', s));
    for (let i = 0; i < 4; i++) { now = 1000 + i; t.set(keys[i]![0], keys[i]![1], i, 1, 100); }
    now = 1010;
    t.set(keys[0]![0], keys[0]![1], 0, 1, 100); // s0 used again: s1 is now the oldest
    t.set(keys[4]![0], keys[4]![1], 4, 1, 100);
    expect(t.get(keys[1]![0], keys[1]![1])).toBe(-1);
    expect(t.get(keys[0]![0], keys[0]![1])).toBe(0);
    expect(t.get(keys[4]![0], keys[4]![1])).toBe(4);
    expect(t.evictions).toBe(1);
    expect(t.entries).toBe(4);
  });
});

describe('StickyTable across threads', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  let dir = '';

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sticky-threads-'));
    for (const rel of ['workers/sticky/memory-store.ts', 'src/shared/layout.ts']) {
      const js = ts.transpileModule(fs.readFileSync(path.join(root, rel), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 }, fileName: rel,
      }).outputText;
      const dst = path.join(dir, rel.replace(/\.ts$/, '.js'));
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.writeFileSync(dst, js);
    }
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  });
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  // Each thread binds session i to slot (i * 31 + role) % 1000 with generation = slot + 1, over and
  // over, and reads every session back: a read must return -1 or a (slot, gen) pair that one of the
  // two writers wrote for that very session; anything else is a torn read.
  const body = `
    import { workerData, parentPort } from 'node:worker_threads';
    const { StickyTable, stickyKeyHash } = await import(workerData.url);
    const t = new StickyTable(workerData.sab, () => 5000);
    const k = new Int32Array(2);
    let torn = 0, hits = 0, writes = 0;
    const deadline = Date.now() + 1500;
    for (let round = 0; round < 200 && Date.now() < deadline; round++) {
      for (let i = 0; i < 3000; i++) {
        stickyKeyHash('ns/route', 's' + i, k);
        const slot = (i * 31 + workerData.role) % 1000;
        if (t.set(k[0], k[1], slot, slot + 1, 3600)) writes++;
        const got = t.get(k[0], k[1]);
        if (got === -1) continue;
        hits++;
        const ok = (got === (i * 31) % 1000 || got === (i * 31 + 1) % 1000) && t.lastGen === got + 1;
        if (!ok) torn++;
      }
    }
    parentPort.postMessage({ torn, hits, writes });
  `;

  it('never returns a torn or foreign binding while two threads write the same keys', async () => {
    const sab = allocateStickyTable(1024, 4000);
    const run = (role: number): Promise<{ torn: number; hits: number; writes: number }> => new Promise((resolve, reject) => {
      const w = new Worker(new URL('data:text/javascript,' + encodeURIComponent(body)), { workerData: { url: pathToFileURL(path.join(dir, 'workers/sticky/memory-store.js')).href, sab, role } });
      w.once('message', resolve);
      w.once('error', reject);
    });
    const [a, b] = await Promise.all([run(0), run(1)]);
    expect(a.torn + b.torn).toBe(0);
    expect(a.hits).toBeGreaterThan(0);
    expect(b.writes).toBeGreaterThan(0);
  }, 30_000);
});
