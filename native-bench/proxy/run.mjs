#!/usr/bin/env node
// Router overhead benchmark (`npm run bench:proxy`): requests/s, latency percentiles and CPU per
// request of kthena-router, nginx and no proxy at all, in front of the same fast mock engines, for
// a short JSON chat completion and a 20-event SSE stream, at several concurrencies, in one run.
// Prints a Markdown table and writes JSON to native-bench/results/proxy-<date>.json.
//
// Every process it starts (mock engines, nginx, the router, load generators) is killed by PID on
// exit, including on SIGINT.

import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { attribute, profileMarkdown, workerProfiles } from './profile.mjs';

import {
  cpuMicros,
  cpuMicrosOf,
  freePort,
  httpStatus,
  median,
  processTree,
  sleep,
  summarize,
  tailOfFile,
  waitFor,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const MOCK_IPS = ['127.0.0.21', '127.0.0.22'];
const ROUTER_READY_TIMEOUT_MS = 30_000;

const USAGE = `Usage: node native-bench/proxy/run.mjs [options]

  --quick               smoke test: 1 run, 1 s warmup, 3 s measured
  --duration S          measured seconds per run (default 10)
  --warmup S            warmup seconds per run (default 2)
  --runs N              runs per (target, case, concurrency); medians are reported (default 3)
  --concurrency LIST    connections, comma-separated (default 1,64,256; c=1 gives the added latency)
  --cases LIST          json,sse (default both)
  --targets LIST        from: router (access log off), router-log (access log on), router-undici
                        (upstream leg on undici, --upstream-client undici), router-gw (Gateway
                        listener: HTTPRoute -> InferencePool), bare-undici and bare-h1 (bare uWS,
                        2 threads, undici Pool.dispatch or the router's HTTP/1.1 client: the
                        floors), nginx, direct, router-base
                        (default router,router-log,router-gw,bare-undici,bare-h1,nginx,direct)
  --base-router DIR     another build of the router (a git worktree of an older commit, built) for
                        the router-base target: before/after ratios measured in one run
  --sse-events N        data events per SSE response before [DONE] (default 20)
  --sse-itl-ms MS       delay between SSE events in the mock (default 0: all at once)
  --router-workers N    router worker threads (default 2)
  --nginx-workers N     nginx worker_processes (default 2)
  --nginx-keepalive N   idle upstream connections nginx keeps per worker (default 64)
  --loadgen-procs N     load generator processes sharing the connections (default 1)
  --router-access-log   keep the access log on for the router and router-base targets too
                        (router-log always has it on; default off, as nginx's)
  --mock-port P         port of both mock engines (default 8000)
  --out FILE            JSON output (default native-bench/results/proxy-<date>.json)
  --keep-tmp            keep the temp dir (configs, logs)
  --profile             also profile the router and bare targets (node --cpu-prof on every thread)
                        and print where their worker threads' CPU goes per request, by source
                        file and native function (profile.mjs); sampling costs a little CPU, so
                        use a profiled run for attribution, not for the req/s tables
  --note TEXT           a remark stored with the results and printed in the report (e.g. what
                        else ran on the machine)
  -h, --help
`;

// ---------------------------------------------------------------------------------------------
// Options

let opts;
try {
  opts = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      runs: { type: 'string' },
      concurrency: { type: 'string', default: '1,64,256' },
      cases: { type: 'string', default: 'json,sse' },
      targets: { type: 'string', default: 'router,router-log,router-gw,bare-undici,bare-h1,nginx,direct' },
      'sse-events': { type: 'string', default: '20' },
      'sse-itl-ms': { type: 'string', default: '0' },
      'router-workers': { type: 'string', default: '2' },
      'nginx-workers': { type: 'string', default: '2' },
      'nginx-keepalive': { type: 'string', default: '64' },
      'loadgen-procs': { type: 'string', default: '1' },
      'router-access-log': { type: 'boolean', default: false },
      'mock-port': { type: 'string', default: '8000' },
      out: { type: 'string' },
      'keep-tmp': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      note: { type: 'string', default: '' },
      'base-router': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  process.stderr.write(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function num(name, value, min, integer = true) {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    process.stderr.write(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${value}"\n`);
    process.exit(2);
  }
  return n;
}

function list(name, value, allowed) {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i)) {
      process.stderr.write(`--${name}: unknown "${i}" (choose from ${allowed.join(', ')})\n`);
      process.exit(2);
    }
  }
  return items;
}

const cfg = {
  durationS: num('duration', opts.duration ?? (opts.quick ? 3 : 10), 0.5, false),
  warmupS: num('warmup', opts.warmup ?? (opts.quick ? 1 : 2), 0, false),
  runs: num('runs', opts.runs ?? (opts.quick ? 1 : 3), 1),
  concurrencies: opts.concurrency.split(',').map((c) => num('concurrency', c.trim(), 1)),
  cases: list('cases', opts.cases, ['json', 'sse']),
  targets: list('targets', opts.targets, ['router', 'router-log', 'router-undici', 'router-gw', 'bare-undici', 'bare-h1', 'nginx', 'direct', 'router-base']),
  baseRouter: opts['base-router'] ?? '',
  sseEvents: num('sse-events', opts['sse-events'], 2),
  sseItlMs: num('sse-itl-ms', opts['sse-itl-ms'], 0, false),
  routerWorkers: num('router-workers', opts['router-workers'], 1),
  nginxWorkers: num('nginx-workers', opts['nginx-workers'], 1),
  nginxKeepalive: num('nginx-keepalive', opts['nginx-keepalive'], 1),
  loadgenProcs: num('loadgen-procs', opts['loadgen-procs'], 1),
  routerAccessLog: opts['router-access-log'],
  mockPort: num('mock-port', opts['mock-port'], 1),
  note: opts.note,
  profile: opts.profile,
};

const CHAT = { model: 'mock-model', messages: [{ role: 'user', content: 'Hello, how are you?' }], max_tokens: 16 };
const CASES = {
  json: { body: JSON.stringify(CHAT), stream: false, expectEvents: 0 },
  sse: { body: JSON.stringify({ ...CHAT, stream: true }), stream: true, expectEvents: cfg.sseEvents + 1 },
};

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything started here is killed by PID, never by name.

const children = new Set();
const tmp = mkdtempSync(join(os.tmpdir(), 'kthena-bench-proxy-'));
// nginx workers drop root privileges; they must be able to reach the temp paths they are given.
chmodSync(tmp, 0o755);
let cleaning = null;

/** Registers a child for cleanup; one started after cleanup began is killed at once. */
function track(child) {
  if (cleaning) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    throw new Error('interrupted');
  }
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

function stop(child, graceMs = 3000) {
  if (!alive(child)) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      clearTimeout(timer);
      resolveStop();
    }
  });
}

function cleanup() {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stop(c)));
    if (!opts['keep-tmp']) rmSync(tmp, { recursive: true, force: true });
    else process.stderr.write(`temp dir kept: ${tmp}\n`);
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping ${children.size} child processes\n`);
    cleanup().then(() => process.exit(130));
  });
}

const log = (s) => process.stderr.write(`${s}\n`);

/** A path inside the repository relative to it, anything else unchanged. */
function shortPath(p) {
  const r = relative(ROOT, p);
  return r && !r.startsWith('..') && !r.startsWith('/') ? r : p;
}

// ---------------------------------------------------------------------------------------------
// Machine description

function machine(nginxVersion) {
  const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m) ?? [])[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const pkg = (p) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, p), 'utf8')).version;
    } catch {
      return 'unknown';
    }
  };
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return {
    cpu: cpuModel.trim(),
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: nginxVersion ?? 'not installed',
    undici: pkg('node_modules/undici/package.json'),
    router: `${pkg('package.json')}${git.status === 0 ? ` (${git.stdout.trim()})` : ''}`,
    // Other work on the machine shows here (a dedicated 2-core machine under this benchmark
    // stays near 2-3).
    loadAvgAtStart: os.loadavg()[0],
  };
}

// ---------------------------------------------------------------------------------------------
// Mock engines

async function startMock() {
  const pods = MOCK_IPS.map((ip) => `${ip}:${cfg.mockPort}`).join(',');
  const args = [join(HERE, 'mock-engine.mjs'), '--pods', pods, '--events', String(cfg.sseEvents), '--itl-ms', String(cfg.sseItlMs)];
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] }));
  const ready = await new Promise((resolveReady) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => {
      try {
        resolveReady(JSON.parse(line));
      } catch {
        resolveReady(null);
      }
    });
    child.once('exit', () => resolveReady(null));
    setTimeout(() => resolveReady(null), 10_000).unref();
  });
  if (!ready?.ready) throw new Error('mock engines did not start (see the error above)');
  child.stdout.resume();
  return { child, origins: MOCK_IPS.map((ip) => `http://${ip}:${cfg.mockPort}`) };
}

// ---------------------------------------------------------------------------------------------
// Targets. Each: { name, origins, pids, child?, skipped? }

function findNginx() {
  for (const bin of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) {
      const m = `${r.stderr}${r.stdout}`.match(/nginx\/(\d+)\.(\d+)\.(\d+)/);
      return { bin, version: m ? `${m[1]}.${m[2]}.${m[3]}` : 'unknown', numeric: m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0] };
    }
  }
  return null;
}

async function startNginx(nginx) {
  const dir = join(tmp, 'nginx');
  mkdirSync(dir, { mode: 0o755 });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `# Generated by native-bench/proxy/run.mjs
worker_processes ${cfg.nginxWorkers};
worker_rlimit_nofile 65535;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 16384;
}

http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # A closed-loop client reuses its connections for the whole run; nginx's default of 1000
  # requests per connection would add reconnects the other targets do not pay.
  keepalive_requests 1000000;

  upstream mock_engines {
    ${MOCK_IPS.map((ip) => `server ${ip}:${cfg.mockPort};`).join('\n    ')}
    keepalive ${cfg.nginxKeepalive};
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://mock_engines;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const [maj, min, patch] = nginx.numeric;
  // -e (startup error log) exists since 1.19.5; without it nginx first opens /var/log/nginx/error.log.
  const hasE = maj > 1 || (maj === 1 && (min > 19 || (min === 19 && patch >= 5)));
  const args = ['-p', dir, '-c', conf, ...(hasE ? ['-e', join(dir, 'error.log')] : []), '-g', 'daemon off;'];
  const out = openSync(join(dir, 'stderr.log'), 'a');
  const child = track(spawn(nginx.bin, args, { stdio: ['ignore', out, out] }));
  const origin = `http://127.0.0.1:${port}`;
  const ok = await waitFor(async () => !alive(child) || (await httpStatus(`${origin}/health`)) === 200, 5000);
  if (!ok || !alive(child)) {
    await stop(child);
    return {
      name: 'nginx',
      skipped: `nginx did not start: ${tailOfFile(join(dir, 'stderr.log'), 5)} ${tailOfFile(join(dir, 'error.log'), 5)}`,
    };
  }
  return { name: 'nginx', origins: [origin], child, pids: processTree(child.pid) };
}

function routerManifests(dir) {
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'model-server.yaml'),
    `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata:
  name: mock
  namespace: default
spec:
  workloadSelector:
    matchLabels:
      app: mock
  workloadPort:
    port: ${cfg.mockPort}
  inferenceEngine: "vLLM"
`,
  );
  writeFileSync(
    join(dir, 'model-route.yaml'),
    `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata:
  name: mock-model
  namespace: default
spec:
  modelName: "mock-model"
  rules:
  - name: "default"
    targetModels:
    - modelServerName: "mock"
`,
  );
  writeFileSync(
    join(dir, 'pods.yaml'),
    MOCK_IPS.map(
      (ip, i) => `apiVersion: v1
kind: Pod
metadata:
  name: mock-${i}
  namespace: default
  labels:
    app: mock
spec:
  containers:
  - name: engine
    image: mock-engine
status:
  phase: Running
  podIP: ${ip}
  conditions:
  - type: Ready
    status: "True"
`,
    ).join('---\n'),
  );
}

/**
 * The Gateway path: a Gateway listener, an HTTPRoute to an InferencePool over the same two mock
 * pods (scheduled in-process; no endpoint picker, no InferenceObjective).
 */
function gatewayManifests(dir, gwPort) {
  writeFileSync(
    join(dir, 'gateway.yaml'),
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: kthena-router
  listeners: [{name: http, port: ${gwPort}, protocol: HTTP}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: mock-pool, namespace: default}
spec: {selector: {matchLabels: {app: mock}}, targetPorts: [{number: ${cfg.mockPort}}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-pool, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules: [{matches: [{path: {type: PathPrefix, value: /v1/}}], backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: mock-pool}]}]
`,
  );
}

/**
 * A router process. Variants: `accessLog` (on/off), `upstreamClient` ('undici' forces the old
 * upstream leg), `gateway` (the load goes to a Gateway listener routed by HTTPRoute ->
 * InferencePool instead of the router port's ModelRoute).
 */
async function startRouter(name = 'router', root = ROOT, variant = {}) {
  const bin = join(root, 'bin', 'kthena-router.js');
  if (!existsSync(bin)) return { name, skipped: `${bin} not found: build and wire the router first (npm run build)` };
  const configDir = join(tmp, `${name}-config`);
  routerManifests(configDir);
  const [port, metricsPort, debugPort] = [await freePort(), await freePort(), await freePort()];
  const gwPort = variant.gateway ? await freePort() : 0;
  if (variant.gateway) gatewayManifests(configDir, gwPort);
  const logFile = join(tmp, `${name}.log`);
  const out = openSync(logFile, 'a');
  const args = [
    bin, 'serve', '--config', configDir, '--port', String(port), '--workers', String(cfg.routerWorkers),
    '--metrics-port', String(metricsPort), '--debug-port', String(debugPort),
  ];
  if (variant.gateway) args.push('--enable-gateway-api', '--enable-gateway-api-inference-extension');
  if (variant.upstreamClient) args.push('--upstream-client', variant.upstreamClient);
  const env = { ...process.env, POD_NAMESPACE: 'default' };
  // stdout (where the access log goes) is the log file, as for every target.
  if (!(variant.accessLog ?? cfg.routerAccessLog)) env.ACCESS_LOG_ENABLED = 'false';
  const child = track(spawn(process.execPath, [...profileArgs(name), ...args], { cwd: root, env, stdio: ['ignore', out, out] }));
  const origin = `http://127.0.0.1:${port}`;
  let last = 'no answer';
  const ready = await waitFor(async () => {
    if (!alive(child)) return true;
    last = await httpStatus(`${origin}/readyz`);
    return last === 200;
  }, ROUTER_READY_TIMEOUT_MS, 200);
  if (!alive(child) || !ready) {
    const why = !alive(child)
      ? `the router exited (code ${child.exitCode ?? child.signalCode}) before becoming ready`
      : `the router did not become ready within ${ROUTER_READY_TIMEOUT_MS / 1000} s (GET ${origin}/readyz last answered: ${last})`;
    await stop(child);
    return { name, skipped: `${why}; command: node ${args.map(shortPath).join(' ')}\n--- router log (last lines) ---\n${tailOfFile(logFile, 25)}` };
  }
  if (variant.gateway) {
    // The listener opens once the Gateway is translated and the pods are known.
    const gw = `http://127.0.0.1:${gwPort}`;
    const up = await waitFor(async () => (await httpStatus(`${gw}/v1/models`)) === 200, ROUTER_READY_TIMEOUT_MS, 200);
    if (!up) {
      await stop(child);
      return { name, skipped: `the Gateway listener ${gw} did not answer within ${ROUTER_READY_TIMEOUT_MS / 1000} s\n${tailOfFile(logFile, 25)}` };
    }
    return { name, origins: [gw], child, pids: processTree(child.pid), logFile };
  }
  return { name, origins: [origin], child, pids: processTree(child.pid), logFile };
}

/** A floor: bare uWS threads + one upstream client (bare-proxy.mjs). */
/** `node --cpu-prof` for a profiled target: every thread writes its profile into the target's folder at exit. */
function profileArgs(name) {
  return cfg.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir(name)}`] : [];
}

const profileDir = (name) => join(tmp, `${name}-profile`);
/** CLOCK_MONOTONIC in µs: the clock V8 stamps profile samples with. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

async function startBare(name, client) {
  if (client === 'h1' && !existsSync(join(ROOT, 'dist', 'workers', 'upstream', 'h1-client.js'))) {
    return { name, skipped: 'dist/workers/upstream/h1-client.js not found: run npm run build' };
  }
  const port = await freePort();
  const logFile = join(tmp, `${name}.log`);
  const child = track(spawn(process.execPath, [
    ...profileArgs(name),
    join(HERE, 'bare-proxy.mjs'), '--port', String(port), '--client', client, '--threads', String(cfg.routerWorkers),
    '--upstreams', MOCK_IPS.map((ip) => `http://${ip}:${cfg.mockPort}`).join(','),
  ], { stdio: ['ignore', 'pipe', openSync(logFile, 'a')] }));
  const ready = await new Promise((resolveReady) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => {
      try { resolveReady(JSON.parse(line)); } catch { resolveReady(null); }
    });
    child.once('exit', () => resolveReady(null));
    setTimeout(() => resolveReady(null), 10_000).unref();
  });
  if (!ready?.ready) {
    await stop(child);
    return { name, skipped: `bare-proxy did not start: ${tailOfFile(logFile, 10)}` };
  }
  child.stdout.resume();
  return { name, origins: [`http://127.0.0.1:${port}`], child, pids: processTree(child.pid), logFile };
}

/** One request per case through the target: a target that answers wrongly is reported, not measured. */
async function sanityCheck(target) {
  for (const name of cfg.cases) {
    const c = CASES[name];
    try {
      const r = await fetch(`${target.origins[0]}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: c.body,
        signal: AbortSignal.timeout(5000),
      });
      const text = await r.text();
      if (r.status !== 200) return `${name} request answered ${r.status}: ${text.slice(0, 300)}`;
      if (c.stream) {
        const events = text.split('\n\n').filter(Boolean).length;
        if (events !== c.expectEvents || !text.endsWith('data: [DONE]\n\n')) {
          return `${name} stream had ${events} events (want ${c.expectEvents}, ending in [DONE])`;
        }
      } else {
        JSON.parse(text);
      }
    } catch (err) {
      return `${name} request failed: ${err.cause?.code ?? err.message}`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// One measurement: load generator processes against one target, CPU read around the window.

function readSamples(file) {
  if (!existsSync(file)) return new Float64Array(0);
  const buf = readFileSync(file);
  return new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
}

function concat(arrays) {
  const out = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

async function measure(target, caseName, concurrency, mock) {
  const c = CASES[caseName];
  const procs = Math.min(cfg.loadgenProcs, concurrency);
  const base = Math.floor(concurrency / procs);
  const shares = Array.from({ length: procs }, (_, i) => base + (i < concurrency % procs ? 1 : 0));
  const pids = target.pids ?? [];
  let started = 0;
  let ended = false;
  let cpu0 = 0;
  let mock0 = 0;
  let t0 = 0;
  let cpu1 = 0;
  let mock1 = 0;
  let t1 = 0;
  let mono0 = 0;
  let mono1 = 0;
  const results = [];
  const failures = [];
  const deadline = (cfg.warmupS + cfg.durationS) * 1000 + 45_000;

  await Promise.all(
    shares.map(
      (share, i) =>
        new Promise((done) => {
          const samplesFile = join(tmp, `samples-${process.pid}-${i}`);
          const lcfg = {
            origins: target.origins,
            path: '/v1/chat/completions',
            body: c.body,
            stream: c.stream,
            expectEvents: c.expectEvents,
            concurrency: share,
            warmupMs: cfg.warmupS * 1000,
            durationMs: cfg.durationS * 1000,
            samplesFile,
          };
          const child = track(fork(join(HERE, 'load.mjs'), [JSON.stringify(lcfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
          const timer = setTimeout(() => {
            failures.push(`load generator ${i} timed out`);
            stop(child, 500);
          }, deadline);
          let gotResult = false;
          child.on('message', (m) => {
            if (m.type === 'start' && ++started === procs) {
              cpu0 = cpuMicrosOf(pids);
              mock0 = cpuMicros(mock.child.pid);
              t0 = performance.now();
              mono0 = monoUs();
            } else if (m.type === 'end' && !ended) {
              ended = true;
              cpu1 = cpuMicrosOf(pids);
              mock1 = cpuMicros(mock.child.pid);
              t1 = performance.now();
              mono1 = monoUs();
            } else if (m.type === 'result') {
              gotResult = true;
              results.push({ ...m, samplesFile });
            }
          });
          child.once('exit', (code) => {
            clearTimeout(timer);
            if (!gotResult) failures.push(`load generator ${i} exited with ${code}`);
            done();
          });
        }),
    ),
  );

  if (results.length === 0) return { failed: failures.join('; ') || 'no result' };
  const latency = concat(results.map((r) => readSamples(`${r.samplesFile}.latency`)));
  const ttfb = c.stream ? concat(results.map((r) => readSamples(`${r.samplesFile}.ttfb`))) : null;
  for (const r of results) {
    rmSync(`${r.samplesFile}.latency`, { force: true });
    rmSync(`${r.samplesFile}.ttfb`, { force: true });
  }
  const rps = results.reduce((n, r) => n + r.rps, 0);
  const errorKinds = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + v;
  const windowS = (t1 - t0) / 1000;
  const requestsInWindow = rps * windowS;
  return {
    rps,
    completed: results.reduce((n, r) => n + r.completed, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    errorKinds,
    latencyMs: summarize(latency, latency.length),
    ttfbMs: ttfb ? summarize(ttfb, ttfb.length) : null,
    cpuUsPerReq: pids.length > 0 && requestsInWindow > 0 ? (cpu1 - cpu0) / requestsInWindow : null,
    targetCpuPct: pids.length > 0 && windowS > 0 ? ((cpu1 - cpu0) / (windowS * 1e6)) * 100 : null,
    mockCpuPct: windowS > 0 ? ((mock1 - mock0) / (windowS * 1e6)) * 100 : null,
    loadgenCpuPct: results.reduce((n, r) => n + r.loadgenCpuPct, 0),
    sampled: results.some((r) => r.sampled),
    window: { startUs: mono0, endUs: mono1 },
    failures,
  };
}

/**
 * Stops the profiled targets (SIGTERM: each thread writes its profile as it exits) and attributes
 * their worker threads' samples to the measured windows of every cell.
 */
async function profileTargets(targets, cells) {
  const out = [];
  for (const t of targets) {
    if (!t.child || !(t.name.startsWith('router') || t.name.startsWith('bare'))) continue;
    await stop(t.child, 20_000);
    const files = workerProfiles(profileDir(t.name));
    if (files.length === 0) {
      log(`!! ${t.name}: no worker-thread profile was written`);
      continue;
    }
    const windows = [];
    for (const cell of cells.values()) {
      if (cell.target !== t.name) continue;
      for (const r of cell.runs) {
        if (r.window && r.window.endUs > r.window.startUs) windows.push({ key: `${cell.case}|${cell.concurrency}`, startUs: r.window.startUs, endUs: r.window.endUs, requests: r.completed });
      }
    }
    for (const [key, a] of attribute(files, windows)) {
      const [caseName, conc] = key.split('|');
      const cell = cells.get(`${key}|${t.name}`);
      const cpu = cell.runs.map((r) => r.cpuUsPerReq).filter((v) => Number.isFinite(v));
      out.push({ target: t.name, case: caseName, concurrency: Number(conc), cpuUsPerReq: cpu.length > 0 ? median(cpu) : null, ...a, buckets: a.buckets.slice(0, 40) });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (v, digits = 2) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const fmtInt = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');

function aggregate(runs) {
  const ok = runs.filter((r) => !r.failed);
  const pick = (f) => median(ok.map(f));
  return {
    runs: runs.length,
    failedRuns: runs.length - ok.length,
    rps: pick((r) => r.rps),
    p50: pick((r) => r.latencyMs?.p50),
    p99: pick((r) => r.latencyMs?.p99),
    p999: pick((r) => r.latencyMs?.p999),
    ttfbP50: pick((r) => r.ttfbMs?.p50 ?? NaN),
    ttfbP99: pick((r) => r.ttfbMs?.p99 ?? NaN),
    errors: ok.reduce((n, r) => n + r.errors, 0),
    cpuUsPerReq: pick((r) => r.cpuUsPerReq ?? NaN),
    targetCpuPct: pick((r) => r.targetCpuPct ?? NaN),
    mockCpuPct: pick((r) => r.mockCpuPct ?? NaN),
    loadgenCpuPct: pick((r) => r.loadgenCpuPct),
  };
}

function markdown(report) {
  const m = report.machine;
  const lines = [];
  lines.push('# Proxy overhead: kthena-router vs the bare floors vs nginx vs direct', '');
  lines.push(`- Date: ${report.date}`);
  lines.push(`- Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.kernel}`);
  lines.push(`- Software: node ${m.node}, nginx ${m.nginx}, undici ${m.undici}, kthena-router ${m.router}`);
  lines.push(
    `- Method: closed loop (each of N connections keeps one request in flight); ${report.config.warmupS} s warmup, ` +
      `${report.config.durationS} s measured, ${report.config.runs} run(s) per cell, median of each statistic; ` +
      'latency = request start to last body byte; CPU = utime+stime of the target process tree per completed request.',
  );
  lines.push(
    `- Mock engines: 2 uWebSockets.js pods (${MOCK_IPS.map((ip) => `${ip}:${report.config.mockPort}`).join(', ')}) in one process; json = one ` +
      `chat.completion (16 tokens); sse = ${report.config.sseEvents} events + [DONE]` +
      (report.config.sseItlMs > 0 ? `, one every ${report.config.sseItlMs} ms.` : ', written at once.'),
  );
  lines.push(
    `- Router: ${report.config.routerWorkers} workers, access log ${report.config.routerAccessLog ? 'on' : 'off'} (router-log: on); bare-* floors: ${report.config.routerWorkers} uWS threads. ` +
      `nginx: worker_processes ${report.config.nginxWorkers}, upstream keepalive ${report.config.nginxKeepalive}, proxy_buffering off, access_log off.`,
  );
  if (m.cores < 8) {
    lines.push(
      '',
      `> All processes (load generator, mock engines, target) share ${m.cores} cores: compare targets with each other, ` +
        'not with a dedicated machine.',
    );
  }
  lines.push(
    '',
    '| case | conc | target | req/s | p50 ms | p99 ms | p99.9 ms | +p50 vs direct | +p99 vs direct | CPU µs/req | target CPU % | load gen CPU % | errors |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  let saturated = false;
  for (const row of report.results) {
    const a = row.median;
    const direct = report.results.find((r) => r.case === row.case && r.concurrency === row.concurrency && r.target === 'direct');
    const added = row.target !== 'direct' && direct ? a.p50 - direct.median.p50 : NaN;
    const added99 = row.target !== 'direct' && direct ? a.p99 - direct.median.p99 : NaN;
    const sign = (v) => (Number.isFinite(v) ? (v >= 0 ? '+' : '') + fmt(v) : '–');
    if (a.loadgenCpuPct >= 90 * report.config.loadgenProcs) saturated = true;
    lines.push(
      `| ${row.case} | ${row.concurrency} | ${row.target} | ${fmtInt(a.rps)} | ${fmt(a.p50)} | ${fmt(a.p99)} | ${fmt(a.p999)} | ` +
        `${sign(added)} | ${sign(added99)} | ${fmt(a.cpuUsPerReq, 1)} | ${fmt(a.targetCpuPct, 0)} | ` +
        `${fmt(a.loadgenCpuPct, 0)} | ${a.errors}${a.failedRuns ? ` (${a.failedRuns} run(s) failed)` : ''} |`,
    );
  }
  if (saturated) {
    lines.push(
      '',
      '> A load generator CPU near 100 % per process means the client, not the target, limited req/s in that row; ' +
        'add --loadgen-procs on a machine with spare cores.',
    );
  }
  for (const [name, why] of Object.entries(report.skipped)) lines.push('', `**${name} not measured:** ${why.split('\n')[0]}`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const nginx = findNginx();
  const report = {
    date: new Date().toISOString(),
    machine: machine(nginx?.version),
    config: { ...cfg },
    skipped: {},
    results: [],
  };

  log(`temp dir ${tmp}`);
  const mock = await startMock();
  log(`mock engines ready on ${mock.origins.join(', ')} (pid ${mock.child.pid})`);

  const targets = [];
  for (const name of cfg.targets) {
    let t;
    if (name === 'direct') t = { name: 'direct', origins: mock.origins, pids: [] };
    else if (name === 'nginx') {
      t = nginx
        ? await startNginx(nginx)
        : { name: 'nginx', skipped: 'nginx is not installed; install it with: sudo apt-get install -y nginx' };
    } else if (name === 'router-base') {
      t = cfg.baseRouter
        ? await startRouter('router-base', cfg.baseRouter)
        : { name, skipped: 'router-base needs --base-router DIR (a built checkout of the baseline commit)' };
    } else if (name === 'router-log') t = await startRouter(name, ROOT, { accessLog: true });
    else if (name === 'router-undici') t = await startRouter(name, ROOT, { upstreamClient: 'undici' });
    else if (name === 'router-gw') t = await startRouter(name, ROOT, { gateway: true });
    else if (name === 'bare-undici') t = await startBare(name, 'undici');
    else if (name === 'bare-h1') t = await startBare(name, 'h1');
    else t = await startRouter();
    if (!t.skipped) {
      const bad = await sanityCheck(t);
      if (bad) {
        if (t.child) await stop(t.child);
        t = { name, skipped: `answered wrongly before the benchmark: ${bad}${t.logFile ? `\n--- router log ---\n${tailOfFile(t.logFile, 25)}` : ''}` };
      }
    }
    if (t.skipped) {
      report.skipped[name] = t.skipped;
      log(`!! ${name} skipped: ${t.skipped}`);
    } else {
      log(`${name} ready at ${t.origins.join(', ')}${t.pids.length ? ` (pids ${t.pids.join(', ')})` : ''}`);
      targets.push(t);
    }
  }
  if (targets.length === 0) throw new Error('no target could be started');

  const cells = new Map();
  const total = cfg.cases.length * cfg.concurrencies.length * cfg.runs * targets.length;
  let n = 0;
  for (const caseName of cfg.cases) {
    for (const conc of cfg.concurrencies) {
      for (let run = 0; run < cfg.runs; run++) {
        // Targets interleave within a run so slow drift of the machine hits all of them alike.
        for (const t of targets) {
          if (cleaning) throw new Error('interrupted');
          n++;
          const r = await measure(t, caseName, conc, mock);
          if (cleaning) throw new Error('interrupted');
          const key = `${caseName}|${conc}|${t.name}`;
          if (!cells.has(key)) cells.set(key, { case: caseName, concurrency: conc, target: t.name, runs: [] });
          cells.get(key).runs.push(r);
          log(
            r.failed
              ? `[${n}/${total}] ${caseName} c=${conc} ${t.name} run ${run + 1}: FAILED ${r.failed}`
              : `[${n}/${total}] ${caseName} c=${conc} ${t.name} run ${run + 1}: ${fmtInt(r.rps)} req/s, ` +
                  `p50 ${fmt(r.latencyMs?.p50)} ms, p99 ${fmt(r.latencyMs?.p99)} ms, errors ${r.errors}` +
                  (r.cpuUsPerReq !== null ? `, ${fmt(r.cpuUsPerReq, 1)} µs CPU/req` : '') +
                  `, load gen ${fmt(r.loadgenCpuPct, 0)}% CPU`,
          );
        }
      }
    }
  }
  for (const cell of cells.values()) report.results.push({ ...cell, median: aggregate(cell.runs) });
  report.machine.loadAvgAtEnd = os.loadavg()[0];

  let profileMd = '';
  if (cfg.profile) {
    report.profile = await profileTargets(targets, cells);
    profileMd = `\n## Where the worker threads' CPU goes (--profile)\n\n${profileMarkdown(report.profile)}`;
  }
  const md = markdown(report) + profileMd;
  process.stdout.write(`\n${md}`);
  const stamp = report.date.replace(/:/g, '').replace(/\..*$/, '');
  const out = opts.out ? resolve(opts.out) : join(ROOT, 'native-bench', 'results', `proxy-${stamp}${opts.quick ? '-quick' : ''}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ ...report, markdown: md }, null, 2) + '\n');
  log(`results written to ${shortPath(out)}`);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  if (cleaning) exitCode = 130;
  else {
    log(`bench:proxy failed: ${err.stack ?? err}`);
    exitCode = 1;
  }
}
await cleanup();
process.exit(exitCode);
