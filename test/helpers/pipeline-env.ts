/**
 * An in-process request pipeline for stage unit tests: a compiled snapshot with one ModelRoute
 * (`m` → ModelServer ns/s over `pods` endpoints), the real scheduler over a private endpoint
 * region, the fake uWS pair (fake-uws.ts) and a scripted upstream client (FakeUpstream) that the
 * test answers callback by callback.
 */
import { StickyTable } from '../../workers/sticky/memory-store.js';
import { allocateStickyTable } from '../../src/shared/layout.js';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { defaultConfig, type RouterConfig } from '../../src/config.js';
import { emptyGatewayIR } from '../../src/ir/gateway.js';
import type { RoutingIR, ServerIR } from '../../src/ir/types.js';
import { DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import { allocatePrefixIndex, allocateRateLimitRegion, epIndex, kEndpointStride, kEpFailuresTotal, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kHdrReady, kHeaderInts } from '../../src/shared/layout.js';
import { compileSnapshot, type CompiledSnapshot } from '../../workers/compile.js';
import { PriorityGate, SaturationDetector } from '../../workers/flow-control.js';
import { WorkerMetrics } from '../../workers/metrics.js';
import { AuthHolder } from '../../workers/auth/holder.js';
import { RateLimiter } from '../../workers/ratelimit/limiter.js';
import { createHandler } from '../../workers/pipeline.js';
import type { WorkerContext } from '../../workers/request/state.js';
import type { Upstream, UpstreamController, UpstreamHandler, UpstreamHeaders, UpstreamRequest } from '../../workers/request/upstream.js';
import { Scheduler, type Profile } from '../../workers/scheduler/framework.js';
import type { SnapshotReader } from '../../workers/snapshot-reader.js';
import { serve, type FakeResponse } from './fake-uws.js';
import { writeSlot } from './slots.js';

export class FakeController implements UpstreamController {
  aborted: Error | null = null;
  paused = false;
  resumes = 0;
  constructor(readonly x: Exchange) {}
  abort(reason: Error): void {
    if (this.aborted !== null || this.x.settled) return;
    this.aborted = reason;
    // undici reports an abort to the handler as a response error.
    this.x.error(reason);
  }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; this.resumes++; }
}

/** One request the pipeline sent upstream; the test plays the upstream's part. */
export class Exchange {
  readonly controller = new FakeController(this);
  settled = false;
  started = false;
  constructor(readonly req: UpstreamRequest, readonly handler: UpstreamHandler) {}
  get body(): string { return typeof this.req.body === 'string' ? this.req.body : this.req.body?.toString('utf8') ?? ''; }
  start(): this { this.started = true; this.handler.onRequestStart(this.controller); return this; }
  respond(status: number, headers: UpstreamHeaders = {}): this {
    if (!this.started) this.start();
    if (!this.settled) this.handler.onResponseStart(this.controller, status, headers);
    return this;
  }
  data(chunk: string | Buffer): this { if (!this.settled) this.handler.onResponseData(this.controller, Buffer.from(chunk as Buffer)); return this; }
  end(): this { if (!this.settled) { this.settled = true; this.handler.onResponseEnd(this.controller); } return this; }
  error(err: Error): this { if (!this.settled) { this.settled = true; this.handler.onResponseError(this.started ? this.controller : null, err); } return this; }
  /** A whole JSON answer. */
  json(status: number, body: string): this {
    return this.respond(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }).data(body).end();
  }
}

export class FakeUpstream implements Upstream {
  readonly sent: Exchange[] = [];
  #taken = 0;
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    this.sent.push(new Exchange(req, handler));
  }
  /** The next exchange not yet taken by the test. */
  next(): Exchange {
    const x = this.sent[this.#taken++];
    if (x === undefined) throw new Error(`no upstream request #${this.#taken} was sent`);
    return x;
  }
  get pending(): number { return this.sent.length - this.#taken; }
  sweep(): void { /* no pools */ }
  destroy(): Promise<void> { return Promise.resolve(); }
}

export interface EnvOptions {
  pods?: number;
  server?: Partial<ServerIR>;
  cfg?: Partial<RouterConfig>;
}

export interface LogLine { level: string; obj: Record<string, unknown>; msg: string }

export function pipelineEnv(o: EnvOptions = {}) {
  const pods = o.pods ?? 2;
  const ep = new Int32Array(new SharedArrayBuffer(64 * kEndpointStride * 4));
  for (let i = 0; i < pods; i++) writeSlot(ep, i, {});
  const scheduler = new Scheduler({ ep, prefixSab: allocatePrefixIndex(1024), random: () => 0.5 });
  const ir: RoutingIR = {
    routes: [{
      key: 'ns/r', namespace: 'ns', name: 'r', modelName: 'm', loraAdapters: [], hasParentRefs: false, rateLimit: null,
      rules: [{ name: 'all', match: { headers: [], uri: null, bodyModel: null }, targets: [{ kind: 'server', key: 'ns/s', server: 0, weight: 1 }], totalWeight: 1 }],
    }],
    servers: [{
      key: 'ns/s', namespace: 'ns', name: 's', model: '', engine: 'vLLM', port: 8000, timeoutMs: 0, retryAttempts: -1, retryIntervalMs: 0,
      endpoints: Array.from({ length: pods }, (_, i) => i), unsupported: '', pdGroups: [], connector: '', ...o.server,
    }],
    endpoints: Array.from({ length: pods }, (_, i) => ({ key: `ns/p${i}`, namespace: 'ns', name: `p${i}`, ip: `127.0.0.${i + 2}`, slot: i, gen: 1, startedAtSec: 0 })),
    scheduler: DEFAULT_SCHEDULER,
    modelNames: ['m'],
    modelIds: [0],
    gateway: emptyGatewayIR(),
  };
  const snap = compileSnapshot(ir, 1, (s) => scheduler.compile(s, ir.modelNames, ir.modelIds));
  const header = new Int32Array(new SharedArrayBuffer(kHeaderInts * 4));
  Atomics.store(header, kHdrReady, 1);
  const upstream = new FakeUpstream();
  const logs: LogLine[] = [];
  const access: string[] = [];
  const cfg: RouterConfig = { ...defaultConfig(), ...o.cfg };
  let current: CompiledSnapshot<Profile> | null = snap;
  const ctx: WorkerContext = {
    cfg,
    header,
    ep,
    reader: { current: () => current } as unknown as SnapshotReader<CompiledSnapshot<Profile>>,
    scheduler,
    kvAware: null,
    metrics: new WorkerMetrics(),
    accessLog: { push: (line: string) => { access.push(line); } } as unknown as WorkerContext['accessLog'],
    upstream,
    active: 0,
    onIdle: null,
    renderMetrics: null,
    gate: new PriorityGate(),
    saturation: new SaturationDetector(ep),
    admission: null,
    sticky: new StickyTable(allocateStickyTable(64)),
    epp: null,
    rateLimiter: new RateLimiter({ rateLimitSab: allocateRateLimitRegion(64), failClosed: false, log: () => undefined }),
    auth: new AuthHolder(() => undefined),
    log: (level, obj, msg) => { logs.push({ level, obj: obj as Record<string, unknown>, msg }); },
  };
  const handler = createHandler(ctx, cfg.port, false);
  const inflight = (slot: number): number => Atomics.load(ep, epIndex(slot, kEpInflight));
  return {
    ctx, ep, snap, upstream, logs, access, handler,
    setSnapshot(s: CompiledSnapshot<Profile> | null): void { current = s; },
    inflight,
    failures: (slot: number): number => Atomics.load(ep, epIndex(slot, kEpFailuresTotal)),
    /** Every in-flight counter of every pod is back to 0. */
    allReleased(): boolean {
      for (let i = 0; i < pods; i++) {
        if (inflight(i) !== 0 || Atomics.load(ep, epIndex(i, kEpInflightDecode)) !== 0 || Atomics.load(ep, epIndex(i, kEpInflightPrefill)) !== 0) return false;
      }
      return true;
    },
    /** A request with a body (sent in one chunk unless `chunks` splits it). */
    request(method: string, url: string, body = '', headers: [string, string][] = [], chunks = 1): FakeResponse {
      const h: [string, string][] = [...headers];
      if (body !== '' && !h.some(([k]) => k === 'content-length' || k === 'transfer-encoding')) h.push(['content-length', String(Buffer.byteLength(body))]);
      const { res } = serve(handler as (res: HttpResponse, req: HttpRequest) => void, method, url, h);
      if (body !== '' && !res.done) {
        const buf = Buffer.from(body);
        const step = Math.ceil(buf.length / chunks);
        for (let at = 0; at < buf.length; at += step) {
          if (res.done) break;
          res.data(buf.subarray(at, at + step), at + step >= buf.length);
        }
      }
      return res;
    },
    chat(body: object = { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, headers: [string, string][] = []): FakeResponse {
      return this.request('POST', '/v1/chat/completions', JSON.stringify(body), headers);
    },
  };
}

/** Lets queued microtasks (the response writer's flush) run. */
export async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}
