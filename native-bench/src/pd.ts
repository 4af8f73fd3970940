/**
 * `native-bench pd`: prefill/decode disaggregation against the same pods aggregated.
 *
 * Part 1, serving: one workload through the router, on a simulated fleet of G groups of P prefill
 * and D decode pods (engine model: continuous batching, prefix cache, KV transfer on the decode
 * pods), then on the same number of pods serving whole requests. Goodput, TTFT and ITL come from
 * the engines' simulated time (as in `compare`).
 *
 * Part 2, router overhead: engines that answer at once (fixed mode, no delays, one token), closed
 * loop, measured in wall time: a request sent straight to a pod, the same request through the
 * router to an aggregated pod (one upstream leg), and through the router to a PD pair (two legs).
 * The difference between the last two is what the second leg costs the router.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

import { runLoad, resultToJson, type LoadResult } from './runner.js';
import { generatedSharedPrefix } from './workloads.js';
import { headline, type Headline } from './report.js';
import { machineInfo } from './machine.js';
import { startSimulatedPods } from './sim/engine.js';
import { summarize, type Dist } from './stats.js';
import { freePort, stopChild, waitReady } from './compare.js';
import { track } from './children.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ROUTER_BIN = path.join(ROOT, 'bin', 'kthena-router.js');
const MODEL = 'bench-7b';
const GROUP_KEY = 'modelserving.volcano.sh/group-name';
const ROLE = 'modelserving.volcano.sh/rolename';

export const PD_USAGE = `Usage: native-bench pd [options]

Prefill/decode disaggregation against the same pods serving whole requests, through the router.

  --groups N          PD groups (default 2)
  --prefill N         prefill pods per group (default 2)
  --decode N          decode pods per group (default 2)
  --connector C       nixl (default) or sglang (the engine then is SGLang)
  --prompts N         distinct shared prompts (default 32), --per-prompt N requests each (default 32)
  --system-len N      shared prompt tokens (default 1024), --question-len N (default 1024),
  --output-len N      output tokens (default 256)
  --concurrency N     closed-loop users (default 64)
  --time-scale K      engine speed-up (default 3)
  --overhead-requests N  requests per target in the overhead part (default 3000; 0 skips it)
  --overhead-concurrency N  (default 8)
  --slo-ttft-ms MS    goodput bound on TTFT (default 2000), --slo-itl-ms MS (default 100)
  --json FILE         results (default native-bench/results/pd-<date>.json)
  -h, --help
`;

export interface PdOptions {
  groups: number;
  prefill: number;
  decode: number;
  connector: 'nixl' | 'sglang';
  prompts: number;
  perPrompt: number;
  systemLen: number;
  questionLen: number;
  outputLen: number;
  concurrency: number;
  timeScale: number;
  overheadRequests: number;
  overheadConcurrency: number;
  sloTtftMs: number;
  sloItlMs: number;
  log?: (line: string) => void;
}

export interface PdServingRow extends Omit<Headline, 'rejected'> {
  name: string;
  e2e_p50_ms: number | null;
  /** Requests answered per pod (the decode pod, on PD). */
  backends: Record<string, number>;
}

export interface OverheadRow {
  name: string;
  requests: number;
  errors: number;
  requests_per_s: number;
  latency_ms: Dist | null;
}

type StartPods = typeof startSimulatedPods;

interface PodDesc { name: string; ip: string; labels: Record<string, string> }

function podManifest(p: PodDesc): string {
  const labels = Object.entries(p.labels).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `apiVersion: v1
kind: Pod
metadata: {name: ${p.name}, namespace: default, labels: {${labels}}}
status:
  phase: Running
  podIP: ${p.ip}
  conditions: [{type: Ready, status: "True"}]
`;
}

function serverManifest(name: string, app: string, port: number, engine: string, pd: string | null): string {
  return `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: ${name}, namespace: default}
spec:
  workloadSelector:
    matchLabels: {app: ${app}}
${pd !== null ? `    pdGroup:
      groupKey: ${GROUP_KEY}
      prefillLabels: {${ROLE}: prefill}
      decodeLabels: {${ROLE}: decode}
  kvConnector: {type: ${pd}}
` : ''}  workloadPort: {port: ${port}}
  inferenceEngine: ${engine}
  model: ${MODEL}
`;
}

function routeManifest(name: string, model: string, server: string): string {
  return `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: ${name}, namespace: default}
spec:
  modelName: ${model}
  rules:
  - name: all
    targetModels: [{modelServerName: ${server}}]
`;
}

async function startRouter(dir: string, timeScale: number): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [ROUTER_BIN, 'serve', '--config', dir, '--host', '127.0.0.1', '--port', String(port),
    '--metrics-port', '0', '--debug-port', '0', '--workers', '2'], {
    stdio: 'ignore',
    env: { ...process.env, ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn', METRICS_SCRAPE_INTERVAL: `${Math.max(50, Math.round(1000 / timeScale))}ms` },
  });
  track(child);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, 90_000);
  return { child, url };
}

/** Pods of the PD fleet (role per pod) or of the aggregated one (same count, role both). */
function fleetPods(o: PdOptions, ipBase: string, pd: boolean): (PodDesc & { role: 'prefill' | 'decode' | 'both' })[] {
  const out: (PodDesc & { role: 'prefill' | 'decode' | 'both' })[] = [];
  let n = 1;
  for (let g = 0; g < o.groups; g++) {
    for (const [role, count] of [['prefill', o.prefill], ['decode', o.decode]] as const) {
      for (let i = 0; i < count; i++) {
        const name = pd ? `g${g}-${role}-${i}` : `agg-${n}`;
        out.push({
          name, ip: `${ipBase}.${n++}`, role: pd ? role : 'both',
          labels: pd ? { app: 'bench', [GROUP_KEY]: `g${g}`, [ROLE]: role } : { app: 'bench' },
        });
      }
    }
  }
  return out;
}

async function serving(o: PdOptions, startPods: StartPods, variant: 'pd' | 'aggregated', ipBase: string): Promise<LoadResult> {
  const engine = o.connector === 'sglang' ? 'SGLang' : 'vLLM';
  const port = await freePort();
  const pods = fleetPods(o, ipBase, variant === 'pd');
  const fleet = await startPods(pods.map((p) => ({
    name: p.name, ip: p.ip, port, models: [MODEL], engine, role: p.role, model: {}, timeScale: o.timeScale, reportTiming: true,
  })), { requestLogSize: 10 });
  const dir = mkdtempSync(path.join(tmpdir(), 'native-bench-pd-'));
  let router: ChildProcess | null = null;
  try {
    writeFileSync(path.join(dir, 'fleet.yaml'), [
      serverManifest('bench', 'bench', port, engine, variant === 'pd' ? o.connector : null),
      routeManifest('bench', MODEL, 'bench'),
      ...pods.map(podManifest),
    ].join('---\n'));
    const r = await startRouter(dir, o.timeScale);
    router = r.child;
    return await runLoad({
      urls: [r.url], model: MODEL,
      workload: generatedSharedPrefix({
        numGroups: o.prompts, promptsPerGroup: o.perPrompt, systemPromptLen: o.systemLen, questionLen: o.questionLen, outputLen: o.outputLen,
      }, 1),
      concurrency: o.concurrency, requests: o.prompts * o.perPrompt, timeScale: o.timeScale,
      slo: { ttftMs: o.sloTtftMs, itlMs: o.sloItlMs }, requestTimeoutS: 3600,
    });
  } finally {
    if (router !== null) await stopChild(router);
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Closed loop of `concurrency` users over one keep-alive pool; wall-clock latency per request. */
async function closedLoop(url: string, path_: string, body: string, requests: number, concurrency: number): Promise<OverheadRow & { name: '' }> {
  const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const user = async (): Promise<void> => {
    while (next < requests) {
      next++;
      const t = performance.now();
      try {
        const res = await pool.request({ path: path_, method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        if (res.statusCode !== 200) errors++;
        else lat.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, user));
  const wall = (performance.now() - t0) / 1000;
  await pool.close();
  return { name: '', requests, errors, requests_per_s: requests / wall, latency_ms: summarize(lat) };
}

async function overhead(o: PdOptions, startPods: StartPods, ipBase: string): Promise<OverheadRow[]> {
  const engine = o.connector === 'sglang' ? 'SGLang' : 'vLLM';
  const port = await freePort();
  const fast = { ttftMs: 0, itlMs: 0, outputTokens: 1 };
  const pods: (PodDesc & { role: 'prefill' | 'decode' | 'both' })[] = [
    { name: 'agg-0', ip: `${ipBase}.1`, role: 'both', labels: { app: 'agg' } },
    { name: 'pd-prefill-0', ip: `${ipBase}.2`, role: 'prefill', labels: { app: 'pd', [GROUP_KEY]: 'g0', [ROLE]: 'prefill' } },
    { name: 'pd-decode-0', ip: `${ipBase}.3`, role: 'decode', labels: { app: 'pd', [GROUP_KEY]: 'g0', [ROLE]: 'decode' } },
  ];
  const fleet = await startPods(pods.map((p) => ({ name: p.name, ip: p.ip, port, models: [MODEL, 'pd-model'], engine, role: p.role, ...fast })), { requestLogSize: 10 });
  const dir = mkdtempSync(path.join(tmpdir(), 'native-bench-pd-overhead-'));
  let router: ChildProcess | null = null;
  try {
    writeFileSync(path.join(dir, 'fleet.yaml'), [
      serverManifest('agg', 'agg', port, engine, null), routeManifest('agg', MODEL, 'agg'),
      // The PD server keeps the request's model name (no spec.model rewrite) through its own route.
      serverManifest('pd', 'pd', port, engine, o.connector).replace(`  model: ${MODEL}\n`, ''), routeManifest('pd', 'pd-model', 'pd'),
      ...pods.map(podManifest),
    ].join('---\n'));
    const r = await startRouter(dir, 1);
    router = r.child;
    const body = (model: string): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'Say hello in one word.' }], max_tokens: 1 });
    const rows: OverheadRow[] = [];
    // Warm-up: connections and JIT on every path.
    for (const [url, m] of [[fleet.pods[0].url, MODEL], [r.url, MODEL], [r.url, 'pd-model']] as const) {
      await closedLoop(url, '/v1/chat/completions', body(m), 200, o.overheadConcurrency);
    }
    const direct = await closedLoop(fleet.pods[0].url, '/v1/chat/completions', body(MODEL), o.overheadRequests, o.overheadConcurrency);
    rows.push({ ...direct, name: 'direct to the pod (no router)' });
    const single = await closedLoop(r.url, '/v1/chat/completions', body(MODEL), o.overheadRequests, o.overheadConcurrency);
    rows.push({ ...single, name: 'router, aggregated (one leg)' });
    const two = await closedLoop(r.url, '/v1/chat/completions', body('pd-model'), o.overheadRequests, o.overheadConcurrency);
    rows.push({ ...two, name: `router, PD ${o.connector} (two legs)` });
    return rows;
  } finally {
    if (router !== null) await stopChild(router);
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface PdResult {
  setup: Record<string, unknown>;
  machine: ReturnType<typeof machineInfo>;
  serving: PdServingRow[];
  overhead: OverheadRow[];
  runs: { name: string; result: LoadResult }[];
}

export async function runPd(o: PdOptions): Promise<PdResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!existsSync(ROUTER_BIN) || !existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) throw new Error('dist/ is missing: run npm run build first');
  const setup = {
    groups: o.groups, prefillPerGroup: o.prefill, decodePerGroup: o.decode, pods: o.groups * (o.prefill + o.decode), connector: o.connector,
    prompts: o.prompts, perPrompt: o.perPrompt, systemLen: o.systemLen, questionLen: o.questionLen, outputLen: o.outputLen,
    concurrency: o.concurrency, timeScale: o.timeScale, overheadRequests: o.overheadRequests, overheadConcurrency: o.overheadConcurrency, model: MODEL,
  };
  log(`pd: ${JSON.stringify(setup)}`);
  const base = 160 + Math.floor(Math.random() * 60);
  const serving_: PdServingRow[] = [];
  const runs: { name: string; result: LoadResult }[] = [];
  for (const [i, variant] of (['pd', 'aggregated'] as const).entries()) {
    const name = variant === 'pd' ? `PD ${o.connector} (${o.groups}x ${o.prefill}P+${o.decode}D)` : `aggregated (${setup.pods} pods)`;
    const t0 = Date.now();
    const result = await serving(o, startSimulatedPods, variant, `127.0.${base + i}`);
    const { rejected: _r, ...h } = headline(result);
    serving_.push({
      name, ...h, e2e_p50_ms: result.latency.e2e_ms?.p50 ?? null,
      backends: Object.fromEntries(Object.entries(result.backends?.counts ?? {}).map(([k, v]) => [k, v.requests])),
    });
    runs.push({ name, result });
    log(`${name}: ${h.requests_per_s.toFixed(2)} req/s, goodput ${h.goodput_rps?.toFixed(2) ?? '-'}, TTFT p50 ${fmt(h.ttft_p50_ms)} p99 ${fmt(h.ttft_p99_ms)} ms, ITL p50 ${h.itl_p50_ms?.toFixed(1) ?? '-'} p99 ${h.itl_p99_ms?.toFixed(1) ?? '-'} ms, errors ${h.errors} (${((Date.now() - t0) / 1000).toFixed(1)} s wall)`);
  }
  const over = o.overheadRequests > 0 ? await overhead(o, startSimulatedPods, `127.0.${base + 2}`) : [];
  for (const r of over) log(`${r.name}: ${r.requests_per_s.toFixed(0)} req/s, p50 ${r.latency_ms?.p50.toFixed(3) ?? '-'} ms, p99 ${r.latency_ms?.p99.toFixed(3) ?? '-'} ms, errors ${r.errors}`);
  return { setup, machine: machineInfo(), serving: serving_, overhead: over, runs };
}

const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(0));

export function pdTables(r: PdResult): string {
  const lines = [
    '| fleet | req/s | goodput req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | e2e p50 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of r.serving) {
    lines.push(`| ${c.name} | ${c.requests_per_s.toFixed(2)} | ${c.goodput_rps?.toFixed(2) ?? '-'} | ${c.output_tokens_per_s.toFixed(0)} | ${fmt(c.ttft_p50_ms)} | ${fmt(c.ttft_p99_ms)} | ${c.itl_p50_ms?.toFixed(1) ?? '-'} | ${c.itl_p99_ms?.toFixed(1) ?? '-'} | ${fmt(c.e2e_p50_ms)} | ${c.errors} |`);
  }
  if (r.overhead.length > 0) {
    const direct = r.overhead[0].latency_ms;
    const single = r.overhead[1]?.latency_ms;
    lines.push('', '| target (engine answers at once) | req/s | p50 ms | p99 ms | added p50 vs direct | added p50 vs one leg | errors |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const [i, o] of r.overhead.entries()) {
      const d = o.latency_ms;
      const vsDirect = i > 0 && d && direct ? `${(d.p50 - direct.p50).toFixed(3)} ms` : '-';
      const vsOne = i > 1 && d && single ? `${(d.p50 - single.p50).toFixed(3)} ms` : '-';
      lines.push(`| ${o.name} | ${o.requests_per_s.toFixed(0)} | ${d?.p50.toFixed(3) ?? '-'} | ${d?.p99.toFixed(3) ?? '-'} | ${vsDirect} | ${vsOne} | ${o.errors} |`);
    }
  }
  return lines.join('\n');
}

export async function pdCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      groups: { type: 'string' }, prefill: { type: 'string' }, decode: { type: 'string' }, connector: { type: 'string' },
      prompts: { type: 'string' }, 'per-prompt': { type: 'string' }, 'system-len': { type: 'string' }, 'question-len': { type: 'string' },
      'output-len': { type: 'string' }, concurrency: { type: 'string' }, 'time-scale': { type: 'string' },
      'overhead-requests': { type: 'string' }, 'overhead-concurrency': { type: 'string' },
      'slo-ttft-ms': { type: 'string' }, 'slo-itl-ms': { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) { process.stdout.write(PD_USAGE); return 0; }
  const num = (v: string | undefined, name: string, dflt: number, min = 1): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw Object.assign(new Error(`--${name} must be an integer >= ${min}, got "${v}"`), { code: 'BENCH_USAGE' });
    return n;
  };
  const connector = values.connector ?? 'nixl';
  if (connector !== 'nixl' && connector !== 'sglang') throw Object.assign(new Error(`--connector must be nixl or sglang, got "${connector}"`), { code: 'BENCH_USAGE' });
  const r = await runPd({
    groups: num(values.groups, 'groups', 2), prefill: num(values.prefill, 'prefill', 2), decode: num(values.decode, 'decode', 2), connector,
    prompts: num(values.prompts, 'prompts', 32), perPrompt: num(values['per-prompt'], 'per-prompt', 32),
    systemLen: num(values['system-len'], 'system-len', 1024), questionLen: num(values['question-len'], 'question-len', 1024), outputLen: num(values['output-len'], 'output-len', 256),
    concurrency: num(values.concurrency, 'concurrency', 64), timeScale: num(values['time-scale'], 'time-scale', 3),
    overheadRequests: num(values['overhead-requests'], 'overhead-requests', 3000, 0), overheadConcurrency: num(values['overhead-concurrency'], 'overhead-concurrency', 8),
    sloTtftMs: num(values['slo-ttft-ms'], 'slo-ttft-ms', 2000), sloItlMs: num(values['slo-itl-ms'], 'slo-itl-ms', 100),
  });
  const stamp = new Date().toISOString().replace(/[:.]/g, '').slice(0, 15);
  const jsonFile = values.json ?? path.join(ROOT, 'native-bench', 'results', `pd-${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify({
    setup: r.setup, machine: r.machine, serving: r.serving, overhead: r.overhead,
    runs: Object.fromEntries(r.runs.map((x) => [x.name, resultToJson(x.result)])),
  }, null, 2) + '\n');
  process.stderr.write(`results: ${jsonFile}\n`);
  process.stdout.write(pdTables(r) + '\n');
  return r.serving.every((s) => s.requests_per_s > 0 && s.errors === 0) && r.overhead.every((x) => x.errors === 0) ? 0 : 1;
}
