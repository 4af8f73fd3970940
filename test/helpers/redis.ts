/**
 * A real, throwaway redis-server for tests: Debian's /usr/bin/redis-server on 127.0.0.1 and a free
 * port, no persistence, stopped by PID. Every server started here is also killed when the test
 * process exits, so a crashed suite never leaves one running.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface RedisServer {
  /** `redis://127.0.0.1:{port}` */
  url: string;
  port: number;
  /** The redis-server process (fault tests SIGSTOP it to simulate a hung Redis). */
  pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

// The places scripts/test-setup.mjs (npm test's pretest step) checks, in its order.
const CANDIDATES = [
  process.env.REDIS_SERVER,
  ...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '').map((d) => path.join(d, 'redis-server')),
  '/usr/bin/redis-server', '/usr/local/bin/redis-server',
];
const START_TIMEOUT_MS = 10_000;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

function findBinary(): string {
  for (const c of CANDIDATES) if (c && existsSync(c)) return c;
  throw new Error(
    'redis-server not found (looked at $REDIS_SERVER, PATH, /usr/bin and /usr/local/bin). ' +
      'npm test installs it when it can (scripts/test-setup.mjs); otherwise install the package redis-server.',
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One PING on a fresh connection; resolves true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startOnce(bin: string, port: number): Promise<RedisServer | null> {
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let spawnError: Error | null = null;
  child.once('error', (err) => (spawnError = err));
  child.once('exit', () => live.delete(child));

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // A stopped (SIGSTOP) server would never act on SIGTERM.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await waitExit(child);
        clearTimeout(timer);
      }
      live.delete(child);
    })();
    return stopping;
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`cannot run ${bin}: ${(spawnError as Error).message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      // Lost the race for the port: let the caller pick another one.
      if (/address already in use/i.test(output)) return null;
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}) during start:\n${output}`);
    }
    if (await ping(port)) return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid!, stop };
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms:\n${output}`);
}

/**
 * Starts a redis-server; throws with install instructions when the binary is missing. With `port`,
 * on that port (a restart of a server that was stopped, as clients configured with its address
 * expect), retried for a few seconds while the old socket is released.
 */
export async function startRedis(o: { port?: number } = {}): Promise<RedisServer> {
  const bin = findBinary();
  installExitHook();
  if (o.port !== undefined) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const server = await startOnce(bin, o.port);
      if (server) return server;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`redis-server: port ${o.port} still in use after 5 s`);
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = await startOnce(bin, await freePort());
    if (server) return server;
  }
  throw new Error('redis-server: no free port after 5 attempts');
}
