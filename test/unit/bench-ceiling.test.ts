/** `native-bench ceiling`: the generator alone against a trivial server, per thread count. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

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
      for (const r of j.rows) expect(r.requests_per_s).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
