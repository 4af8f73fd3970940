import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/harness.js';

describe('application log', () => {
  it('drops and counts lines instead of buffering without bound while stderr is not read', async () => {
    // 30 MB of log lines into a stderr pipe nobody reads (the pipe holds 64 KiB).
    const script = `
      const { createLogger, droppedLogLines, LOG_BUFFER_BYTES } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'log.js'))});
      const log = createLogger('info');
      const big = 'x'.repeat(1000);
      for (let i = 0; i < 30000; i++) log.info({ big, i }, 'flood');
      process.stdout.write(JSON.stringify({ dropped: droppedLogLines(), limit: LOG_BUFFER_BYTES }) + '\\n');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    // The child cannot exit cleanly (its final flush waits for the pipe): killed once it reported.
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve();
    }));
    child.kill('SIGKILL');
    const r = JSON.parse(out.trim()) as { dropped: number; limit: number };
    // At most limit / line size lines can have been kept (plus the pipe's 64 KiB).
    expect(r.dropped).toBeGreaterThan(30000 - Math.ceil((r.limit + 65536) / 1000));
  });
});
