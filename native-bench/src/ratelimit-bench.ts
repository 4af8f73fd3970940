/**
 * What a token rate limit costs per request: the router in front of the fast mock engine
 * (native-bench/proxy/mock-engine.mjs), three routes to the same pods, one without a limit, one
 * with a local limit (shared-memory buckets) and one with a global limit (a real redis-server),
 * each limit far above what the load can reach, so every request is checked and charged but none
 * is refused. Closed loop at fixed concurrency, the three routes measured in interleaved rounds of
 * the same length within one run, so the req/s ratios compare like with like on a shared machine.
 *
 * Loopback only (127.0.62.x), bounded in time, stops everything it started by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

import { port, positive, repoRoot, runIfMain } from './script.js';

export const RATELIMIT_BENCH_USAGE = `Usage: native-bench ratelimit [options]
  (or: node dist/native-bench/src/ratelimit-bench.js [options]; npm run build first)

The router's req/s without a rate limit, with a local one and with a global (Redis) one.

  --workers N       router worker threads (default 1)
  --concurrency N   closed-loop connections (default 32)
  --round-s S       seconds per round (default 3)
  --rounds N        interleaved rounds per route (default 3)
  --port P          router port (default 18480)
  --redis-port P    redis-server port (default 18479)
  -h, --help
`;

export interface RatelimitBenchOptions {
  help: boolean;
  workers: number;
  concurrency: number;
  roundMs: number;
  rounds: number;
  port: number;
  redisPort: number;
}

export function parseRatelimitBenchArgs(argv: string[]): RatelimitBenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      workers: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '32' },
      'round-s': { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      port: { type: 'string', default: '18480' },
      'redis-port': { type: 'string', default: '18479' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return {
    help: values.help!,
    workers: positive(values.workers, 'workers')!,
    concurrency: positive(values.concurrency, 'concurrency')!,
    roundMs: positive(values['round-s'], 'round-s', false)! * 1000,
    rounds: positive(values.rounds, 'rounds')!,
    port: port(values.port!, 'port'),
    redisPort: port(values['redis-port']!, 'redis-port'),
  };
}

function waitLine(child: ChildProcess, pred: (buf: string) => boolean, what: string, ms = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`${what}: not ready within ${ms} ms\n${buf.slice(-2000)}`)), ms);
    const on = (d: Buffer): void => {
      buf += d.toString();
      if (pred(buf)) { clearTimeout(t); resolve(); }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${what} exited (${code})\n${buf.slice(-2000)}`)); });
  });
}

async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function ratelimitBenchMain(argv: string[]): Promise<number> {
  const o = parseRatelimitBenchArgs(argv);
  if (o.help) {
    process.stdout.write(RATELIMIT_BENCH_USAGE);
    return 0;
  }
  const root = repoRoot(import.meta.url);
  const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
  if (!redisBin) throw new Error('redis-server not found (apt-get install -y redis-server)');
  const children: ChildProcess[] = [];
  const track = (c: ChildProcess): ChildProcess => { children.push(c); return c; };
  const stopAll = (): void => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM'); };
  const onSigint = (): void => { stopAll(); process.exit(130); };
  process.on('exit', stopAll);
  process.on('SIGINT', onSigint);
  const dir = mkdtempSync(join(tmpdir(), 'ratelimit-bench-'));
  try {
    const redis = track(spawn(redisBin, ['--port', String(o.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitLine(redis, (b) => b.includes('Ready to accept connections'), 'redis-server');

    const pods = ['127.0.62.1:8000', '127.0.62.2:8000'];
    const engine = track(spawn(process.execPath, [join(root, 'native-bench', 'proxy', 'mock-engine.mjs'), '--pods', pods.join(','), '--model', 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitLine(engine, (b) => b.includes('"ready":true'), 'mock engine');

    const huge = 2_000_000_000;
    const route = (name: string, model: string, limit: 'local' | 'global' | null): string => [
      'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', `metadata: {name: ${name}, namespace: default}`, 'spec:',
      `  modelName: ${model}`, '  rules:', '  - name: default', '    targetModels:', '    - modelServerName: bench',
      ...(limit ? ['  rateLimit:', `    inputTokensPerUnit: ${huge}`, `    outputTokensPerUnit: ${huge}`, '    unit: second',
        ...(limit === 'global' ? ['    global:', '      redis:', `        address: "127.0.0.1:${o.redisPort}"`] : [])] : []),
    ].join('\n');
    const pod = (name: string, ip: string): string => [
      'apiVersion: v1', 'kind: Pod', `metadata: {name: ${name}, namespace: default, labels: {app: bench}}`,
      'status:', '  phase: Running', `  podIP: ${ip}`, '  conditions:', '  - {type: Ready, status: "True"}',
    ].join('\n');
    writeFileSync(join(dir, 'bench.yaml'), [
      route('free', 'free', null), route('local', 'local', 'local'), route('global', 'global', 'global'),
      ['apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelServer', 'metadata: {name: bench, namespace: default}', 'spec:',
        '  inferenceEngine: vLLM', '  workloadSelector: {matchLabels: {app: bench}}', '  workloadPort: {port: 8000}'].join('\n'),
      pod('b-1', '127.0.62.1'), pod('b-2', '127.0.62.2'),
    ].join('\n---\n') + '\n');

    track(spawn(process.execPath, [join(root, 'bin', 'kthena-router.js'), 'serve', '--config', dir, '--host', '127.0.0.1', '--port', String(o.port),
      '--metrics-port', '0', '--debug-port', '0', '--workers', String(o.workers)], { env: { ...process.env, ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] }));
    const url = `http://127.0.0.1:${o.port}`;
    await until(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 'router ready');

    const pool = new Pool(url, { connections: o.concurrency, pipelining: 1 });
    const models = ['free', 'local', 'global'] as const;
    const bodies = Object.fromEntries(models.map((m) => [m, JSON.stringify({ model: m, messages: [{ role: 'user', content: 'hello world' }], max_tokens: 16 })]));
    const one = async (model: string): Promise<void> => {
      const { statusCode, body } = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: bodies[model] });
      await body.text();
      if (statusCode !== 200) throw new Error(`${model}: status ${statusCode}`);
    };
    /** Closed loop for `ms`: per-request latencies (ms). */
    const round = async (model: string, ms: number): Promise<number[]> => {
      const lat: number[] = [];
      const end = performance.now() + ms;
      await Promise.all(Array.from({ length: o.concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await one(model);
          lat.push(performance.now() - t);
        }
      }));
      return lat;
    };

    for (const m of models) await round(m, 1000); // warm-up: connections, JIT, Redis script cache
    const lat: Record<string, number[]> = { free: [], local: [], global: [] };
    const secs: Record<string, number> = { free: 0, local: 0, global: 0 };
    // Each round's ratio to the unlimited route of the same round: their spread is the noise.
    const perRound: Record<string, number[]> = { free: [], local: [], global: [] };
    for (let r = 0; r < o.rounds; r++) {
      const roundRps: Record<string, number> = {};
      for (const m of models) {
        const t = performance.now();
        const l = await round(m, o.roundMs);
        const s = (performance.now() - t) / 1000;
        lat[m].push(...l);
        secs[m] += s;
        roundRps[m] = l.length / s;
      }
      for (const m of models) perRound[m].push(roundRps[m]! / roundRps.free!);
    }
    await pool.close();

    const q = (arr: number[], p: number): number => { const s = [...arr].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
    const rps = Object.fromEntries(models.map((m) => [m, lat[m].length / secs[m]]));
    const label = { free: 'no limit', local: 'local limit (shared memory)', global: 'global limit (Redis)' };
    const lines = [
      `rate-limit cost: router --workers ${o.workers}, ${o.concurrency} connections, ${o.rounds} interleaved rounds of ${o.roundMs / 1000} s per route (shared machine: compare ratios, not absolutes)`,
      '| route | req/s | ratio to unlimited | ratio per round (min-max) | p50 ms | p99 ms |',
      '|---|---|---|---|---|---|',
      ...models.map((m) => `| ${label[m]} | ${rps[m].toFixed(0)} | ${(rps[m] / rps.free).toFixed(3)} | ${Math.min(...perRound[m]).toFixed(2)}-${Math.max(...perRound[m]).toFixed(2)} | ${q(lat[m], 0.5).toFixed(2)} | ${q(lat[m], 0.99).toFixed(2)} |`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    stopAll();
    process.off('exit', stopAll);
    process.off('SIGINT', onSigint);
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, ratelimitBenchMain);
