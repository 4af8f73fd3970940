/** The machine and code a result was measured on, recorded in every result file. */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MachineInfo {
  cpu: string;
  cores: number;
  mem_gib: number;
  kernel: string;
  node: string;
  hostname: string;
  /** Full commit hash of the checkout the generator ran from, or null outside git. */
  git_commit: string | null;
  /** Uncommitted changes in that checkout (null outside git). */
  git_dirty: boolean | null;
}

function git(args: string[], cwd: string): string | null {
  try {
    const r = spawnSync('git', args, { cwd, encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? r.stdout.trim() : null;
  } catch {
    return null;
  }
}

let cached: MachineInfo | null = null;

export function machineInfo(): MachineInfo {
  if (cached !== null) return cached;
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1];
  } catch {
    // Not Linux: os.cpus() it is.
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const commit = git(['rev-parse', 'HEAD'], here);
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no'], here);
  cached = {
    cpu: cpu.trim(),
    cores: os.availableParallelism?.() ?? os.cpus().length,
    mem_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    hostname: os.hostname(),
    git_commit: commit,
    git_dirty: status === null ? null : status !== '',
  };
  return cached;
}
