#!/usr/bin/env node
/**
 * Does Prometheus text parsing stall the control thread at 1,000 pods?
 *
 * Input: realistic vLLM 0.10 /metrics pages (vllm-page.mjs: ~52 KB, ~530 lines, 43 families, 16
 * histograms with `engine` and `model_name` labels, deprecated aliases, python/process/http
 * collectors), each page a distinct string.
 *
 * Measured (the compiled scraper modules, exactly what the control thread runs):
 *  1. per page: parseEngineMetrics(text) (parse + mapping table), hrtime around each call,
 *     p50/p90/p99/p99.9/max in µs; the same with the UTF-8 decode of the response Buffer included;
 *  2. one 1,000-pod round: decode + parse of 1,000 distinct Buffers back to back, ms per round and
 *     the share of a 1 s METRICS_SCRAPE_INTERVAL it costs;
 *  3. with --http: the real Scraper against 1,000 mock pods served by a child process (mock-pods.mjs,
 *     1,000 loopback addresses), i.e. undici requests of /metrics and /v1/models, decode, parse and
 *     seqlock writes: control-thread CPU per round (process.cpuUsage), round wall time and the
 *     longest event-loop stall (monitorEventLoopDelay).
 * Decision rule (from the design brief): a piscina pool is warranted if parsing 1,000 pages costs
 * more than ~10 % of a 1 s interval or any single parse blocks for more than ~2 ms.
 *
 * Run:  npm run build && node --expose-gc native-bench/scrape/parse-bench.mjs [--http]
 * Options: --dist DIR (compiled tree, default ../../dist relative to this file), --pods 1000,
 *          --iterations 20000, --seconds 10 (http mode), --interval 1000, --port 18100 (http mode; the
 *          mock pods listen on 127.0.40.1 and up, one address per pod), --no-write
 * Output: a Markdown summary on stdout and JSON in native-bench/results/scrape-<date>.json.
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { vllmPage, VLLM_PAGE_MODEL } from './vllm-page.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);

const dist = path.resolve(opt('dist', path.join(here, '../../dist')));
const pods = Number(opt('pods', '1000'));
const iterations = Number(opt('iterations', '20000'));
const seconds = Number(opt('seconds', '10'));
const intervalMs = Number(opt('interval', '1000'));

const load = (rel) => import(pathToFileURL(path.join(dist, rel)).href);
const { parseEngineMetrics } = await load('src/scrape/engines.js');

function quantiles(samplesNs) {
  const a = Float64Array.from(samplesNs).sort();
  const q = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))] / 1000;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: a[a.length - 1] / 1000, n: a.length };
}

const gc = globalThis.gc ?? (() => {});
const fmt = (v, d = 1) => v.toFixed(d);

// ---- 1. per page -----------------------------------------------------------------------------
const texts = Array.from({ length: 256 }, (_, i) => vllmPage(i + 1));
const buffers = texts.map((t) => Buffer.from(t));
const pageBytes = buffers[0].length;
const models = [VLLM_PAGE_MODEL];

// Sanity: the page reads as expected.
const sample = parseEngineMetrics(texts[0], 'vLLM', models);
if (sample.ttft === null || sample.tpot === null || sample.loraRunning === null || sample.prefixQueries === null) {
  throw new Error('benchmark page did not map: ' + JSON.stringify(sample));
}

// Calibration: one charCodeAt pass over a page. This VM's speed varied 2x between runs (shared
// host); parse time divided by this figure is the machine-independent number.
function charLoop(t) {
  let x = 0;
  for (let i = 0; i < t.length; i++) x += t.charCodeAt(i);
  return x;
}
for (let i = 0; i < 500; i++) charLoop(texts[i & 255]);
const c0 = process.hrtime.bigint();
for (let i = 0; i < 2000; i++) charLoop(texts[i & 255]);
const calibrationUs = Number(process.hrtime.bigint() - c0) / 2000 / 1000;

for (let i = 0; i < 3000; i++) parseEngineMetrics(texts[i & 255], 'vLLM', models);
gc();
const parseNs = new Float64Array(iterations);
for (let i = 0; i < iterations; i++) {
  const text = texts[i & 255];
  const t0 = process.hrtime.bigint();
  parseEngineMetrics(text, 'vLLM', models);
  parseNs[i] = Number(process.hrtime.bigint() - t0);
}
const perPage = quantiles(parseNs);

// CPU time (getrusage, µs resolution) around each parse: on a shared machine the wall-clock tail
// includes time the thread was descheduled, which is not time the parse blocked the loop for.
gc();
const parseCpuNs = new Float64Array(iterations);
for (let i = 0; i < iterations; i++) {
  const text = texts[i & 255];
  const c0 = process.cpuUsage();
  parseEngineMetrics(text, 'vLLM', models);
  const c = process.cpuUsage(c0);
  parseCpuNs[i] = (c.user + c.system) * 1000;
}
const perPageCpu = quantiles(parseCpuNs);

gc();
const decodeParseNs = new Float64Array(iterations);
for (let i = 0; i < iterations; i++) {
  const buf = buffers[i & 255];
  const t0 = process.hrtime.bigint();
  parseEngineMetrics(buf.toString('utf8'), 'vLLM', models);
  decodeParseNs[i] = Number(process.hrtime.bigint() - t0);
}
const perPageDecode = quantiles(decodeParseNs);

// ---- 2. one 1,000-pod round ------------------------------------------------------------------
const roundBuffers = Array.from({ length: pods }, (_, i) => Buffer.from(vllmPage(10_000 + i)));
const roundMs = [];
const roundCpuMs = [];
for (let r = 0; r < 25; r++) {
  if (r % 5 === 0) gc();
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < pods; i++) parseEngineMetrics(roundBuffers[i].toString('utf8'), 'vLLM', models);
  roundMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  const c = process.cpuUsage(c0);
  roundCpuMs.push((c.user + c.system) / 1000);
}
const median = (xs) => { const a = xs.slice(5).sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
const round = { median: median(roundMs), max: Math.max(...roundMs.slice(5)), cpuMedian: median(roundCpuMs) };

// ---- 3. live scrape (optional) ---------------------------------------------------------------
let live = null;
if (flag('http')) live = await liveScrape();

const results = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  page: { bytes: pageBytes, lines: texts[0].split('\n').length - 1 },
  calibrationUs,
  perPageUs: perPage,
  perPageCpuUs: perPageCpu,
  perPageWithDecodeUs: perPageDecode,
  round: { pods, medianMs: round.median, maxMs: round.max, cpuMedianMs: round.cpuMedian, shareOf1sInterval: round.median / 1000 },
  live,
};

console.log(`# Scrape parse benchmark (${results.node}, ${results.cpu}, ${results.cores} cores)\n`);
console.log(`Page: ${pageBytes} bytes, ${results.page.lines} lines (vLLM 0.10, 43 families). ` +
  `Calibration (one charCodeAt pass over a page): ${fmt(calibrationUs)} µs; parse p50 = ${fmt(perPage.p50 / calibrationUs, 2)} x that.\n`);
console.log('| measure | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [name, q] of [['parse + map one page (wall)', perPage], ['parse + map one page (CPU time)', perPageCpu], ['decode + parse + map one page (wall)', perPageDecode]]) {
  console.log(`| ${name} | ${fmt(q.p50)} | ${fmt(q.p90)} | ${fmt(q.p99)} | ${fmt(q.p999)} | ${fmt(q.max)} |`);
}
console.log(`\n${pods}-pod round (decode + parse + map, back to back): median ${fmt(round.median, 2)} ms wall ` +
  `(${fmt(round.cpuMedian, 2)} ms CPU), max ${fmt(round.max, 2)} ms = ${fmt(round.median / 10, 2)} % of a 1 s interval`);
if (live) {
  console.log(`\nLive Scraper, ${live.pods} mock pods, interval ${live.intervalMs} ms, ${live.rounds} rounds:`);
  console.log(`  control-thread CPU per round ${fmt(live.cpuMsPerRound, 1)} ms (${fmt(live.cpuMsPerRound / live.intervalMs * 100, 1)} % of the interval), ` +
    `round wall time mean ${fmt(live.roundWallMs, 1)} ms, event-loop delay p99 ${fmt(live.loopDelayP99Ms, 2)} ms, max ${fmt(live.loopDelayMaxMs, 2)} ms, ` +
    `slots fresh ${live.fresh}/${live.pods}`);
}
const verdict = round.median > 100 || perPageCpu.p999 > 2000
  ? 'PARSING NEEDS A POOL: over the budget (10 % of 1 s per 1,000 pages, or a single parse > 2 ms)'
  : 'no pool needed: 1,000 pages cost well under 10 % of a 1 s interval and no single parse blocks for 2 ms';
console.log(`\nVerdict: ${verdict}`);

if (!flag('no-write')) {
  const dir = path.join(here, '../results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `scrape-${results.date.replace(/[:.]/g, '').slice(0, 17)}.json`);
  writeFileSync(file, JSON.stringify({ ...results, verdict }, null, 2) + '\n');
  console.log(`\nWrote ${path.relative(process.cwd(), file)}`);
}

async function liveScrape() {
  const { Scraper } = await load('src/scrape/scraper.js');
  const layout = await load('src/shared/layout.js');
  const { default: pino } = await import('pino');
  const { Registry } = await import('prom-client');
  const port = Number(opt('port', '18100'));
  const child = fork(path.join(here, 'mock-pods.mjs'), ['--pods', String(pods), '--port', String(port)], { stdio: 'inherit' });
  const ready = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`mock pods exited with ${code}`)));
  });
  const ep = new Int32Array(new SharedArrayBuffer(pods * layout.kEndpointStride * 4));
  const registry = new Registry();
  const ids = new Map([[VLLM_PAGE_MODEL, 0], ['sql-lora', 1], ['chat-lora', 2]]);
  const scraper = new Scraper({ ep, intervalMs, modelIds: () => ids, log: pino({ level: 'silent' }), registry });
  scraper.setTargets(ready.ips.map((ip, slot) => ({ key: `bench/pod-${slot}`, slot, ip, port, engine: 'vLLM', models: [VLLM_PAGE_MODEL] })));
  scraper.start();
  await scraper.firstRound;
  const metric = async (name) => (await registry.getSingleMetric(name).get()).values;
  const roundsNow = async () => (await metric('kthena_router_scrape_rounds_total'))[0]?.value ?? 0;
  const durations = async () => {
    const v = await metric('kthena_router_scrape_round_duration_seconds');
    return { sum: v.find((x) => x.metricName.endsWith('_sum')).value, count: v.find((x) => x.metricName.endsWith('_count')).value };
  };
  while ((await roundsNow()) < 2) await new Promise((r) => setTimeout(r, 50));
  const r0 = await roundsNow();
  const d0 = await durations();
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  const rounds = (await roundsNow()) - r0;
  const d1 = await durations();
  let fresh = 0;
  for (let slot = 0; slot < pods; slot++) if (Atomics.load(ep, slot * layout.kEndpointStride + layout.kEpScrapeState) === layout.kScrapeFresh) fresh++;
  await scraper.stop();
  child.send('stop');
  return {
    pods,
    intervalMs,
    rounds,
    cpuMsPerRound: (cpu.user + cpu.system) / 1000 / Math.max(1, rounds),
    roundWallMs: ((d1.sum - d0.sum) / Math.max(1, d1.count - d0.count)) * 1000,
    loopDelayP99Ms: eld.percentile(99) / 1e6,
    loopDelayMaxMs: eld.max / 1e6,
    fresh,
  };
}
