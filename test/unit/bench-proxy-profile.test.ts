import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// @ts-expect-error: the proxy benchmark is plain JavaScript (native-bench/proxy/*.mjs), without types
import { attribute, profileMarkdown, workerProfiles } from '../../native-bench/proxy/profile.mjs';

interface Frame { functionName: string; url: string }

/** A V8 .cpuprofile whose samples are (frame index, delta µs) pairs, starting at `startUs`. */
function profile(frames: Frame[], samples: [number, number][], startUs: number): string {
  const nodes = frames.map((f, i) => ({ id: i + 1, callFrame: { ...f, scriptId: '0', lineNumber: 0, columnNumber: 0 }, children: [] }));
  return JSON.stringify({
    nodes,
    startTime: startUs,
    endTime: startUs + samples.reduce((n, s) => n + s[1], 0),
    samples: samples.map((s) => s[0] + 1),
    timeDeltas: samples.map((s) => s[1]),
  });
}

const FRAMES: Frame[] = [
  { functionName: '(idle)', url: '' },
  { functionName: 'writeBuffer', url: '' },
  { functionName: '#flush', url: 'file:///repo/dist/workers/request/response.js' },
  { functionName: 'insert', url: 'node:internal/timers' },
  { functionName: 'parse', url: 'file:///repo/node_modules/undici/lib/core.js' },
  { functionName: '(garbage collector)', url: '' },
];

describe('proxy benchmark profile attribution', () => {
  it('sums worker samples inside the measured windows by bucket and divides by the requests of the cell', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'prof-test-'));
    try {
      // Thread 1 only ran before the window (startup): none of its samples count.
      writeFileSync(path.join(dir, 'CPU.20261207.120000.42.1.002.cpuprofile'), profile(FRAMES, [
        [2, 500], // t=1500
        [1, 100], // t=1600
      ], 1000));
      writeFileSync(path.join(dir, 'CPU.20261207.120000.42.2.003.cpuprofile'), profile(FRAMES, [
        [1, 2000], // t=4000: inside [3000, 6000)
        [2, 500], // t=4500
        [0, 500], // t=5000: idle
        [3, 250], // t=5250
        [4, 250], // t=5500
        [5, 250], // t=5750
        [1, 1000], // t=6750: after the window
      ], 2000));
      // The main thread's profile is not a worker's and must be ignored.
      writeFileSync(path.join(dir, 'CPU.20261207.120000.42.0.001.cpuprofile'), profile(FRAMES, [[1, 4000]], 1000));
      const files = workerProfiles(dir);
      expect(files.map((f: string) => path.basename(f)).sort()).toEqual([
        'CPU.20261207.120000.42.1.002.cpuprofile',
        'CPU.20261207.120000.42.2.003.cpuprofile',
      ]);

      const out = attribute(files, [{ key: 'json|64', startUs: 3000, endUs: 6000, requests: 10 }]);
      const cell = out.get('json|64');
      expect(cell.requests).toBe(10);
      expect(cell.idleUs).toBe(500);
      expect(cell.busyUs).toBe(2000 + 500 + 250 + 250 + 250);
      const byName = Object.fromEntries(cell.buckets.map((b: { bucket: string; us: number }) => [b.bucket, b.us]));
      expect(byName).toEqual({
        'native writeBuffer': 2000,
        'workers/request/response': 500,
        'node timers': 250,
        'package undici': 250,
        '(garbage collector)': 250,
      });
      expect(cell.buckets[0]).toMatchObject({ bucket: 'native writeBuffer', usPerReq: 200 });
      expect(cell.buckets[0].share).toBeCloseTo(2000 / 3250);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('adds the requests of several runs of one cell and reports CPU per request spread over the shares', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'prof-test-'));
    try {
      writeFileSync(path.join(dir, 'CPU.20261207.120000.7.1.002.cpuprofile'), profile(FRAMES, [[1, 100], [2, 100], [1, 100], [2, 100]], 0));
      const out = attribute(workerProfiles(dir), [
        { key: 'sse|1', startUs: 0, endUs: 250, requests: 3 },
        { key: 'sse|1', startUs: 250, endUs: 1000, requests: 5 },
      ]);
      const cell = out.get('sse|1');
      expect(cell.requests).toBe(8);
      expect(cell.busyUs).toBe(400);
      const md = profileMarkdown([{ target: 'router', case: 'sse', concurrency: 1, cpuUsPerReq: 40, ...cell }]);
      expect(md).toContain('### router, sse c=1: 40.0 µs CPU per request');
      expect(md).toContain('| native writeBuffer | 50.0% | 20.0 |');
      expect(md).toContain('| workers/request/response | 50.0% | 20.0 |');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
