/**
 * A simulator of vLLM / SGLang engine pods, each a node:http server on its own loopback address,
 * for tests, the demo and benchmarks that need a model server that behaves like one: streaming
 * headers sent before the first token, one SSE event per token, real metric names, vLLM error
 * bodies, and failure switches (status, reset, hang, death mid-stream) that can be flipped while
 * traffic flows.
 *
 * Each completion is a Job that goes hanging -> waiting -> running -> done. Two engines behind it
 * (native-bench/src/sim/types.ts, "Two modes per pod"):
 * - fixed delays: admission is a plain FIFO bounded by `maxRunning`, one timer per job;
 * - model: the job's sequence lives in an EngineModel (native-bench/src/sim/model.ts) paced by a ModelDriver
 *   (native-bench/src/sim/driver.ts); tokens arrive in step outcomes.
 * PD legs (native-bench/src/sim/pd.ts), LoRA load/unload, reported timing and the request outcome recorded on
 * `requests` work in both.
 */

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';

import { KV_DEFAULT_BLOCK_SIZE, kvBlockHashes, kvBlockKey } from '../../../src/shared/kv-blocks.js';
import { ModelDriver, SimClock } from './driver.js';
import { KvEventPublisher, validateKvEventsSpec } from './kv-events.js';
import { EngineMetrics, validateMetricsOverride, validateSimMetricsSpec } from './metrics.js';
import type { FinishedReason } from './metrics.js';
import { EngineModel, ModelReject, resolveModelConfig, validateSimModelSpec } from './model.js';
import type { RemoteKvSpec, Seq, StepOutcome } from './model.js';
import {
  DONE_EVENT,
  SimBadRequest,
  chunkEvent,
  errorBody,
  errorEvent,
  finalBody,
  modelsBody,
  newCompletionId,
  parseCompletion,
  tokenText,
  usageEvent,
} from './openai.js';
import type { CompletionKind, Extra, ParsedCompletion } from './openai.js';
import {
  PdBadRequest,
  SIM_EPOCH,
  bootstrapTable,
  classifyPd,
  nixlTransferParams,
  prefillReceivedAt,
} from './pd.js';
import type { PdLeg } from './pd.js';
import { completionPromptTokens, tokenizeRequest } from './tokenize.js';
import type {
  RecordedRequest,
  SimControl,
  SimEngine,
  SimFleet,
  SimFleetOptions,
  SimMetricsOverride,
  SimPod,
  SimPodSpec,
  SimPodState,
  SimRequestOutcome,
  SimRole,
} from './types.js';

export type {
  RecordedRequest,
  SimControl,
  SimEngine,
  SimFleet,
  SimFleetOptions,
  SimModelSpec,
  SimPod,
  SimPodSpec,
  SimPodState,
  SimRequestOutcome,
  SimRole,
} from './types.js';

export const SIM_DEFAULTS = Object.freeze({
  engine: 'vLLM' as SimEngine,
  ttftMs: 20,
  itlMs: 5,
  outputTokens: 16,
  kvCacheTokens: 16384,
  requestLogSize: 1000,
  role: 'both' as SimRole,
  bootstrapTimeoutMs: 30_000,
  timeScale: 1,
});

/** Larger than any prompt a test sends, small enough that a runaway client cannot exhaust memory. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

const CONTROL_KEYS: ReadonlySet<string> = new Set([
  'failStatus',
  'ttftMs',
  'itlMs',
  'outputTokens',
  'dieMidStreamAfter',
  'resetBeforeHeaders',
  'hangMs',
  'metricsOverride',
]);

function isNonNegativeNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

function isStatus(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599;
}

/** Checks a pod spec with messages that name the offending field; returns it unchanged. */
export function validateSimPodSpec(spec: unknown, where = 'pod spec'): SimPodSpec {
  if (spec === null || typeof spec !== 'object') throw new TypeError(`${where} must be an object`);
  const s = spec as Record<string, unknown>;
  if (typeof s.name !== 'string' || s.name === '') throw new TypeError(`${where}.name must be a non-empty string`);
  const at = `${where} (${s.name})`;
  if (typeof s.ip !== 'string' || !isIPv4(s.ip)) throw new TypeError(`${at}.ip must be an IPv4 address`);
  if (typeof s.port !== 'number' || !Number.isInteger(s.port) || s.port < 0 || s.port > 65535) {
    throw new TypeError(`${at}.port must be an integer 0..65535`);
  }
  if (!Array.isArray(s.models) || s.models.length === 0 || !s.models.every((m) => typeof m === 'string' && m !== '')) {
    throw new TypeError(`${at}.models must be a non-empty list of model names (base model first)`);
  }
  if (new Set(s.models).size !== s.models.length) throw new TypeError(`${at}.models has duplicates`);
  if (s.engine !== undefined && s.engine !== 'vLLM' && s.engine !== 'SGLang') {
    throw new TypeError(`${at}.engine must be "vLLM" or "SGLang"`);
  }
  for (const k of ['ttftMs', 'itlMs', 'bootstrapTimeoutMs'] as const) {
    if (s[k] !== undefined && !isNonNegativeNumber(s[k])) throw new TypeError(`${at}.${k} must be a number >= 0`);
  }
  for (const k of ['outputTokens', 'maxRunning', 'kvCacheTokens'] as const) {
    if (s[k] !== undefined && !isPositiveInt(s[k])) throw new TypeError(`${at}.${k} must be an integer >= 1`);
  }
  if (s.failStatus !== undefined && !isStatus(s.failStatus)) throw new TypeError(`${at}.failStatus must be an HTTP status`);
  if (s.role !== undefined && s.role !== 'prefill' && s.role !== 'decode' && s.role !== 'both') {
    throw new TypeError(`${at}.role must be "prefill", "decode" or "both"`);
  }
  if (s.timeScale !== undefined && !(typeof s.timeScale === 'number' && Number.isFinite(s.timeScale) && s.timeScale >= 1)) {
    throw new TypeError(`${at}.timeScale must be a number >= 1`);
  }
  if (s.reportTiming !== undefined && typeof s.reportTiming !== 'boolean') throw new TypeError(`${at}.reportTiming must be a boolean`);
  validateKvEventsSpec(s.kvEvents, at);
  validateSimMetricsSpec(s, at);
  validateSimModelSpec(s.model, at);
  if (s.model !== undefined) {
    const m = s.model as Record<string, unknown>;
    const bs = (m.blockSize as number | undefined) ?? 16;
    const kvBs = (s.kvEvents as { blockSize?: number } | undefined)?.blockSize;
    if (kvBs !== undefined && kvBs !== bs) {
      throw new TypeError(`${at}.kvEvents.blockSize (${kvBs}) must equal model.blockSize (${bs}): the pod publishes its cache's blocks`);
    }
    const kvTokens = (s.kvCacheTokens as number | undefined) ?? 400_000;
    if (Math.floor(kvTokens / bs) < 1) throw new TypeError(`${at}.kvCacheTokens must hold at least one block of ${bs} tokens`);
  }
  return spec as SimPodSpec;
}

/** Checks a control patch; throws TypeError naming the first bad field. */
export function validateSimControl(patch: unknown): Partial<SimControl> {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new TypeError('control must be a JSON object');
  }
  const p = patch as Record<string, unknown>;
  for (const key of Object.keys(p)) {
    if (!CONTROL_KEYS.has(key)) throw new TypeError(`unknown control field "${key}"`);
  }
  if (p.failStatus !== undefined && p.failStatus !== null && p.failStatus !== 0 && !isStatus(p.failStatus)) {
    throw new TypeError('failStatus must be an HTTP status, or null/0 to answer normally');
  }
  for (const k of ['ttftMs', 'itlMs', 'hangMs'] as const) {
    if (p[k] !== undefined && !isNonNegativeNumber(p[k])) throw new TypeError(`${k} must be a number >= 0`);
  }
  if (p.outputTokens !== undefined && !isPositiveInt(p.outputTokens)) {
    throw new TypeError('outputTokens must be an integer >= 1');
  }
  if (
    p.dieMidStreamAfter !== undefined &&
    p.dieMidStreamAfter !== null &&
    !(typeof p.dieMidStreamAfter === 'number' && Number.isInteger(p.dieMidStreamAfter) && p.dieMidStreamAfter >= 0)
  ) {
    throw new TypeError('dieMidStreamAfter must be an integer >= 0, or null');
  }
  if (p.resetBeforeHeaders !== undefined && typeof p.resetBeforeHeaders !== 'boolean') {
    throw new TypeError('resetBeforeHeaders must be a boolean');
  }
  if (p.metricsOverride !== undefined) validateMetricsOverride(p.metricsOverride);
  return p as Partial<SimControl>;
}

class RequestRing {
  readonly #buf: (RecordedRequest | undefined)[];
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#buf = new Array<RecordedRequest | undefined>(capacity);
  }

  push(r: RecordedRequest): void {
    this.#buf[this.#next] = r;
    this.#next = (this.#next + 1) % this.#buf.length;
    if (this.#size < this.#buf.length) this.#size++;
  }

  toArray(): RecordedRequest[] {
    const out: RecordedRequest[] = [];
    const cap = this.#buf.length;
    const start = (this.#next - this.#size + cap) % cap;
    for (let i = 0; i < this.#size; i++) out.push(this.#buf[(start + i) % cap] as RecordedRequest);
    return out;
  }

  clear(): void {
    this.#buf.fill(undefined);
    this.#next = 0;
    this.#size = 0;
  }
}

type JobState = 'hanging' | 'waiting' | 'running' | 'done';

/** One completion request in flight. */
class Job {
  state: JobState = 'hanging';
  readonly res: ServerResponse;
  readonly arrivedAt = performance.now();
  req: ParsedCompletion | null = null;
  timer: NodeJS.Timeout | null = null;
  /** Resolves a pending `sleep` early when the job is cancelled. */
  wake: (() => void) | null = null;
  id = '';
  created = 0;
  target = 0;
  generated = 0;
  itlMs = 0;
  lastTokenAt = 0;
  events = 0;
  dieAfter: number | null = null;
  text = '';
  /** Prompt token ids, kept only when the pod publishes KV events. */
  kvTokens: number[] | null = null;
  /** Wall ms since SIM_EPOCH at receipt. */
  readonly receivedAtMs = this.arrivedAt - SIM_EPOCH;
  /** Virtual ms at receipt, and the origin of reported times (earlier on a PD decode leg). */
  receivedV = 0;
  refV = 0;
  /** Fixed mode: wall time its ttft timer started (admission), and of its first token. */
  startedAt = NaN;
  firstTokenAt = NaN;
  /** Model mode: its sequence, and the virtual time of its last token. */
  seq: Seq | null = null;
  lastTokenV = 0;
  /** Kthena block hashes of the prompt (model mode with KV events), computed on first use. */
  kthenaHashes: bigint[] | null = null;
  pd: PdLeg = { kind: 'none' };
  readonly outcome: SimRequestOutcome;
  /** SGLang decode leg: cancels the rendezvous wait; its timeout. */
  cancelWait: (() => void) | null = null;
  waitTimer: NodeJS.Timeout | null = null;
  /** Fixed mode: resumes a decode leg parked until its prefill is done. */
  resume: (() => void) | null = null;

  constructor(res: ServerResponse, outcome: SimRequestOutcome) {
    this.res = res;
    this.outcome = outcome;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.wake = null;
        resolve();
      }, ms);
    });
  }

  cancel(): void {
    this.state = 'done';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.cancelWait?.();
    this.cancelWait = null;
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }
}

function resetSocket(socket: Socket): void {
  // An RST, not a FIN: what a client sees when an engine process is killed with a request queued.
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Rounds simulated ms to microseconds, so equal schedules report equal numbers. */
function ms(v: number): number {
  return Math.round(v * 1000) / 1000;
}

class SimulatedPod implements SimPod {
  readonly name: string;
  readonly ip: string;
  readonly engine: SimEngine;
  readonly mode: 'fixed' | 'model';
  readonly role: SimRole;
  readonly timeScale: number;
  readonly #reportTiming: boolean;
  readonly #bootstrapTimeoutMs: number;
  readonly #server: http.Server;
  readonly #ring: RequestRing;
  readonly #metrics = new EngineMetrics();
  readonly #jobs = new Set<Job>();
  readonly #running = new Set<Job>();
  readonly #queue: Job[] = [];
  readonly #maxRunning: number;
  readonly #kvCacheTokens: number;
  readonly #startedAt = Math.floor(Date.now() / 1000);
  readonly #kv: KvEventPublisher | null;
  readonly #clock: SimClock;
  readonly #driver: ModelDriver | null;
  /** vLLM NIXL engine id, answered as remote_engine_id. */
  readonly #engineId = randomUUID();
  readonly #base: string;
  /** Registered adapters, in order, and the lora_path of those loaded over the API. */
  readonly #adapters: string[];
  readonly #adapterRoots = new Map<string, string>();
  #models: readonly string[];
  /** Model mode with KV events: the Redis key of each cached block. */
  readonly #blockKeys: (string | undefined)[] = [];
  #control: SimControl;
  #port: number;
  #seq = 0;
  #probes = 0;
  #closing: Promise<void> | null = null;

  constructor(spec: SimPodSpec, requestLogSize: number) {
    this.name = spec.name;
    this.ip = spec.ip;
    this.#port = spec.port;
    this.engine = spec.engine ?? SIM_DEFAULTS.engine;
    this.role = spec.role ?? SIM_DEFAULTS.role;
    this.timeScale = spec.timeScale ?? SIM_DEFAULTS.timeScale;
    this.#reportTiming = spec.reportTiming === true;
    this.#bootstrapTimeoutMs = spec.bootstrapTimeoutMs ?? SIM_DEFAULTS.bootstrapTimeoutMs;
    this.#base = spec.models[0];
    this.#adapters = spec.models.slice(1);
    this.#models = Object.freeze([...spec.models]);
    this.#maxRunning = spec.maxRunning ?? Infinity;
    this.#ring = new RequestRing(requestLogSize);
    this.#metrics.configure({ metricNames: spec.metricNames, extraSeries: spec.extraMetricSeries });
    this.#clock = new SimClock(this.timeScale);
    this.mode = spec.model !== undefined ? 'model' : 'fixed';
    if (spec.model !== undefined) {
      const cfg = resolveModelConfig(spec.model, spec.kvCacheTokens);
      this.#kvCacheTokens = cfg.kvCacheTokens;
      const model = new EngineModel(cfg);
      this.#driver = new ModelDriver(model, this.#clock, (o) => this.#deliver(o));
      this.#kv = spec.kvEvents ? new KvEventPublisher({ ...spec.kvEvents, blockSize: cfg.blockSize }, spec.name) : null;
      if (this.#kv) model.listener = this.#kvListener(this.#kv);
    } else {
      this.#kvCacheTokens = spec.kvCacheTokens ?? SIM_DEFAULTS.kvCacheTokens;
      this.#driver = null;
      this.#kv = spec.kvEvents ? new KvEventPublisher(spec.kvEvents, spec.name) : null;
    }
    this.#control = {
      failStatus: spec.failStatus ?? null,
      ttftMs: spec.ttftMs ?? SIM_DEFAULTS.ttftMs,
      itlMs: spec.itlMs ?? SIM_DEFAULTS.itlMs,
      outputTokens: spec.outputTokens ?? SIM_DEFAULTS.outputTokens,
      dieMidStreamAfter: null,
      resetBeforeHeaders: false,
      hangMs: 0,
      metricsOverride: {},
    };
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          this.#json(res, 500, errorBody(500, `simulator error: ${(err as Error).message}`));
        } else {
          res.destroy();
        }
      });
    });
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://${this.ip}:${this.#port}`;
  }

  get models(): readonly string[] {
    return this.#models;
  }

  get probes(): number {
    return this.#probes;
  }

  get requests(): RecordedRequest[] {
    return this.#ring.toArray();
  }

  get inflight(): number {
    return this.#jobs.size;
  }

  get control(): Readonly<SimControl> {
    return { ...this.#control, metricsOverride: { ...this.#control.metricsOverride } };
  }

  set(control: Partial<SimControl>): void {
    const patch = validateSimControl(control);
    const next: SimControl = { ...this.#control, ...patch };
    if (patch.failStatus === 0) next.failStatus = null;
    if (patch.metricsOverride) next.metricsOverride = { ...patch.metricsOverride } as SimMetricsOverride;
    this.#control = next;
  }

  clearRequests(): void {
    this.#ring.clear();
  }

  state(): SimPodState {
    const out: SimPodState = {
      pod: this.name,
      mode: this.mode,
      role: this.role,
      engine: this.engine,
      timeScale: this.timeScale,
      virtualNowMs: ms(this.#clock.now()),
      engineLagMs: this.#driver ? ms(this.#driver.lag()) : 0,
      adapters: [...this.#adapters],
    };
    if (this.#driver) {
      const m = this.#driver.model;
      const st = m.stats();
      const { promptTokens: _p, generationTokens: _g, lastStepEnd: _l, ...shown } = st;
      out.engineModel = { config: { ...m.cfg }, ...shown };
    }
    return out;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`sim pod ${this.name}: cannot listen on ${this.ip}:${this.#port}: ${err.message}`));
      this.#server.once('error', onError);
      this.#server.listen(this.#port, this.ip, () => {
        this.#server.off('error', onError);
        const addr = this.#server.address();
        if (addr && typeof addr === 'object') this.#port = addr.port;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#driver?.close();
    for (const job of this.#jobs) job.cancel();
    this.#jobs.clear();
    this.#running.clear();
    this.#queue.length = 0;
    this.#closing = new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    }).then(() => this.#kv?.close());
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('x-sim-pod', this.name);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    if (raw === null) {
      this.#json(res, 413, errorBody(413, `request body larger than ${MAX_BODY_BYTES} bytes`));
      return;
    }
    const text = raw.length === 0 ? undefined : raw.toString('utf8');
    let body: unknown = text;
    let bodyIsJson = false;
    if (text !== undefined) {
      try {
        body = JSON.parse(text);
        bodyIsJson = true;
      } catch {
        body = text;
      }
    }

    if (path.startsWith('/sim/')) {
      this.#simEndpoint(method, path, body, bodyIsJson, res);
      return;
    }
    // A router's scraper polls /metrics and /v1/models every interval and health checks poll
    // /health: counted apart so that `requests` shows the traffic a test sent.
    let rec: RecordedRequest | null = null;
    if (method === 'GET' && (path === '/metrics' || path === '/v1/models' || path === '/health')) this.#probes++;
    else {
      rec = { seq: ++this.#seq, receivedAt: Date.now(), method, path: url, headers: { ...req.headers }, body };
      this.#ring.push(rec);
    }

    switch (path) {
      case '/v1/chat/completions':
      case '/v1/completions':
        if (method !== 'POST') return this.#methodNotAllowed(res);
        return this.#completion(path === '/v1/chat/completions' ? 'chat' : 'text', req, res, body, bodyIsJson, text, rec as RecordedRequest);
      case '/v1/models':
        if (method !== 'GET') return this.#methodNotAllowed(res);
        return this.#json(res, 200, modelsBody(this.engine, this.#models, this.#startedAt, this.#adapterRoots, this.#driver?.model.cfg.maxModelLen));
      case '/v1/load_lora_adapter':
      case '/v1/unload_lora_adapter':
        if (this.engine !== 'vLLM') break;
        if (method !== 'POST') return this.#methodNotAllowed(res);
        return this.#loraAdapter(path === '/v1/load_lora_adapter', res, body, bodyIsJson);
      case '/health':
        if (method !== 'GET') return this.#methodNotAllowed(res);
        res.writeHead(200, { 'content-length': '0' }).end();
        return;
      case '/metrics':
        if (method !== 'GET') return this.#methodNotAllowed(res);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.#renderMetrics());
        return;
      case '/tokenize': {
        if (method !== 'POST') return this.#methodNotAllowed(res);
        const t = bodyIsJson ? tokenizeRequest(body, this.#models) : { status: 400, body: '', error: 'Request body is not valid JSON.' };
        return this.#json(res, t.status, t.error === undefined ? t.body : errorBody(t.status, t.error));
      }
    }
    this.#json(res, 404, '{"detail":"Not Found"}');
  }

  #renderMetrics(): string {
    const o = this.#control.metricsOverride;
    const base = this.#base;
    const lora = this.#adapters.length > 0;
    if (this.#driver) {
      const m = this.#driver.model;
      const st = m.stats();
      const usage = m.loraUsage();
      return this.#metrics.render(this.engine, base, {
        running: o.running ?? st.running,
        waiting: o.waiting ?? st.waiting,
        kvCacheUsage: o.kvCacheUsage ?? st.kvUsage,
        loraRunning: lora ? usage.running : undefined,
        loraWaiting: lora ? usage.waiting : undefined,
        maxLora: m.cfg.maxLoras,
        override: o,
        prefixQueries: st.prefixQueries,
        prefixHits: st.prefixHits,
        preemptions: st.preemptions,
        cacheConfig: { blockSize: m.cfg.blockSize, numBlocks: m.numBlocks, prefixCaching: m.cfg.prefixCaching },
      });
    }
    let used = 0;
    for (const job of this.#running) used += (job.req?.promptTokens ?? 0) + job.generated;
    const adapters = (jobs: Iterable<Job>): string[] => {
      const out = new Set<string>();
      for (const job of jobs) if (job.req && job.req.model !== base) out.add(job.req.model);
      return [...out];
    };
    return this.#metrics.render(this.engine, base, {
      running: o.running ?? this.#running.size,
      waiting: o.waiting ?? this.#queue.length,
      kvCacheUsage: o.kvCacheUsage ?? Math.min(1, used / this.#kvCacheTokens),
      loraRunning: lora ? adapters(this.#running) : undefined,
      loraWaiting: lora ? adapters(this.#queue) : undefined,
      maxLora: this.#adapters.length,
      override: o,
      cacheConfig: { blockSize: KV_DEFAULT_BLOCK_SIZE, numBlocks: Math.floor(this.#kvCacheTokens / KV_DEFAULT_BLOCK_SIZE), prefixCaching: false },
    });
  }

  #simEndpoint(method: string, path: string, body: unknown, bodyIsJson: boolean, res: ServerResponse): void {
    if (path === '/sim/requests') {
      if (method === 'GET') return this.#json(res, 200, JSON.stringify({ pod: this.name, requests: this.requests }));
      if (method === 'DELETE') {
        this.clearRequests();
        return this.#json(res, 200, JSON.stringify({ pod: this.name, requests: [] }));
      }
      return this.#methodNotAllowed(res);
    }
    if (path === '/sim/control') {
      if (method === 'POST') {
        if (!bodyIsJson) return this.#json(res, 400, errorBody(400, 'control body must be JSON'));
        try {
          this.set(body as Partial<SimControl>);
        } catch (err) {
          return this.#json(res, 400, errorBody(400, (err as Error).message));
        }
      } else if (method !== 'GET') {
        return this.#methodNotAllowed(res);
      }
      return this.#json(res, 200, JSON.stringify({ pod: this.name, control: this.control }));
    }
    if (path === '/sim/state') {
      if (method !== 'GET') return this.#methodNotAllowed(res);
      return this.#json(res, 200, JSON.stringify(this.state()));
    }
    this.#json(res, 404, '{"detail":"Not Found"}');
  }

  /** vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter (VLLM_ALLOW_RUNTIME_LORA_UPDATING). */
  async #loraAdapter(load: boolean, res: ServerResponse, body: unknown, bodyIsJson: boolean): Promise<void> {
    const b = bodyIsJson && body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
    const name = typeof b.lora_name === 'string' ? b.lora_name : '';
    if (load) {
      const path = typeof b.lora_path === 'string' ? b.lora_path : '';
      if (name === '' || path === '') {
        return this.#json(res, 400, errorBody(400, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput'));
      }
      if (this.#adapters.includes(name) && b.load_inplace === true) {
        // vLLM's load_inplace: the same name now points at new weights.
        this.#adapterRoots.set(name, path);
        return this.#text(res, 200, `Success: LoRA adapter '${name}' added successfully.`);
      }
      if (this.#models.includes(name)) {
        return this.#json(res, 400, errorBody(400, `The lora adapter '${name}' has already been loaded.`, 'InvalidUserInput'));
      }
      this.#adapters.push(name);
      this.#adapterRoots.set(name, path);
      this.#models = Object.freeze([this.#base, ...this.#adapters]);
      const model = this.#driver?.model;
      if (model && model.preloadLora(name) && model.cfg.loraLoadMs > 0) {
        await new Promise<void>((r) => setTimeout(r, this.#clock.toWall(model.cfg.loraLoadMs)).unref());
      }
      return this.#text(res, 200, `Success: LoRA adapter '${name}' added successfully.`);
    }
    if (name === '' && b.lora_int_id === undefined) {
      return this.#json(res, 400, errorBody(400, "either 'lora_name' and 'lora_int_id' needs to be provided.", 'InvalidUserInput'));
    }
    const i = this.#adapters.indexOf(name);
    if (i < 0) return this.#json(res, 404, errorBody(404, `The lora adapter '${name}' cannot be found.`, 'NotFoundError'));
    this.#adapters.splice(i, 1);
    this.#adapterRoots.delete(name);
    this.#models = Object.freeze([this.#base, ...this.#adapters]);
    this.#driver?.model.unloadLora(name);
    return this.#text(res, 200, `Success: LoRA adapter '${name}' removed successfully.`);
  }

  async #completion(
    kind: CompletionKind,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    bodyIsJson: boolean,
    text: string | undefined,
    rec: RecordedRequest,
  ): Promise<void> {
    const c = this.#control;
    const outcome: SimRequestOutcome = { mode: this.mode, pd: 'none', status: 0 };
    rec.outcome = outcome;
    if (c.resetBeforeHeaders) {
      outcome.error = 'connection reset (resetBeforeHeaders)';
      resetSocket(req.socket);
      return;
    }
    const job = new Job(res, outcome);
    job.receivedV = job.refV = this.#clock.fromWall(job.receivedAtMs);
    this.#jobs.add(job);
    res.once('close', () => this.#finish(job));
    if (this.#reportTiming) res.setHeader('x-sim-time-scale', String(this.timeScale));

    // The engine sees the request when it was received (or when a hang ends), not after the
    // wall time spent parsing and tokenizing, which timeScale would otherwise magnify.
    let arrival = job.receivedV;
    if (c.hangMs > 0) {
      await job.sleep(c.hangMs);
      if (job.state === 'done') return;
      arrival = this.#clock.now();
    }
    const failStatus = this.#control.failStatus;
    if (failStatus !== null) {
      this.#reject(job, failStatus, `simulated failure of pod ${this.name}`);
      return;
    }
    if (!bodyIsJson) {
      this.#reject(job, 400, text === undefined ? 'Request body is empty.' : 'Request body is not valid JSON.');
      return;
    }
    try {
      job.req = parseCompletion(kind, body, this.#models);
      job.pd = classifyPd(this.engine, this.role, body as Record<string, unknown>);
      if (this.#kv && !this.#driver) job.kvTokens = completionPromptTokens(kind, body as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof SimBadRequest) && !(err instanceof PdBadRequest)) throw err;
      this.#reject(job, err.status, err.message);
      return;
    }
    outcome.pd = job.pd.kind;
    outcome.model = job.req.model;
    if (job.pd.kind === 'bootstrap-prefill' || job.pd.kind === 'bootstrap-decode') outcome.bootstrapRoom = job.pd.room;
    if (job.pd.kind === 'bootstrap-decode') outcome.bootstrapHost = job.pd.host;
    if (job.pd.kind === 'nixl-decode') {
      const id = job.pd.params.remote_engine_id;
      if (typeof id === 'string') outcome.remoteEngineId = id;
      const t = prefillReceivedAt(job.pd.params);
      if (t !== null) job.refV = Math.min(job.refV, this.#clock.fromWall(t));
    }
    job.id = newCompletionId(kind);
    job.created = Math.floor(Date.now() / 1000);

    let remote: RemoteKvSpec | null = null;
    let tokens: number[] = [];
    if (this.#driver) {
      tokens = completionPromptTokens(kind, body as Record<string, unknown>);
      job.req.promptTokens = tokens.length;
      job.target = job.req.maxTokens ?? this.#control.outputTokens;
      if (job.pd.kind === 'nixl-decode') remote = { start: 'now' };
      else if (job.pd.kind === 'bootstrap-decode') remote = { start: 'signal' };
      try {
        this.#driver.model.check(tokens.length, job.target, job.req.model === this.#base ? null : job.req.model);
      } catch (err) {
        if (!(err instanceof ModelReject)) throw err;
        this.#reject(job, err.status, err.message);
        return;
      }
    }
    outcome.promptTokens = job.req.promptTokens;

    if (job.req.stream) {
      // vLLM answers the headers of a stream before the request is even scheduled, so a router's
      // header timeout never covers queueing or prefill.
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.flushHeaders();
      outcome.status = 200;
      job.dieAfter = this.#control.dieMidStreamAfter;
      if (job.dieAfter !== null) this.#control = { ...this.#control, dieMidStreamAfter: null };
      if (job.dieAfter === 0) {
        this.#die(job, '');
        return;
      }
    }

    if (this.#driver) {
      job.state = 'waiting';
      const lora = job.req.model === this.#base ? null : job.req.model;
      job.seq = this.#driver.submit({
        arrival,
        tokens,
        maxTokens: job.target,
        lora,
        remoteKv: remote,
        keepBlockIds: job.pd.kind === 'nixl-prefill',
        data: job,
      });
      if (job.pd.kind === 'bootstrap-decode') {
        const seq = job.seq;
        const driver = this.#driver;
        this.#awaitPrefill(job, job.pd, (doneAtMs) => driver.release(seq, this.#clock.fromWall(doneAtMs)));
      }
      return;
    }

    if (job.pd.kind === 'bootstrap-decode') {
      job.state = 'waiting';
      this.#awaitPrefill(job, job.pd, () => {
        if (job.state === 'done') return;
        this.#queue.push(job);
        this.#admit();
      });
      return;
    }
    job.state = 'waiting';
    this.#queue.push(job);
    this.#admit();
  }

  /** SGLang decode leg: waits (bounded) for the prefill of its room, then calls `ready`. */
  #awaitPrefill(job: Job, leg: { room: string; host: string }, ready: (doneAtMs: number) => void): void {
    let met = false;
    const cancel = bootstrapTable.wait(leg.host, leg.room, (d) => {
      met = true;
      job.cancelWait = null;
      if (job.waitTimer) clearTimeout(job.waitTimer);
      job.waitTimer = null;
      ready(d.doneAtMs);
    });
    if (met) return;
    job.cancelWait = cancel;
    job.waitTimer = setTimeout(() => {
      job.waitTimer = null;
      job.cancelWait?.();
      job.cancelWait = null;
      this.#failInFlight(
        job,
        500,
        `KV transfer failed: no prefill for bootstrap_room ${leg.room} on ${leg.host} within ${this.#bootstrapTimeoutMs} ms`,
      );
    }, this.#clock.toWall(this.#bootstrapTimeoutMs));
  }

  /** Answers an error before anything was streamed, recording it. */
  #reject(job: Job, status: number, message: string): void {
    job.outcome.status = status;
    job.outcome.error = message;
    this.#json(job.res, status, errorBody(status, message));
  }

  /** Fails a request that may already be streaming (error event then [DONE], as vLLM/SGLang do). */
  #failInFlight(job: Job, status: number, message: string): void {
    if (job.state === 'done') return;
    if (!job.res.headersSent) {
      this.#reject(job, status, message);
      return;
    }
    job.outcome.error = message;
    job.res.write(errorEvent(status, message));
    job.res.end(DONE_EVENT);
  }

  // -------------------------------------------------------------------------------------------
  // Fixed-delay engine
  // -------------------------------------------------------------------------------------------

  #admit(): void {
    while (this.#closing === null && this.#queue.length > 0 && this.#running.size < this.#maxRunning) {
      const job = this.#queue.shift() as Job;
      this.#start(job);
    }
  }

  #start(job: Job): void {
    const c = this.#control;
    const req = job.req as ParsedCompletion;
    job.state = 'running';
    job.startedAt = performance.now();
    this.#running.add(job);
    job.target = Math.min(c.outputTokens, req.maxTokens ?? Infinity);
    job.itlMs = c.itlMs;
    this.#metrics.promptTokens += req.promptTokens;
    job.timer = setTimeout(() => this.#token(job), c.ttftMs / this.timeScale);
  }

  #token(job: Job): void {
    job.timer = null;
    if (job.state !== 'running') return;
    const req = job.req as ParsedCompletion;
    const now = performance.now();
    const ts = this.timeScale;
    if (job.generated === 0) {
      job.firstTokenAt = now;
      // Prefill done: the engine now holds the prompt's KV blocks (vLLM emits BlockStored here).
      if (job.kvTokens !== null) this.#kv?.publish(req.model, job.kvTokens);
      if (job.pd.kind === 'bootstrap-prefill') this.#publishRoom(job, now - SIM_EPOCH);
      this.#metrics.ttft.observe(((now - job.arrivedAt) * ts) / 1000);
    } else {
      this.#metrics.itl.observe(((now - job.lastTokenAt) * ts) / 1000);
    }
    job.lastTokenAt = now;
    job.generated++;
    this.#metrics.generationTokens++;
    const last = job.generated >= job.target;
    const simT = (now - SIM_EPOCH) * ts - job.refV;
    if (last) {
      this.#metrics.e2e.observe(((now - job.arrivedAt) * ts) / 1000);
      this.#metrics.queueTime.observe(((job.startedAt - job.arrivedAt) * ts) / 1000);
      const o = job.outcome;
      o.queueMs = ms((job.startedAt - job.arrivedAt) * ts);
      o.ttftMs = ms((job.firstTokenAt - job.arrivedAt) * ts);
      o.e2eMs = ms((now - job.arrivedAt) * ts);
    }
    const timing = (): Record<string, number> => {
      const origin = job.refV;
      return {
        ttft_ms: ms((job.firstTokenAt - SIM_EPOCH) * ts - origin),
        e2e_ms: ms(simT),
        queue_ms: ms((job.startedAt - SIM_EPOCH) * ts - origin),
      };
    };
    if (!this.#emit(job, simT, last, null, timing, () => Array.from({ length: Math.ceil(req.promptTokens / KV_DEFAULT_BLOCK_SIZE) }, (_, i) => i))) return;
    if (!last) job.timer = setTimeout(() => this.#token(job), job.itlMs / ts);
  }

  // -------------------------------------------------------------------------------------------
  // Engine model
  // -------------------------------------------------------------------------------------------

  /** A step of the engine model ended: hand its tokens to their requests. */
  #deliver(o: StepOutcome): void {
    const m = this.#metrics;
    for (const seq of o.emitted) {
      const job = seq.data as Job;
      if (job.state === 'done') continue;
      job.state = 'running';
      if (job.generated === 0) {
        m.promptTokens += seq.promptLen;
        m.ttft.observe((o.end - job.receivedV) / 1000);
        if (job.pd.kind === 'bootstrap-prefill') this.#publishRoom(job, this.#clock.toWall(o.end));
      } else {
        m.itl.observe((o.end - job.lastTokenV) / 1000);
      }
      m.generationTokens++;
      job.lastTokenV = o.end;
      job.generated++;
      const last = job.generated >= job.target;
      if (last) {
        m.e2e.observe((o.end - job.receivedV) / 1000);
        m.queueTime.observe((seq.firstScheduledAt - seq.arrival) / 1000);
        const out = job.outcome;
        out.cachedTokens = Math.max(0, seq.cachedTokens);
        out.queueMs = ms(seq.firstScheduledAt - job.receivedV);
        out.ttftMs = ms(seq.firstTokenAt - job.receivedV);
        out.e2eMs = ms(o.end - job.receivedV);
        out.preemptions = seq.preemptions;
        out.loraLoaded = seq.loraLoaded;
        if (seq.remote !== null) {
          out.kvTransferTokens = seq.transferTokens;
          out.kvTransferMs = ms(seq.transferMs);
        }
      }
      const timing = (): Record<string, number> => ({
        ttft_ms: ms(seq.firstTokenAt - job.refV),
        e2e_ms: ms(o.end - job.refV),
        queue_ms: ms(seq.firstScheduledAt - job.refV),
      });
      this.#emit(job, o.end - job.refV, last, Math.max(0, seq.cachedTokens), timing, () => seq.finalBlockIds ?? []);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Shared by both engines
  // -------------------------------------------------------------------------------------------

  /**
   * Writes the token `job.generated` (already counted) and, when `last`, the end of the response.
   * `simT`: simulated ms since the request's origin. False when the stream was cut.
   */
  #emit(
    job: Job,
    simT: number,
    last: boolean,
    cachedTokens: number | null,
    timing: () => Record<string, number>,
    blockIds: () => number[],
  ): boolean {
    const req = job.req as ParsedCompletion;
    const tok = tokenText(job.generated - 1);
    const finish = last ? (req.maxTokens !== null && job.generated >= req.maxTokens ? 'length' : 'stop') : null;
    const report = this.#reportTiming;
    const t: Extra = report ? { sim_t: ms(simT) } : null;
    let kvParams: Extra = null;
    if (last) {
      job.outcome.completionTokens = job.generated;
      this.#metrics.finished[finish as FinishedReason]++;
      if (job.pd.kind === 'nixl-prefill') {
        const params = nixlTransferParams({
          engineId: this.#engineId,
          host: this.ip,
          requestId: job.id,
          blockIds: blockIds(),
          receivedAtMs: job.receivedAtMs,
        });
        job.outcome.remoteEngineId = this.#engineId;
        kvParams = { kv_transfer_params: params };
      }
    }

    if (req.stream) {
      if (job.generated === 1 && req.kind === 'chat') {
        if (!this.#event(job, chunkEvent(req, job.id, job.created, { role: 'assistant', content: '' }, null, t))) return false;
      }
      const extra: Extra = kvParams ? { ...t, ...kvParams } : t;
      if (!this.#event(job, chunkEvent(req, job.id, job.created, { content: tok }, finish, extra))) return false;
      if (last) {
        if (req.includeUsage && !this.#event(job, usageEvent(req, job.id, job.created, job.generated, cachedTokens, t))) return false;
        if (!this.#event(job, DONE_EVENT)) return false;
        job.res.end();
      }
      return true;
    }
    job.text += tok;
    if (last) {
      const extra: Extra = report || kvParams ? { ...(report ? { sim_timing: timing() } : null), ...kvParams } : null;
      job.outcome.status = 200;
      this.#json(job.res, 200, finalBody(req, job.id, job.created, job.text, job.generated, finish as string, cachedTokens, extra));
    }
    return true;
  }

  #publishRoom(job: Job, doneAtMs: number): void {
    if (job.pd.kind !== 'bootstrap-prefill') return;
    bootstrapTable.publish(this.ip, job.pd.room, {
      doneAtMs,
      receivedAtMs: job.receivedAtMs,
      promptTokens: job.req?.promptTokens ?? 0,
      pod: this.name,
    });
  }

  #kvListener(kv: KvEventPublisher): { stored(block: number, seq: Seq, i: number): void; evicted(block: number): void } {
    const keys = this.#blockKeys;
    return {
      stored: (block, seq, i) => {
        const job = seq.data as Job;
        job.kthenaHashes ??= kvBlockHashes(seq.tokens, kv.blockSize, Infinity);
        const key = kvBlockKey((job.req as ParsedCompletion).model, job.kthenaHashes[i]);
        keys[block] = key;
        kv.storeBlock(key);
      },
      evicted: (block) => {
        const key = keys[block];
        if (key === undefined) return;
        keys[block] = undefined;
        kv.removeBlock(key);
      },
    };
  }

  /** Writes one SSE event; false when the stream was cut by `dieMidStreamAfter`. */
  #event(job: Job, event: string): boolean {
    job.events++;
    if (job.dieAfter !== null && job.events >= job.dieAfter) {
      this.#die(job, event);
      return false;
    }
    job.res.write(event);
    return true;
  }

  /**
   * Closes the connection once `last` has reached the kernel, leaving the chunked body without its
   * terminator: what a client sees when an engine crashes mid-generation. Destroying right away
   * could drop bytes still corked in the response.
   */
  #die(job: Job, last: string): void {
    const socket = job.res.socket;
    job.outcome.error = 'connection closed mid-stream (dieMidStreamAfter)';
    this.#finish(job);
    job.res.write(last, () => socket?.destroy());
  }

  #finish(job: Job): void {
    if (!this.#jobs.delete(job)) return;
    job.cancel();
    const seq = job.seq;
    if (seq !== null) {
      if (seq.status !== 'finished' && seq.status !== 'aborted') {
        this.#metrics.finished.abort++;
        this.#driver?.abort(seq);
      }
      return;
    }
    if (this.#running.delete(job)) {
      this.#admit();
    } else {
      const i = this.#queue.indexOf(job);
      if (i >= 0) this.#queue.splice(i, 1);
    }
  }

  #json(res: ServerResponse, status: number, body: string): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** A plain-text answer, as vLLM's LoRA endpoints give (a Starlette Response without media type). */
  #text(res: ServerResponse, status: number, body: string): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  #methodNotAllowed(res: ServerResponse): void {
    this.#json(res, 405, '{"detail":"Method Not Allowed"}');
  }
}

/**
 * Starts one server per spec. Rejects, after closing whatever did start, when a spec is invalid,
 * two pods share a name or an address, or an address cannot be bound.
 */
export async function startSimulatedPods(specs: SimPodSpec[], opts: SimFleetOptions = {}): Promise<SimFleet> {
  if (!Array.isArray(specs) || specs.length === 0) throw new TypeError('startSimulatedPods needs at least one pod spec');
  const logSize = opts.requestLogSize ?? SIM_DEFAULTS.requestLogSize;
  if (!isPositiveInt(logSize)) throw new TypeError('requestLogSize must be an integer >= 1');
  if (opts.timeScale !== undefined && !(typeof opts.timeScale === 'number' && Number.isFinite(opts.timeScale) && opts.timeScale >= 1)) {
    throw new TypeError('timeScale must be a number >= 1');
  }
  if (opts.reportTiming !== undefined && typeof opts.reportTiming !== 'boolean') throw new TypeError('reportTiming must be a boolean');
  const names = new Set<string>();
  const addrs = new Set<string>();
  const resolved = specs.map((s0, i) => {
    const s: SimPodSpec = { ...s0 };
    if (s.timeScale === undefined && opts.timeScale !== undefined) s.timeScale = opts.timeScale;
    if (s.reportTiming === undefined && opts.reportTiming !== undefined) s.reportTiming = opts.reportTiming;
    validateSimPodSpec(s, `pods[${i}]`);
    if (names.has(s.name)) throw new TypeError(`pods[${i}]: duplicate pod name "${s.name}"`);
    names.add(s.name);
    const addr = `${s.ip}:${s.port}`;
    if (s.port !== 0 && addrs.has(addr)) throw new TypeError(`pods[${i}]: address ${addr} used twice`);
    addrs.add(addr);
    return s;
  });

  const pods = resolved.map((s) => new SimulatedPod(s, logSize));
  const results = await Promise.allSettled(pods.map((p) => p.listen()));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    await Promise.all(pods.map((p) => p.close()));
    throw new Error(failed.map((f) => (f.reason as Error).message).join('; '));
  }

  const byName = new Map<string, SimPod>(pods.map((p) => [p.name, p]));
  return {
    pods,
    pod(name: string): SimPod {
      const p = byName.get(name);
      if (!p) throw new Error(`no simulated pod named "${name}" (have: ${[...byName.keys()].join(', ')})`);
      return p;
    },
    async close(): Promise<void> {
      await Promise.all(pods.map((p) => p.close()));
    },
  };
}
