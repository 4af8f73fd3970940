#!/usr/bin/env node
// What a token rate limit costs per request: the router in front of the fast mock engine
// (../proxy/mock-engine.mjs), three routes to the same pods, one without a limit, one with a local
// limit (shared-memory buckets) and one with a global limit (a real redis-server), each limit far
// above what the load can reach, so every request is checked and charged but none is refused.
// Closed loop at fixed concurrency, the three routes measured in interleaved rounds of the same
// length within one run, so the req/s ratios compare like with like on a shared machine.
//
//   npm run build && isorun node native-bench/ratelimit/bench.mjs [--workers 1] [--concurrency 32]
//                                                                  [--round-s 3] [--rounds 3]
//
// Loopback only (127.0.62.x), bounded in time, stops everything it started by PID.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const { values: opt } = parseArgs({
  options: {
    workers: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    'round-s': { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    port: { type: 'string', default: '18480' },
    'redis-port': { type: 'string', default: '18479' },
  },
});
const concurrency = Number(opt.concurrency);
const roundMs = Number(opt['round-s']) * 1000;
const rounds = Number(opt.rounds);
const children = [];

function track(child) {
  children.push(child);
  return child;
}

function stopAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}
process.on('exit', stopAll);
process.on('SIGINT', () => { stopAll(); process.exit(130); });

function waitLine(child, pred, what, ms = 20_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`${what}: not ready within ${ms} ms\n${buf.slice(-2000)}`)), ms);
    const on = (d) => {
      buf += d.toString();
      if (pred(buf)) { clearTimeout(t); resolve(); }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${what} exited (${code})\n${buf.slice(-2000)}`)); });
  });
}

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
if (!redisBin) throw new Error('redis-server not found (apt-get install -y redis-server)');
const redisPort = Number(opt['redis-port']);
const redis = track(spawn(redisBin, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] }));
await waitLine(redis, (b) => b.includes('Ready to accept connections'), 'redis-server');

const pods = ['127.0.62.1:8000', '127.0.62.2:8000'];
const engine = track(spawn(process.execPath, [join(HERE, '..', 'proxy', 'mock-engine.mjs'), '--pods', pods.join(','), '--model', 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] }));
await waitLine(engine, (b) => b.includes('"ready":true'), 'mock engine');

const dir = mkdtempSync(join(tmpdir(), 'ratelimit-bench-'));
const huge = 2_000_000_000;
const route = (name, model, limit) => [
  'apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelRoute', `metadata: {name: ${name}, namespace: default}`, 'spec:',
  `  modelName: ${model}`, '  rules:', '  - name: default', '    targetModels:', '    - modelServerName: bench',
  ...(limit ? ['  rateLimit:', `    inputTokensPerUnit: ${huge}`, `    outputTokensPerUnit: ${huge}`, '    unit: second',
    ...(limit === 'global' ? ['    global:', '      redis:', `        address: "127.0.0.1:${redisPort}"`] : [])] : []),
].join('\n');
const pod = (name, ip) => [
  'apiVersion: v1', 'kind: Pod', `metadata: {name: ${name}, namespace: default, labels: {app: bench}}`,
  'status:', '  phase: Running', `  podIP: ${ip}`, '  conditions:', '  - {type: Ready, status: "True"}',
].join('\n');
writeFileSync(join(dir, 'bench.yaml'), [
  route('free', 'free', null), route('local', 'local', 'local'), route('global', 'global', 'global'),
  ['apiVersion: networking.serving.volcano.sh/v1alpha1', 'kind: ModelServer', 'metadata: {name: bench, namespace: default}', 'spec:',
    '  inferenceEngine: vLLM', '  workloadSelector: {matchLabels: {app: bench}}', '  workloadPort: {port: 8000}'].join('\n'),
  pod('b-1', '127.0.62.1'), pod('b-2', '127.0.62.2'),
].join('\n---\n') + '\n');

const port = Number(opt.port);
const router = track(spawn(process.execPath, [join(ROOT, 'bin', 'kthena-router.js'), 'serve', '--config', dir, '--host', '127.0.0.1', '--port', String(port),
  '--metrics-port', '0', '--debug-port', '0', '--workers', opt.workers], { env: { ...process.env, ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] }));
const url = `http://127.0.0.1:${port}`;
await until(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 'router ready');

const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
const bodies = Object.fromEntries(['free', 'local', 'global'].map((m) => [m, JSON.stringify({ model: m, messages: [{ role: 'user', content: 'hello world' }], max_tokens: 16 })]));

async function one(model) {
  const { statusCode, body } = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: bodies[model] });
  await body.text();
  if (statusCode !== 200) throw new Error(`${model}: status ${statusCode}`);
}

/** Closed loop for `ms`: completed requests and per-request latencies (ms). */
async function round(model, ms) {
  const lat = [];
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await one(model);
      lat.push(performance.now() - t);
    }
  }));
  return lat;
}

const models = ['free', 'local', 'global'];
for (const m of models) await round(m, 1000); // warm-up: connections, JIT, Redis script cache
const lat = { free: [], local: [], global: [] };
const secs = { free: 0, local: 0, global: 0 };
for (let r = 0; r < rounds; r++) {
  for (const m of models) {
    const t = performance.now();
    lat[m].push(...await round(m, roundMs));
    secs[m] += (performance.now() - t) / 1000;
  }
}
await pool.close();

const q = (arr, p) => { const s = [...arr].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const rps = Object.fromEntries(models.map((m) => [m, lat[m].length / secs[m]]));
const lines = [
  `rate-limit cost: router --workers ${opt.workers}, ${concurrency} connections, ${rounds} interleaved rounds of ${opt['round-s']} s per route (shared machine: compare ratios, not absolutes)`,
  '| route | req/s | ratio to unlimited | p50 ms | p99 ms |',
  '|---|---|---|---|---|',
  ...models.map((m) => `| ${m === 'free' ? 'no limit' : m === 'local' ? 'local limit (shared memory)' : 'global limit (Redis)'} | ${rps[m].toFixed(0)} | ${(rps[m] / rps.free).toFixed(3)} | ${q(lat[m], 0.5).toFixed(2)} | ${q(lat[m], 0.99).toFixed(2)} |`),
];
process.stdout.write(lines.join('\n') + '\n');
stopAll();
rmSync(dir, { recursive: true, force: true });
