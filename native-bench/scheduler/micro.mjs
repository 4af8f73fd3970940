#!/usr/bin/env node
/**
 * Micro-benchmark of one scheduling decision: Scheduler.schedule() with the default plugin set
 * (DEFAULT_SCHEDULER: filter least-request; scores least-request, gpu-usage, least-latency,
 * prefix-cache, weight 1 each), i.e. seqlock reads of every candidate, filters, scores (prompt
 * hashing and the shared prefix-index lookup included) and the top-5 pick. Request parsing is
 * excluded: the ScheduleRequest objects (flat prompt strings, as JSON.parse gives them) are built
 * before the clock starts. The post-schedule insert is measured separately (it runs after the
 * response, off the decision's latency path).
 *
 * Scenarios: 8, 64, 512 and 4096 endpoints x a 1 KB and a 100 KB prompt. Endpoint slots hold
 * varied metrics (in-flight 0-24, waiting 0-14 so some pods are filtered, running 0-64, KV 5-95 %,
 * TTFT 40-900 ms, TPOT 8-70 ms, 5 % stale and 2 % never scraped); the prefix index is warm
 * (64 shared system prompts, each inserted for 8 pods) and requests share those prefixes.
 *
 * Timing, two ways (both reported):
 *  - per decision: process.hrtime.bigint() around each schedule() call (includes the timer's own
 *    cost, printed as "timer overhead"), p50/p99/p99.9 over every decision;
 *  - batched: hrtime around batches of 32 decisions, mean per decision of each batch, p50/p99 over
 *    batches (below timer resolution; smooths single-decision spikes).
 * Allocation: bytes per decision = growth of v8 used_heap_size over 20 000 untimed decisions with
 * GC forced before and a large young generation (--max-semi-space-size=64) so no scavenge runs in
 * the window (GCs observed in the window are counted and printed; non-zero makes the figure a floor).
 *
 * Run:  npm run build && node --expose-gc --max-semi-space-size=64 native-bench/scheduler/micro.mjs
 * Scrapes land during the run: every slot is rewritten through its seqlock once per second of a
 * worker making --rps (default 1000) decisions per second, i.e. n / rps slot writes per decision,
 * outside the timed call (they invalidate the view's per-slot records and the reused pure scores,
 * as real scrapes do).
 * Options: --dist DIR (compiled tree, default ../../dist relative to this file), --quick,
 *          --sizes 8,64 --prompts 1024,102400, --rps 1000, --no-write
 * Output: a Markdown table on stdout and JSON in native-bench/results/scheduler-<date>.json.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
}
if (args.includes('--help')) {
  console.log('node --expose-gc --max-semi-space-size=64 native-bench/scheduler/micro.mjs [--dist DIR] [--quick] [--sizes 8,64,512,4096] [--prompts 1024,102400] [--rps 1000] [--no-write]');
  process.exit(0);
}
const dist = path.resolve(opt('--dist', path.join(here, '..', '..', 'dist')));
const quick = args.includes('--quick');
const sizes = opt('--sizes', '8,64,512,4096').split(',').map(Number);
const promptSizes = opt('--prompts', '1024,102400').split(',').map(Number);
const write = !args.includes('--no-write');
const rps = Number(opt('--rps', '1000'));

const imp = (rel) => import(pathToFileURL(path.join(dist, rel)).href);
const { Scheduler } = await imp('workers/scheduler/framework.js');
const layout = await imp('src/shared/layout.js');
const { DEFAULT_SCHEDULER } = await imp('src/routerconfig/defaults.js');

if (typeof globalThis.gc !== 'function') {
  console.error('run with --expose-gc (allocation figures need a forced GC)');
  process.exit(2);
}

// ---- deterministic inputs ---------------------------------------------------------------------

let seed = 0x9e3779b9;
function rnd() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

const WORDS = 'the a of to and in is for on with that this as model token cache prefix router request latency pod engine batch queue system user assistant answer question explain detail context'.split(' ');
function text(bytes) {
  let s = '';
  while (s.length < bytes) s += WORDS[ri(0, WORDS.length - 1)] + ' ';
  return s.slice(0, bytes);
}
/** A flat (non-rope) copy, as JSON.parse produces. */
const flat = (s) => JSON.parse(JSON.stringify(s));

/** Integer in [lo, hi] from an xorshift32 kept in an Int32Array: no boxed numbers (allocation-free). */
const xs = new Int32Array([0x2545f491]);
function irand(lo, hi) {
  let x = xs[0];
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  xs[0] = x;
  return lo + ((x >>> 2) % (hi - lo + 1));
}

/** One scrape of `slot` as the control thread writes it (seqlock), with fresh varied values; allocates nothing. */
const nowSec = Math.floor(Date.now() / 1000);
function scrapeSlot(ep, slot) {
  const at = slot * layout.kEndpointStride;
  Atomics.add(ep, at + layout.kEpSeq, 1);
  const r = irand(0, 99);
  Atomics.store(ep, at + layout.kEpScrapeState, r < 2 ? layout.kScrapeNever : r < 7 ? layout.kScrapeStale : layout.kScrapeFresh);
  Atomics.store(ep, at + layout.kEpWaiting, irand(0, 14));
  Atomics.store(ep, at + layout.kEpRunning, irand(0, 64));
  Atomics.store(ep, at + layout.kEpKvUsagePpm, irand(50_000, 950_000));
  Atomics.store(ep, at + layout.kEpTtftUs, irand(40_000, 900_000));
  Atomics.store(ep, at + layout.kEpTpotUs, irand(8_000, 70_000));
  Atomics.store(ep, at + layout.kEpLastScrapeSec, nowSec);
  Atomics.add(ep, at + layout.kEpSeq, 1);
}

function fillSlots(ep, n) {
  const { epIndex } = layout;
  for (let slot = 0; slot < n; slot++) {
    const at = (f) => epIndex(slot, f);
    Atomics.store(ep, at(layout.kEpGen), 1);
    Atomics.store(ep, at(layout.kEpInflight), ri(0, 24));
    Atomics.add(ep, at(layout.kEpSeq), 1);
    const r = rnd();
    Atomics.store(ep, at(layout.kEpScrapeState), r < 0.02 ? layout.kScrapeNever : r < 0.07 ? layout.kScrapeStale : layout.kScrapeFresh);
    Atomics.store(ep, at(layout.kEpWaiting), ri(0, 14));
    Atomics.store(ep, at(layout.kEpRunning), ri(0, 64));
    Atomics.store(ep, at(layout.kEpKvUsagePpm), ri(50_000, 950_000));
    Atomics.store(ep, at(layout.kEpTtftUs), ri(40_000, 900_000));
    Atomics.store(ep, at(layout.kEpTpotUs), ri(8_000, 70_000));
    Atomics.store(ep, at(layout.kEpLastScrapeSec), Math.floor(Date.now() / 1000));
    Atomics.add(ep, at(layout.kEpSeq), 1);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

// ---- one scenario -----------------------------------------------------------------------------

const kSystemPrompts = 64;
const kRequests = 256;
const kTopN = 5;

function scenario(n, promptBytes, warmupOnly = false) {
  const ep = new Int32Array(new SharedArrayBuffer(Math.max(n, 8) * layout.kEndpointStride * 4));
  fillSlots(ep, n);
  const endpoints = Array.from({ length: n }, (_, slot) => ({
    slot, gen: 1, podName: `pod-${slot}`, namespace: 'bench', ip: `10.0.${slot >> 8}.${slot & 255}`, startedAtSec: 0,
  }));
  const prefixSab = layout.allocatePrefixIndex(layout.kDefaultPrefixIndexEntries);
  const scheduler = new Scheduler({ ep, prefixSab, random: Math.random, sampleEvery: 64 });
  const profile = scheduler.compile(DEFAULT_SCHEDULER, ['bench-model'], [0]);
  const out = new Int32Array(kTopN);

  // Shared system prompts: 60 % of the prompt (capped at what prefix-cache hashes: 128 x 64 B).
  const sysBytes = Math.min(Math.floor(promptBytes * 0.6), 6000);
  const systems = Array.from({ length: kSystemPrompts }, () => text(sysBytes));
  const mk = (sys) => ({ model: 'bench-model', modelId: 0, prompt: flat(sys + text(promptBytes - sys.length)), body: {}, engine: 'vLLM' });

  // Warm the prefix index: each system prompt served by 8 pods.
  for (let s = 0; s < kSystemPrompts; s++) {
    const req = mk(systems[s]);
    for (let r = 0; r < 8; r++) {
      scheduler.schedule(profile, endpoints, req, out, null);
      scheduler.postSchedule(profile, scheduler.takePrefixHashes(), endpoints[ri(0, n - 1)], 0);
    }
  }
  const reqs = Array.from({ length: kRequests }, (_, i) => mk(systems[i % kSystemPrompts]));

  // Scrapes land as the control thread writes them: every pod once per second while this worker
  // makes `rps` decisions per second, i.e. n / rps slot writes per decision, spread evenly.
  // (State in a typed array: a fractional number kept in a closure variable is re-boxed, i.e.
  // allocated, on every update, which would pollute the allocation figure.)
  const credit = new Float64Array(1);
  const next = new Int32Array(1);
  const perDecision = n / rps;
  const scrape = () => {
    credit[0] += perDecision;
    while (credit[0] >= 1) {
      scrapeSlot(ep, next[0]);
      next[0] = (next[0] + 1) % n;
      credit[0] -= 1;
    }
  };

  const decisions = warmupOnly ? 2_000 : quick ? 20_000 : n >= 4096 ? 60_000 : 200_000;
  const warm = Math.min(decisions, 20_000);
  let sink = 0;
  for (let i = 0; i < warm; i++) {
    scrape();
    sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
  }

  // Per-decision timing.
  const timerCost = (() => {
    const a = new Float64Array(10_000);
    for (let i = 0; i < a.length; i++) {
      const t0 = process.hrtime.bigint();
      const t1 = process.hrtime.bigint();
      a[i] = Number(t1 - t0);
    }
    a.sort();
    return percentile(a, 50);
  })();
  globalThis.gc();
  const per = new Float64Array(decisions);
  for (let i = 0; i < decisions; i++) {
    const req = reqs[i % kRequests];
    scrape(); // outside the timed call: the control thread's work
    const t0 = process.hrtime.bigint();
    sink += scheduler.schedule(profile, endpoints, req, out, null);
    per[i] = Number(process.hrtime.bigint() - t0);
  }
  per.sort();

  // Batched timing.
  const batch = 32;
  const batches = Math.floor(decisions / batch);
  const perBatch = new Float64Array(batches);
  globalThis.gc();
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let j = 0; j < batch; j++) {
      scrape(); // inside the batch here (~60 ns per slot written)
      sink += scheduler.schedule(profile, endpoints, reqs[(b * batch + j) % kRequests], out, null);
    }
    perBatch[b] = Number(process.hrtime.bigint() - t0) / batch;
  }
  perBatch.sort();

  // Allocation: untimed decisions between two heap readings, no GC expected in between.
  const allocDecisions = 20_000;
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  globalThis.gc();
  globalThis.gc();
  obs.observe({ entryTypes: ['gc'] });
  const h0 = v8.getHeapStatistics().used_heap_size;
  for (let i = 0; i < allocDecisions; i++) {
    scrape();
    sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
  }
  const h1 = v8.getHeapStatistics().used_heap_size;
  obs.disconnect();
  // PerformanceObserver delivers asynchronously; the count is read after the awaits in main().

  // Post hook (off the latency path): takePrefixHashes() copy + PrefixIndex.insert.
  const post = new Float64Array(quick ? 2_000 : 10_000);
  for (let i = 0; i < post.length; i++) {
    sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
    const t0 = process.hrtime.bigint();
    scheduler.postSchedule(profile, scheduler.takePrefixHashes(), endpoints[out[0]], 0);
    post[i] = Number(process.hrtime.bigint() - t0);
  }
  post.sort();

  const blocks = Math.min(128, Math.ceil(promptBytes / 64));
  return {
    result: {
      endpoints: n,
      promptBytes,
      hashedBlocks: blocks,
      scrapesPerDecision: n / rps,
      decisions,
      perDecisionNs: { p50: percentile(per, 50), p99: percentile(per, 99), p999: percentile(per, 99.9), max: per[per.length - 1] },
      batchedNs: { batch, p50: percentile(perBatch, 50), p99: percentile(perBatch, 99) },
      timerOverheadNs: timerCost,
      bytesPerDecision: (h1 - h0) / allocDecisions,
      allocDecisions,
      postHookNs: { p50: percentile(post, 50), p99: percentile(post, 99) },
    },
    gcsRef: () => gcs,
    sink,
  };
}

// ---- main -------------------------------------------------------------------------------------

function gitRev() {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: path.join(here, '..', '..'), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  kernel: `${os.type()} ${os.release()}`,
  node: process.version,
  execArgv: process.execArgv,
  router: `${gitRev()}`,
};

const results = [];
let sink = 0;
// A throwaway run first, so the first measured scenario does not pay (or count the allocations
// of) the JIT compiling the scheduler.
sink += scenario(64, 1024, true).sink;
for (const n of sizes) {
  for (const p of promptSizes) {
    const r = scenario(n, p);
    await new Promise((resolve) => setTimeout(resolve, 20)); // let the gc observer deliver
    r.result.gcsInAllocWindow = r.gcsRef();
    sink += r.sink;
    results.push(r.result);
    const x = r.result;
    process.stderr.write(`n=${n} prompt=${p}: p50 ${x.perDecisionNs.p50} ns, p99 ${x.perDecisionNs.p99} ns, ${x.bytesPerDecision.toFixed(1)} B/decision\n`);
  }
}

const kb = (b) => (b >= 1024 ? `${Math.round(b / 1024)} KB` : `${b} B`);
const us = (ns) => (ns / 1000).toFixed(2);
const lines = [];
lines.push(`Scheduler micro-benchmark: one decision, DEFAULT_SCHEDULER (filter least-request; scores least-request, gpu-usage, least-latency, prefix-cache), top ${kTopN}`);
lines.push('');
lines.push(`${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, Node ${machine.node} ${machine.execArgv.join(' ')}, router ${machine.router}`);
lines.push('');
lines.push('| endpoints | prompt | hashed blocks | slot scrapes / decision | p50 µs | p99 µs | p99.9 µs | batched p50 µs | batched p99 µs | B/decision | GCs in alloc window | post hook p50 µs |');
lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  lines.push(`| ${r.endpoints} | ${kb(r.promptBytes)} | ${r.hashedBlocks} | ${+r.scrapesPerDecision.toFixed(3)} | ${us(r.perDecisionNs.p50)} | ${us(r.perDecisionNs.p99)} | ${us(r.perDecisionNs.p999)} | ${us(r.batchedNs.p50)} | ${us(r.batchedNs.p99)} | ${r.bytesPerDecision.toFixed(1)} | ${r.gcsInAllocWindow} | ${us(r.postHookNs.p50)} |`);
}
lines.push('');
lines.push(`Scrapes: every pod rewritten through its seqlock once per second at ${rps} decisions/s per worker (--rps), between timed decisions. Per decision: process.hrtime.bigint() around each call (timer overhead ~${results[0]?.timerOverheadNs ?? '?'} ns included). Batched (scrape writes included): mean of ${results[0]?.batchedNs.batch ?? 32} decisions per hrtime pair. B/decision: v8 used_heap_size growth over ${results[0]?.allocDecisions ?? 0} untimed decisions after forced GC. Post hook: takePrefixHashes() + postSchedule() (prefix-index insert), not part of the decision.`);
console.log(lines.join('\n'));

if (write) {
  const date = new Date();
  const stamp = date.toISOString().replace(/[:]/g, '').replace(/\..*$/, '');
  const dir = path.join(here, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `scheduler-${stamp}.json`);
  writeFileSync(file, JSON.stringify({ date: date.toISOString(), machine, config: { sizes, promptSizes, topN: kTopN, quick, rps, profile: 'DEFAULT_SCHEDULER' }, results }, null, 2) + '\n');
  console.error(`wrote ${path.relative(process.cwd(), file)}`);
}
if (sink === 0.5) console.log(''); // keep `sink` observable
