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
import { startSimulatedPods, type SimFleet, type SimPodSpec } from '../../src/sim/engine.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
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

export async function startRouter(o: { dir: string; workers?: number; env?: Record<string, string>; args?: string[] }): Promise<RouterProc> {
  const port = await freePort();
  const metricsPort = await freePort();
  const debugPort = await freePort();
  const args = [path.join(ROOT, 'bin', 'kthena-router.js'), 'serve', '--config', o.dir, '--host', '127.0.0.1', '--port', String(port),
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
