/**
 * Child process of parse-bench.mjs --http: N fake vLLM pods, one per loopback address
 * (base, base+1, ...) on one port, each answering GET /metrics with a realistic 0.10 page
 * (vllm-page.mjs; a pool of pre-rendered variants, so serving costs little CPU) and
 * GET /v1/models. Kept in its own process so that its CPU is not charged to the scraper.
 * Sends {ready: true, ips: [...]} over IPC once every address listens.
 */
import http from 'node:http';
import { vllmPage, VLLM_PAGE_MODEL } from './vllm-page.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const pods = Number(opt('pods', '1000'));
const base = opt('base', '127.0.40.1');
const port = Number(opt('port', '18100'));

export function ipAt(baseIp, i) {
  const p = baseIp.split('.').map(Number);
  let n = ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3] + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const variants = Array.from({ length: 64 }, (_, i) => Buffer.from(vllmPage(i + 1)));
const models = Buffer.from(JSON.stringify({
  object: 'list',
  data: [VLLM_PAGE_MODEL, 'sql-lora', 'chat-lora'].map((id) => ({ id, object: 'model', owned_by: 'vllm' })),
}));
let hits = 0;

function handler(req, res) {
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
}

const ips = Array.from({ length: pods }, (_, i) => ipAt(base, i));
const servers = [];
await Promise.all(ips.map((ip) => new Promise((resolve, reject) => {
  const s = http.createServer(handler);
  s.keepAliveTimeout = 30_000;
  s.once('error', reject);
  s.listen(port, ip, () => resolve());
  servers.push(s);
})));
process.send?.({ ready: true, ips, port });
process.on('message', (m) => {
  if (m === 'stop') {
    for (const s of servers) {
      s.close();
      s.closeAllConnections();
    }
    process.exit(0);
  }
});
