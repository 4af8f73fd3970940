/**
 * `native-bench policy`: Kthena's traffic policies on a simulated fleet, each against the same
 * fleet without it (issue 15, part 6). Every configuration gets a fresh fleet and fresh router
 * processes; the clients are closed loops (each user sends its next request when the previous
 * one ended), with streaming responses, TTFT measured at the first response byte (wall clock; the
 * engines run `--time-scale` times faster than real time, so every figure is that much shorter
 * than on real engines and only ratios within one run mean anything).
 *
 *   fairness     one heavy user (many requests in flight) and several light users (one each) on
 *                a saturated fleet; the light users' TTFT with ENABLE_FAIRNESS_SCHEDULING on and
 *                off (users are JWT `sub`s: a local JWKS signs one token per user).
 *   multi-turn   conversations of several turns, each turn's prompt the whole conversation so
 *                far; TTFT and the engines' prefix-cache hit rate under the default scheduler
 *                alone, with ModelRoute sessionSticky, and with session boost.
 *   replicas     two router replicas in front of one fleet (users split between them), least-
 *                request, with and without shared in-flight counts (Redis): how unevenly the pods
 *                are loaded, sampled every 20 ms.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { freePort, startRedis, stopChild, waitReady } from './compare.js';
import { track } from './children.js';
import { machineInfo } from './machine.js';
import { Rng } from './rng.js';
import { startSimulatedPods } from './sim/engine.js';
import type { SimFleet } from './sim/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ROUTER_BIN = path.join(ROOT, 'bin', 'kthena-router.js');
const MODEL = 'policy-7b';

export const SCENARIOS = ['fairness', 'multi-turn', 'replicas'] as const;
export type Scenario = typeof SCENARIOS[number];

export const POLICY_USAGE = `Usage: native-bench policy --scenario fairness|multi-turn|replicas [options]

Traffic policies on a simulated fleet, each configuration on a fresh fleet and fresh routers:
  fairness    one heavy user and several light users on a saturated fleet: the light users'
              TTFT p50/p99 with fairness scheduling on and off
  multi-turn  multi-turn conversations: TTFT and prefix-cache hit rate with the default scheduler
              alone, with ModelRoute sessionSticky, and with session boost
  replicas    two router replicas (users split between them), least-request, with and without
              shared in-flight counts (Redis): load imbalance across pods

  --scenario S      fairness, multi-turn or replicas (required)
  --seconds N       measured duration per configuration, wall clock (default 30)
  --time-scale K    engine speed-up (default 3)
  --pods N          simulated pods (fairness 2, multi-turn 3, replicas 4)
  --users N         fairness: light users (4); multi-turn: conversations (24); replicas: users per
                    router (3)
  --seed N          (default 1)
  --json FILE       results (default native-bench/results/policy-<scenario>-<date>.json)
  -h, --help
`;

export interface PolicyOptions {
  scenario: Scenario;
  seconds?: number;
  timeScale?: number;
  pods?: number;
  users?: number;
  seed?: number;
  log?: (line: string) => void;
}

/** One request as the client saw it. */
export interface Sample { user: string; ttftMs: number; e2eMs: number; promptTokens: number; cachedTokens: number; pod: string; ok: boolean }

export interface PolicyRow {
  name: string;
  requests: number;
  errors: number;
  requests_per_s: number;
  ttft_p50_ms: number | null;
  ttft_p99_ms: number | null;
  /** fairness: the light users' TTFT; heavy: the heavy user's. */
  light_ttft_p50_ms?: number | null;
  light_ttft_p99_ms?: number | null;
  heavy_ttft_p50_ms?: number | null;
  light_requests?: number;
  heavy_requests?: number;
  /** multi-turn: cached prompt tokens / prompt tokens, from the engines' usage. */
  cache_hit_rate?: number | null;
  /** replicas: mean over samples of (max - min) in-flight across pods, and of the coefficient of variation. */
  imbalance_spread?: number | null;
  imbalance_cv?: number | null;
  backends: Record<string, number>;
}

export interface PolicyResult {
  scenario: Scenario;
  rows: PolicyRow[];
  setup: Record<string, unknown>;
  machine: ReturnType<typeof machineInfo>;
}

export function quantile(v: readonly number[], q: number): number | null {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** The figures of one configuration's samples (`light`: which users are the light ones). */
export function summarize(name: string, samples: readonly Sample[], seconds: number, light?: (user: string) => boolean): PolicyRow {
  const ok = samples.filter((s) => s.ok);
  const ttft = ok.map((s) => s.ttftMs);
  const backends: Record<string, number> = {};
  for (const s of ok) backends[s.pod] = (backends[s.pod] ?? 0) + 1;
  const prompt = ok.reduce((a, s) => a + s.promptTokens, 0);
  const row: PolicyRow = {
    name, requests: ok.length, errors: samples.length - ok.length, requests_per_s: ok.length / seconds,
    ttft_p50_ms: quantile(ttft, 0.5), ttft_p99_ms: quantile(ttft, 0.99),
    cache_hit_rate: prompt > 0 ? ok.reduce((a, s) => a + s.cachedTokens, 0) / prompt : null,
    backends,
  };
  if (light !== undefined) {
    const l = ok.filter((s) => light(s.user)).map((s) => s.ttftMs);
    const h = ok.filter((s) => !light(s.user)).map((s) => s.ttftMs);
    row.light_ttft_p50_ms = quantile(l, 0.5);
    row.light_ttft_p99_ms = quantile(l, 0.99);
    row.heavy_ttft_p50_ms = quantile(h, 0.5);
    row.light_requests = l.length;
    row.heavy_requests = h.length;
  }
  return row;
}

/** Mean (max - min) and mean coefficient of variation of per-pod in-flight counts over the samples. */
export function imbalance(samples: readonly (readonly number[])[]): { spread: number | null; cv: number | null } {
  let spread = 0;
  let cv = 0;
  let n = 0;
  for (const s of samples) {
    const total = s.reduce((a, b) => a + b, 0);
    if (total === 0 || s.length === 0) continue;
    const mean = total / s.length;
    const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / s.length);
    spread += Math.max(...s) - Math.min(...s);
    cv += sd / mean;
    n++;
  }
  return n === 0 ? { spread: null, cv: null } : { spread: spread / n, cv: cv / n };
}

// ---- plumbing --------------------------------------------------------------------------------

interface RouterHandle { url: string; child: ChildProcess }

function manifests(pods: readonly { name: string; ip: string }[], port: number, sticky: boolean): string {
  const docs = [
    `apiVersion: networking.serving.volcano.sh/v1alpha1\nkind: ModelServer\nmetadata: {name: pol, namespace: default}\nspec:\n  workloadSelector: {matchLabels: {app: pol}}\n  workloadPort: {port: ${port}}\n  inferenceEngine: vLLM\n  model: ${MODEL}\n`,
    `apiVersion: networking.serving.volcano.sh/v1alpha1\nkind: ModelRoute\nmetadata: {name: pol, namespace: default}\nspec:\n  modelName: ${MODEL}\n${sticky ? '  sessionSticky:\n    sources: [{type: Header, name: X-Session-ID}]\n' : ''}  rules:\n  - name: all\n    targetModels: [{modelServerName: pol}]\n`,
  ];
  for (const p of pods) {
    docs.push(`apiVersion: v1\nkind: Pod\nmetadata: {name: ${p.name}, namespace: default, labels: {app: pol}}\nstatus:\n  phase: Running\n  podIP: ${p.ip}\n  conditions: [{type: Ready, status: "True"}]\n`);
  }
  return docs.join('---\n');
}

async function startRouter(dir: string, routerConfig: string | null, env: Record<string, string>, args: string[], workers: number): Promise<RouterHandle> {
  const port = await freePort();
  const argv = ['serve', '--config', dir, '--host', '127.0.0.1', '--port', String(port), '--metrics-port', '0', '--debug-port', '0', '--workers', String(workers), ...args];
  if (routerConfig !== null) {
    // Beside the manifests' directory, not in it (every YAML there is read as a manifest).
    mkdirSync(`${dir}-cfg`, { recursive: true });
    const f = path.join(`${dir}-cfg`, `router-${port}.yaml`);
    writeFileSync(f, routerConfig);
    argv.push('--router-config', f);
  }
  const child = track(spawn(process.execPath, [ROUTER_BIN, ...argv], { stdio: 'ignore', env: { ...process.env, ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn', ...env } }));
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, 90_000);
  return { url, child };
}

/** One streamed chat completion; never throws. */
export async function send(url: string, user: string, body: string, headers: Record<string, string>): Promise<Sample> {
  const t0 = performance.now();
  try {
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const reader = res.body!.getReader();
    let ttft = -1;
    let text = '';
    const dec = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (ttft < 0) ttft = performance.now() - t0;
      text += dec.decode(value, { stream: true });
    }
    // The last chunk carries the usage (include_usage), cached tokens among the prompt details.
    const pm = [...text.matchAll(/"prompt_tokens":(\d+)/g)].pop();
    const cm = [...text.matchAll(/"cached_tokens":(\d+)/g)].pop();
    const prompt = pm !== undefined ? Number(pm[1]) : 0;
    const cached = cm !== undefined ? Number(cm[1]) : 0;
    return { user, ttftMs: ttft, e2eMs: performance.now() - t0, promptTokens: prompt, cachedTokens: cached, pod: res.headers.get('x-sim-pod') ?? '', ok: res.status === 200 };
  } catch {
    return { user, ttftMs: -1, e2eMs: performance.now() - t0, promptTokens: 0, cachedTokens: 0, pod: '', ok: false };
  }
}

function chatBody(content: string, maxTokens: number): string {
  return JSON.stringify({ model: MODEL, stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens, messages: [{ role: 'user', content }] });
}

/** Deterministic filler text of about `tokens` tokens (4 characters each), distinct per `tag`. */
export function words(rng: Rng, tag: string, tokens: number): string {
  let s = `${tag} `;
  while (s.length < tokens * 4) s += `w${Math.floor(rng.next() * 1e6).toString(36)} `;
  return s.slice(0, tokens * 4);
}

async function fleetOf(pods: number, timeScale: number, model: Record<string, number>, kvCacheTokens: number | undefined, ipBase: string): Promise<{ fleet: SimFleet; port: number }> {
  const port = await freePort();
  const fleet = await startSimulatedPods(Array.from({ length: pods }, (_, p) => ({
    name: `pol-${p}`, ip: `${ipBase}.${p + 1}`, port, models: [MODEL], model, timeScale, ...(kvCacheTokens !== undefined ? { kvCacheTokens } : {}),
  })), { requestLogSize: 10 });
  return { fleet, port };
}

/** Runs `users` closed loops until `deadline` (performance.now ms); each loop's next request from `next`. */
async function closedLoops(n: number, deadline: number, next: (i: number) => Promise<Sample | null>): Promise<Sample[]> {
  const out: Sample[] = [];
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    while (performance.now() < deadline) {
      const s = await next(i);
      if (s === null) return;
      if (performance.now() <= deadline) out.push(s);
    }
  }));
  return out;
}

// ---- scenarios -------------------------------------------------------------------------------

async function jwks(): Promise<{ uri: string; token: (sub: string) => Promise<string>; close: () => Promise<void> }> {
  const { exportJWK, generateKeyPair, SignJWT } = await import('jose');
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' };
  const srv: Server = createServer((_q, r) => { r.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const uri = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/jwks`;
  const now = Math.floor(Date.now() / 1000);
  return {
    uri,
    token: (sub) => new SignJWT({ iss: 'https://bench', sub, iat: now, exp: now + 86_400 }).setProtectedHeader({ alg: 'ES256', kid: 'bench' }).sign(privateKey),
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
  };
}

export async function runPolicy(o: PolicyOptions): Promise<PolicyResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!existsSync(ROUTER_BIN) || !existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) throw new Error('dist/ is missing: run npm run build first');
  const seconds = o.seconds ?? 30;
  const timeScale = o.timeScale ?? 3;
  const seed = o.seed ?? 1;
  const base = 80 + Math.floor(Math.random() * 60);
  let run = 0;
  const ipBase = (): string => `127.0.${base + run++}`;
  const rows: PolicyRow[] = [];
  let setup: Record<string, unknown> = {};

  const withDir = async <T>(f: (dir: string) => Promise<T>): Promise<T> => {
    const dir = mkdtempSync(path.join(tmpdir(), 'native-bench-policy-'));
    try { return await f(dir); } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}-cfg`, { recursive: true, force: true });
    }
  };

  if (o.scenario === 'fairness') {
    const pods = o.pods ?? 2;
    const light = o.users ?? 4;
    const heavyConc = 24;
    // Small batches so that 24 + light requests saturate the fleet: the engines queue.
    const model = { maxNumSeqs: 4 };
    const promptTokens = 512;
    const outputTokens = 64;
    setup = { pods, lightUsers: light, heavyInFlight: heavyConc, maxNumSeqs: model.maxNumSeqs, promptTokens, outputTokens, seconds, timeScale, seed, fairnessMaxConcurrent: pods * model.maxNumSeqs };
    log(`policy fairness: ${JSON.stringify(setup)}`);
    const keys = await jwks();
    try {
      const tokens = new Map<string, string>();
      for (const u of ['heavy', ...Array.from({ length: light }, (_, i) => `light-${i}`)]) tokens.set(u, await keys.token(u));
      for (const on of [false, true]) {
        const name = on ? 'fairness on' : 'fairness off';
        await withDir(async (dir) => {
          const { fleet, port } = await fleetOf(pods, timeScale, model, undefined, ipBase());
          writeFileSync(path.join(dir, 'fleet.yaml'), manifests(fleet.pods, port, false));
          const env: Record<string, string> = on ? { ENABLE_FAIRNESS_SCHEDULING: 'true', FAIRNESS_MAX_CONCURRENT: String(pods * model.maxNumSeqs) } : {};
          const r = await startRouter(dir, `auth:\n  issuer: "https://bench"\n  jwksUri: "${keys.uri}"\n`, env, [], 2);
          try {
            const rng = new Rng(seed);
            // The heavy user first builds up usage: its requests run alone for a few seconds.
            const body = (u: string): string => chatBody(words(rng, u, promptTokens), outputTokens);
            const warm = performance.now() + 3000;
            await closedLoops(heavyConc, warm, () => send(r.url, 'heavy', body('heavy'), { authorization: `Bearer ${tokens.get('heavy')!}` }));
            const deadline = performance.now() + seconds * 1000;
            const users = ['heavy', ...Array.from({ length: light }, (_, i) => `light-${i}`)];
            const samples = await closedLoops(heavyConc + light, deadline, (i) => {
              const u = i < heavyConc ? users[0] : users[1 + (i - heavyConc)];
              return send(r.url, u, body(u), { authorization: `Bearer ${tokens.get(u)!}` });
            });
            const row = summarize(name, samples, seconds, (u) => u !== 'heavy');
            rows.push(row);
            log(`${name}: light TTFT p50 ${fmt(row.light_ttft_p50_ms)} p99 ${fmt(row.light_ttft_p99_ms)} ms (${row.light_requests} req), heavy TTFT p50 ${fmt(row.heavy_ttft_p50_ms)} ms (${row.heavy_requests} req), errors ${row.errors}`);
          } finally {
            await stopChild(r.child);
            await fleet.close();
          }
        });
      }
    } finally {
      await keys.close();
    }
  } else if (o.scenario === 'multi-turn') {
    const pods = o.pods ?? 3;
    const sessions = o.users ?? 24;
    const turns = 6;
    const systemTokens = 1024;
    const questionTokens = 128;
    const outputTokens = 64;
    // Enough KV for about a third of the conversations per pod: a conversation that moves pods
    // recomputes its history.
    const kvCacheTokens = Math.round((sessions / pods) * (systemTokens + turns * (questionTokens + outputTokens)) * 1.2);
    const boostPerPod = 4;
    setup = { pods, sessions, turns, systemTokens, questionTokens, outputTokens, kvCacheTokens, seconds, timeScale, seed, sessionBoostInflightPerPod: boostPerPod };
    log(`policy multi-turn: ${JSON.stringify(setup)}`);
    const configs: { name: string; sticky: boolean; env: Record<string, string> }[] = [
      { name: 'default scheduler', sticky: false, env: {} },
      { name: 'default + sessionSticky', sticky: true, env: {} },
      { name: 'default + session boost', sticky: false, env: { ENABLE_SESSION_BOOST: 'true', SESSION_BOOST_INFLIGHT_PER_POD: String(boostPerPod) } },
    ];
    for (const c of configs) {
      await withDir(async (dir) => {
        const { fleet, port } = await fleetOf(pods, timeScale, {}, kvCacheTokens, ipBase());
        writeFileSync(path.join(dir, 'fleet.yaml'), manifests(fleet.pods, port, c.sticky));
        const r = await startRouter(dir, null, { METRICS_SCRAPE_INTERVAL: `${Math.max(50, Math.round(1000 / timeScale))}ms`, ...c.env }, [], 2);
        try {
          const rng = new Rng(seed);
          let next = 0;
          // A conversation: the system prompt, then turns; each prompt carries the whole history.
          const convs = Array.from({ length: sessions }, () => ({ id: '', history: '', turn: turns }));
          const deadline = performance.now() + seconds * 1000;
          const samples = await closedLoops(sessions, deadline, async (i) => {
            const cv = convs[i];
            if (cv.turn >= turns) { cv.id = `conv-${next++}`; cv.history = words(rng, cv.id, systemTokens); cv.turn = 0; }
            cv.history += ' ' + words(rng, `${cv.id}-q${cv.turn}`, questionTokens);
            const s = await send(r.url, cv.id, chatBody(cv.history, outputTokens), { 'x-session-id': cv.id });
            // The answer joins the history (the simulator's text is not echoed: a stand-in of the same length).
            cv.history += ' ' + words(rng, `${cv.id}-a${cv.turn}`, outputTokens);
            cv.turn++;
            return s;
          });
          const row = summarize(c.name, samples, seconds);
          rows.push(row);
          log(`${c.name}: TTFT p50 ${fmt(row.ttft_p50_ms)} p99 ${fmt(row.ttft_p99_ms)} ms, cache hit ${pct(row.cache_hit_rate)}, ${row.requests_per_s.toFixed(2)} req/s, errors ${row.errors}`);
        } finally {
          await stopChild(r.child);
          await fleet.close();
        }
      });
    }
  } else {
    const pods = o.pods ?? 4;
    const perRouter = o.users ?? 3;
    setup = { pods, routers: 2, usersPerRouter: perRouter, outputTokens: '16-512 uniform', promptTokens: 256, seconds, timeScale, seed, sampleMs: 20 };
    log(`policy replicas: ${JSON.stringify(setup)}`);
    const redis = await startRedis();
    if (redis === null) throw new Error('redis-server is not installed (apt-get install -y redis-server)');
    try {
      for (const shared of [false, true]) {
        const name = shared ? 'shared in-flight (Redis)' : 'per-replica counts';
        await withDir(async (dir) => {
          const { fleet, port } = await fleetOf(pods, timeScale, {}, undefined, ipBase());
          writeFileSync(path.join(dir, 'fleet.yaml'), manifests(fleet.pods, port, false));
          const cfg = 'scheduler: {plugins: {Filter: {enabled: [least-request]}, Score: {enabled: [{name: least-request, weight: 1}]}}}\n';
          const env: Record<string, string> = shared ? { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port) } : {};
          const routers = await Promise.all([0, 1].map(() => startRouter(dir, cfg, env, [], 1)));
          try {
            const rng = new Rng(seed);
            const snaps: number[][] = [];
            const timer = setInterval(() => { snaps.push(fleet.pods.map((p) => p.inflight)); }, 20);
            const deadline = performance.now() + seconds * 1000;
            const samples = await closedLoops(perRouter * 2, deadline, (i) => {
              const out = 16 + Math.floor(rng.next() * 497);
              return send(routers[i % 2].url, `u${i}`, chatBody(words(rng, `u${i}`, 256), out), {});
            });
            clearInterval(timer);
            const row = summarize(name, samples, seconds);
            const im = imbalance(snaps);
            row.imbalance_spread = im.spread;
            row.imbalance_cv = im.cv;
            rows.push(row);
            log(`${name}: in-flight spread across pods ${im.spread?.toFixed(2) ?? '-'} (cv ${im.cv?.toFixed(2) ?? '-'}), TTFT p50 ${fmt(row.ttft_p50_ms)} p99 ${fmt(row.ttft_p99_ms)} ms, ${row.requests_per_s.toFixed(2)} req/s, errors ${row.errors}`);
          } finally {
            await Promise.all(routers.map((r) => stopChild(r.child)));
            await fleet.close();
          }
        });
      }
    } finally {
      await redis.stop();
    }
  }
  return { scenario: o.scenario, rows, setup, machine: machineInfo() };
}

const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(0));
const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(0)}%`);

/** The Markdown table of a result (docs/benchmarks.md). */
export function policyTable(r: Pick<PolicyResult, 'scenario' | 'rows'>): string {
  if (r.scenario === 'fairness') {
    const lines = ['| configuration | light users TTFT p50 ms | light p99 ms | heavy user TTFT p50 ms | light requests | heavy requests | errors |', '|---|---:|---:|---:|---:|---:|---:|'];
    for (const x of r.rows) lines.push(`| ${x.name} | ${fmt(x.light_ttft_p50_ms)} | ${fmt(x.light_ttft_p99_ms)} | ${fmt(x.heavy_ttft_p50_ms)} | ${x.light_requests ?? 0} | ${x.heavy_requests ?? 0} | ${x.errors} |`);
    return lines.join('\n');
  }
  if (r.scenario === 'multi-turn') {
    const lines = ['| configuration | TTFT p50 ms | TTFT p99 ms | prefix-cache hit rate | req/s | errors |', '|---|---:|---:|---:|---:|---:|'];
    for (const x of r.rows) lines.push(`| ${x.name} | ${fmt(x.ttft_p50_ms)} | ${fmt(x.ttft_p99_ms)} | ${pct(x.cache_hit_rate)} | ${x.requests_per_s.toFixed(2)} | ${x.errors} |`);
    return lines.join('\n');
  }
  const lines = ['| configuration | in-flight spread across pods (mean max-min) | coefficient of variation | TTFT p50 ms | TTFT p99 ms | req/s | requests per pod | errors |', '|---|---:|---:|---:|---:|---:|---|---:|'];
  for (const x of r.rows) {
    const per = Object.keys(x.backends).sort().map((k) => x.backends[k]).join(' / ');
    lines.push(`| ${x.name} | ${x.imbalance_spread?.toFixed(2) ?? '-'} | ${x.imbalance_cv?.toFixed(2) ?? '-'} | ${fmt(x.ttft_p50_ms)} | ${fmt(x.ttft_p99_ms)} | ${x.requests_per_s.toFixed(2)} | ${per} | ${x.errors} |`);
  }
  return lines.join('\n');
}

/** Parses the command line; throws a BENCH_USAGE error on a bad value. */
export function parsePolicyArgs(argv: string[]): (PolicyOptions & { json?: string }) | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' }, seconds: { type: 'string' }, 'time-scale': { type: 'string' }, pods: { type: 'string' },
      users: { type: 'string' }, seed: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const usage = (m: string): Error => Object.assign(new Error(m), { code: 'BENCH_USAGE' });
  if (!SCENARIOS.includes(values.scenario as Scenario)) throw usage(`--scenario must be one of ${SCENARIOS.join(', ')}`);
  const num = (v: string | undefined, name: string, integer: boolean): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw usage(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
    return n;
  };
  return {
    scenario: values.scenario as Scenario, seconds: num(values.seconds, 'seconds', false), timeScale: num(values['time-scale'], 'time-scale', false),
    pods: num(values.pods, 'pods', true), users: num(values.users, 'users', true), seed: num(values.seed, 'seed', true), json: values.json,
  };
}

export async function policyCommand(argv: string[]): Promise<number> {
  const o = parsePolicyArgs(argv);
  if (o === 'help') { process.stdout.write(POLICY_USAGE); return 0; }
  const r = await runPolicy(o);
  const stamp = new Date().toISOString().replace(/[:.]/g, '').slice(0, 15);
  const jsonFile = o.json ?? path.join(ROOT, 'native-bench', 'results', `policy-${o.scenario}-${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify(r, null, 2) + '\n');
  process.stderr.write(`results: ${jsonFile}\n`);
  process.stdout.write(policyTable(r) + '\n');
  return r.rows.every((x) => x.requests > 0) ? 0 : 1;
}
