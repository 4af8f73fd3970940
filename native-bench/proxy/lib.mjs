// Helpers shared by the proxy benchmark scripts: process CPU accounting from /proc, free ports,
// polling, order statistics. Plain ESM so the benchmark runs without a build step.

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

let clkTck = 0;

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicks() {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** Fields of /proc/<pid>/stat after the command name, which may itself contain spaces and parentheses. */
function statFields(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** utime+stime of one process (all of its threads) in microseconds; 0 once it has exited. */
export function cpuMicros(pid) {
  try {
    const f = statFields(pid);
    // f[0] is field 3 (state), so utime (14) and stime (15) are f[11] and f[12].
    return ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicks();
  } catch {
    return 0;
  }
}

export function cpuMicrosOf(pids) {
  let total = 0;
  for (const pid of pids) total += cpuMicros(pid);
  return total;
}

/** `pid` and all its descendants (e.g. an nginx master and its workers), from /proc. */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(statFields(name)[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // The process exited between readdir and read.
    }
  }
  const out = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` (async, returns a truthy value when done) every `intervalMs` until `timeoutMs`.
 * Resolves with the probe's value, or null on timeout.
 */
export async function waitFor(probe, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v) return v;
    if (Date.now() >= deadline) return null;
    await sleep(intervalMs);
  }
}

/** One GET with a short timeout; resolves with the status, or a string describing the failure. */
export function httpStatus(url, timeoutMs = 1000) {
  return fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).then(
    async (r) => {
      await r.arrayBuffer();
      return r.status;
    },
    (err) => err.cause?.code ?? err.name ?? String(err),
  );
}

/** Nearest-rank percentile of an ascending-sorted array-like of length n. */
export function percentile(sorted, n, q) {
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1];
}

/** Percentiles of the first n samples (sorted in place), in the samples' unit. */
export function summarize(samples, n) {
  if (!samples || n === 0) return null;
  const sorted = samples.subarray(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  return {
    p50: percentile(sorted, n, 0.5),
    p90: percentile(sorted, n, 0.9),
    p99: percentile(sorted, n, 0.99),
    p999: percentile(sorted, n, 0.999),
    max: sorted[n - 1],
    mean: sum / n,
  };
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function tailOfFile(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}
