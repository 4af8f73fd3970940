/**
 * `native-bench soak --minutes N`: the router (the real CLI, 2 workers) under steady load for N
 * minutes on loopback while faults are injected on a schedule, sampling what a long run degrades:
 * resident memory, /metrics size and scrape time, and errors. Issue 18's acceptance run.
 *
 * Set-up (loopback only, everything started and stopped here, by PID):
 *  - 3 simulated pods in this process and 1 in a child process (`kthena-router sim`), so that it
 *    can be frozen with SIGSTOP like a hung engine;
 *  - a throwaway redis-server (kvcache-aware is in the scheduler profile, so Redis is on the path);
 *  - the router with fault injection on.
 * Faults, at fixed fractions of the run: pod kill (an in-process pod closed, restarted 20 s later),
 * pod hang (SIGSTOP of the child pod for 20 s), Redis hang (SIGSTOP for 15 s), worker crash
 * (`POST /debug/fault/crash-worker`), 100 manifest reloads (atomic renames, a route added and
 * removed in turn). Plus, every sample, 50 requests to distinct unknown /v1 paths (the path-label
 * cardinality attack).
 *
 * Errors are attributed: a failed request that ended within 3 s after a worker crash was injected
 * (in flight on that worker, or sent over a kept-alive connection to it before it died) counts as
 * `inFlightOnCrashedWorker` (issue 18: documented loss); every other failure is `lost`. Memory is the router process's VmRSS
 * (/proc/PID/status: control thread and workers together).
 *
 * Output: a Markdown summary on stdout and JSON in native-bench/results/soak-<date>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSimulatedPods } from './sim/engine.js';
import type { SimFleet } from './sim/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = path.join(ROOT, 'bin', 'kthena-router.js');
const MODEL = 'soak-model';
const BLOCK = '127.0.77';

export const SOAK_USAGE = `Usage: native-bench soak [--minutes N] [--concurrency C] [--sample-seconds S] [--gc-seconds G] [--out DIR]

The router under steady load with faults injected (pod kill, pod hang, Redis hang, worker crash,
100 reloads, distinct-path flood); samples RSS, /metrics size, scrape time and errors.
  --minutes N          run length (default 10)
  --concurrency C      closed-loop clients (default 8)
  --sample-seconds S   sampling period (default 10)
  --gc-seconds G       period of the forced full GC on every router thread, whose heap after it is
                       recorded (default 60; 0: never)
  --out DIR            results directory (default native-bench/results)
`;

interface Sample { t: number; rssMb: number; metricsBytes: number; scrapeMs: number; ok: number; failed: number }
interface ThreadMemory { thread: string; rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number; codeBytes: number }
/** Right after a forced full GC of every router thread (POST /debug/fault/gc). */
interface GcSample { t: number; rssMb: number; heapUsedMb: number; externalMb: number; threads: { thread: string; heapUsedMb: number; codeMb: number; externalMb: number; arrayBuffersMb: number }[] }
interface Outcome { start: number; end: number; ok: boolean; detail: string }
interface FaultEvent { t: number; what: string }

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const p = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function podYaml(name: string, ip: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: {app: soak}}
status: {phase: Running, podIP: ${ip}, conditions: [{type: Ready, status: "True"}]}`;
}

function manifests(port: number, extraRoute: boolean): string {
  const docs = [
    `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: soak-ms, namespace: default}
spec:
  inferenceEngine: vLLM
  workloadSelector: {matchLabels: {app: soak}}
  workloadPort: {port: ${port}}
  model: ${MODEL}
  trafficPolicy: {timeout: 5s}`,
    ...[0, 1, 2].map((i) => podYaml(`soak-${i}`, `${BLOCK}.${i + 1}`)),
    podYaml('hang-0', `${BLOCK}.4`),
    `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: soak-route, namespace: default}
spec:
  modelName: ${MODEL}
  rules: [{name: all, targetModels: [{modelServerName: soak-ms}]}]`,
  ];
  if (extraRoute) {
    docs.push(`apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: soak-extra, namespace: default}
spec:
  modelName: soak-extra
  rules: [{name: all, targetModels: [{modelServerName: soak-ms}]}]`);
  }
  return docs.join('\n---\n') + '\n';
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function waitFor(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if (await fn()) return; } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

function mean(xs: number[]): number {
  return Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
}

const mb = (bytes: number): number => Math.round(bytes / 1048576 * 10) / 10;
const growth = (from: number, to: number): number => Math.round(((to - from) / from) * 1000) / 10;

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

export interface MemoryTrend {
  warmUpS: number;
  windowS: number;
  rssMb: { afterWarmUp: number; max: number; last: number; maxOverFirstPct: number; firstWindowMean: number; lastWindowMean: number; windowGrowthPct: number };
  heapAfterGcMb: { firstAt: number; first: number; lastAt: number; last: number; growthPct: number; externalFirst: number; externalLast: number } | null;
}

/**
 * The memory verdict of a run of `durationS` seconds. Warm-up (JIT, pools, caches): 20 % of the
 * run, at least 30 s. RSS: the mean of the samples in the first window after warm-up against the
 * mean of those in the last window (each 20 % of the run, at least one sample period), so that
 * no single sample taken just before or after a GC decides. Heap after a full GC (summed over the
 * threads): the first sample after warm-up against the last.
 */
export function memoryTrend(
  samples: readonly { t: number; rssMb: number }[], gcSamples: readonly { t: number; heapUsedMb: number; externalMb: number }[],
  durationS: number, sampleS: number,
): MemoryTrend {
  const warmUpS = Math.max(30, durationS * 0.2);
  const windowS = Math.max(sampleS, durationS * 0.2);
  const warm = samples.filter((x) => x.t >= warmUpS);
  const rss = (warm.length > 0 ? warm : samples).map((x) => x.rssMb);
  const firstWindow = warm.filter((x) => x.t < warmUpS + windowS).map((x) => x.rssMb);
  const lastWindow = warm.filter((x) => x.t > durationS - windowS).map((x) => x.rssMb);
  const firstMean = firstWindow.length > 0 ? mean(firstWindow) : NaN;
  const lastMean = lastWindow.length > 0 ? mean(lastWindow) : NaN;
  const warmGc = gcSamples.filter((g) => g.t >= warmUpS);
  const a = warmGc[0];
  const b = warmGc[warmGc.length - 1];
  return {
    warmUpS, windowS,
    rssMb: {
      afterWarmUp: rss[0], max: Math.max(...rss), last: rss[rss.length - 1], maxOverFirstPct: growth(rss[0], Math.max(...rss)),
      firstWindowMean: firstMean, lastWindowMean: lastMean, windowGrowthPct: growth(firstMean, lastMean),
    },
    heapAfterGcMb: a === undefined ? null : {
      firstAt: a.t, first: a.heapUsedMb, lastAt: b.t, last: b.heapUsedMb, growthPct: growth(a.heapUsedMb, b.heapUsedMb),
      externalFirst: a.externalMb, externalLast: b.externalMb,
    },
  };
}

export async function soakCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '8' },
      'sample-seconds': { type: 'string', default: '10' }, 'gc-seconds': { type: 'string', default: '60' }, out: { type: 'string' }, help: { type: 'boolean' },
    },
  });
  if (values.help) { process.stdout.write(SOAK_USAGE); return 0; }
  const minutes = Number(values.minutes);
  const concurrency = Number(values.concurrency);
  const sampleMs = Number(values['sample-seconds']) * 1000;
  const gcMs = Number(values['gc-seconds']) * 1000;
  if (!(minutes > 0) || !(concurrency >= 1) || !(sampleMs >= 1000) || !(gcMs === 0 || gcMs >= 1000)) {
    throw Object.assign(new Error('--minutes > 0, --concurrency >= 1, --sample-seconds >= 1, --gc-seconds 0 or >= 1'), { code: 'BENCH_USAGE' });
  }
  const durationMs = minutes * 60_000;
  const outDir = values.out ?? path.join(ROOT, 'native-bench', 'results');

  const children: ChildProcess[] = [];
  // Interrupted (Ctrl-C, a timeout's SIGTERM): no router, pod or redis-server may outlive the run.
  const interrupted = (sig: NodeJS.Signals): void => {
    for (const c of children) { c.kill('SIGCONT'); c.kill('SIGKILL'); }
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kthena-soak-'));
  let fleet: SimFleet | null = null;
  let revived: SimFleet | null = null;
  try {
    const simPort = await freePort();
    // Redis (kvcache-aware's lookups go through the worker's breaker).
    const redisPort = await freePort();
    const redisBin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((b) => existsSync(b));
    if (redisBin === undefined) throw new Error('redis-server not found (apt-get install redis-server)');
    const redis = spawn(redisBin, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    children.push(redis);
    // Three pods here, one in a child process (SIGSTOP target).
    const spec = (i: number) => ({ name: `soak-${i}`, ip: `${BLOCK}.${i + 1}`, port: simPort, models: [MODEL], ttftMs: 5, itlMs: 2, outputTokens: 8 });
    fleet = await startSimulatedPods([0, 1, 2].map(spec));
    const hang = spawn(process.execPath, [CLI, 'sim', '--pods', '1', '--base-ip', `${BLOCK}.4`, '--port', String(simPort), '--model', MODEL,
      '--name-prefix', 'hang', '--ttft-ms', '5', '--itl-ms', '2', '--output-tokens', '8'], { stdio: 'ignore' });
    children.push(hang);

    const routerCfg = path.join(dir, 'router-config.yaml');
    await writeFile(routerCfg, `scheduler:
  pluginConfig: [{name: kvcache-aware, args: {vllmTokenizerPort: ${simPort}, sglangTokenizerPort: ${simPort}}}]
  plugins: {Score: {enabled: [{name: least-request, weight: 1}, {name: kvcache-aware, weight: 1}]}}
`);
    const cfgDir = path.join(dir, 'manifests');
    await mkdir(cfgDir);
    await writeFile(path.join(cfgDir, 'soak.yaml'), manifests(simPort, false));
    const port = await freePort();
    const metricsPort = await freePort();
    const debugPort = await freePort();
    const router = spawn(process.execPath, [CLI, 'serve', '--config', cfgDir, '--router-config', routerCfg, '--host', '127.0.0.1', '--port', String(port),
      '--metrics-port', String(metricsPort), '--debug-port', String(debugPort), '--workers', '2'], {
      env: { ...process.env, KTHENA_ROUTER_FAULT_INJECTION: '1', REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redisPort), ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    children.push(router);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 'router ready');
    process.stderr.write(`soak: router pid ${router.pid} ready on ${url}; ${minutes} min, concurrency ${concurrency}\n`);

    const t0 = performance.now();
    const now = (): number => performance.now() - t0;
    const outcomes: Outcome[] = [];
    const faults: FaultEvent[] = [];
    const crashes: number[] = [];
    const samples: Sample[] = [];
    const gcSamples: GcSample[] = [];
    let stop = false;
    let ok = 0;
    let failed = 0;
    const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'soak: say something short' }], max_tokens: 8 });

    const client = async (): Promise<void> => {
      while (!stop) {
        const start = now();
        let good = false;
        let detail = '';
        try {
          const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) });
          const text = await r.text();
          good = r.status === 200;
          if (!good) detail = `${r.status} ${text.slice(0, 120)}`;
        } catch (err) {
          detail = (err as Error).message;
        }
        if (good) ok++;
        else { failed++; outcomes.push({ start, end: now(), ok: false, detail }); }
        if (!good) await sleep(50);
      }
    };

    const fault = (what: string): void => { faults.push({ t: now(), what }); process.stderr.write(`soak: ${(now() / 1000).toFixed(0)} s: ${what}\n`); };
    const at = (fraction: number, fn: () => Promise<void>): Promise<void> => sleep(durationMs * fraction).then(() => (stop ? undefined : fn()));

    const schedule = [
      at(0.1, async () => {
        fault('pod kill: soak-2 closed');
        await fleet!.pod('soak-2').close();
        await sleep(20_000);
        if (stop) return;
        revived = await startSimulatedPods([spec(2)]);
        fault('pod kill: soak-2 back');
      }),
      at(0.3, async () => {
        fault('pod hang: SIGSTOP hang-0');
        hang.kill('SIGSTOP');
        await sleep(20_000);
        hang.kill('SIGCONT');
        fault('pod hang: SIGCONT hang-0');
      }),
      at(0.45, async () => {
        fault('redis hang: SIGSTOP redis-server');
        redis.kill('SIGSTOP');
        await sleep(15_000);
        redis.kill('SIGCONT');
        fault('redis hang: SIGCONT redis-server');
      }),
      at(0.6, async () => {
        crashes.push(now());
        fault('worker crash: index 0');
        await fetch(`http://127.0.0.1:${debugPort}/debug/fault/crash-worker?index=0`, { method: 'POST' });
      }),
      at(0.7, async () => {
        fault('100 reloads: start');
        for (let i = 0; i < 100 && !stop; i++) {
          const tmp = path.join(cfgDir, '.soak.yaml.tmp');
          await writeFile(tmp, manifests(simPort, i % 2 === 0));
          await rename(tmp, path.join(cfgDir, 'soak.yaml'));
          await sleep(150);
        }
        fault('100 reloads: done');
      }),
    ];

    const sampler = (async () => {
      while (!stop) {
        await sleep(sampleMs);
        if (stop) break;
        // Path-label flood: 50 distinct unknown /v1 paths per sample.
        await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${url}/v1/soak-${samples.length}-${i}/x`, { method: 'POST', body: '{}' }).then((r) => r.text()).catch(() => '')));
        const s0 = performance.now();
        let size = NaN;
        try { size = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).length; } catch { /* counted as NaN */ }
        const scrapeMs = performance.now() - s0;
        const sample = { t: Math.round(now() / 1000), rssMb: Math.round(await rssMb(router.pid!)), metricsBytes: size, scrapeMs: Math.round(scrapeMs), ok, failed };
        samples.push(sample);
        process.stderr.write(`soak: ${JSON.stringify(sample)}\n`);
      }
    })();

    // Every gc period: a full GC on every router thread, then each one's heap. What survives a full
    // GC is what is still reachable: unlike RSS it does not move with load or GC timing.
    const gcSampler = (async () => {
      if (gcMs === 0) return;
      while (!stop) {
        await sleep(gcMs);
        if (stop) break;
        try {
          const r = await fetch(`http://127.0.0.1:${debugPort}/debug/fault/gc`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
          const { threads } = await r.json() as { threads: ThreadMemory[] };
          const g: GcSample = {
            t: Math.round(now() / 1000), rssMb: Math.round(await rssMb(router.pid!)),
            heapUsedMb: mb(threads.reduce((a, x) => a + x.heapUsedBytes, 0)), externalMb: mb(threads.reduce((a, x) => a + x.externalBytes, 0)),
            threads: threads.map((x) => ({ thread: x.thread, heapUsedMb: mb(x.heapUsedBytes), codeMb: mb(x.codeBytes), externalMb: mb(x.externalBytes), arrayBuffersMb: mb(x.arrayBuffersBytes) })),
          };
          gcSamples.push(g);
          process.stderr.write(`soak: after GC ${JSON.stringify(g)}\n`);
        } catch (err) {
          process.stderr.write(`soak: GC sample failed: ${(err as Error).message}\n`);
        }
      }
    })();

    const clients = Array.from({ length: concurrency }, client);
    await sleep(durationMs);
    stop = true;
    await Promise.all(clients);
    await sampler;
    await gcSampler;
    await Promise.allSettled(schedule);

    // Attribution of failures.
    // In flight on the crashed worker, or sent over a kept-alive connection to it before it died.
    const onCrash = (o: Outcome): boolean => crashes.some((c) => o.start <= c + 3000 && o.end >= c && o.end <= c + 3000);
    const crashLost = outcomes.filter(onCrash);
    const lost = outcomes.filter((o) => !onCrash(o));
    const mem = memoryTrend(samples, gcSamples, durationMs / 1000, sampleMs / 1000);
    const { warmUpS, windowS } = mem;
    const scrape = samples.map((s) => s.scrapeMs).sort((a, b) => a - b);
    const sizes = samples.map((s) => s.metricsBytes);
    const report = {
      date: new Date().toISOString(), minutes, concurrency, node: process.version, cpus: os.cpus().length,
      note: 'shared machine: compare within this run',
      requests: ok + failed, ok, failed, inFlightOnCrashedWorker: crashLost.length, lost: lost.length,
      lostDetails: lost.slice(0, 20).map((o) => ({ at: Math.round(o.start / 1000), detail: o.detail })),
      // RSS moves with load and GC timing (the young generation, malloc arenas): flatness is the
      // mean of the last window against the first, both after warm-up (docs/native-bench.md).
      warmUpS, windowS, rssMb: mem.rssMb, heapAfterGcMb: mem.heapAfterGcMb,
      metricsBytes: { first: sizes[0], max: Math.max(...sizes), last: sizes[sizes.length - 1] },
      scrapeMs: { p50: pct(scrape, 0.5), max: scrape[scrape.length - 1] },
      faults, samples, gcSamples,
    };
    await mkdir(outDir, { recursive: true });
    const file = path.join(outDir, `soak-${report.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(file, JSON.stringify(report, null, 2) + '\n');
    process.stdout.write([
      `## native-bench soak: ${minutes} min, concurrency ${concurrency} (${report.note})`, '',
      `| requests | ok | lost | in flight on the crashed worker | RSS mean, first → last window (MB) | RSS after warm-up → max (MB) | heap after full GC, all threads (MB) | /metrics bytes first → max → last | scrape ms p50 / max |`,
      '|---|---|---|---|---|---|---|---|---|',
      `| ${report.requests} | ${ok} | ${lost.length} | ${crashLost.length} | ${mem.rssMb.firstWindowMean} → ${mem.rssMb.lastWindowMean} (${mem.rssMb.windowGrowthPct} %) | ${mem.rssMb.afterWarmUp} → ${mem.rssMb.max} | ${report.heapAfterGcMb === null ? 'n/a' : `${report.heapAfterGcMb.first} (${report.heapAfterGcMb.firstAt} s) → ${report.heapAfterGcMb.last} (${report.heapAfterGcMb.lastAt} s), ${report.heapAfterGcMb.growthPct} %`} | ${report.metricsBytes.first} → ${report.metricsBytes.max} → ${report.metricsBytes.last} | ${report.scrapeMs.p50} / ${report.scrapeMs.max} |`,
      '', `Windows: warm-up ${warmUpS} s; RSS windows ${windowS} s each (first after warm-up, last before the end).`,
      '', `Faults: ${faults.map((f) => `${(f.t / 1000).toFixed(0)} s ${f.what}`).join('; ')}`,
      ...(lost.length > 0 ? ['', 'Lost requests (first 20):', ...report.lostDetails.map((d) => `- ${d.at} s: ${d.detail}`)] : []),
      '', `JSON: ${path.relative(process.cwd(), file)}`, '',
    ].join('\n'));
    return lost.length === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    for (const c of children.reverse()) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGCONT');
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
        await new Promise((r) => c.once('exit', r));
        clearTimeout(t);
      }
    }
    await fleet?.close().catch(() => undefined);
    await (revived as SimFleet | null)?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
