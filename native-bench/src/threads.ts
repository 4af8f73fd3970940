/**
 * The load generator on several threads (piscina): one thread parsing SSE streams saturates long
 * before a router does, so `--threads N` spreads the requests over N worker threads, each with its
 * own undici pools.
 *
 * The arrival schedule is computed once, here, for the whole run (the same seed gives the same
 * schedule whatever N is), and dealt round-robin: thread t sends arrivals t, t+N, t+2N, ... at
 * their scheduled times, so every thread sees the same arrival process thinned by N. The threads
 * start together at one wall-clock instant. A closed loop deals its users and requests the same
 * way. --max-concurrency and --max-inflight are split between the threads (they sum to the cap):
 * a thread whose share is full queues its own arrivals even if another has room, which is the one
 * way a sharded run differs from a single thread (documented in docs/native-bench.md).
 *
 * Results are merged exactly: counts, tokens, goodput and per-target tallies are sums; latency
 * distributions are recomputed from the threads' merged samples (never averaged percentiles); the
 * duration runs from the first send of any thread to the last response of any thread.
 *
 * Only workloads whose requests depend on no answer can be sharded (not multi-turn).
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Piscina } from 'piscina';

import { arrivalProcess } from './arrivals.js';
import { DatasetWorkload, type DatasetItem } from './datasets.js';
import type { LoadOptions, LoadResult, RunConfig } from './runner.js';
import { summarize } from './stats.js';
import { SharedPrefixWorkload, RandomWorkload, type RandomParams, type RequestSpec, type SharedPrefixParams, type Workload } from './workloads.js';

/** A workload as data, so that each thread can rebuild it (workloads are deterministic in their seed). */
export type WorkloadSpec =
  | { kind: 'generated-shared-prefix'; params: Partial<SharedPrefixParams>; seed: number }
  | { kind: 'random'; params: Partial<RandomParams>; seed: number }
  | { kind: 'dataset'; name: string; items: DatasetItem[]; params: Record<string, unknown> };

export type IndexedWorkload = Workload & { request(i: number): RequestSpec };

export function workloadFromSpec(spec: WorkloadSpec): IndexedWorkload {
  switch (spec.kind) {
    case 'generated-shared-prefix':
      return new SharedPrefixWorkload(spec.params, spec.seed);
    case 'random':
      return new RandomWorkload(spec.params, spec.seed);
    case 'dataset':
      return new DatasetWorkload(spec.name, spec.items, spec.params);
  }
}

/** The requests `indices` of a workload, in that order (one thread's share). */
export class ShardWorkload implements Workload {
  readonly name: string;
  readonly size: number;
  readonly params: Record<string, unknown>;
  #j = 0;
  constructor(readonly base: IndexedWorkload, readonly indices: Uint32Array) {
    this.name = base.name;
    this.size = indices.length;
    this.params = base.params;
  }

  request(i: number): RequestSpec {
    return this.base.request(i);
  }

  next(): RequestSpec | null {
    return this.#j < this.indices.length ? this.base.request(this.indices[this.#j++]) : null;
  }
}

/** What one thread runs: runLoad's options without the workload object, signal or callbacks. */
export interface ThreadTask {
  load: Omit<LoadOptions, 'workload' | 'signal' | 'onProgress'>;
  workload: WorkloadSpec;
  indices: Uint32Array;
}

/**
 * Arrival times (simulated ms from the start) for the whole run: the given schedule (a trace), or
 * `n` draws of the arrival process (for a duration bound: every arrival before it).
 */
export function fullSchedule(o: LoadOptions, n: number | null): Float64Array {
  if (o.schedule !== undefined) {
    let end = n === null ? o.schedule.length : Math.min(n, o.schedule.length);
    if (o.durationS !== undefined) while (end > 0 && o.schedule[end - 1] >= o.durationS * 1000) end--;
    return o.schedule.subarray(0, end);
  }
  const proc = arrivalProcess({ kind: o.arrival ?? 'poisson', rate: o.rate!, cv: o.burstiness, seed: o.seed ?? 1 });
  const limitMs = o.durationS !== undefined ? o.durationS * 1000 : Infinity;
  const cap = n ?? 10_000_000;
  const out: number[] = [];
  let t = 0;
  while (out.length < cap && t < limitMs) {
    out.push(t);
    t += proc.nextGapMs();
  }
  return Float64Array.from(out);
}

/** Splits `total` into `parts` integers that differ by at most one and sum to it (part t's share). */
export function share(total: number, parts: number, t: number): number {
  return Math.floor(total / parts) + (t < total % parts ? 1 : 0);
}

/** Thread t's tasks: arrivals t, t+N, ... of the schedule (or of the closed loop's requests). */
export function shardTasks(o: LoadOptions, spec: WorkloadSpec, threads: number, requests: number, schedule: Float64Array | null): ThreadTask[] {
  const tasks: ThreadTask[] = [];
  const startAtEpochMs = Date.now() + 300 + 50 * threads;
  for (let t = 0; t < threads; t++) {
    const count = share(requests, threads, t);
    if (count === 0) continue;
    const indices = new Uint32Array(count);
    for (let i = 0; i < count; i++) indices[i] = t + i * threads;
    const { workload: _w, signal: _s, onProgress: _p, ...rest } = o;
    const load: ThreadTask['load'] = { ...rest, requests: count, startAtEpochMs };
    if (schedule !== null) {
      load.schedule = Float64Array.from(indices, (j) => schedule[j]);
      delete load.rate;
      if (o.maxConcurrency !== undefined) load.maxConcurrency = Math.max(1, share(o.maxConcurrency, threads, t));
      if (o.maxInflight !== undefined) load.maxInflight = Math.max(1, share(o.maxInflight, threads, t));
    } else {
      load.concurrency = Math.max(1, share(o.concurrency!, threads, t));
    }
    tasks.push({ load, workload: spec, indices });
  }
  return tasks;
}

function concat(arrays: Float64Array[]): Float64Array {
  const out = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** One result from the threads' results (see the header for what "exactly" means). */
export function mergeResults(parts: LoadResult[], config: RunConfig): LoadResult {
  if (parts.length === 0) throw new RangeError('no thread result to merge');
  if (parts.length === 1) return { ...parts[0], config };
  const first = parts[0];
  const k = first.time_scale.factor;
  const starts = parts.map((p) => p.wall.first_send_epoch_ms).filter((x): x is number => x !== null);
  const ends = parts.map((p) => p.wall.last_end_epoch_ms).filter((x): x is number => x !== null);
  const t0 = starts.length > 0 ? Math.min(...starts) : null;
  const t1 = ends.length > 0 ? Math.max(...ends) : null;
  const wallMs = t0 !== null && t1 !== null ? t1 - t0 : 0;
  const durationS = (wallMs * k) / 1000;
  const per = (n: number): number => (durationS > 0 ? n / durationS : 0);
  const sum = (f: (p: LoadResult) => number): number => parts.reduce((n, p) => n + f(p), 0);

  const counts = { arrivals: sum((p) => p.counts.arrivals), sent: sum((p) => p.counts.sent), ok: sum((p) => p.counts.ok), errors: sum((p) => p.counts.errors), rejected: sum((p) => p.counts.rejected), starved: sum((p) => p.counts.starved) };
  const errors: Record<string, number> = {};
  const errorSamples: Record<string, string> = {};
  const models: Record<string, number> = {};
  const backends: Record<string, { requests: number; ok: number }> = {};
  let backendHeader: string | null = null;
  for (const p of parts) {
    addInto(errors, p.errors);
    for (const [kind, m] of Object.entries(p.error_samples)) errorSamples[kind] ??= m;
    addInto(models, p.models);
    if (p.backends !== null) {
      backendHeader = p.backends.header;
      for (const [name, c] of Object.entries(p.backends.counts)) {
        const b = (backends[name] ??= { requests: 0, ok: 0 });
        b.requests += c.requests;
        b.ok += c.ok;
      }
    }
  }
  const targets = first.targets.map((t, i) => ({ url: t.url, sent: sum((p) => p.targets[i].sent), ok: sum((p) => p.targets[i].ok), errors: sum((p) => p.targets[i].errors) }));
  const tokens = {
    input: sum((p) => p.tokens.input),
    output: sum((p) => p.tokens.output),
    cached: sum((p) => p.tokens.cached),
    cached_of: sum((p) => p.tokens.cached_of),
    cache_hit_rate: null as number | null,
    requests_without_usage: sum((p) => p.tokens.requests_without_usage),
    output_len_mismatch: sum((p) => p.tokens.output_len_mismatch),
  };
  tokens.cache_hit_rate = tokens.cached_of > 0 ? tokens.cached / tokens.cached_of : null;
  const samples = {
    ttft_ms: concat(parts.map((p) => p.samples.ttft_ms)),
    itl_ms: concat(parts.map((p) => p.samples.itl_ms)),
    tpot_ms: concat(parts.map((p) => p.samples.tpot_ms)),
    e2e_ms: concat(parts.map((p) => p.samples.e2e_ms)),
    overhead_wall_ms: concat(parts.map((p) => p.samples.overhead_wall_ms)),
    schedule_lag_wall_ms: concat(parts.map((p) => p.samples.schedule_lag_wall_ms)),
    queue_wait_ms: concat(parts.map((p) => p.samples.queue_wait_ms)),
  };
  const goodputMet = first.goodput !== null ? sum((p) => p.goodput!.requests) : 0;
  const attempts = counts.sent + counts.rejected;
  const seen = [...new Set(parts.flatMap((p) => p.time_scale.seen))].sort((a, b) => a - b);
  const warnings = [...new Set(parts.flatMap((p) => p.warnings))];
  const merged: LoadResult = {
    schema: first.schema,
    started_at: parts.map((p) => p.started_at).sort()[0],
    interrupted: parts.some((p) => p.interrupted),
    config,
    machine: first.machine,
    time_scale: { ...first.time_scale, seen, mismatches: sum((p) => p.time_scale.mismatches), sim_timed: sum((p) => p.time_scale.sim_timed), wall_timed: sum((p) => p.time_scale.wall_timed) },
    duration_s: durationS,
    wall: { duration_s: wallMs / 1000, send_window_s: Math.max(...parts.map((p) => p.wall.send_window_s)), first_send_epoch_ms: t0, last_end_epoch_ms: t1 },
    counts,
    errors,
    error_samples: errorSamples,
    throughput: { requests_per_s: per(counts.ok), output_tokens_per_s: per(tokens.output), input_tokens_per_s: per(tokens.input), total_tokens_per_s: per(tokens.input + tokens.output) },
    tokens,
    goodput: first.goodput === null ? null : { ...first.goodput, requests: goodputMet, fraction: attempts > 0 ? goodputMet / attempts : 0, rps: per(goodputMet) },
    latency: { ttft_ms: summarize(samples.ttft_ms), itl_ms: summarize(samples.itl_ms), tpot_ms: summarize(samples.tpot_ms), e2e_ms: summarize(samples.e2e_ms), overhead_wall_ms: summarize(samples.overhead_wall_ms) },
    schedule_lag_wall_ms: first.schedule_lag_wall_ms === null ? null : summarize(samples.schedule_lag_wall_ms),
    generator_busy: parts.flatMap((p) => p.generator_busy),
    queue_wait_ms: first.queue_wait_ms === null ? null : summarize(samples.queue_wait_ms),
    targets,
    models,
    backends: backendHeader === null ? null : { header: backendHeader, counts: backends },
    warnings,
    samples,
  };
  if (parts.some((p) => p.requests !== undefined)) merged.requests = parts.flatMap((p) => p.requests ?? []).sort((a, b) => a.index - b.index);
  return merged;
}

/** The compiled worker module (tests run this file from source, the worker from dist/). */
function workerFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'thread-worker.js');
  if (existsSync(beside)) return beside;
  const dist = path.resolve(here, '..', '..', 'dist', 'native-bench', 'src', 'thread-worker.js');
  if (existsSync(dist)) return dist;
  throw new Error(`${dist} is missing: run npm run build first`);
}

/**
 * Runs `o` on `threads` worker threads and merges the results. `spec` must describe `o.workload`.
 * `config` is the configuration recorded for the whole run.
 */
export async function runThreaded(o: LoadOptions, spec: WorkloadSpec, threads: number): Promise<LoadResult> {
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be an integer >= 1, got ${threads}`);
  let requests = o.requests ?? null;
  const closed = o.concurrency !== undefined;
  if (closed && requests === null && o.durationS !== undefined) throw new RangeError('a threaded closed loop needs a request count, not only a duration');
  const schedule = closed ? null : fullSchedule(o, requests);
  if (schedule !== null) requests = schedule.length;
  if (requests === null) requests = o.workload.size ?? 0;
  if (requests === 0) throw new RangeError('a threaded run needs a request count (or a duration with --request-rate)');
  const tasks = shardTasks(o, spec, threads, requests, schedule);
  const pool = new Piscina({ filename: workerFile(), minThreads: tasks.length, maxThreads: tasks.length, idleTimeout: 1000 });
  try {
    const parts = (await Promise.all(tasks.map((t) => pool.run(t, { signal: o.signal })))) as LoadResult[];
    const c = parts[0].config;
    const config: RunConfig = {
      ...c,
      rate: o.rate === undefined ? null : Number.isFinite(o.rate) ? o.rate : 'inf',
      scheduled: o.schedule !== undefined,
      concurrency: o.concurrency ?? null,
      requests,
      max_inflight: parts.reduce((n, p) => n + p.config.max_inflight, 0),
      max_concurrency: o.maxConcurrency ?? null,
      threads: tasks.length,
    };
    return mergeResults(parts, config);
  } finally {
    await pool.destroy();
  }
}
