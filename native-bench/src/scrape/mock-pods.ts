/**
 * Child process of the scrape benchmark's --http mode (parse-bench.ts): N fake vLLM pods, one per
 * loopback address (base, base+1, ...) on one port, each answering GET /metrics with a realistic
 * 0.10 page (vllm-page.ts; a pool of pre-rendered variants, so serving costs little CPU) and
 * GET /v1/models. Kept in its own process so that its CPU is not charged to the scraper.
 * Sends {ready: true, ips: [...]} over IPC once every address listens.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

import { port, positive, runIfMain, ScriptUsageError } from '../script.js';
import { vllmPage, VLLM_PAGE_MODEL } from './vllm-page.js';

export interface MockPodsOptions { pods: number; base: string; port: number }

export function parseMockPodsArgs(argv: string[]): MockPodsOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { pods: { type: 'string', default: '1000' }, base: { type: 'string', default: '127.0.40.1' }, port: { type: 'string', default: '18100' } },
  });
  const base = values.base!;
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(base) || base.split('.').some((x) => Number(x) > 255)) {
    throw new ScriptUsageError(`--base must be a loopback IPv4 address (127.x.y.z), got "${base}"`);
  }
  return { pods: positive(values.pods, 'pods')!, base, port: port(values.port!, 'port') };
}

/** The IPv4 address `i` after `baseIp`. */
export function ipAt(baseIp: string, i: number): string {
  const p = baseIp.split('.').map(Number);
  const n = ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3] + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export async function mockPodsMain(argv: string[]): Promise<number> {
  const o = parseMockPodsArgs(argv);
  const variants = Array.from({ length: 64 }, (_, i) => Buffer.from(vllmPage(i + 1)));
  const models = Buffer.from(JSON.stringify({
    object: 'list',
    data: [VLLM_PAGE_MODEL, 'sql-lora', 'chat-lora'].map((id) => ({ id, object: 'model', owned_by: 'vllm' })),
  }));
  let hits = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/metrics') {
      const body = variants[hits++ & 63];
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': body.length });
      res.end(body);
    } else if (req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': models.length });
      res.end(models);
    } else {
      res.writeHead(404).end();
    }
  };
  const ips = Array.from({ length: o.pods }, (_, i) => ipAt(o.base, i));
  const servers: http.Server[] = [];
  await Promise.all(ips.map((ip) => new Promise<void>((resolve, reject) => {
    const s = http.createServer(handler);
    s.keepAliveTimeout = 30_000;
    s.once('error', reject);
    s.listen(o.port, ip, () => resolve());
    servers.push(s);
  })));
  process.send?.({ ready: true, ips, port: o.port });
  await new Promise<void>((resolve) => {
    process.on('message', (m) => {
      if (m !== 'stop') return;
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
      resolve();
    });
  });
  process.disconnect?.();
  return 0;
}

runIfMain(import.meta.url, mockPodsMain);
