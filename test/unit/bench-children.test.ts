/**
 * An interrupted benchmark command stops what it started: SIGTERM to `native-bench` (here
 * `ceiling`, whose trivial server is a child process) ends the command with 143 and the child
 * server with it, instead of leaving it running (as `compare` used to leave its router).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', '..', 'native-bench', 'bin', 'native-bench.js');

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('native-bench children', () => {
  it('stops the servers a command started when the command is terminated', async () => {
    const port = String(25_000 + (process.pid % 5000));
    const cmd = spawn(process.execPath, [BIN, 'ceiling', '--threads', '1', '--requests', '300000', '--server-procs', '1', '--port', port], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    cmd.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => cmd.once('exit', (code) => resolve(code)));
    // The server's own process tree (its primary and the primary's cluster workers), to clean up
    // after a failure.
    let servers: number[] = [];
    try {
      await until('the trivial server', () => childrenOf(cmd.pid!).length > 0, 30_000);
      await until('its worker', () => childrenOf(childrenOf(cmd.pid!)[0]).length > 0, 30_000);
      servers = childrenOf(cmd.pid!);
      servers = [...servers, ...servers.flatMap(childrenOf)];
      // Let the load start, so the command is mid-run when it is stopped.
      await new Promise((r) => setTimeout(r, 1000));
      cmd.kill('SIGTERM');
      expect(await exited, stderr).toBe(143);
      for (const pid of servers) await until(`server ${pid} to stop`, () => !alive(pid), 10_000);
    } finally {
      if (cmd.exitCode === null && cmd.signalCode === null) cmd.kill('SIGKILL');
      for (const pid of servers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
