/**
 * `native-bench epp`: what an Endpoint Picker round trip adds to a request.
 *
 * One router (--enable-gateway-api --enable-gateway-api-inference-extension
 * --inference-pool-picker=external) in front of engines that answer at once (fixed mode, no
 * delays, one token), two InferencePools over the same pods: one without endpointPickerRef
 * (scheduled in-process) and one whose Endpoint Picker is a minimal ext_proc server in its own
 * process (round robin over the subset hint, answering as the GIE reference picker does). A header
 * match chooses the pool. Closed loop, wall-clock latency per request: straight to a pod, through
 * the router in-process, through the router and the picker. The difference between the last two is
 * the picker's cost (one gRPC stream, request headers and body sent, destination read).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

import { machineInfo } from './machine.js';
import { startSimulatedPods } from './sim/engine.js';
import { summarize, type Dist } from './stats.js';
import { freePort, stopChild, waitReady } from './compare.js';
import { track } from './children.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ROUTER_BIN = path.join(ROOT, 'bin', 'kthena-router.js');
const PROTO = path.join(ROOT, 'dist', 'workers', 'epp', 'proto.js');
const SELF = fileURLToPath(import.meta.url);
const MODEL = 'bench-7b';

export const EPP_USAGE = `Usage: native-bench epp [options]

The latency an Endpoint Picker (ext_proc gRPC) round trip adds per request: straight to a pod,
through the router with the in-process picker, through the router and an external picker.

  --requests N        requests per target (default 3000)
  --concurrency N     closed-loop users (default 4)
  --workers N         router worker threads (default 2)
  --json FILE         results (default native-bench/results/epp-<date>.json)
  -h, --help
`;

interface Row { name: string; requests: number; errors: number; requests_per_s: number; latency_ms: Dist | null }

export interface EppBenchResult {
  setup: Record<string, unknown>;
  machine: ReturnType<typeof machineInfo>;
  rows: Row[];
}

async function closedLoop(url: string, headers: Record<string, string>, body: string, requests: number, concurrency: number): Promise<Omit<Row, 'name'>> {
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
        const res = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
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
  return { requests, errors, requests_per_s: requests / wall, latency_ms: summarize(lat) };
}

/** The picker process: `node epp.js --child-epp PORT`. Prints "ready" once listening. */
async function serveEpp(port: number): Promise<void> {
  const grpc = (await import('@grpc/grpc-js')).default;
  const proto = await import(pathToFileURL(PROTO).href) as typeof import('../../workers/epp/proto.js');
  let rr = 0;
  const server = new grpc.Server();
  server.addService({
    Process: {
      path: proto.PROCESS_METHOD, requestStream: true, responseStream: true, originalName: 'Process',
      requestSerialize: (v: unknown) => Buffer.from(v as Uint8Array),
      requestDeserialize: (b: Buffer) => proto.decodeRequest(b),
      responseSerialize: (v: Uint8Array) => Buffer.from(v),
      responseDeserialize: (b: Buffer) => b,
    },
  } as never, {
    Process: (call: import('@grpc/grpc-js').ServerDuplexStream<Record<string, unknown>, Uint8Array>) => {
      let subset: string[] = [];
      let bodyPending = false;
      const pick = (): void => {
        const dest = subset.length > 0 ? subset[rr++ % subset.length]! : '';
        call.write(proto.encodeResponse({
          request_headers: { response: { header_mutation: { set_headers: [{ header: { key: 'x-gateway-destination-endpoint', raw_value: Buffer.from(dest) } }] } } },
          dynamic_metadata: { fields: { 'envoy.lb': { struct_value: { fields: { 'x-gateway-destination-endpoint': { string_value: dest } } } } } },
        }));
        if (bodyPending) call.write(proto.encodeResponse({ request_body: { response: {} } }));
      };
      call.on('data', (m: Record<string, unknown>) => {
        const rh = m.request_headers as { end_of_stream?: boolean } | null;
        const rb = m.request_body as { end_of_stream?: boolean } | null;
        if (rh != null) {
          const md = m.metadata_context as { filter_metadata?: Record<string, { fields?: Record<string, { list_value?: { values?: { string_value?: string }[] } }> }> } | null;
          subset = (md?.filter_metadata?.['envoy.lb.subset_hint']?.fields?.['x-gateway-destination-endpoint-subset']?.list_value?.values ?? []).map((v) => v.string_value ?? '');
          if (rh.end_of_stream) pick();
        } else if (rb != null) {
          bodyPending = true;
          if (rb.end_of_stream) pick();
        } else if (m.response_headers != null) {
          call.write(proto.encodeResponse({ response_headers: { response: {} } }));
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => { /* cancelled */ });
    },
  } as never);
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  // Go's net package (the reference picker) sets TCP_NODELAY on every connection; Node's http2 server
  // does not, and Nagle then holds the body answer behind the headers answer for a delayed ACK.
  for (const h of (server as unknown as { http2Servers: Map<import('node:net').Server, unknown> }).http2Servers.keys()) {
    h.on('connection', (sock: import('node:net').Socket) => sock.setNoDelay(true));
  }
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => { server.forceShutdown(); process.exit(0); });
}

async function startEppChild(port: number): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, [SELF, '--child-epp', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('ready')) resolve(); });
    child.once('exit', (c) => reject(new Error(`picker exited with ${c}`)));
  });
  return child;
}

function manifests(ipBase: string, podPort: number, eppPort: number): string {
  const pod = (n: number): string => `apiVersion: v1
kind: Pod
metadata: {name: bench-${n}, namespace: default, labels: {app: bench}}
status: {phase: Running, podIP: ${ipBase}.${n}, conditions: [{type: Ready, status: "True"}]}`;
  const pool = (name: string, epp: boolean): string => `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: {app: bench}}
  targetPorts: [{number: ${podPort}}]
${epp ? '  endpointPickerRef: {name: bench-epp, port: {number: 9002}}\n' : ''}`;
  return [
    pod(1), pod(2),
    `apiVersion: v1
kind: Pod
metadata: {name: bench-epp-0, namespace: default, labels: {app: bench-epp}}
status: {phase: Running, podIP: 127.0.0.1, conditions: [{type: Ready, status: "True"}]}`,
    `apiVersion: v1
kind: Service
metadata: {name: bench-epp, namespace: default}
spec: {selector: {app: bench-epp}, ports: [{port: 9002, targetPort: ${eppPort}}]}`,
    pool('in-process', false), pool('external', true),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: default}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-bench-picker, value: external}]}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: external}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: in-process}]`,
  ].join('\n---\n') + '\n';
}

export async function runEppBench(o: { requests: number; concurrency: number; workers: number; log?: (l: string) => void }): Promise<EppBenchResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!existsSync(ROUTER_BIN) || !existsSync(PROTO)) throw new Error('dist/ is missing: run npm run build first');
  const setup = { requests: o.requests, concurrency: o.concurrency, workers: o.workers, pods: 2, model: MODEL, picker: 'round robin over the subset hint, plaintext gRPC, own process' };
  log(`epp: ${JSON.stringify(setup)}`);
  const ipBase = `127.0.${200 + Math.floor(Math.random() * 40)}`;
  const podPort = await freePort();
  const eppPort = await freePort();
  const fleet = await startSimulatedPods([1, 2].map((n) => ({
    name: `bench-${n}`, ip: `${ipBase}.${n}`, port: podPort, models: [MODEL], ttftMs: 0, itlMs: 0, outputTokens: 1,
  })), { requestLogSize: 10 });
  const dir = mkdtempSync(path.join(tmpdir(), 'native-bench-epp-'));
  let epp: ChildProcess | null = null;
  let router: ChildProcess | null = null;
  try {
    writeFileSync(path.join(dir, 'bench.yaml'), manifests(ipBase, podPort, eppPort));
    epp = await startEppChild(eppPort);
    const port = await freePort();
    router = spawn(process.execPath, [ROUTER_BIN, 'serve', '--config', dir, '--host', '127.0.0.1', '--port', String(port),
      '--metrics-port', '0', '--debug-port', '0', '--workers', String(o.workers),
      '--enable-gateway-api', '--enable-gateway-api-inference-extension', '--inference-pool-picker', 'external', '--endpoint-picker-tls=false'], {
      stdio: 'ignore', env: { ...process.env, ACCESS_LOG_ENABLED: 'false', LOG_LEVEL: 'warn', POD_NAMESPACE: 'default' },
    });
    track(router);
    const url = `http://127.0.0.1:${port}`;
    await waitReady(url, router, 20_000);
    const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello in one word.' }], max_tokens: 1 });
    const targets: [string, string, Record<string, string>][] = [
      ['direct to the pod (no router)', fleet.pods[0]!.url, {}],
      ['router, in-process picker', url, {}],
      ['router, external picker (ext_proc gRPC)', url, { 'x-bench-picker': 'external' }],
    ];
    // Warm-up: connections, the gRPC channel and JIT on every path; then an interleaved order
    // would be fairer, but each target runs as one block so that its percentiles are its own.
    for (const [, u, h] of targets) {
      const w = await closedLoop(u, h, body, 300, o.concurrency);
      if (w.errors > 0) throw new Error(`warm-up against ${u} ${JSON.stringify(h)}: ${w.errors} errors`);
    }
    const rows: Row[] = [];
    for (const [name, u, h] of targets) {
      const r = await closedLoop(u, h, body, o.requests, o.concurrency);
      rows.push({ name, ...r });
      log(`${name}: ${r.requests_per_s.toFixed(0)} req/s, p50 ${r.latency_ms?.p50.toFixed(3) ?? '-'} ms, p99 ${r.latency_ms?.p99.toFixed(3) ?? '-'} ms, errors ${r.errors}`);
    }
    return { setup, machine: machineInfo(), rows };
  } finally {
    if (router !== null) await stopChild(router);
    if (epp !== null) await stopChild(epp);
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function eppTable(r: EppBenchResult): string {
  const ip = r.rows[1]?.latency_ms;
  const lines = [
    '| path | req/s | p50 ms | p99 ms | p50 added vs in-process | p99 added vs in-process | errors |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of r.rows) {
    const l = row.latency_ms;
    const add = (k: 'p50' | 'p99'): string => (l === null || ip == null || row === r.rows[0] ? '' : `${(l[k] - ip[k]).toFixed(3)}`);
    lines.push(`| ${row.name} | ${row.requests_per_s.toFixed(0)} | ${l?.p50.toFixed(3) ?? '-'} | ${l?.p99.toFixed(3) ?? '-'} | ${add('p50')} | ${add('p99')} | ${row.errors} |`);
  }
  return lines.join('\n');
}

export async function eppCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, allowPositionals: false,
    options: { requests: { type: 'string' }, concurrency: { type: 'string' }, workers: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) { process.stdout.write(EPP_USAGE); return 0; }
  const num = (v: string | undefined, name: string, d: number, min = 1): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got "${v}"`);
    return n;
  };
  const r = await runEppBench({ requests: num(values.requests, 'requests', 3000), concurrency: num(values.concurrency, 'concurrency', 4), workers: num(values.workers, 'workers', 2) });
  const file = values.json ?? path.join(ROOT, 'native-bench', 'results', `epp-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  process.stdout.write(eppTable(r) + '\n');
  return r.rows.every((x) => x.errors === 0) ? 0 : 1;
}

if (process.argv[2] === '--child-epp') void serveEpp(Number(process.argv[3]));
