/**
 * `native-bench compare` end to end on a tiny fleet: the command contract (JSON shape with one
 * entry per configuration, `random` and `default` present) and that every configuration really
 * ran through its own router and simulated fleet.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, ROOT, tempDir } from './harness.js';

let dir = '';
afterAll(async () => { if (dir) await cleanup(dir); });

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'native-bench', 'bin', 'native-bench.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('native-bench compare', () => {
  it('writes one entry per configuration with the contract fields, random and default included', async () => {
    dir = await tempDir('native-bench-compare-');
    const json = path.join(dir, 'out.json');
    const r = await run(['compare', '--workload', 'long-prefix', '--quick', '--configs', 'random,least-request,default,round-robin (no router)',
      '--groups', '3', '--per-group', '2', '--concurrency', '3', '--pods', '2', '--time-scale', '3', '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(json, 'utf8'));
    expect(out.workload).toBe('long-prefix');
    expect(out.configs.map((c: { name: string }) => c.name)).toEqual(['random', 'least-request', 'default', 'round-robin (no router)']);
    for (const c of out.configs) {
      for (const k of ['requests_per_s', 'output_tokens_per_s', 'ttft_p50_ms', 'ttft_p99_ms', 'itl_p50_ms', 'itl_p99_ms', 'goodput_rps', 'errors']) {
        expect(c, `${c.name}.${k}`).toHaveProperty(k);
      }
      expect(c.requests_per_s).toBeGreaterThan(0);
      expect(c.errors).toBe(0);
      // 6 requests, each answered by a pod of this configuration's own fleet.
      expect(Object.values(c.backends as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(6);
      // What the engines did: every prompt of these 6 requests was prefilled somewhere.
      expect(c.fleet.prefill_tokens, c.name).toBeGreaterThan(0);
      expect(c.fleet.busy_share, c.name).toBeGreaterThan(0);
    }
    expect(r.stdout).toContain('What the simulated engines did');
    expect(r.stdout).toContain('| random |');
  }, 120_000);

  it('refuses an unknown workload or configuration with a usage error (exit 2)', async () => {
    const r = await run(['compare', '--workload', 'medium']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--workload must be long-prefix or low-sharing');
    const c = await run(['compare', '--workload', 'long-prefix', '--configs', 'random,fastest']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('unknown configuration "fastest"');
  });
});

describe('native-bench pd', () => {
  it('runs the PD fleet and the aggregated one through the router, and the overhead targets', async () => {
    const d = await tempDir('native-bench-pd-');
    try {
      const json = path.join(d, 'pd.json');
      const r = await run(['pd', '--prompts', '2', '--per-prompt', '3', '--concurrency', '3', '--system-len', '64', '--question-len', '64',
        '--output-len', '8', '--overhead-requests', '30', '--overhead-concurrency', '2', '--json', json]);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(readFileSync(json, 'utf8'));
      expect(out.setup).toMatchObject({ groups: 2, prefillPerGroup: 2, decodePerGroup: 2, pods: 8, connector: 'nixl' });
      const [pd, agg] = out.serving as { name: string; errors: number; requests_per_s: number; backends: Record<string, number> }[];
      expect(pd.name).toMatch(/^PD nixl/);
      expect(agg.name).toMatch(/^aggregated/);
      for (const row of [pd, agg]) {
        expect(row.errors).toBe(0);
        expect(Object.values(row.backends).reduce((a, b) => a + b, 0)).toBe(6);
      }
      // Through the PD fleet every answer comes from a decode pod; aggregated pods answer themselves.
      expect(Object.keys(pd.backends).every((k) => k.includes('-decode-'))).toBe(true);
      expect(Object.keys(agg.backends).every((k) => k.startsWith('agg-'))).toBe(true);
      expect(out.overhead.map((o: { name: string }) => o.name)).toEqual(['direct to the pod (no router)', 'router, aggregated (one leg)', 'router, PD nixl (two legs)']);
      for (const o of out.overhead) {
        expect(o.errors).toBe(0);
        expect(o.latency_ms.count).toBe(30);
      }
      expect(r.stdout).toContain('added p50 vs one leg');
    } finally {
      await cleanup(d);
    }
  }, 120_000);
});
