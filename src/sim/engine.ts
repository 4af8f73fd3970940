/**
 * A small simulator of vLLM / SGLang engine pods, each a node:http server on its own loopback
 * address, for tests, the demo and benchmarks that need a model server that behaves like one:
 * streaming headers sent before the first token, one SSE event per token, real metric names, vLLM
 * error bodies, and failure switches (status, reset, hang, death mid-stream) that can be flipped
 * while traffic flows.
 *
 * Each completion is a Job that goes hanging -> waiting -> running -> done. Admission is a plain
 * FIFO bounded by `maxRunning`; a later simulator with continuous batching replaces `#admit` and
 * the per-job token timer with a batch step, keeping the HTTP surface and the Job states.
 */

import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isIPv4 } from 'node:net';

import { KvEventPublisher, validateKvEventsSpec } from './kv-events.js';
import { EngineMetrics, validateMetricsOverride, validateSimMetricsSpec } from './metrics.js';
import {
  DONE_EVENT,
  SimBadRequest,
  chunkEvent,
  errorBody,
  finalBody,
  modelsBody,
  newCompletionId,
  parseCompletion,
  tokenText,
  usageEvent,
} from './openai.js';
import type { CompletionKind, ParsedCompletion } from './openai.js';
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
} from './types.js';

export type { RecordedRequest, SimControl, SimEngine, SimFleet, SimFleetOptions, SimPod, SimPodSpec } from './types.js';

export const SIM_DEFAULTS = Object.freeze({
  engine: 'vLLM' as SimEngine,
  ttftMs: 20,
  itlMs: 5,
  outputTokens: 16,
  kvCacheTokens: 16384,
  requestLogSize: 1000,
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
  for (const k of ['ttftMs', 'itlMs'] as const) {
    if (s[k] !== undefined && !isNonNegativeNumber(s[k])) throw new TypeError(`${at}.${k} must be a number >= 0`);
  }
  for (const k of ['outputTokens', 'maxRunning', 'kvCacheTokens'] as const) {
    if (s[k] !== undefined && !isPositiveInt(s[k])) throw new TypeError(`${at}.${k} must be an integer >= 1`);
  }
  if (s.failStatus !== undefined && !isStatus(s.failStatus)) throw new TypeError(`${at}.failStatus must be an HTTP status`);
  validateKvEventsSpec(s.kvEvents, at);
  validateSimMetricsSpec(s, at);
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

  constructor(res: ServerResponse) {
    this.res = res;
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

class SimulatedPod implements SimPod {
  readonly name: string;
  readonly ip: string;
  readonly engine: SimEngine;
  readonly models: readonly string[];
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
    this.models = Object.freeze([...spec.models]);
    this.#maxRunning = spec.maxRunning ?? Infinity;
    this.#kvCacheTokens = spec.kvCacheTokens ?? SIM_DEFAULTS.kvCacheTokens;
    this.#ring = new RequestRing(requestLogSize);
    this.#metrics.configure({ metricNames: spec.metricNames, extraSeries: spec.extraMetricSeries });
    this.#kv = spec.kvEvents ? new KvEventPublisher(spec.kvEvents, spec.name) : null;
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
    if (method === 'GET' && (path === '/metrics' || path === '/v1/models' || path === '/health')) this.#probes++;
    else this.#ring.push({ seq: ++this.#seq, receivedAt: Date.now(), method, path: url, headers: { ...req.headers }, body });

    switch (path) {
      case '/v1/chat/completions':
      case '/v1/completions':
        if (method !== 'POST') return this.#methodNotAllowed(res);
        return this.#completion(path === '/v1/chat/completions' ? 'chat' : 'text', req, res, body, bodyIsJson, text);
      case '/v1/models':
        if (method !== 'GET') return this.#methodNotAllowed(res);
        return this.#json(res, 200, modelsBody(this.engine, this.models, this.#startedAt));
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
        const t = bodyIsJson ? tokenizeRequest(body, this.models) : { status: 400, body: '', error: 'Request body is not valid JSON.' };
        return this.#json(res, t.status, t.error === undefined ? t.body : errorBody(t.status, t.error));
      }
      default:
        this.#json(res, 404, '{"detail":"Not Found"}');
    }
  }

  #renderMetrics(): string {
    let used = 0;
    for (const job of this.#running) used += (job.req?.promptTokens ?? 0) + job.generated;
    const o = this.#control.metricsOverride;
    const base = this.models[0];
    const adapters = (jobs: Iterable<Job>): string[] => {
      const out = new Set<string>();
      for (const job of jobs) if (job.req && job.req.model !== base) out.add(job.req.model);
      return [...out];
    };
    const lora = this.models.length > 1;
    return this.#metrics.render(this.engine, base, {
      running: o.running ?? this.#running.size,
      waiting: o.waiting ?? this.#queue.length,
      kvCacheUsage: o.kvCacheUsage ?? Math.min(1, used / this.#kvCacheTokens),
      loraRunning: lora ? adapters(this.#running) : undefined,
      loraWaiting: lora ? adapters(this.#queue) : undefined,
      maxLora: this.models.length - 1,
      override: o,
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
    this.#json(res, 404, '{"detail":"Not Found"}');
  }

  async #completion(
    kind: CompletionKind,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    bodyIsJson: boolean,
    text: string | undefined,
  ): Promise<void> {
    const c = this.#control;
    if (c.resetBeforeHeaders) {
      resetSocket(req.socket);
      return;
    }
    const job = new Job(res);
    this.#jobs.add(job);
    res.once('close', () => this.#finish(job));

    if (c.hangMs > 0) {
      await job.sleep(c.hangMs);
      if (job.state === 'done') return;
    }
    const failStatus = this.#control.failStatus;
    if (failStatus !== null) {
      this.#json(res, failStatus, errorBody(failStatus, `simulated failure of pod ${this.name}`));
      return;
    }
    if (!bodyIsJson) {
      const msg = text === undefined ? 'Request body is empty.' : 'Request body is not valid JSON.';
      this.#json(res, 400, errorBody(400, msg));
      return;
    }
    try {
      job.req = parseCompletion(kind, body, this.models);
      if (this.#kv) job.kvTokens = completionPromptTokens(kind, body as Record<string, unknown>);
    } catch (err) {
      if (!(err instanceof SimBadRequest)) throw err;
      this.#json(res, err.status, errorBody(err.status, err.message));
      return;
    }
    job.id = newCompletionId(kind);
    job.created = Math.floor(Date.now() / 1000);
    if (job.req.stream) {
      // vLLM answers the headers of a stream before the request is even scheduled, so a router's
      // header timeout never covers queueing or prefill.
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.flushHeaders();
      job.dieAfter = this.#control.dieMidStreamAfter;
      if (job.dieAfter !== null) this.#control = { ...this.#control, dieMidStreamAfter: null };
      if (job.dieAfter === 0) {
        this.#die(job, '');
        return;
      }
    }
    job.state = 'waiting';
    this.#queue.push(job);
    this.#admit();
  }

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
    this.#running.add(job);
    job.target = Math.min(c.outputTokens, req.maxTokens ?? Infinity);
    job.itlMs = c.itlMs;
    this.#metrics.promptTokens += req.promptTokens;
    job.timer = setTimeout(() => this.#token(job), c.ttftMs);
  }

  #token(job: Job): void {
    job.timer = null;
    if (job.state !== 'running') return;
    const req = job.req as ParsedCompletion;
    const now = performance.now();
    // Prefill done: the engine now holds the prompt's KV blocks (vLLM emits BlockStored here).
    if (job.generated === 0 && job.kvTokens !== null) this.#kv?.publish(req.model, job.kvTokens);
    if (job.generated === 0) this.#metrics.ttft.observe((now - job.arrivedAt) / 1000);
    else this.#metrics.itl.observe((now - job.lastTokenAt) / 1000);
    job.lastTokenAt = now;
    const tok = tokenText(job.generated);
    job.generated++;
    this.#metrics.generationTokens++;
    const last = job.generated >= job.target;
    const finish = last ? (req.maxTokens !== null && job.generated >= req.maxTokens ? 'length' : 'stop') : null;

    if (req.stream) {
      if (job.generated === 1 && req.kind === 'chat') {
        if (!this.#event(job, chunkEvent(req, job.id, job.created, { role: 'assistant', content: '' }, null))) return;
      }
      if (!this.#event(job, chunkEvent(req, job.id, job.created, { content: tok }, finish))) return;
      if (last) {
        if (req.includeUsage && !this.#event(job, usageEvent(req, job.id, job.created, job.generated))) return;
        if (!this.#event(job, DONE_EVENT)) return;
        job.res.end();
        return;
      }
    } else {
      job.text += tok;
      if (last) {
        this.#json(job.res, 200, finalBody(req, job.id, job.created, job.text, job.generated, finish as string));
        return;
      }
    }
    job.timer = setTimeout(() => this.#token(job), job.itlMs);
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
    this.#finish(job);
    job.res.write(last, () => socket?.destroy());
  }

  #finish(job: Job): void {
    if (!this.#jobs.delete(job)) return;
    job.cancel();
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
  const names = new Set<string>();
  const addrs = new Set<string>();
  specs.forEach((s, i) => {
    validateSimPodSpec(s, `pods[${i}]`);
    if (names.has(s.name)) throw new TypeError(`pods[${i}]: duplicate pod name "${s.name}"`);
    names.add(s.name);
    const addr = `${s.ip}:${s.port}`;
    if (s.port !== 0 && addrs.has(addr)) throw new TypeError(`pods[${i}]: address ${addr} used twice`);
    addrs.add(addr);
  });

  const pods = specs.map((s) => new SimulatedPod(s, logSize));
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
