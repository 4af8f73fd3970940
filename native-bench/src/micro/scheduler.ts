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
 * Scrapes land during the run: every slot is rewritten through its seqlock once per second of a
 * worker making --rps (default 1000) decisions per second, i.e. n / rps slot writes per decision,
 * outside the timed call (they invalidate the view's per-slot records and the reused pure scores,
 * as real scrapes do).
 *
 * The router's modules are loaded from a compiled tree (--dist, default the dist/ this file was
 * compiled into), so that one run of this script can measure two builds (before / after).
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';

import { importFrom, positive, positiveList, repoRoot, runIfMain, ScriptUsageError } from '../script.js';

export const SCHEDULER_MICRO_USAGE = `Usage: native-bench scheduler [options]
  (or: node --expose-gc --max-semi-space-size=64 dist/native-bench/src/micro/scheduler.js [options])

One scheduling decision with the default plugin set, per endpoint count and prompt size.

  --dist DIR        compiled tree to measure (default: the repository's dist/)
  --quick           fewer decisions per scenario
  --sizes LIST      endpoint counts (default 8,64,512,4096)
  --prompts LIST    prompt sizes in bytes (default 1024,102400)
  --rps N           decisions per second per worker that scrapes are spread over (default 1000)
  --no-write        do not write native-bench/results/scheduler-<date>.json
  -h, --help
`;

export interface SchedulerMicroOptions {
  help: boolean;
  dist: string;
  quick: boolean;
  sizes: number[];
  prompts: number[];
  rps: number;
  write: boolean;
}

export function parseSchedulerMicroArgs(argv: string[], root = repoRoot(import.meta.url)): SchedulerMicroOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      dist: { type: 'string' }, quick: { type: 'boolean', default: false }, sizes: { type: 'string', default: '8,64,512,4096' },
      prompts: { type: 'string', default: '1024,102400' }, rps: { type: 'string', default: '1000' }, 'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return {
    help: values.help!,
    dist: path.resolve(values.dist ?? path.join(root, 'dist')),
    quick: values.quick!,
    sizes: positiveList(values.sizes!, 'sizes'),
    prompts: positiveList(values.prompts!, 'prompts'),
    rps: positive(values.rps, 'rps', false)!,
    write: !values['no-write'],
  };
}

// ---- the router's modules, typed by what this script uses ---------------------------------------

interface SchedEndpoint { slot: number; gen: number; podName: string; namespace: string; ip: string; startedAtSec: number }
interface ScheduleRequest { model: string; modelId: number; prompt: string; body: object; engine: string }
interface SchedulerLike {
  compile(ir: unknown, modelNames: string[], modelIds: number[]): unknown;
  schedule(p: unknown, endpoints: SchedEndpoint[], req: ScheduleRequest, out: Int32Array, extra: null): number;
  takePrefixHashes(): unknown;
  postSchedule(p: unknown, hashes: unknown, ep: SchedEndpoint, modelId: number): void;
}
interface FrameworkModule {
  Scheduler: new (deps: { ep: Int32Array; prefixSab: SharedArrayBuffer; random: () => number; sampleEvery: number }) => SchedulerLike;
}
type Layout = Record<string, number> & {
  epIndex(slot: number, field: number): number;
  allocatePrefixIndex(entries: number): SharedArrayBuffer;
};

// ---- deterministic inputs -----------------------------------------------------------------------

let seed = 0x9e3779b9;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

const WORDS = 'the a of to and in is for on with that this as model token cache prefix router request latency pod engine batch queue system user assistant answer question explain detail context'.split(' ');
function text(bytes: number): string {
  let s = '';
  while (s.length < bytes) s += WORDS[ri(0, WORDS.length - 1)] + ' ';
  return s.slice(0, bytes);
}
/** A flat (non-rope) copy, as JSON.parse produces. */
const flat = (s: string): string => JSON.parse(JSON.stringify(s)) as string;

/** Integer in [lo, hi] from an xorshift32 kept in an Int32Array: no boxed numbers (allocation-free). */
const xs = new Int32Array([0x2545f491]);
function irand(lo: number, hi: number): number {
  let x = xs[0];
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  xs[0] = x;
  return lo + ((x >>> 2) % (hi - lo + 1));
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

const kSystemPrompts = 64;
const kRequests = 256;
const kTopN = 5;

export interface ScenarioResult {
  endpoints: number;
  promptBytes: number;
  hashedBlocks: number;
  scrapesPerDecision: number;
  decisions: number;
  perDecisionNs: { p50: number; p99: number; p999: number; max: number };
  batchedNs: { batch: number; p50: number; p99: number };
  timerOverheadNs: number;
  bytesPerDecision: number;
  allocDecisions: number;
  postHookNs: { p50: number; p99: number };
  gcsInAllocWindow?: number;
}

class Bench {
  readonly nowSec = Math.floor(Date.now() / 1000);
  constructor(
    readonly o: SchedulerMicroOptions,
    readonly Scheduler: FrameworkModule['Scheduler'],
    readonly L: Layout,
    readonly profileIr: unknown,
  ) {}

  /** One scrape of `slot` as the control thread writes it (seqlock), with fresh varied values; allocates nothing. */
  scrapeSlot(ep: Int32Array, slot: number): void {
    const L = this.L;
    const at = slot * L.kEndpointStride;
    Atomics.add(ep, at + L.kEpSeq, 1);
    const r = irand(0, 99);
    Atomics.store(ep, at + L.kEpScrapeState, r < 2 ? L.kScrapeNever : r < 7 ? L.kScrapeStale : L.kScrapeFresh);
    Atomics.store(ep, at + L.kEpWaiting, irand(0, 14));
    Atomics.store(ep, at + L.kEpRunning, irand(0, 64));
    Atomics.store(ep, at + L.kEpKvUsagePpm, irand(50_000, 950_000));
    Atomics.store(ep, at + L.kEpTtftUs, irand(40_000, 900_000));
    Atomics.store(ep, at + L.kEpTpotUs, irand(8_000, 70_000));
    Atomics.store(ep, at + L.kEpLastScrapeSec, this.nowSec);
    Atomics.add(ep, at + L.kEpSeq, 1);
  }

  fillSlots(ep: Int32Array, n: number): void {
    const L = this.L;
    for (let slot = 0; slot < n; slot++) {
      const at = (f: number): number => L.epIndex(slot, f);
      Atomics.store(ep, at(L.kEpGen), 1);
      Atomics.store(ep, at(L.kEpInflight), ri(0, 24));
      Atomics.add(ep, at(L.kEpSeq), 1);
      const r = rnd();
      Atomics.store(ep, at(L.kEpScrapeState), r < 0.02 ? L.kScrapeNever : r < 0.07 ? L.kScrapeStale : L.kScrapeFresh);
      Atomics.store(ep, at(L.kEpWaiting), ri(0, 14));
      Atomics.store(ep, at(L.kEpRunning), ri(0, 64));
      Atomics.store(ep, at(L.kEpKvUsagePpm), ri(50_000, 950_000));
      Atomics.store(ep, at(L.kEpTtftUs), ri(40_000, 900_000));
      Atomics.store(ep, at(L.kEpTpotUs), ri(8_000, 70_000));
      Atomics.store(ep, at(L.kEpLastScrapeSec), Math.floor(Date.now() / 1000));
      Atomics.add(ep, at(L.kEpSeq), 1);
    }
  }

  scenario(n: number, promptBytes: number, warmupOnly = false): { result: ScenarioResult; gcsRef: () => number; sink: number } {
    const L = this.L;
    const gc = globalThis.gc as () => void;
    const ep = new Int32Array(new SharedArrayBuffer(Math.max(n, 8) * L.kEndpointStride * 4));
    this.fillSlots(ep, n);
    const endpoints: SchedEndpoint[] = Array.from({ length: n }, (_, slot) => ({
      slot, gen: 1, podName: `pod-${slot}`, namespace: 'bench', ip: `10.0.${slot >> 8}.${slot & 255}`, startedAtSec: 0,
    }));
    const prefixSab = L.allocatePrefixIndex(L.kDefaultPrefixIndexEntries);
    const scheduler = new this.Scheduler({ ep, prefixSab, random: Math.random, sampleEvery: 64 });
    const profile = scheduler.compile(this.profileIr, ['bench-model'], [0]);
    const out = new Int32Array(kTopN);

    // Shared system prompts: 60 % of the prompt (capped at what prefix-cache hashes: 128 x 64 B).
    const sysBytes = Math.min(Math.floor(promptBytes * 0.6), 6000);
    const systems = Array.from({ length: kSystemPrompts }, () => text(sysBytes));
    const mk = (sys: string): ScheduleRequest => ({ model: 'bench-model', modelId: 0, prompt: flat(sys + text(promptBytes - sys.length)), body: {}, engine: 'vLLM' });

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
    const perDecision = n / this.o.rps;
    const scrape = (): void => {
      credit[0] += perDecision;
      while (credit[0] >= 1) {
        this.scrapeSlot(ep, next[0]);
        next[0] = (next[0] + 1) % n;
        credit[0] -= 1;
      }
    };

    const decisions = warmupOnly ? 2_000 : this.o.quick ? 20_000 : n >= 4096 ? 60_000 : 200_000;
    const warm = Math.min(decisions, 20_000);
    let sink = 0;
    for (let i = 0; i < warm; i++) {
      scrape();
      sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
    }

    // Per-decision timing.
    const timerCost = ((): number => {
      const a = new Float64Array(10_000);
      for (let i = 0; i < a.length; i++) {
        const t0 = process.hrtime.bigint();
        const t1 = process.hrtime.bigint();
        a[i] = Number(t1 - t0);
      }
      a.sort();
      return percentile(a, 50);
    })();
    gc();
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
    gc();
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
    gc();
    gc();
    obs.observe({ entryTypes: ['gc'] });
    const h0 = v8.getHeapStatistics().used_heap_size;
    for (let i = 0; i < allocDecisions; i++) {
      scrape();
      sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
    }
    const h1 = v8.getHeapStatistics().used_heap_size;
    obs.disconnect();
    // PerformanceObserver delivers asynchronously; the count is read after an await by the caller.

    // Post hook (off the latency path): takePrefixHashes() copy + PrefixIndex.insert.
    const post = new Float64Array(this.o.quick ? 2_000 : 10_000);
    for (let i = 0; i < post.length; i++) {
      sink += scheduler.schedule(profile, endpoints, reqs[i % kRequests], out, null);
      const t0 = process.hrtime.bigint();
      scheduler.postSchedule(profile, scheduler.takePrefixHashes(), endpoints[out[0]], 0);
      post[i] = Number(process.hrtime.bigint() - t0);
    }
    post.sort();

    return {
      result: {
        endpoints: n,
        promptBytes,
        hashedBlocks: Math.min(128, Math.ceil(promptBytes / 64)),
        scrapesPerDecision: n / this.o.rps,
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
}

function gitRev(cwd: string): string {
  try {
    return execSync('git rev-parse --short HEAD', { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

export async function schedulerMicroMain(argv: string[]): Promise<number> {
  const root = repoRoot(import.meta.url);
  const o = parseSchedulerMicroArgs(argv, root);
  if (o.help) {
    process.stdout.write(SCHEDULER_MICRO_USAGE);
    return 0;
  }
  if (typeof globalThis.gc !== 'function') throw new ScriptUsageError('run with node --expose-gc (allocation figures need a forced GC), or as native-bench scheduler');
  const { Scheduler } = await importFrom<FrameworkModule>(o.dist, 'workers/scheduler/framework.js');
  const layout = await importFrom<Layout>(o.dist, 'src/shared/layout.js');
  const { DEFAULT_SCHEDULER } = await importFrom<{ DEFAULT_SCHEDULER: unknown }>(o.dist, 'src/routerconfig/defaults.js');
  const bench = new Bench(o, Scheduler, layout, DEFAULT_SCHEDULER);

  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    execArgv: process.execArgv,
    router: gitRev(path.dirname(o.dist)),
  };

  const results: ScenarioResult[] = [];
  let sink = 0;
  // A throwaway run first, so the first measured scenario does not pay (or count the allocations
  // of) the JIT compiling the scheduler.
  sink += bench.scenario(64, 1024, true).sink;
  for (const n of o.sizes) {
    for (const p of o.prompts) {
      const r = bench.scenario(n, p);
      await new Promise((resolve) => setTimeout(resolve, 20)); // let the gc observer deliver
      r.result.gcsInAllocWindow = r.gcsRef();
      sink += r.sink;
      results.push(r.result);
      const x = r.result;
      process.stderr.write(`n=${n} prompt=${p}: p50 ${x.perDecisionNs.p50} ns, p99 ${x.perDecisionNs.p99} ns, ${x.bytesPerDecision.toFixed(1)} B/decision\n`);
    }
  }

  const kb = (b: number): string => (b >= 1024 ? `${Math.round(b / 1024)} KB` : `${b} B`);
  const us = (ns: number): string => (ns / 1000).toFixed(2);
  const lines: string[] = [];
  lines.push(`Scheduler micro-benchmark: one decision, DEFAULT_SCHEDULER (filter least-request; scores least-request, gpu-usage, least-latency, prefix-cache), top ${kTopN}`);
  lines.push('');
  lines.push(`${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, Node ${machine.node} ${machine.execArgv.join(' ')}, router ${machine.router} (${o.dist})`);
  lines.push('');
  lines.push('| endpoints | prompt | hashed blocks | slot scrapes / decision | p50 µs | p99 µs | p99.9 µs | batched p50 µs | batched p99 µs | B/decision | GCs in alloc window | post hook p50 µs |');
  lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    lines.push(`| ${r.endpoints} | ${kb(r.promptBytes)} | ${r.hashedBlocks} | ${+r.scrapesPerDecision.toFixed(3)} | ${us(r.perDecisionNs.p50)} | ${us(r.perDecisionNs.p99)} | ${us(r.perDecisionNs.p999)} | ${us(r.batchedNs.p50)} | ${us(r.batchedNs.p99)} | ${r.bytesPerDecision.toFixed(1)} | ${r.gcsInAllocWindow} | ${us(r.postHookNs.p50)} |`);
  }
  lines.push('');
  lines.push(`Scrapes: every pod rewritten through its seqlock once per second at ${o.rps} decisions/s per worker (--rps), between timed decisions. Per decision: process.hrtime.bigint() around each call (timer overhead ~${results[0]?.timerOverheadNs ?? '?'} ns included). Batched (scrape writes included): mean of ${results[0]?.batchedNs.batch ?? 32} decisions per hrtime pair. B/decision: v8 used_heap_size growth over ${results[0]?.allocDecisions ?? 0} untimed decisions after forced GC. Post hook: takePrefixHashes() + postSchedule() (prefix-index insert), not part of the decision.`);
  process.stdout.write(lines.join('\n') + '\n');

  if (o.write) {
    const date = new Date();
    const stamp = date.toISOString().replace(/[:]/g, '').replace(/\..*$/, '');
    const dir = path.join(root, 'native-bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `scheduler-${stamp}.json`);
    writeFileSync(file, JSON.stringify({ date: date.toISOString(), machine, config: { sizes: o.sizes, promptSizes: o.prompts, topN: kTopN, quick: o.quick, rps: o.rps, profile: 'DEFAULT_SCHEDULER' }, results }, null, 2) + '\n');
    process.stderr.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  }
  if (sink === 0.5) process.stdout.write('\n'); // keep `sink` observable
  return 0;
}

runIfMain(import.meta.url, schedulerMicroMain);
