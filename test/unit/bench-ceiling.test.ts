/** `native-bench ceiling`: the generator alone against a trivial server, per thread count. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { generatorLimit } from '../../native-bench/src/ceiling.js';
import { main } from '../../native-bench/src/cli.js';

describe('native-bench ceiling', () => {
  it('drives every request through 1 and 2 threads and records requests per second', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-ceiling-'));
    try {
      const port = String(20_000 + (process.pid % 5000));
      const code = await main(['ceiling', '--requests', '300', '--threads', '1,2', '--max-concurrency', '16', '--server-procs', '1', '--port', port, '--json', join(dir, 'c.json')]);
      expect(code).toBe(0);
      const j = JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8'));
      expect(j.schema).toBe('native-bench/ceiling/v1');
      expect(j.rows.map((r: { threads: number; ok: number; errors: number }) => [r.threads, r.ok, r.errors])).toEqual([[1, 300, 0], [2, 300, 0]]);
      for (const r of j.rows) {
        expect(r.requests_per_s).toBeGreaterThan(0);
        // One utilisation per generator thread, and the limit it implies is at least what was driven.
        expect(r.generator_busy).toHaveLength(r.threads);
        for (const b of r.generator_busy) expect(b > 0 && b <= 1, `busy ${JSON.stringify(r.generator_busy)}`).toBe(true);
        expect(r.generator_limit_rps).toBeGreaterThanOrEqual(r.requests_per_s);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('extrapolates each thread share of the rate by its busy share', () => {
    // 1,000 req/s over two threads busy 50 % and 25 %: 500 / 0.5 + 500 / 0.25 = 3,000.
    expect(generatorLimit(1000, [0.5, 0.25])).toBe(3000);
    // A saturated thread caps at what it drove.
    expect(generatorLimit(800, [1])).toBe(800);
    expect(generatorLimit(800, [])).toBeNull();
    expect(generatorLimit(800, [0.5, 0])).toBeNull();
  });
});
