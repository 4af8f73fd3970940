/**
 * Two worker threads scheduling over the same shared memory, as two router workers do: in-flight
 * counts stay exact under concurrent load, and a prefix routed by one worker is routed to the same
 * pod by the other (the prefix index is shared, not per worker).
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocatePrefixIndex, epIndex, kEndpointStride, kEpGen, kEpInflight, kEpRequestsTotal, kEpScrapeState, kScrapeFresh } from '../../src/shared/layout.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import type { SchedEndpoint } from '../../workers/scheduler/types.js';
import { transpileSources } from '../helpers/transpile.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'scheduler-worker.mjs');
let sources: { dir: string; remove(): void };

beforeAll(() => { sources = transpileSources('sched-threads-'); });
afterAll(() => sources?.remove());

function regions(pods: number): { endpointSab: SharedArrayBuffer; prefixSab: SharedArrayBuffer; ep: Int32Array; endpoints: SchedEndpoint[] } {
  const endpointSab = new SharedArrayBuffer(64 * kEndpointStride * 4);
  const ep = new Int32Array(endpointSab);
  const endpoints: SchedEndpoint[] = [];
  for (let i = 0; i < pods; i++) {
    const slot = 10 + i;
    ep[epIndex(slot, kEpGen)] = 1;
    ep[epIndex(slot, kEpScrapeState)] = kScrapeFresh;
    endpoints.push({ slot, gen: 1, podName: `pod-${i}`, namespace: 'default', ip: `127.0.0.${i + 1}`, startedAtSec: 0 });
  }
  return { endpointSab, prefixSab: allocatePrefixIndex(4096), ep, endpoints };
}

function run(data: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fixture, { workerData: { dir: sources.dir, ...data } });
    let result: Record<string, unknown> | null = null;
    w.once('message', (m) => { result = m; });
    w.once('error', reject);
    w.once('exit', (code) => (code === 0 && result !== null ? resolve(result) : reject(new Error(`worker exited with ${code}`))));
  });
}

describe('scheduling from two worker threads over shared memory', () => {
  it('keeps in-flight counts exact under concurrent load and spreads by them', async () => {
    const r = regions(4);
    const iterations = 20_000;
    const common = { endpointSab: r.endpointSab, prefixSab: r.prefixSab, endpoints: r.endpoints, iterations, mode: 'load' };
    const least = { ...DEFAULT_SCHEDULER, filters: [], scores: [{ name: 'least-request', weight: 1 }] };
    const [a, b] = await Promise.all([
      run({ ...common, scheduler: least, prompt: 'worker A' }),
      run({ ...common, scheduler: least, prompt: 'worker B' }),
    ]);
    let total = 0;
    for (const e of r.endpoints) {
      expect(Atomics.load(r.ep, epIndex(e.slot, kEpInflight)), e.podName).toBe(0);
      total += Atomics.load(r.ep, epIndex(e.slot, kEpRequestsTotal));
    }
    expect(total).toBe(2 * iterations);
    // Each thread keeps 8 requests in flight; least-request sees both threads' counts, so no pod
    // is starved or flooded.
    const picks = (a.picks as number[]).map((x, i) => x + (b.picks as number[])[i]);
    for (const p of picks) expect(p).toBeGreaterThan(2 * iterations / 4 / 3);
  }, 60_000);

  it('routes a prefix learned by one worker to the same pod from the other', async () => {
    const r = regions(8);
    const prefixOnly = { ...DEFAULT_SCHEDULER, filters: [], scores: [{ name: 'prefix-cache', weight: 1 }] };
    const prompt = 'A long shared system prompt about contracts and clauses. '.repeat(30);
    const common = { endpointSab: r.endpointSab, prefixSab: r.prefixSab, endpoints: r.endpoints, scheduler: prefixOnly, prompt };
    const first = await run({ ...common, mode: 'route-once' });
    const picks = await Promise.all(Array.from({ length: 4 }, () => run({ ...common, mode: 'pick' })));
    for (const p of picks) expect(p.pod).toBe(first.pod);
  }, 60_000);
});
