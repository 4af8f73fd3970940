/**
 * The engine-metrics scraper of the control thread (docs/reference/kthena-behaviour.md §7): every interval it asks
 * each known pod for `GET /metrics` (Prometheus text) and `GET /v1/models` (ids, LoRA adapters
 * included), reads the page through the mapping table of ./engines.ts and writes the result into
 * the pod's endpoint slot under the seqlock of src/shared/layout.ts, where the workers' scorers read it.
 *
 * Rounds
 * ------
 * A round scrapes every target, at most `concurrency` pods at once (default 100, as Kthena); both
 * requests of a pod go out together. The next round starts `intervalMs` after the previous one
 * *started*, or as soon as it ends when it took longer: rounds never overlap and never pile up.
 * A target added by setTargets() is scraped at once (not at the next tick); a round that reaches a
 * pod whose scrape is still in flight waits for that scrape instead of starting a second one.
 *
 * Timeouts: each pod's two requests share one deadline, `timeoutMs`, default
 * min(5000, max(1000, intervalMs)): Kthena's 5 s at most; at the default 1 s interval a hung pod
 * delays no round; never under 1 s, so a busy engine answering /metrics in a few hundred ms is not
 * a failure at short intervals (a hung pod then stretches those rounds to 1 s). Bodies are capped
 * at 8 MiB. Connections are kept alive (undici Agent, 2 per pod); bodies are collected by a raw
 * dispatch handler (no stream, no async iterator: the HTTP side costs more CPU than parsing).
 *
 * What is written (one seqlock write per scrape, and one when a target is added):
 *   kEpWaiting, kEpRunning           engine queue and batch (0 when the family is missing)
 *   kEpKvUsagePpm                    KV usage x 1e6, clamped 0..1_000_000
 *   kEpTtftUs, kEpTpotUs             interval means (./delta.ts), last non-zero kept, 0 = unknown
 *   kEpPrefixHitPpm                  engine prefix-cache hit rate, -1 = unknown
 *   kEpLastScrapeSec                 unix seconds of the last successful scrape, 0 = never
 *   kEpScrapeFailures                consecutive failed /metrics scrapes
 *   kEpScrapeState                   see below
 *   kEpModelBits                     /v1/models ids through modelIds(); unknown names ignored
 *   kEpLoraActiveBits                running + waiting adapters of vllm:lora_requests_info
 * States: kScrapeNever until the first successful scrape (also while the first attempts fail: a
 * pod never seen answering has no values to trust, and Failing would present zeros as measured);
 * kScrapeFresh after a success; kScrapeFailing after a failure, values kept from the last
 * success; kScrapeStale once no scrape succeeded for max(3 x intervalMs, 3000 ms) (checked after
 * every scrape and swept at the end of every round). If /metrics answers but /v1/models fails, the
 * scrape counts as a success, the previous model bits are kept and an error of stage "models" is
 * counted.
 *
 * Slot ownership: a target removed by setTargets() is never written again (its slot may already
 * belong to another pod): every write checks that the target object is still the current one for
 * its key, and a change of slot, address, port or engine makes a new target. The caller must call
 * setTargets() in the same synchronous turn as the slot assignment (SlotAllocator.assign), so that
 * no scrape completes in between.
 *
 * Metrics (ours; Kthena has none), registered on `opts.registry` when given:
 *   kthena_router_scrape_rounds_total                   counter, completed rounds
 *   kthena_router_scrape_errors_total{stage}            counter, stage = "metrics" | "models"
 *   kthena_router_scrape_round_duration_seconds         histogram, wall time of a round
 *   kthena_router_scrape_pods{state}                    gauge, pods per state (never|fresh|failing|stale)
 * stop() unregisters them again, so a replacement Scraper can use the same registry.
 *
 * Cost (native-bench scrape: native-bench/src/scrape/parse-bench.ts, on a 2-core VM whose speed varies 2x with host load):
 * parsing a realistic 52 KB vLLM 0.10 page takes 40-100 µs on the control thread, so 1,000 pods cost
 * 40-100 ms per round (4-10 % of a 1 s interval) and no parse blocks for more than ~0.3 ms (p99.9,
 * CPU time). That is about a third of the scraper's total CPU; the HTTP side is the rest. No piscina
 * pool: shipping 52 MB of page text per round to another thread would save at most that third.
 * If the control thread ever needs the whole cost gone, move the Scraper as a unit into one worker
 * thread (it only needs the endpoint SAB, the targets and the model-id map).
 */
import { isIPv6 } from 'node:net';
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';

import {
  kEndpointStride,
  kEpKvUsagePpm,
  kEpLastScrapeSec,
  kEpLoraActiveBits,
  kEpModelBits,
  kEpPrefixHitPpm,
  kEpRunning,
  kEpScrapeFailures,
  kEpScrapeState,
  kEpSeq,
  kEpTpotUs,
  kEpTtftUs,
  kEpWaiting,
  kMaxModelIds,
  kModelBitWords,
  kScrapeFailing,
  kScrapeFresh,
  kScrapeNever,
  kScrapeStale,
} from '../shared/layout.js';
import { histogramMean, keepKnown, keepNonZero, prefixHitRate } from './delta.js';
import type { PrefixTotals } from './delta.js';
import { parseEngineMetrics } from './engines.js';
import type { EngineKind, EngineReading, HistogramTotals } from './engines.js';

export interface ScrapeTarget {
  /** `namespace/name` of the pod. */
  key: string;
  /** Endpoint slot (src/shared/layout.ts) the pod owns. */
  slot: number;
  ip: string;
  port: number;
  engine: EngineKind;
  /** ModelServer spec.model values ('' excluded): preferred `model_name` series. */
  models: string[];
}

export interface ScraperOptions {
  /** Int32Array over the endpoint SharedArrayBuffer. */
  ep: Int32Array;
  /** METRICS_SCRAPE_INTERVAL in ms (>= 50). */
  intervalMs: number;
  /** Deadline for both requests of one pod. Default min(5000, max(1000, intervalMs)). */
  timeoutMs?: number;
  /** Pods scraped at once. Default 100 (Kthena). */
  concurrency?: number;
  /** Model/adapter name -> bit id (Publisher.modelIds.ids). */
  modelIds: () => ReadonlyMap<string, number>;
  log: Logger;
  registry?: Registry;
  /** Wall clock in ms (tests). Default Date.now. */
  now?: () => number;
  /** Cap on each response body. Default 8 MiB. */
  maxBodyBytes?: number;
  /** Called after every completed round (the control thread refreshes what depends on served models). */
  onRound?: () => void;
}

export type ScrapeStateName = 'never' | 'fresh' | 'failing' | 'stale';

/** Engine metrics of one pod as the scraper last saw them (Kthena's PodInfo fields). */
export interface PodMetricsView {
  gpuCacheUsage: number;
  requestWaitingNum: number;
  requestRunningNum: number;
  tpot: number;
  ttft: number;
  /** Model ids from the pod's /v1/models (LoRA adapters included). */
  models?: readonly string[];
  /** Scraper bookkeeping (ours; Kthena has none): shown under `scrape` in the pod dump. */
  scrapeState?: 'never' | 'fresh' | 'failing' | 'stale';
  lastScrapeTime?: string | null;
  consecutiveFailures?: number;
  lastError?: string | null;
  prefixCacheHitRate?: number | null;
  loraRunning?: readonly string[];
  loraWaiting?: readonly string[];
}

/** What /debug/config_dump/pods shows for a pod: Kthena's fields plus our scrape status. */
export interface PodScrapeView extends PodMetricsView {
  models: readonly string[];
  scrapeState: ScrapeStateName;
  /** RFC 3339 time of the last successful scrape, null before the first. */
  lastScrapeTime: string | null;
  consecutiveFailures: number;
  /** The last error ("metrics: ..." or "models: ..."), null once a scrape fully succeeds. */
  lastError: string | null;
  /** Engine prefix-cache hit rate 0..1, null when unknown. */
  prefixCacheHitRate: number | null;
  loraRunning: readonly string[];
  loraWaiting: readonly string[];
}

export type ScrapeErrorCode =
  | 'SCRAPE_HTTP_STATUS'
  | 'SCRAPE_TIMEOUT'
  | 'SCRAPE_BODY_TOO_LARGE'
  | 'SCRAPE_TRANSPORT'
  | 'SCRAPE_BAD_MODELS'
  | 'SCRAPE_PARSE'
  | 'SCRAPE_CANCELLED';

export class ScrapeError extends Error {
  readonly code: ScrapeErrorCode;
  constructor(code: ScrapeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScrapeError';
    this.code = code;
  }
}

export const SCRAPE_DEFAULTS = Object.freeze({
  concurrency: 100,
  maxBodyBytes: 8 * 1024 * 1024,
  minIntervalMs: 50,
  minStaleMs: 3000,
});

export function defaultScrapeTimeoutMs(intervalMs: number): number {
  return Math.min(5000, Math.max(1000, intervalMs));
}

export function staleAfterMs(intervalMs: number): number {
  return Math.max(3 * intervalMs, SCRAPE_DEFAULTS.minStaleMs);
}

const STATE_NAMES: readonly ScrapeStateName[] = ['never', 'fresh', 'failing', 'stale'];
const SCRAPE_METRIC_NAMES = [
  'kthena_router_scrape_rounds_total',
  'kthena_router_scrape_errors_total',
  'kthena_router_scrape_round_duration_seconds',
  'kthena_router_scrape_pods',
];
const INT32_MAX = 0x7fffffff;
const ACCEPT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';

function toInt(v: number): number {
  if (!Number.isFinite(v) || v <= 0) return 0;
  return v >= INT32_MAX ? INT32_MAX : Math.round(v);
}

function describe(err: unknown): string {
  if (err instanceof ScrapeError) return err.message;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Per-pod scrape state; replaced (never mutated into another pod) when the endpoint changes. */
class PodState {
  target: ScrapeTarget;
  readonly origin: string;
  state = kScrapeNever;
  lastSuccessMs = 0;
  failures = 0;
  lastError: string | null = null;
  busy: Promise<void> | null = null;
  /** Cancels the scrape in flight (both requests), if any. */
  cancel: ((reason: ScrapeError) => void) | null = null;
  waiting = 0;
  running = 0;
  kvUsage = 0;
  ttft = 0;
  tpot = 0;
  hitRate = -1;
  ttftPrev: HistogramTotals | null = null;
  tpotPrev: HistogramTotals | null = null;
  prefixPrev: PrefixTotals | null = null;
  models: string[] = [];
  loraRunning: string[] = [];
  loraWaiting: string[] = [];

  constructor(target: ScrapeTarget) {
    this.target = target;
    this.origin = `http://${isIPv6(target.ip) ? `[${target.ip}]` : target.ip}:${target.port}`;
  }
}

/** Counting semaphore (FIFO); release hands the permit straight to the next waiter. */
class Limiter {
  readonly #limit: number;
  #active = 0;
  #waiters: (() => void)[] = [];
  #head = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** null when a permit was free; otherwise a promise that resolves with the permit. */
  acquire(): Promise<void> | null {
    if (this.#active < this.#limit) {
      this.#active++;
      return null;
    }
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    if (this.#head < this.#waiters.length) {
      const next = this.#waiters[this.#head++];
      if (this.#head === this.#waiters.length) {
        this.#waiters = [];
        this.#head = 0;
      }
      next();
    } else {
      this.#active--;
    }
  }
}

function sameEndpoint(a: ScrapeTarget, b: ScrapeTarget): boolean {
  return a.slot === b.slot && a.ip === b.ip && a.port === b.port && a.engine === b.engine;
}

export class Scraper {
  readonly #ep: Int32Array;
  readonly #slots: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #staleMs: number;
  readonly #maxBody: number;
  readonly #modelIds: () => ReadonlyMap<string, number>;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #limiter: Limiter;
  readonly #agent: Agent;
  readonly #states = new Map<string, PodState>();
  readonly #modelScratch = new Int32Array(kModelBitWords);
  readonly #loraScratch = new Int32Array(kModelBitWords);

  readonly #registry: Registry | undefined;
  readonly #onRound: (() => void) | undefined;
  readonly #rounds: Counter<string>;
  readonly #errors: Counter<'stage'>;
  readonly #roundSeconds: Histogram<string>;

  #started = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #wake: (() => void) | null = null;
  #stopping: Promise<void> | null = null;

  /** Keys of the first setTargets() call not yet scraped once; null before that call and after. */
  #pendingFirst: Set<string> | null = null;
  #firstCalled = false;
  #resolveFirst!: () => void;
  readonly firstRound: Promise<void>;

  constructor(opts: ScraperOptions) {
    if (!(opts.ep instanceof Int32Array)) throw new TypeError('Scraper: ep must be an Int32Array over the endpoint SharedArrayBuffer');
    if (typeof opts.intervalMs !== 'number' || !Number.isFinite(opts.intervalMs) || opts.intervalMs < SCRAPE_DEFAULTS.minIntervalMs) {
      throw new TypeError(`Scraper: intervalMs must be a number >= ${SCRAPE_DEFAULTS.minIntervalMs}, got ${String(opts.intervalMs)}`);
    }
    const timeoutMs = opts.timeoutMs ?? defaultScrapeTimeoutMs(opts.intervalMs);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError(`Scraper: timeoutMs must be a number > 0, got ${String(opts.timeoutMs)}`);
    const concurrency = opts.concurrency ?? SCRAPE_DEFAULTS.concurrency;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`Scraper: concurrency must be an integer >= 1, got ${String(opts.concurrency)}`);
    const maxBody = opts.maxBodyBytes ?? SCRAPE_DEFAULTS.maxBodyBytes;
    if (!Number.isInteger(maxBody) || maxBody < 1) throw new TypeError(`Scraper: maxBodyBytes must be an integer >= 1, got ${String(opts.maxBodyBytes)}`);
    if (typeof opts.modelIds !== 'function') throw new TypeError('Scraper: modelIds must be a function returning the name -> id map');

    this.#ep = opts.ep;
    this.#slots = Math.floor(opts.ep.length / kEndpointStride);
    this.#intervalMs = opts.intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#staleMs = staleAfterMs(opts.intervalMs);
    this.#maxBody = maxBody;
    this.#modelIds = opts.modelIds;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#limiter = new Limiter(concurrency);
    this.#agent = new Agent({
      connections: 2,
      pipelining: 1,
      connect: { timeout: timeoutMs },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });

    this.#registry = opts.registry;
    const registers = opts.registry ? [opts.registry] : [];
    this.#onRound = opts.onRound;
    this.#rounds = new Counter({
      name: 'kthena_router_scrape_rounds_total',
      help: 'Engine metrics scrape rounds completed.',
      registers,
    });
    this.#errors = new Counter({
      name: 'kthena_router_scrape_errors_total',
      help: 'Failed engine scrapes, by stage: "metrics" (GET /metrics or its parsing) or "models" (GET /v1/models).',
      labelNames: ['stage'],
      registers,
    });
    this.#roundSeconds = new Histogram({
      name: 'kthena_router_scrape_round_duration_seconds',
      help: 'Wall time of one engine metrics scrape round over every pod.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    const states = this.#states;
    new Gauge({
      name: 'kthena_router_scrape_pods',
      help: 'Pods known to the engine metrics scraper, by scrape state (never, fresh, failing, stale).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = [0, 0, 0, 0];
        for (const st of states.values()) counts[st.state]++;
        for (let i = 0; i < STATE_NAMES.length; i++) this.set({ state: STATE_NAMES[i] }, counts[i]);
      },
    });
    for (const stage of ['metrics', 'models']) this.#errors.inc({ stage }, 0);

    this.firstRound = new Promise<void>((resolve) => {
      this.#resolveFirst = resolve;
    });
  }

  /**
   * Replaces the target set. New keys (and keys whose slot, address, port or engine changed) are
   * scraped at once when the scraper runs; removed keys are never written again.
   */
  setTargets(targets: readonly ScrapeTarget[]): void {
    const next = new Map<string, ScrapeTarget>();
    targets.forEach((t, i) => {
      this.#validate(t, i);
      if (next.has(t.key)) throw new TypeError(`Scraper.setTargets: targets[${i}]: duplicate key "${t.key}"`);
      next.set(t.key, { key: t.key, slot: t.slot, ip: t.ip, port: t.port, engine: t.engine, models: t.models.filter((m) => m !== '') });
    });
    if (this.#stopped) return; // a stopped scraper writes nothing, ever

    for (const [key, st] of this.#states) {
      if (next.has(key)) continue;
      this.#states.delete(key);
      st.cancel?.(new ScrapeError('SCRAPE_CANCELLED', 'target removed'));
      this.#firstDone(key);
    }
    const added: PodState[] = [];
    for (const t of next.values()) {
      const cur = this.#states.get(t.key);
      if (cur !== undefined && sameEndpoint(cur.target, t)) {
        cur.target = t;
        continue;
      }
      cur?.cancel?.(new ScrapeError('SCRAPE_CANCELLED', 'target changed'));
      const st = new PodState(t);
      this.#states.set(t.key, st);
      this.#write(st);
      added.push(st);
    }

    if (!this.#firstCalled) {
      this.#firstCalled = true;
      this.#pendingFirst = new Set(next.keys());
      this.#checkFirst();
    }
    if (this.#started && !this.#stopped) for (const st of added) void this.#scrape(st);
  }

  start(): void {
    if (this.#stopped) throw new Error('Scraper: start() after stop()');
    if (this.#started) return;
    this.#started = true;
    this.#loop = this.#run();
  }

  /** Stops the rounds, aborts in-flight requests, closes every connection; no timer is left. */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wake?.();
    const busy: Promise<void>[] = [];
    for (const st of this.#states.values()) {
      st.cancel?.(new ScrapeError('SCRAPE_CANCELLED', 'scraper stopped'));
      if (st.busy) busy.push(st.busy);
    }
    this.#stopping = (async () => {
      await Promise.all([this.#loop, ...busy]);
      await this.#agent.destroy();
      // Unregister, so that a replacement Scraper can register the same families.
      for (const name of SCRAPE_METRIC_NAMES) this.#registry?.removeSingleMetric(name);
      this.#pendingFirst = null;
      this.#resolveFirst();
    })();
    return this.#stopping;
  }

  /**
   * Rewrites every target's model and LoRA bit sets from the names last scraped, through the
   * current modelIds(). Call it after the model-id map changed (a publish that assigned new ids),
   * so that a new route's model bit shows up at once instead of at the pod's next scrape.
   */
  refreshModelBits(): void {
    if (this.#stopped) return;
    for (const st of this.#states.values()) this.#write(st);
  }

  view(key: string): PodScrapeView | undefined {
    const st = this.#states.get(key);
    if (st === undefined) return undefined;
    return {
      gpuCacheUsage: Math.min(1, Math.max(0, st.kvUsage)),
      requestWaitingNum: st.waiting,
      requestRunningNum: st.running,
      tpot: st.tpot,
      ttft: st.ttft,
      models: [...st.models],
      scrapeState: STATE_NAMES[st.state],
      lastScrapeTime: st.lastSuccessMs > 0 ? new Date(st.lastSuccessMs).toISOString() : null,
      consecutiveFailures: st.failures,
      lastError: st.lastError,
      prefixCacheHitRate: st.hitRate >= 0 ? st.hitRate : null,
      loraRunning: [...st.loraRunning],
      loraWaiting: [...st.loraWaiting],
    };
  }

  #validate(t: ScrapeTarget, i: number): void {
    const at = `Scraper.setTargets: targets[${i}]`;
    if (t === null || typeof t !== 'object') throw new TypeError(`${at} must be an object`);
    if (typeof t.key !== 'string' || t.key === '') throw new TypeError(`${at}.key must be a non-empty string`);
    if (!Number.isInteger(t.slot) || t.slot < 0 || t.slot >= this.#slots) {
      throw new TypeError(`${at} (${t.key}).slot must be an integer 0..${this.#slots - 1}, got ${String(t.slot)}`);
    }
    if (typeof t.ip !== 'string' || t.ip === '') throw new TypeError(`${at} (${t.key}).ip must be a non-empty string`);
    if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new TypeError(`${at} (${t.key}).port must be an integer 1..65535`);
    if (t.engine !== 'vLLM' && t.engine !== 'SGLang') throw new TypeError(`${at} (${t.key}).engine must be "vLLM" or "SGLang"`);
    if (!Array.isArray(t.models) || !t.models.every((m) => typeof m === 'string')) throw new TypeError(`${at} (${t.key}).models must be a list of strings`);
  }

  #firstDone(key: string): void {
    if (this.#pendingFirst === null) return;
    this.#pendingFirst.delete(key);
    this.#checkFirst();
  }

  #checkFirst(): void {
    if (this.#pendingFirst !== null && this.#pendingFirst.size === 0) {
      this.#pendingFirst = null;
      this.#resolveFirst();
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const t0 = performance.now();
      try {
        await this.#round();
      } catch (err) {
        this.#log.error({ err }, 'engine metrics scrape round failed');
      }
      if (this.#stopped) break;
      const wait = Math.max(0, this.#intervalMs - (performance.now() - t0));
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, wait);
      });
      this.#timer = null;
      this.#wake = null;
    }
  }

  async #round(): Promise<void> {
    const t0 = performance.now();
    const list = [...this.#states.values()];
    await Promise.all(list.map((st) => this.#scrape(st)));
    if (this.#stopped) return;
    this.#sweep();
    this.#rounds.inc();
    this.#roundSeconds.observe((performance.now() - t0) / 1000);
    this.#onRound?.();
  }

  /** Marks stale every pod whose last success is older than the bound. */
  #sweep(): void {
    const now = this.#now();
    for (const st of this.#states.values()) {
      if (st.state === kScrapeStale || st.lastSuccessMs === 0 || now - st.lastSuccessMs <= this.#staleMs) continue;
      st.state = kScrapeStale;
      this.#log.warn({ pod: st.target.key, lastScrapeTime: new Date(st.lastSuccessMs).toISOString() }, 'engine metrics are stale');
      this.#write(st);
    }
  }

  /** Scrapes one pod, or joins the scrape of it already in flight. Never rejects. */
  #scrape(st: PodState): Promise<void> {
    if (st.busy !== null) return st.busy;
    const p = this.#scrapeLimited(st).finally(() => {
      st.busy = null;
    });
    st.busy = p;
    return p;
  }

  async #scrapeLimited(st: PodState): Promise<void> {
    const wait = this.#limiter.acquire();
    if (wait !== null) await wait;
    try {
      if (this.#current(st)) await this.#scrapeNow(st);
    } catch (err) {
      this.#log.error({ err, pod: st.target.key }, 'engine metrics scrape crashed');
    } finally {
      this.#limiter.release();
    }
  }

  #current(st: PodState): boolean {
    return !this.#stopped && this.#states.get(st.target.key) === st;
  }

  async #scrapeNow(st: PodState): Promise<void> {
    const metricsGet = this.#get(st.origin, '/metrics', ACCEPT);
    const modelsGet = this.#get(st.origin, '/v1/models', 'application/json');
    const cancel = (reason: ScrapeError): void => {
      metricsGet.abort(reason);
      modelsGet.abort(reason);
    };
    st.cancel = cancel;
    const timer = setTimeout(() => cancel(new ScrapeError('SCRAPE_TIMEOUT', `timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
    let metrics: PromiseSettledResult<EngineReading>;
    let models: PromiseSettledResult<string[]>;
    try {
      [metrics, models] = await Promise.allSettled([
        metricsGet.body.then((text) => parseEngineMetrics(text, st.target.engine, st.target.models)),
        modelsGet.body.then(parseModelIds),
      ]);
    } finally {
      clearTimeout(timer);
      if (st.cancel === cancel) st.cancel = null;
    }
    // Removed, replaced or stopped while in flight: the slot may belong to another pod now.
    if (!this.#current(st)) return;
    const now = this.#now();
    const key = st.target.key;

    let modelsError: string | null = null;
    if (models.status === 'fulfilled') {
      st.models = models.value;
    } else {
      modelsError = `models: ${describe(models.reason)}`;
      this.#errors.inc({ stage: 'models' });
    }

    const was = st.state;
    if (metrics.status === 'fulfilled') {
      this.#apply(st, metrics.value);
      st.state = kScrapeFresh;
      st.lastSuccessMs = now;
      if (st.failures > 0 && was !== kScrapeNever) this.#log.info({ pod: key, failures: st.failures }, 'engine metrics scrape recovered');
      st.failures = 0;
      st.lastError = modelsError;
      if (modelsError !== null) this.#log.debug({ pod: key, err: modelsError }, 'engine model list scrape failed');
    } else {
      const msg = `metrics: ${describe(metrics.reason)}`;
      this.#errors.inc({ stage: 'metrics' });
      st.failures++;
      st.lastError = msg;
      if (st.lastSuccessMs === 0) st.state = kScrapeNever;
      else st.state = now - st.lastSuccessMs > this.#staleMs ? kScrapeStale : kScrapeFailing;
      if (st.failures === 1) this.#log.warn({ pod: key, err: msg }, 'engine metrics scrape failed');
      else this.#log.debug({ pod: key, err: msg, failures: st.failures }, 'engine metrics scrape failed');
    }
    this.#write(st);
    this.#firstDone(key);
  }

  #apply(st: PodState, r: EngineReading): void {
    st.waiting = toInt(r.waiting ?? 0);
    st.running = toInt(r.running ?? 0);
    st.kvUsage = r.kvUsage !== null && Number.isFinite(r.kvUsage) ? Math.min(1, Math.max(0, r.kvUsage)) : 0;
    if (r.ttft !== null) {
      st.ttft = keepNonZero(st.ttft, histogramMean(st.ttftPrev, r.ttft));
      st.ttftPrev = r.ttft;
    }
    if (r.tpot !== null) {
      st.tpot = keepNonZero(st.tpot, histogramMean(st.tpotPrev, r.tpot));
      st.tpotPrev = r.tpot;
    }
    if (r.prefixHits !== null && r.prefixQueries !== null) {
      const totals = { hits: r.prefixHits, queries: r.prefixQueries };
      st.hitRate = keepKnown(st.hitRate, prefixHitRate(st.prefixPrev, totals));
      st.prefixPrev = totals;
    } else if (r.prefixHitRate !== null && Number.isFinite(r.prefixHitRate)) {
      st.hitRate = Math.min(1, Math.max(0, r.prefixHitRate));
    }
    st.loraRunning = r.loraRunning ?? [];
    st.loraWaiting = r.loraWaiting ?? [];
  }

  /** One seqlock write of every scraper-owned field of the pod's slot. */
  #write(st: PodState): void {
    const ids = this.#modelIds();
    const models = this.#modelScratch;
    const lora = this.#loraScratch;
    models.fill(0);
    lora.fill(0);
    setBits(models, ids, st.models);
    setBits(lora, ids, st.loraRunning);
    setBits(lora, ids, st.loraWaiting);
    const ep = this.#ep;
    const b = st.target.slot * kEndpointStride;
    Atomics.add(ep, b + kEpSeq, 1);
    Atomics.store(ep, b + kEpScrapeState, st.state);
    Atomics.store(ep, b + kEpWaiting, st.waiting);
    Atomics.store(ep, b + kEpRunning, st.running);
    Atomics.store(ep, b + kEpKvUsagePpm, Math.round(st.kvUsage * 1_000_000));
    Atomics.store(ep, b + kEpTtftUs, toInt(st.ttft * 1e6));
    Atomics.store(ep, b + kEpTpotUs, toInt(st.tpot * 1e6));
    Atomics.store(ep, b + kEpPrefixHitPpm, st.hitRate >= 0 ? Math.round(st.hitRate * 1_000_000) : -1);
    Atomics.store(ep, b + kEpLastScrapeSec, st.lastSuccessMs > 0 ? Math.floor(st.lastSuccessMs / 1000) : 0);
    Atomics.store(ep, b + kEpScrapeFailures, Math.min(st.failures, INT32_MAX));
    for (let w = 0; w < kModelBitWords; w++) {
      Atomics.store(ep, b + kEpModelBits + w, models[w]);
      Atomics.store(ep, b + kEpLoraActiveBits + w, lora[w]);
    }
    Atomics.add(ep, b + kEpSeq, 1);
  }

  /** One GET through the shared Agent with a raw dispatch handler (no stream, no async iterator). */
  #get(origin: string, path: string, accept: string): BodyRequest {
    const req = new BodyRequest(path, this.#maxBody);
    try {
      this.#agent.dispatch({ origin, path, method: 'GET', headers: { accept } }, req);
    } catch (err) {
      req.onResponseError(null, err as Error);
    }
    return req;
  }
}

/**
 * An undici dispatch handler that collects a 2xx body (at most `max` bytes) into `body`, a promise
 * that rejects with a ScrapeError on any other outcome. abort() settles it at once and aborts the
 * request as soon as undici hands over its controller (a request still queued for a connection has
 * none yet).
 */
class BodyRequest implements Dispatcher.DispatchHandler {
  readonly body: Promise<string>;
  readonly #path: string;
  readonly #max: number;
  #resolve!: (text: string) => void;
  #reject!: (err: ScrapeError) => void;
  #controller: Dispatcher.DispatchController | null = null;
  #pendingAbort: ScrapeError | null = null;
  #settled = false;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(path: string, max: number) {
    this.#path = path;
    this.#max = max;
    this.body = new Promise<string>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  abort(reason: ScrapeError): void {
    if (this.#settled) return;
    this.#fail(reason);
    if (this.#controller !== null) this.#controller.abort(reason);
    else this.#pendingAbort = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort !== null) controller.abort(this.#pendingAbort);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.#settled || statusCode < 200) return; // 1xx: the real answer follows
    if (statusCode > 299) {
      this.#stop(controller, new ScrapeError('SCRAPE_HTTP_STATUS', `GET ${this.#path}: HTTP ${statusCode}`));
      return;
    }
    const declared = Number(headers['content-length']);
    if (declared > this.#max) {
      this.#stop(controller, new ScrapeError('SCRAPE_BODY_TOO_LARGE', `GET ${this.#path}: body of ${declared} bytes exceeds ${this.#max}`));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    this.#size += chunk.length;
    if (this.#size > this.#max) {
      this.#stop(controller, new ScrapeError('SCRAPE_BODY_TOO_LARGE', `GET ${this.#path}: body exceeds ${this.#max} bytes`));
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    this.#settled = true;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#resolve((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.#size)).toString('utf8'));
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    if (this.#settled) return;
    this.#fail(err instanceof ScrapeError ? err : new ScrapeError('SCRAPE_TRANSPORT', `GET ${this.#path}: ${describe(err)}`, { cause: err }));
  }

  #stop(controller: Dispatcher.DispatchController, err: ScrapeError): void {
    this.#fail(err);
    controller.abort(err);
  }

  #fail(err: ScrapeError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#chunks = [];
    this.#reject(err);
  }
}

/** Ids of an OpenAI `/v1/models` answer (`{"data":[{"id":...}]}`), LoRA adapters included. */
export function parseModelIds(text: string): string[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new ScrapeError('SCRAPE_BAD_MODELS', `GET /v1/models: not JSON (${(err as Error).message})`);
  }
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new ScrapeError('SCRAPE_BAD_MODELS', 'GET /v1/models: no "data" list');
  const ids: string[] = [];
  for (const m of data) {
    const id = (m as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && id !== '' && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

function setBits(words: Int32Array, ids: ReadonlyMap<string, number>, names: readonly string[]): void {
  for (const name of names) {
    const id = ids.get(name);
    if (id === undefined || id < 0 || id >= kMaxModelIds) continue;
    words[id >>> 5] |= 1 << (id & 31);
  }
}
