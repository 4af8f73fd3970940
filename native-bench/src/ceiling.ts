/**
 * `native-bench ceiling`: how many requests per second the generator itself can drive, with 1
 * thread and with N, against a trivial local server (child processes answering every request at
 * once with a short SSE stream), so that the generator's own limit is known before it is blamed
 * on a router. Open loop at rate inf with a concurrency cap, `--requests` per configuration; the
 * figure is completed requests over wall seconds. The servers run in other processes (node:cluster,
 * `--server-procs` of them), so they do not share the generator's threads, but on a machine with
 * few cores they share its CPUs: the figure is a lower bound of the generator's ceiling, and the
 * ratio N : 1 shows whether more threads help on this machine.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { machineInfo } from './machine.js';
import { track } from './children.js';
import { runLoad, type LoadResult } from './runner.js';
import { runThreaded } from './threads.js';
import { randomLengths } from './workloads.js';

export const CEILING_USAGE = `Usage: native-bench ceiling [options]

Measures the load generator alone: requests per second against a trivial local server that answers
every request at once with a short SSE stream, for each thread count.

  --threads LIST      thread counts to measure (default 1,2,4)
  --requests N        requests per thread count (default 20000)
  --max-concurrency N requests in flight (default 256)
  --output-tokens N   tokens per streamed answer (default 8)
  --server-procs N    server processes (default 2)
  --port P            server port (default 18999)
  --json FILE         results
  -h, --help
`;

/** The trivial server: node:cluster workers answering each POST with `tokens` SSE chunks. */
const SERVER = `
const cluster = require('node:cluster');
const http = require('node:http');
const [port, procs] = process.argv.slice(1).map(Number);
if (cluster.isPrimary) {
  for (let i = 0; i < procs; i++) cluster.fork();
  let up = 0;
  cluster.on('listening', () => { if (++up === procs) process.stdout.write('ready\\n'); });
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
} else {
  http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let n = 1;
      try { n = JSON.parse(body).max_tokens || 1; } catch {}
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let s = 'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\\n\\n';
      for (let i = 0; i < n; i++) s += 'data: {"choices":[{"index":0,"delta":{"content":" tok"}}]}\\n\\n';
      s += 'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":' + n + ',"total_tokens":' + (n + 4) + '}}\\n\\ndata: [DONE]\\n\\n';
      res.end(s);
    });
  }).listen(port, '127.0.0.1');
}
`;

async function startServer(port: number, procs: number): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, ['-e', SERVER, String(port), String(procs)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the trivial server did not start within 30 s')), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`the trivial server exited with ${code}`)));
  });
  return child;
}

export interface CeilingRow {
  threads: number;
  requests: number;
  ok: number;
  errors: number;
  wall_s: number;
  requests_per_s: number;
  /** The generator's own lateness: how late arrivals were sent (wall ms). */
  schedule_lag_p99_wall_ms: number | null;
  /** Each generator thread's event-loop utilisation over the run (0..1). */
  generator_busy: number[];
  /**
   * What these threads could drive were the server free: each thread's share of req/s over its busy
   * share, summed. A lower bound where the server shares the cores (a thread waiting for a CPU
   * counts as busy); null when a thread reported no utilisation.
   */
  generator_limit_rps: number | null;
}

/** Each thread's share of the rate over its busy share, summed (see CeilingRow.generator_limit_rps). */
export function generatorLimit(requestsPerS: number, busy: readonly number[]): number | null {
  if (busy.length === 0 || busy.some((b) => !(b > 0))) return null;
  const share = requestsPerS / busy.length;
  return busy.reduce((n, b) => n + share / Math.min(1, b), 0);
}

function busyText(busy: readonly number[]): string {
  return busy.map((b) => `${Math.round(b * 100)}%`).join(' ');
}

export async function ceilingCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      threads: { type: 'string' }, requests: { type: 'string' }, 'max-concurrency': { type: 'string' },
      'output-tokens': { type: 'string' }, 'server-procs': { type: 'string' }, port: { type: 'string' },
      json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(CEILING_USAGE);
    return 0;
  }
  const int = (v: string | undefined, d: number, name: string): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw Object.assign(new Error(`--${name} must be a positive integer, got ${v}`), { code: 'BENCH_USAGE' });
    return n;
  };
  const threadList = (values.threads ?? '1,2,4').split(',').map((t) => int(t.trim(), 1, 'threads'));
  const requests = int(values.requests, 20_000, 'requests');
  const cap = int(values['max-concurrency'], 256, 'max-concurrency');
  const tokens = int(values['output-tokens'], 8, 'output-tokens');
  const port = int(values.port, 18_999, 'port');
  const server = await startServer(port, int(values['server-procs'], 2, 'server-procs'));
  const rows: CeilingRow[] = [];
  try {
    for (const threads of threadList) {
      const params = { inputLen: { min: 4, max: 4 }, outputLen: { min: tokens, max: tokens } };
      const o = { urls: [`http://127.0.0.1:${port}`], model: 'm', workload: randomLengths(params, 1), rate: Infinity, maxConcurrency: cap, requests, timeScale: 1 };
      const r: LoadResult = threads === 1 ? await runLoad(o) : await runThreaded(o, { kind: 'random', params, seed: 1 }, threads);
      const row: CeilingRow = {
        threads, requests, ok: r.counts.ok, errors: r.counts.errors, wall_s: r.wall.duration_s,
        requests_per_s: r.wall.duration_s > 0 ? r.counts.ok / r.wall.duration_s : 0,
        schedule_lag_p99_wall_ms: r.schedule_lag_wall_ms?.p99 ?? null,
        generator_busy: r.generator_busy,
        generator_limit_rps: null,
      };
      row.generator_limit_rps = generatorLimit(row.requests_per_s, row.generator_busy);
      rows.push(row);
      process.stderr.write(`${threads} thread(s): ${row.requests_per_s.toFixed(0)} req/s (${row.ok} ok, ${row.errors} errors, ${row.wall_s.toFixed(1)} s), generator busy ${busyText(row.generator_busy)}\n`);
    }
  } finally {
    server.kill('SIGTERM');
  }
  const base = rows[0]?.requests_per_s ?? 0;
  const lines = ['| threads | req/s | vs 1 thread | generator busy (per thread) | generator limit req/s | ok | errors |', '|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    const limit = r.generator_limit_rps === null ? '-' : r.generator_limit_rps.toFixed(0);
    lines.push(`| ${r.threads} | ${r.requests_per_s.toFixed(0)} | ${base > 0 ? (r.requests_per_s / base).toFixed(2) : '-'}x | ${busyText(r.generator_busy)} | ${limit} | ${r.ok} | ${r.errors} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (values.json) writeFileSync(values.json, JSON.stringify({ schema: 'native-bench/ceiling/v1', machine: machineInfo(), max_concurrency: cap, output_tokens: tokens, rows }, null, 2) + '\n');
  return rows.every((r) => r.ok > 0) ? 0 : 1;
}
