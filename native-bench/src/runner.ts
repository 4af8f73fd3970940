/**
 * `runLoad`: drive one workload against one target (a router, or several servers round-robin)
 * and measure it.
 *
 * Open loop (`rate`): request i is sent at its scheduled time t_i = sum of arrival gaps, whatever
 * earlier requests are doing, so a slow server cannot slow the arrivals down and queueing shows up
 * in the latencies (no coordinated omission). The scheduler wakes on a timer, sends everything
 * that is due, and records for each arrival its schedule lag (how late, in wall ms, the generator
 * itself sent it). `maxInflight` bounds the requests in flight: an arrival beyond it is not sent
 * and is counted as `rejected` (never dropped silently); so is an arrival that finds a multi-turn
 * workload with no turn ready, as `starved`.
 * Closed loop (`concurrency`): N users each send the next request when their previous one ends.
 *
 * Time scale: the target's `x-sim-time-scale: k` header (probed with one tiny request before the
 * run, or given as `timeScale`) says the engine runs k times faster than the wall clock. Rates,
 * durations, timeouts and SLOs are in simulated time (the wall rate is rate * k), and latencies
 * are converted to simulated time as timing.ts describes, so results read as if the fleet ran in
 * real time and k does not distort ratios. Schedule lag and router overhead are real and reported
 * in wall ms. Against a real server k = 1 and everything is plain wall time.
 *
 * Every run is bounded: by `requests` (arrivals, sent or rejected) and/or `durationS` (no arrival
 * at or after it), then by the drain, where each request in flight ends by its own
 * `requestTimeoutS`. An `AbortSignal` ends the run early (in-flight requests count as `aborted`).
 */

import { performance } from 'node:perf_hooks';

import { Pool } from 'undici';

import { arrivalProcess } from './arrivals.js';
import type { ArrivalKind } from './arrivals.js';
import { BACKEND_HEADER, Exchange, RequestTimeoutError, RunAbortedError } from './client.js';
import { machineInfo } from './machine.js';
import type { MachineInfo } from './machine.js';
import { hashUnit } from './rng.js';
import { Samples, goodput, summarize } from './stats.js';
import type { Dist, Goodput, Slo, SloSample } from './stats.js';
import type { LoraShare, RequestSpec, Workload } from './workloads.js';
import { WAIT, pickModel } from './workloads.js';

export type Endpoint = 'chat' | 'completions';

export interface LoadOptions {
  /** Base URL(s) of the target, e.g. http://127.0.0.1:8080 (a full endpoint URL is kept as is). */
  urls: string[];
  /** Spread requests over `urls` in turn; required when there are several. */
  roundRobin?: boolean;
  /** Base model name. */
  model: string;
  /** `chat` (/v1/chat/completions, default) or `completions` (/v1/completions). */
  endpoint?: Endpoint;
  /** Request path (vLLM's --endpoint, e.g. /v1/chat/completions); default from `endpoint`. */
  path?: string;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  workload: Workload;
  /**
   * Open loop: mean arrival rate, requests per simulated second (Infinity: every arrival at once,
   * vLLM's `inf`). Exactly one of rate, concurrency and schedule.
   */
  rate?: number;
  /**
   * Open loop on a given schedule: arrival i at schedule[i] simulated ms after the start (a trace,
   * or one thread's share of a schedule computed once; see threads.ts).
   */
  schedule?: Float64Array;
  /** Open loop: at most N requests in flight; later arrivals wait in order (vLLM's --max-concurrency). */
  maxConcurrency?: number;
  /** Start sending at this wall time (epoch ms), so that several threads start together. */
  startAtEpochMs?: number;
  /** Open-loop arrival process (default poisson). */
  arrival?: ArrivalKind;
  /** Coefficient of variation of gamma inter-arrival gaps (default 1; vLLM's burstiness b is CV 1/sqrt(b)). */
  burstiness?: number;
  /** Closed loop: users, each with one request in flight. */
  concurrency?: number;
  /** Arrivals to make (sent + rejected). Default: the workload's size when no duration is given. */
  requests?: number;
  /** Simulated seconds during which arrivals happen. */
  durationS?: number;
  /** Requests in flight beyond which an open-loop arrival is rejected (default 1024). */
  maxInflight?: number;
  /** Per-request deadline, simulated seconds (default 600). */
  requestTimeoutS?: number;
  /** A share of requests goes to adapter model names (per session for multi-turn). */
  lora?: LoraShare[];
  seed?: number;
  /** Engine time scale k; when absent, read from the target's x-sim-time-scale header (default 1). */
  timeScale?: number;
  slo?: Slo;
  /** Ask for exactly max_tokens: send `ignore_eos` and `min_tokens` (vLLM, SGLang). Default true. */
  ignoreEos?: boolean;
  /** Response header whose values are tallied in `backends` (default x-sim-pod: the pod that answered). */
  backendHeader?: string;
  /** Keep one record per request in the result (`requests`). */
  keepRequests?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: ProgressSnapshot) => void;
  /** Default 250 ms. */
  progressIntervalMs?: number;
}

export interface ProgressSnapshot {
  /** Wall ms since the run started. */
  elapsedMs: number;
  arrivals: number;
  sent: number;
  finished: number;
  ok: number;
  errors: number;
  rejected: number;
  inflight: number;
  /** Arrivals waiting for a --max-concurrency slot. */
  queued: number;
  /** Arrivals planned (requests bound) or null. */
  totalArrivals: number | null;
  /** Wall ms of the send window (duration bound) or null. */
  windowMs: number | null;
  sending: boolean;
}

/** One request, as kept with `keepRequests` (times in simulated ms unless named wall). */
export interface RequestRecord {
  seq: number;
  index: number;
  target: number;
  model: string;
  group: number | null;
  session: number | null;
  turn: number | null;
  sent_wall_ms: number;
  lag_wall_ms: number | null;
  ok: boolean;
  error: string | null;
  status: number;
  input_tokens: number;
  max_tokens: number;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cached_tokens: number | null;
  ttft_ms: number | null;
  e2e_ms: number | null;
  itl_mean_ms: number | null;
  itl_max_ms: number | null;
  chunks: number;
  overhead_wall_ms: number | null;
  timing: 'sim' | 'wall';
}

export interface RunConfig {
  urls: string[];
  paths: string[];
  round_robin: boolean;
  model: string;
  endpoint: Endpoint;
  mode: 'open' | 'closed';
  /** Requests per simulated second; 'inf' sends every arrival at once (JSON has no Infinity). */
  rate: number | 'inf' | null;
  arrival: ArrivalKind | null;
  burstiness_cv: number | null;
  concurrency: number | null;
  requests: number | null;
  duration_s: number | null;
  max_inflight: number;
  /** Open loop: arrivals beyond it waited for a slot (null: no cap, only max_inflight). */
  max_concurrency: number | null;
  /** Arrivals followed a given schedule (a trace, or a thread's share). */
  scheduled: boolean;
  /** Generator threads (threads.ts); 1 for runLoad itself. */
  threads: number;
  request_timeout_s: number;
  workload: { name: string } & Record<string, unknown>;
  lora: LoraShare[];
  seed: number;
  ignore_eos: boolean;
  slo: { ttft_ms: number | null; itl_ms: number | null };
}

/** Raw samples, kept in memory for charts (not written to JSON). */
export interface RunSamples {
  ttft_ms: Float64Array;
  itl_ms: Float64Array;
  tpot_ms: Float64Array;
  e2e_ms: Float64Array;
  overhead_wall_ms: Float64Array;
  schedule_lag_wall_ms: Float64Array;
  /** Simulated ms an arrival waited for a --max-concurrency slot (every sent open-loop arrival). */
  queue_wait_ms: Float64Array;
}

export const RESULT_SCHEMA = 'native-bench/run/v2';

export interface LoadResult {
  schema: typeof RESULT_SCHEMA;
  started_at: string;
  /** The run was stopped by its signal before it finished. */
  interrupted: boolean;
  config: RunConfig;
  machine: MachineInfo;
  time_scale: {
    factor: number;
    source: 'option' | 'header' | 'default';
    /** Distinct x-sim-time-scale values seen on responses. */
    seen: number[];
    /** Responses whose header disagreed with `factor`. */
    mismatches: number;
    /** Successful requests timed from sim_t / from the wall clock. */
    sim_timed: number;
    wall_timed: number;
  };
  /** Simulated seconds from the first send to the last response (wall * factor). */
  duration_s: number;
  wall: {
    duration_s: number;
    send_window_s: number;
    /** Wall clock (epoch ms) of the first send and the last response: how thread shares are merged. */
    first_send_epoch_ms: number | null;
    last_end_epoch_ms: number | null;
  };
  counts: {
    arrivals: number;
    sent: number;
    ok: number;
    errors: number;
    rejected: number;
    starved: number;
  };
  /** Failures by kind: http_<status>, transport_<code>, timeout, aborted, stream_error, incomplete_stream, no_output. */
  errors: Record<string, number>;
  /** One message per failure kind (the first seen), for diagnosis. */
  error_samples: Record<string, string>;
  throughput: {
    requests_per_s: number;
    output_tokens_per_s: number;
    input_tokens_per_s: number;
    total_tokens_per_s: number;
  };
  tokens: {
    /** usage.prompt_tokens summed over successful requests. */
    input: number;
    /** usage.completion_tokens summed (token chunks where usage was missing). */
    output: number;
    /** usage.prompt_tokens_details.cached_tokens summed (requests that reported it). */
    cached: number;
    cache_hit_rate: number | null;
    /** usage.prompt_tokens of the requests that reported cached tokens (the hit rate's denominator). */
    cached_of: number;
    requests_without_usage: number;
    /** Successful requests whose completion_tokens differed from max_tokens. */
    output_len_mismatch: number;
  };
  goodput: Goodput | null;
  latency: {
    ttft_ms: Dist | null;
    itl_ms: Dist | null;
    tpot_ms: Dist | null;
    e2e_ms: Dist | null;
    /** Real time outside the engine before the first token (router, network, client). */
    overhead_wall_ms: Dist | null;
  };
  /** How late the generator sent each open-loop arrival (wall ms); null for closed loop. */
  schedule_lag_wall_ms: Dist | null;
  /**
   * Each generator thread's event-loop utilisation over the run (0..1: the share of wall time its
   * loop was running JavaScript or native callbacks rather than waiting for I/O). Near 1 means the
   * thread, not the target, set the pace; a thread that was runnable but not scheduled (cores shared
   * with the target) counts as busy, so on a shared machine this overstates the generator's cost.
   */
  generator_busy: number[];
  /** How long open-loop arrivals waited for a --max-concurrency slot (simulated ms); null without a cap. */
  queue_wait_ms: Dist | null;
  targets: Array<{ url: string; sent: number; ok: number; errors: number }>;
  /** Requests sent per model name (base and adapters). */
  models: Record<string, number>;
  /**
   * Responses per value of the backend header (which pod served them), with how many succeeded;
   * null when no response carried the header.
   */
  backends: { header: string; counts: Record<string, { requests: number; ok: number }> } | null;
  warnings: string[];
  requests?: RequestRecord[];
  samples: RunSamples;
}

/** The path of the endpoint for a base URL: /v1/chat/completions or /v1/completions. */
export function endpointTarget(url: string, endpoint: Endpoint, pathOverride?: string): { origin: string; path: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError(`not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`only http(s) URLs are supported, got ${url}`);
  if (pathOverride !== undefined) return { origin: u.origin, path: pathOverride };
  let path = u.pathname.replace(/\/+$/, '');
  if (!/\/completions$/.test(path)) {
    if (!/\/v1$/.test(path)) path += '/v1';
    path += endpoint === 'chat' ? '/chat/completions' : '/completions';
  }
  return { origin: u.origin, path: path + u.search };
}

function fin(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function errorMessage(body: string): string {
  try {
    const o = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    if (typeof o.error === 'object' && o.error !== null && typeof o.error.message === 'string') return o.error.message;
    if (typeof o.error === 'string') return o.error;
    if (typeof o.message === 'string') return o.message;
    if (typeof o.detail === 'string') return o.detail;
  } catch {
    // Not JSON: the text itself.
  }
  return body.slice(0, 300);
}

function failureKind(ex: Exchange): { kind: string; message: string } | null {
  const err = ex.error;
  if (err !== null) {
    const code = (err as { code?: unknown }).code;
    if (code === 'BENCH_REQUEST_TIMEOUT') return { kind: 'timeout', message: err.message };
    if (code === 'BENCH_RUN_ABORTED') return { kind: 'aborted', message: err.message };
    const c = typeof code === 'string' ? code : err.name;
    return { kind: `transport_${c}`, message: err.message };
  }
  if (ex.status !== 200) return { kind: `http_${ex.status}`, message: errorMessage(ex.body) };
  if (ex.streamError !== null) return { kind: 'stream_error', message: ex.streamError };
  if (ex.streaming && !ex.done) return { kind: 'incomplete_stream', message: 'the stream ended without data: [DONE]' };
  if (ex.clock.chunks === 0) return { kind: 'no_output', message: 'the response carried no output token' };
  return null;
}

interface Flight {
  spec: RequestSpec;
  seq: number;
  target: number;
  model: string;
  sentAt: number;
  lag: number | null;
  ex: Exchange;
  timer: NodeJS.Timeout | null;
  then: (() => void) | null;
}

const PROBE_TIMEOUT_MS = 30_000;

function requestBody(spec: RequestSpec | null, model: string, endpoint: Endpoint, ignoreEos: boolean, maxTokens: number): string {
  const messages = spec?.messages ?? [{ role: 'user', content: ' ping' }];
  const o: Record<string, unknown> = { model };
  if (endpoint === 'chat') o.messages = messages;
  else o.prompt = messages.map((m) => m.content).join('');
  o.max_tokens = maxTokens;
  o.stream = true;
  o.stream_options = { include_usage: true };
  if (ignoreEos) {
    o.ignore_eos = true;
    o.min_tokens = maxTokens;
  }
  return JSON.stringify(o);
}

function closedLoop(o: LoadOptions): boolean {
  return o.concurrency !== undefined;
}

function validate(o: LoadOptions): void {
  const modes = (o.rate !== undefined ? 1 : 0) + (o.concurrency !== undefined ? 1 : 0) + (o.schedule !== undefined ? 1 : 0);
  const closed = o.concurrency !== undefined;
  if (modes !== 1) throw new RangeError('give exactly one of rate (open loop), schedule (open loop) and concurrency (closed loop)');
  if (o.rate !== undefined && !(o.rate > 0)) throw new RangeError(`rate must be a positive number or Infinity, got ${o.rate}`);
  if (o.maxConcurrency !== undefined && !(Number.isInteger(o.maxConcurrency) && o.maxConcurrency >= 1)) throw new RangeError(`maxConcurrency must be an integer >= 1, got ${o.maxConcurrency}`);
  if (o.maxConcurrency !== undefined && closed) throw new RangeError('maxConcurrency applies to the open loop; concurrency already bounds the closed loop');
  if (closed && !(Number.isInteger(o.concurrency) && o.concurrency! >= 1)) throw new RangeError(`concurrency must be an integer >= 1, got ${o.concurrency}`);
  if (o.urls.length === 0) throw new RangeError('no target URL');
  if (o.urls.length > 1 && o.roundRobin !== true) throw new RangeError('several URLs need roundRobin (--round-robin)');
  if (o.model === '') throw new RangeError('model is empty');
  if (o.requests !== undefined && !(Number.isInteger(o.requests) && o.requests >= 1)) throw new RangeError(`requests must be an integer >= 1, got ${o.requests}`);
  if (o.durationS !== undefined && !(o.durationS > 0)) throw new RangeError(`duration must be positive, got ${o.durationS}`);
  if (o.maxInflight !== undefined && !(Number.isInteger(o.maxInflight) && o.maxInflight >= 1)) throw new RangeError(`maxInflight must be an integer >= 1, got ${o.maxInflight}`);
  if (o.requestTimeoutS !== undefined && !(o.requestTimeoutS > 0)) throw new RangeError(`requestTimeoutS must be positive, got ${o.requestTimeoutS}`);
  if (o.timeScale !== undefined && !(o.timeScale > 0 && Number.isFinite(o.timeScale))) throw new RangeError(`timeScale must be a positive number, got ${o.timeScale}`);
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  validate(o);
  const endpoint: Endpoint = o.endpoint ?? 'chat';
  const seed = o.seed ?? 1;
  const cap = o.maxConcurrency ?? null;
  const maxInflight = o.maxInflight ?? (cap ?? 1024);
  const timeoutS = o.requestTimeoutS ?? 600;
  const ignoreEos = o.ignoreEos ?? true;
  const lora = o.lora ?? [];
  const slo = o.slo ?? {};
  const workload = o.workload;
  const open = !closedLoop(o);
  let requests = o.requests ?? null;
  if (o.schedule !== undefined) requests = Math.min(requests ?? Infinity, o.schedule.length);
  if (requests === null && o.durationS === undefined) {
    if (workload.size === null) throw new RangeError(`the ${workload.name} workload needs a request count or a duration`);
    requests = workload.size;
  }
  const targets = o.urls.map((u) => endpointTarget(u, endpoint, o.path));
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream', ...o.headers };
  const startedAt = new Date().toISOString();
  const warnings: string[] = [];

  const pools = targets.map(
    (t) =>
      new Pool(t.origin, {
        connections: open ? Math.min(maxInflight, cap ?? Infinity) : o.concurrency!,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        // The generator's own per-request deadline governs; undici's would cut long prefills.
        headersTimeout: 0,
        bodyTimeout: 0,
        connectTimeout: 10_000,
      }),
  );

  try {
    // --- time scale -------------------------------------------------------------------------
    let k = 1;
    let kSource: LoadResult['time_scale']['source'] = 'default';
    if (o.timeScale !== undefined) {
      k = o.timeScale;
      kSource = 'option';
    } else {
      const probe = await new Promise<Exchange>((resolve) => {
        const onAbort = (): void => ex.abort(new RunAbortedError());
        const ex = new Exchange(1, performance.now(), false, (e) => {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', onAbort);
          resolve(e);
        });
        const timer = setTimeout(() => ex.abort(new RequestTimeoutError(PROBE_TIMEOUT_MS)), PROBE_TIMEOUT_MS);
        if (o.signal?.aborted) onAbort();
        else o.signal?.addEventListener('abort', onAbort, { once: true });
        if (!ex.finished) {
          pools[0].dispatch({ path: targets[0].path, method: 'POST', headers, body: requestBody(null, o.model, endpoint, ignoreEos, 1) }, ex);
        }
      });
      if (probe.error !== null && (probe.error as { code?: unknown }).code !== 'BENCH_REQUEST_TIMEOUT') {
        if ((probe.error as { code?: unknown }).code === 'BENCH_RUN_ABORTED') throw new RunAbortedError();
        throw new Error(`cannot reach ${o.urls[0]}: ${probe.error.message}`, { cause: probe.error });
      }
      if (probe.timeScale !== null) {
        k = probe.timeScale;
        kSource = 'header';
      } else if (probe.error !== null || probe.status !== 200) {
        // A real server answers without the header (k = 1 is then right); a failed probe may
        // have hidden it.
        const why = probe.error !== null ? 'the probe request timed out' : `the probe answered HTTP ${probe.status}`;
        warnings.push(`time scale 1 assumed: ${why}`);
      }
    }

    // --- state ------------------------------------------------------------------------------
    const timeoutWallMs = (timeoutS * 1000) / k;
    const samples = {
      ttft: new Samples(),
      itl: new Samples(16384),
      tpot: new Samples(),
      e2e: new Samples(),
      overhead: new Samples(),
      lag: new Samples(),
      queueWait: new Samples(),
    };
    const sloSamples: SloSample[] = [];
    const records: RequestRecord[] = [];
    const errors: Record<string, number> = {};
    const errorSamples: Record<string, string> = {};
    const perTarget = targets.map((_, i) => ({ url: o.urls[i], sent: 0, ok: 0, errors: 0 }));
    const models: Record<string, number> = {};
    const backendHeader = (o.backendHeader ?? BACKEND_HEADER).toLowerCase();
    const backends: Record<string, { requests: number; ok: number }> = {};
    let anyBackend = false;
    const seenK = new Set<number>();
    let mismatches = 0;
    let simTimed = 0;
    let wallTimed = 0;
    let arrivals = 0;
    let sent = 0;
    let ok = 0;
    let failed = 0;
    let rejected = 0;
    let starved = 0;
    /** Arrivals waiting for a --max-concurrency slot: spec, lag, due time (wall ms from tStart). */
    const queue: Array<{ spec: RequestSpec; lag: number; due: number }> = [];
    let queueHead = 0;
    let inTokens = 0;
    let outTokens = 0;
    let cached = 0;
    let cachedOf = 0;
    let noUsage = 0;
    let lenMismatch = 0;
    let firstSend = NaN;
    let lastEnd = NaN;
    const flights = new Set<Flight>();
    let stopped = false;
    let sending = true;
    let sendEnd = NaN;
    let wake: (() => void) | null = null;
    const notify = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };

    if (o.startAtEpochMs !== undefined) {
      const wait = o.startAtEpochMs - (performance.timeOrigin + performance.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const tStart = performance.now();
    const elu0 = performance.eventLoopUtilization();
    const windowWallMs = o.durationS !== undefined ? (o.durationS * 1000) / k : Infinity;

    const finish = (f: Flight): void => {
      flights.delete(f);
      if (f.timer !== null) clearTimeout(f.timer);
      const ex = f.ex;
      if (Number.isNaN(lastEnd) || ex.tEnd > lastEnd) lastEnd = ex.tEnd;
      if (ex.timeScale !== null) {
        seenK.add(ex.timeScale);
        if (Math.abs(ex.timeScale - k) > 1e-9 * k) mismatches++;
      }
      const failure = failureKind(ex);
      const clock = ex.clock;
      const isOk = failure === null;
      if (ex.backend !== null) {
        anyBackend = true;
        const b = (backends[ex.backend] ??= { requests: 0, ok: 0 });
        b.requests++;
        if (isOk) b.ok++;
      }
      const t = perTarget[f.target];
      let outputTokens = 0;
      if (isOk) {
        ok++;
        t.ok++;
        const ttft = clock.ttftMs;
        const e2e = clock.e2eMs(ex.tEnd);
        samples.ttft.push(ttft);
        samples.e2e.push(e2e);
        for (const v of clock.itls) samples.itl.push(v);
        if (clock.itls.length > 0) samples.tpot.push(clock.itlMeanMs);
        const ov = clock.overheadMs;
        if (!Number.isNaN(ov)) samples.overhead.push(ov);
        if (clock.source === 'sim') simTimed++;
        else wallTimed++;
        const u = ex.usage;
        if (u === null) {
          noUsage++;
          outputTokens = clock.chunks;
        } else {
          outputTokens = u.completion;
          inTokens += u.prompt;
          if (u.cached !== null) {
            cached += u.cached;
            cachedOf += u.prompt;
          }
          if (u.completion !== f.spec.outputTokens) lenMismatch++;
        }
        outTokens += outputTokens;
      } else {
        failed++;
        t.errors++;
        errors[failure.kind] = (errors[failure.kind] ?? 0) + 1;
        if (errorSamples[failure.kind] === undefined) errorSamples[failure.kind] = failure.message;
      }
      sloSamples.push({ ok: isOk, ttftMs: isOk ? clock.ttftMs : undefined, itlMeanMs: isOk && clock.itls.length > 0 ? clock.itlMeanMs : undefined });
      if (o.keepRequests === true) {
        const u = ex.usage;
        records.push({
          seq: f.seq,
          index: f.spec.index,
          target: f.target,
          model: f.model,
          group: f.spec.group ?? null,
          session: f.spec.session ?? null,
          turn: f.spec.turn ?? null,
          sent_wall_ms: f.sentAt - tStart,
          lag_wall_ms: f.lag,
          ok: isOk,
          error: failure?.kind ?? null,
          status: ex.status,
          input_tokens: f.spec.inputTokens,
          max_tokens: f.spec.outputTokens,
          prompt_tokens: u?.prompt ?? null,
          completion_tokens: u?.completion ?? null,
          cached_tokens: u?.cached ?? null,
          ttft_ms: isOk ? fin(clock.ttftMs) : null,
          e2e_ms: isOk ? fin(clock.e2eMs(ex.tEnd)) : null,
          itl_mean_ms: isOk ? fin(clock.itlMeanMs) : null,
          itl_max_ms: isOk && clock.itls.length > 0 ? clock.itlMax : null,
          chunks: clock.chunks,
          overhead_wall_ms: fin(clock.overheadMs),
          timing: clock.source,
        });
      }
      workload.complete?.(f.spec, { ok: isOk, answer: ex.answer, outputTokens });
      if (queueHead < queue.length && !stopped) {
        const q = queue[queueHead];
        queue[queueHead++] = undefined as never;
        if (queueHead === queue.length) {
          queue.length = 0;
          queueHead = 0;
        }
        samples.queueWait.push((performance.now() - tStart - q.due) * k);
        send(q.spec, q.lag, null);
      }
      const then = f.then;
      f.then = null;
      then?.();
      notify();
    };

    const send = (spec: RequestSpec, lag: number | null, then: (() => void) | null): void => {
      const seq = sent++;
      const target = seq % pools.length;
      const key = spec.session !== undefined ? `s${spec.session}` : `r${spec.index}`;
      const model = lora.length > 0 ? pickModel(o.model, lora, hashUnit(seed, 'lora', key)) : o.model;
      models[model] = (models[model] ?? 0) + 1;
      perTarget[target].sent++;
      const body = requestBody(spec, model, endpoint, ignoreEos, spec.outputTokens);
      const t0 = performance.now();
      if (Number.isNaN(firstSend)) firstSend = t0;
      const f: Flight = { spec, seq, target, model, sentAt: t0, lag, ex: null as unknown as Exchange, timer: null, then };
      f.ex = new Exchange(k, t0, spec.wantAnswer === true, () => finish(f), backendHeader);
      flights.add(f);
      f.timer = setTimeout(() => f.ex.abort(new RequestTimeoutError(timeoutS * 1000)), timeoutWallMs);
      try {
        pools[target].dispatch({ path: targets[target].path, method: 'POST', headers, body }, f.ex);
      } catch (err) {
        f.ex.abort(err instanceof Error ? err : new Error(String(err)));
      }
    };

    /** Runs the open-loop scheduler now (set while it waits on its timer). */
    let kick: (() => void) | null = null;
    const onAbort = (): void => {
      stopped = true;
      rejected += queue.length - queueHead;
      queue.length = 0;
      queueHead = 0;
      for (const f of [...flights]) f.ex.abort(new RunAbortedError());
      kick?.();
      notify();
    };
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });

    const snapshot = (): ProgressSnapshot => ({
      elapsedMs: performance.now() - tStart,
      arrivals,
      sent,
      finished: ok + failed,
      ok,
      errors: failed,
      rejected,
      inflight: flights.size,
      queued: queue.length - queueHead,
      totalArrivals: requests,
      windowMs: Number.isFinite(windowWallMs) ? windowWallMs : null,
      sending,
    });
    const progressTimer = o.onProgress ? setInterval(() => o.onProgress!(snapshot()), o.progressIntervalMs ?? 250) : null;

    // --- drive ------------------------------------------------------------------------------
    const stopSending = (): void => {
      if (!sending) return;
      sending = false;
      sendEnd = performance.now();
    };
    const maxArrivals = requests ?? Infinity;

    if (open) {
      const schedule = o.schedule;
      const proc = schedule === undefined ? arrivalProcess({ kind: o.arrival ?? 'poisson', rate: o.rate!, cv: o.burstiness, seed }) : null;
      await new Promise<void>((resolve) => {
        let nextSim = schedule !== undefined ? (schedule.length > 0 ? schedule[0] : Infinity) : 0;
        let timer: NodeJS.Timeout | null = null;
        const tick = (): void => {
          if (timer !== null) clearTimeout(timer);
          timer = null;
          kick = null;
          let now = performance.now() - tStart;
          for (;;) {
            if (stopped || arrivals >= maxArrivals || nextSim / k >= windowWallMs) {
              stopSending();
              resolve();
              return;
            }
            const due = nextSim / k;
            if (due > now) break;
            const lag = now - due;
            samples.lag.push(lag);
            const atCap = cap !== null && flights.size >= cap;
            if (!atCap && flights.size >= maxInflight) {
              arrivals++;
              rejected++;
            } else {
              const spec = workload.next();
              if (spec === null) {
                stopSending();
                resolve();
                return;
              }
              if (spec === WAIT) starved++;
              else {
                arrivals++;
                if (atCap) queue.push({ spec, lag, due });
                else {
                  if (cap !== null) samples.queueWait.push(0);
                  send(spec, lag, null);
                }
              }
            }
            if (schedule !== undefined) nextSim = arrivals < schedule.length ? schedule[arrivals] : Infinity;
            else nextSim += proc!.nextGapMs();
            now = performance.now() - tStart;
          }
          // A schedule that ended, or a trace gap longer than setTimeout allows, ends the loop.
          timer = setTimeout(tick, Math.min(2 ** 31 - 1, Math.max(0, Math.ceil(nextSim / k - now))));
          kick = tick;
        };
        tick();
      });
    } else {
      const user = async (): Promise<void> => {
        for (;;) {
          if (stopped || arrivals >= maxArrivals || performance.now() - tStart >= windowWallMs) return;
          const spec = workload.next();
          if (spec === null) return;
          if (spec === WAIT) {
            await new Promise<void>((r) => {
              const prev = wake;
              wake = () => {
                prev?.();
                r();
              };
            });
            continue;
          }
          arrivals++;
          await new Promise<void>((r) => send(spec, null, r));
        }
      };
      await Promise.all(Array.from({ length: o.concurrency! }, user));
      stopSending();
    }

    // --- drain ------------------------------------------------------------------------------
    while (flights.size > 0 || queueHead < queue.length) {
      await new Promise<void>((r) => {
        const prev = wake;
        wake = () => {
          prev?.();
          r();
        };
      });
    }
    if (progressTimer !== null) clearInterval(progressTimer);
    o.signal?.removeEventListener('abort', onAbort);
    o.onProgress?.(snapshot());

    // --- result -----------------------------------------------------------------------------
    const wallDurationMs = Number.isNaN(firstSend) ? 0 : lastEnd - firstSend;
    const durationS = (wallDurationMs * k) / 1000;
    const per = (n: number): number => (durationS > 0 ? n / durationS : 0);
    const lagDist = open ? summarize(samples.lag.toArray()) : null;
    const queueDist = cap !== null ? summarize(samples.queueWait.toArray()) : null;
    if (kSource !== 'option' && simTimed > 0 && seenK.size === 0) {
      warnings.push('responses carry sim_t but no x-sim-time-scale header: time scale 1 assumed');
    }
    if (mismatches > 0) warnings.push(`${mismatches} responses reported a time scale other than ${k}`);
    if (starved > 0) warnings.push(`${starved} arrivals found no multi-turn session ready (add sessions or lower the rate)`);
    if (rejected > 0) warnings.push(`${rejected} arrivals rejected by the generator: ${maxInflight} requests already in flight`);
    if (lagDist !== null && lagDist.p99 > 50) {
      warnings.push(`the generator sent arrivals late (schedule lag p99 ${lagDist.p99.toFixed(1)} wall ms): it could not keep up`);
    }
    const config: RunConfig = {
      urls: [...o.urls],
      paths: targets.map((t) => t.path),
      round_robin: o.urls.length > 1,
      model: o.model,
      endpoint,
      mode: open ? 'open' : 'closed',
      rate: o.rate === undefined ? null : Number.isFinite(o.rate) ? o.rate : 'inf',
      arrival: open ? (o.arrival ?? 'poisson') : null,
      burstiness_cv: open ? ((o.arrival ?? 'poisson') === 'gamma' ? (o.burstiness ?? 1) : 1) : null,
      concurrency: o.concurrency ?? null,
      requests,
      duration_s: o.durationS ?? null,
      max_inflight: open ? maxInflight : o.concurrency!,
      max_concurrency: cap,
      scheduled: o.schedule !== undefined,
      threads: 1,
      request_timeout_s: timeoutS,
      workload: { name: workload.name, ...workload.params },
      lora: lora.map((x) => ({ ...x })),
      seed,
      ignore_eos: ignoreEos,
      slo: { ttft_ms: slo.ttftMs ?? null, itl_ms: slo.itlMs ?? null },
    };
    const result: LoadResult = {
      schema: RESULT_SCHEMA,
      started_at: startedAt,
      interrupted: o.signal?.aborted === true,
      config,
      machine: machineInfo(),
      time_scale: { factor: k, source: kSource, seen: [...seenK].sort((a, b) => a - b), mismatches, sim_timed: simTimed, wall_timed: wallTimed },
      duration_s: durationS,
      wall: {
        duration_s: wallDurationMs / 1000,
        send_window_s: ((Number.isNaN(sendEnd) ? performance.now() : sendEnd) - tStart) / 1000,
        first_send_epoch_ms: Number.isNaN(firstSend) ? null : performance.timeOrigin + firstSend,
        last_end_epoch_ms: Number.isNaN(lastEnd) ? null : performance.timeOrigin + lastEnd,
      },
      counts: { arrivals, sent, ok, errors: failed, rejected, starved },
      errors,
      error_samples: errorSamples,
      throughput: {
        requests_per_s: per(ok),
        output_tokens_per_s: per(outTokens),
        input_tokens_per_s: per(inTokens),
        total_tokens_per_s: per(inTokens + outTokens),
      },
      tokens: {
        input: inTokens,
        output: outTokens,
        cached,
        cache_hit_rate: cachedOf > 0 ? cached / cachedOf : null,
        cached_of: cachedOf,
        requests_without_usage: noUsage,
        output_len_mismatch: lenMismatch,
      },
      goodput: slo.ttftMs !== undefined || slo.itlMs !== undefined ? goodput(sloSamples, slo, durationS, sent + rejected) : null,
      latency: {
        ttft_ms: summarize(samples.ttft.toArray()),
        itl_ms: summarize(samples.itl.toArray()),
        tpot_ms: summarize(samples.tpot.toArray()),
        e2e_ms: summarize(samples.e2e.toArray()),
        overhead_wall_ms: summarize(samples.overhead.toArray()),
      },
      schedule_lag_wall_ms: lagDist,
      generator_busy: [performance.eventLoopUtilization(elu0).utilization],
      queue_wait_ms: queueDist,
      targets: perTarget,
      models,
      backends: anyBackend ? { header: backendHeader, counts: backends } : null,
      warnings,
      samples: {
        ttft_ms: samples.ttft.toArray(),
        itl_ms: samples.itl.toArray(),
        tpot_ms: samples.tpot.toArray(),
        e2e_ms: samples.e2e.toArray(),
        overhead_wall_ms: samples.overhead.toArray(),
        schedule_lag_wall_ms: samples.lag.toArray(),
        queue_wait_ms: samples.queueWait.toArray(),
      },
    };
    if (o.keepRequests === true) result.requests = records.sort((a, b) => a.seq - b.seq);
    return result;
  } finally {
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

/**
 * The JSON form of a result: everything but the raw samples; per-request records only when
 * `requests` is true (and they were kept).
 */
export function resultToJson(r: LoadResult, opts: { requests?: boolean } = {}): Omit<LoadResult, 'samples'> {
  const rest: Omit<LoadResult, 'samples'> & { samples?: unknown } = { ...r };
  delete rest.samples;
  if (opts.requests !== true) delete rest.requests;
  return rest;
}
