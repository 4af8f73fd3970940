/**
 * End-to-end harness: the real CLI (bin/kthena-router.js over dist/) in a child process, against
 * simulated engine pods on loopback addresses. Each test file uses its own 127.0.N.0/24 block and
 * ephemeral ports, so files can run in parallel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, unlink, rename } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulatedPods, type SimFleet, type SimPodSpec } from '../../native-bench/src/sim/engine.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** `--router-config` with least-request alone (see the file). */
export const LEAST_REQUEST_CONFIG = path.join(ROOT, 'test', 'e2e', 'fixtures', 'least-request.yaml');

/**
 * Ports for routers and listeners. uWebSockets.js binds with SO_REUSEPORT, so a second router that
 * got the same port (two test files asking the kernel for a free port at nearly the same moment)
 * would silently share it and reset the other's connections. Each vitest worker therefore takes
 * ports from its own block below the kernel's ephemeral range (32768-60999, where bind(0) and
 * client sockets live), never twice, and checks each one is free before handing it out.
 */
const handedOut = new Set<number>();
const kBlockSize = 1000;
const poolId = Math.max(1, Number(process.env.VITEST_POOL_ID ?? '1') || 1);
const blockBase = 20000 + ((poolId - 1) % 12) * kBlockSize;
let nextOffset = (process.pid * 7) % kBlockSize;

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < kBlockSize; tries++) {
    const port = blockBase + (nextOffset++ % kBlockSize);
    if (handedOut.has(port)) continue;
    if (!(await isFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port left in ${blockBase}-${blockBase + kBlockSize - 1}`);
}

export async function tempDir(prefix = 'kthena-e2e-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface PodOpts {
  namespace?: string;
  labels?: Record<string, string>;
  ready?: boolean;
  phase?: string;
  terminating?: boolean;
}

export function podYaml(name: string, ip: string, o: PodOpts = {}): string {
  const labels = o.labels ?? { app: 'mock' };
  return [
    'apiVersion: v1',
    'kind: Pod',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${o.namespace ?? 'default'}`,
    ...(o.terminating ? ['  deletionTimestamp: "2026-01-01T00:00:00Z"'] : []),
    '  labels:',
    ...Object.entries(labels).map(([k, v]) => `    ${k}: "${v}"`),
    'status:',
    `  phase: ${o.phase ?? 'Running'}`,
    `  podIP: ${ip}`,
    '  conditions:',
    `  - type: Ready`,
    `    status: "${o.ready === false ? 'False' : 'True'}"`,
  ].join('\n');
}

export function serverYaml(name: string, o: { namespace?: string; labels?: Record<string, string>; port: number; model?: string; timeout?: string; retry?: { attempts: number; retryInterval?: string } }): string {
  const labels = o.labels ?? { app: 'mock' };
  return [
    'apiVersion: networking.serving.volcano.sh/v1alpha1',
    'kind: ModelServer',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${o.namespace ?? 'default'}`,
    'spec:',
    '  inferenceEngine: vLLM',
    '  workloadSelector:',
    '    matchLabels:',
    ...Object.entries(labels).map(([k, v]) => `      ${k}: "${v}"`),
    '  workloadPort:',
    `    port: ${o.port}`,
    ...(o.model ? [`  model: "${o.model}"`] : []),
    ...(o.timeout || o.retry ? ['  trafficPolicy:'] : []),
    ...(o.timeout ? [`    timeout: ${o.timeout}`] : []),
    ...(o.retry ? ['    retry:', `      attempts: ${o.retry.attempts}`, ...(o.retry.retryInterval ? [`      retryInterval: ${o.retry.retryInterval}`] : [])] : []),
  ].join('\n');
}

export const docs = (...d: string[]): string => d.join('\n---\n') + '\n';

export interface RouterProc {
  port: number;
  metricsPort: number;
  debugPort: number;
  url: string;
  proc: ChildProcess;
  /** Access-log lines (stdout). */
  stdout: string[];
  /** Application log lines (stderr, pino JSON). */
  stderr: string[];
  waitReady(timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
  waitForLog(pred: (line: string) => boolean, timeoutMs?: number, stream?: 'stdout' | 'stderr'): Promise<string>;
}

/**
 * Two replicas of one configuration (the multi-replica tests: state shared through Redis), started
 * together and ready; `readyMs` is generous for a loaded test machine.
 */
export async function startReplicaPair(o: { dir: string; workers?: number; env?: Record<string, string>; args?: string[] }, readyMs = 50_000): Promise<[RouterProc, RouterProc]> {
  const pair = await Promise.all([startRouter(o), startRouter(o)]);
  await Promise.all(pair.map((r) => r.waitReady(readyMs)));
  return pair;
}

export async function startRouter(o: { dir: string; workers?: number; env?: Record<string, string>; args?: string[] }): Promise<RouterProc> {
  const port = await freePort();
  const metricsPort = await freePort();
  const debugPort = await freePort();
  // dir '' starts without --config (Kubernetes mode: pass --kubeconfig in args).
  const args = [path.join(ROOT, 'bin', 'kthena-router.js'), 'serve', ...(o.dir !== '' ? ['--config', o.dir] : []), '--host', '127.0.0.1', '--port', String(port),
    '--metrics-port', String(metricsPort), '--debug-port', String(debugPort), '--workers', String(o.workers ?? 2), ...(o.args ?? [])];
  const proc = spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: 'info', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: { pred: (l: string) => boolean; stream: 'stdout' | 'stderr'; resolve: (l: string) => void }[] = [];
  const feed = (stream: 'stdout' | 'stderr', sink: string[]) => {
    let carry = '';
    return (buf: Buffer) => {
      const parts = (carry + buf.toString('utf8')).split('\n');
      carry = parts.pop()!;
      for (const line of parts) {
        sink.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].stream === stream && waiters[i].pred(line)) { waiters[i].resolve(line); waiters.splice(i, 1); }
        }
      }
    };
  };
  proc.stdout!.on('data', feed('stdout', stdout));
  proc.stderr!.on('data', feed('stderr', stderr));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const r: RouterProc = {
    port, metricsPort, debugPort, url, proc, stdout, stderr, exited,
    async waitReady(timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        if (proc.exitCode !== null) throw new Error(`router exited with ${proc.exitCode}: ${stderr.join('\n')}`);
        try {
          const res = await fetch(`${url}/readyz`);
          if (res.status === 200) return;
        } catch { /* not listening yet */ }
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`router not ready after ${timeoutMs} ms: ${stderr.slice(-20).join('\n')}`);
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    waitForLog(pred, timeoutMs = 10_000, stream = 'stdout') {
      const existing = (stream === 'stdout' ? stdout : stderr).find(pred);
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${stream} line matched within ${timeoutMs} ms; last lines:\n${(stream === 'stdout' ? stdout : stderr).slice(-10).join('\n')}`)), timeoutMs);
        waiters.push({ pred, stream, resolve: (l) => { clearTimeout(t); resolve(l); } });
      });
    },
  };
  return r;
}

export async function startPods(specs: SimPodSpec[]): Promise<SimFleet> {
  return startSimulatedPods(specs);
}

export async function chat(url: string, body: object, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** Polls `fn` until it returns true (hot reload applies within 2 s; allow some slack). */
export async function eventually(fn: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function cleanup(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export { writeFile, unlink, rename };

// ---- routing / hot-reload / errors helpers (appended; used by routing, hot-reload and errors e2e files) ----

export interface RouteTargetSpec { server: string; weight?: number }
export interface RouteMatchSpec {
  headers?: Record<string, { exact?: string; prefix?: string; regex?: string }>;
  uri?: { exact?: string; prefix?: string; regex?: string };
  bodyModel?: string;
}
export interface RouteRuleSpec { name?: string; match?: RouteMatchSpec; targets: RouteTargetSpec[] }
export interface ModelRouteSpec {
  namespace?: string;
  modelName?: string;
  loraAdapters?: string[];
  /** RFC 3339; orders routes with the same modelName (oldest first). */
  creationTimestamp?: string;
  parentRefs?: { name: string; namespace?: string; kind?: string }[];
  rules: RouteRuleSpec[];
}

/** A ModelRoute manifest (YAML; values JSON-quoted so regexes and odd strings survive). */
export function modelRouteYaml(name: string, o: ModelRouteSpec): string {
  const q = (s: string): string => JSON.stringify(s);
  const sm = (m: { exact?: string; prefix?: string; regex?: string }, indent: string): string[] =>
    Object.entries(m).filter(([, v]) => v !== undefined).map(([k, v]) => `${indent}${k}: ${q(v as string)}`);
  const lines = [
    'apiVersion: networking.serving.volcano.sh/v1alpha1',
    'kind: ModelRoute',
    'metadata:',
    `  name: ${name}`,
    `  namespace: ${o.namespace ?? 'default'}`,
    ...(o.creationTimestamp ? [`  creationTimestamp: "${o.creationTimestamp}"`] : []),
    'spec:',
    ...(o.modelName !== undefined ? [`  modelName: ${q(o.modelName)}`] : []),
    ...(o.loraAdapters ? ['  loraAdapters:', ...o.loraAdapters.map((a) => `  - ${q(a)}`)] : []),
    ...(o.parentRefs ? ['  parentRefs:', ...o.parentRefs.flatMap((p) => [
      `  - name: ${q(p.name)}`,
      ...(p.namespace ? [`    namespace: ${q(p.namespace)}`] : []),
      ...(p.kind ? [`    kind: ${q(p.kind)}`] : []),
    ])] : []),
    '  rules:',
  ];
  for (const r of o.rules) {
    lines.push(`  - name: ${q(r.name ?? 'rule')}`);
    const m = r.match;
    if (m) {
      lines.push('    modelMatch:');
      if (m.headers) {
        lines.push('      headers:');
        for (const [h, v] of Object.entries(m.headers)) lines.push(`        ${q(h)}:`, ...sm(v, '          '));
      }
      if (m.uri) lines.push('      uri:', ...sm(m.uri, '        '));
      if (m.bodyModel !== undefined) lines.push('      body:', `        model: ${q(m.bodyModel)}`);
    }
    lines.push('    targetModels:');
    for (const t of r.targets) {
      lines.push(`    - modelServerName: ${q(t.server)}`);
      if (t.weight !== undefined) lines.push(`      weight: ${t.weight}`);
    }
  }
  return lines.join('\n');
}

export interface SseEvent { data: string; json: any }

/** Splits an SSE body into its `data:` events (`json` is null for non-JSON data such as [DONE]). */
export function sseEvents(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (block.trim() === '' || data === '') continue;
    let json: any = null;
    try { json = JSON.parse(data); } catch { /* [DONE] or other text */ }
    out.push({ data, json });
  }
  return out;
}

/** POST a JSON body to any router path and read the whole answer. */
export async function postJson(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/**
 * A raw node:http request (full control over framing and hop-by-hop headers, which fetch refuses
 * to send). `chunks` are written one by one; with no content-length header node frames the body
 * chunked. Resolves with the answer, or rejects on a socket error.
 */
export async function rawRequest(url: string, o: { method?: string; path: string; headers?: Record<string, string>; chunks?: (string | Buffer)[] }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const http = await import('node:http');
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: Number(u.port), method: o.method ?? 'POST', path: o.path, headers: o.headers ?? {}, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const c of o.chunks ?? []) req.write(c);
    req.end();
  });
}

/** The router's current configuration problems (debug port). */
export async function configProblems(r: RouterProc): Promise<{ kind: string; namespace: string; name: string; file?: string; field: string; message: string; severity: string }[]> {
  const res = await fetch(`http://127.0.0.1:${r.debugPort}/debug/config_dump/problems`);
  return ((await res.json()) as { problems: any[] }).problems;
}

/** Sends `n` chat requests (at most `concurrency` at once) and counts answers by the `x-sim-pod` header; non-200 answers count under `status:<code>`. */
export async function spread(url: string, body: object, n: number, o: { headers?: Record<string, string>; concurrency?: number } = {}): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const r = await chat(url, distinctPrompt(body, i), o.headers);
      const k = r.status === 200 ? (r.headers.get('x-sim-pod') ?? 'no-pod-header') : `status:${r.status}`;
      counts[k] = (counts[k] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, o.concurrency ?? 8) }, worker));
  return counts;
}

/**
 * `body` with its last message made distinct per request: the default scheduler profile includes
 * prefix-cache, which (correctly) keeps a repeated prompt on the pod that served it; tests that
 * look at how load spreads must not send the same prompt twice.
 */
export function distinctPrompt(body: object, i: number): object {
  const b = body as { messages?: { role: string; content: unknown }[] };
  if (!Array.isArray(b.messages) || b.messages.length === 0) return body;
  const messages = b.messages.slice();
  const last = messages[messages.length - 1];
  messages[messages.length - 1] = { ...last, content: `${typeof last.content === 'string' ? last.content : ''} #${i}-${Math.random().toString(36).slice(2)}` };
  return { ...body, messages };
}

// ---- Helpers for the resilience / observability / lifecycle suites (appended) -------------------

/** A ModelRoute sending `modelName` to one ModelServer (default namespace). */
export function routeYaml(name: string, modelName: string, serverName: string, o: { namespace?: string } = {}): string {
  return modelRouteYaml(name, { namespace: o.namespace, modelName, rules: [{ name: 'default', targets: [{ server: serverName }] }] });
}

export interface RawResponse {
  status: number;
  headers: import('node:http').IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP request on a fresh TCP connection (`agent: false` sends `connection: close`), so that
 * successive requests are spread over the router's worker threads by the kernel.
 */
export async function httpRequest(url: string, o: { method?: string; path?: string; headers?: Record<string, string>; body?: string | object; timeoutMs?: number; host?: string } = {}): Promise<RawResponse> {
  const http = await import('node:http');
  const u = new URL(url);
  const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}), ...o.headers };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.host ?? u.hostname, port: u.port, method: o.method ?? (body !== undefined ? 'POST' : 'GET'), path: o.path ?? u.pathname, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error(`request timed out after ${o.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (samples only; HELP/TYPE lines are skipped). */
export function parsePrometheus(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[4];
    out.push({ name: m[1], labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

/** Samples of `name` whose labels include every pair of `labels`. */
export function findSamples(samples: MetricSample[], name: string, labels: Record<string, string> = {}): MetricSample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample of `name` with exactly these labels (undefined when absent). */
export function sampleValue(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.keys(labels).length;
  const hits = samples.filter((s) => s.name === name && Object.keys(s.labels).length === want && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} with labels ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

export async function scrape(metricsPort: number, host = '127.0.0.1'): Promise<{ status: number; contentType: string; text: string; samples: MetricSample[] }> {
  const r = await httpRequest(`http://${host}:${metricsPort}/metrics`);
  return { status: r.status, contentType: String(r.headers['content-type'] ?? ''), text: r.text, samples: r.status === 200 ? parsePrometheus(r.text) : [] };
}

/** Kthena's text access-log fields, in Kthena's order (§8.2). */
export const ACCESS_LOG_TEXT_FIELDS = [
  'error', 'model_name', 'model_route', 'model_server', 'selected_pod', 'prefill_pod', 'request_id', 'backend_type', 'backend_name',
  'upstream_model', 'upstream_status_code', 'upstream_attempts', 'error_origin', 'gateway', 'http_route', 'inference_pool',
  'tokens', 'timings',
] as const;

export interface AccessLogText {
  timestamp: string;
  method: string;
  path: string;
  protocol: string;
  status: number;
  /** Field names in the order they appear. */
  order: string[];
  fields: Record<string, string>;
}

/** Splits a text access-log line into its fields; null when the line is not an access-log line. */
export function parseAccessLogText(line: string): AccessLogText | null {
  const m = /^\[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (.*)$/.exec(line);
  if (!m) return null;
  const rest = ' ' + m[6];
  const re = new RegExp(` (${ACCESS_LOG_TEXT_FIELDS.join('|')})=`, 'g');
  const starts: { key: string; at: number; valueAt: number }[] = [];
  let km: RegExpExecArray | null;
  while ((km = re.exec(rest)) !== null) {
    // The error message may contain " word=" text of its own only in pathological cases; the
    // first occurrence of each key wins.
    if (starts.some((s) => s.key === km![1])) continue;
    starts.push({ key: km[1], at: km.index, valueAt: km.index + km[0].length });
  }
  const fields: Record<string, string> = {};
  for (let i = 0; i < starts.length; i++) {
    fields[starts[i].key] = rest.slice(starts[i].valueAt, i + 1 < starts.length ? starts[i + 1].at : rest.length);
  }
  return { timestamp: m[1], method: m[2], path: m[3], protocol: m[4], status: Number(m[5]), order: starts.map((s) => s.key), fields };
}

/** Runs the CLI to completion; resolves with its exit code and output. */
export async function runCli(args: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'kthena-router.js'), ...args], { env: { ...process.env, LOG_LEVEL: 'info', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (b: Buffer) => { stdout += b.toString('utf8'); });
  proc.stderr!.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
  const t = setTimeout(() => proc.kill('SIGKILL'), o.timeoutMs ?? 15_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(t);
  return { code, signal, stdout, stderr };
}

/** Resolves true when a TCP connection to host:port is refused, false when it is accepted. */
export function connectionRefused(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => { s.destroy(); reject(new Error(`connect to ${host}:${port} neither accepted nor refused within ${timeoutMs} ms`)); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(false); });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(t);
      if (err.code === 'ECONNREFUSED') resolve(true);
      else reject(err);
    });
  });
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Resolves with the first `data:` event (its payload). */
  firstEvent: Promise<string>;
  /** Resolves when the body ends or fails: the raw text received and the error, if any. */
  done: Promise<{ text: string; error: Error | null }>;
  /** Text received so far. */
  received(): string;
  abort(): void;
}

/** Starts a streaming POST and reads it in the background. */
export async function openStream(url: string, body: object, headers: Record<string, string> = {}, urlPath = '/v1/chat/completions'): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(`${url}${urlPath}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ ...body, stream: true }), signal: ac.signal });
  let text = '';
  let resolveFirst!: (e: string) => void;
  let rejectFirst!: (e: Error) => void;
  const firstEvent = new Promise<string>((res2, rej) => { resolveFirst = res2; rejectFirst = rej; });
  firstEvent.catch(() => undefined);
  let gotFirst = false;
  const done = (async () => {
    const decoder = new TextDecoder();
    try {
      const reader = res.body!.getReader();
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        text += decoder.decode(value, { stream: true });
        if (!gotFirst) {
          const m = /(?:^|\n)data: ?([^\n]*)\n/.exec(text);
          if (m) { gotFirst = true; resolveFirst(m[1]); }
        }
      }
      if (!gotFirst) rejectFirst(new Error(`stream ended without an event: ${text}`));
      return { text, error: null };
    } catch (err) {
      if (!gotFirst) rejectFirst(err as Error);
      return { text, error: err as Error };
    }
  })();
  return { status: res.status, headers: res.headers, firstEvent, done, received: () => text, abort: () => ac.abort() };
}

/** Rejects when `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms); }),
  ]);
}

/** Access-log (stdout) lines carrying `request_id=<id>` (text) or `"request_id":"<id>"` (json). */
export function accessLinesFor(r: RouterProc, id: string): string[] {
  return r.stdout.filter((l) => l.includes(` request_id=${id} `) || l.includes(`"request_id":"${id}"`));
}
