/**
 * The debug server (Kthena's `--debug-port`, default 15000): JSON dumps of what the router currently
 * knows, with Kthena's paths and shapes (volcano-sh/kthena:pkg/kthena-router/debug/handlers.go),
 * plus our problems, snapshot and initial-config dumps. It exposes every watched spec, so it only
 * ever binds a loopback address.
 */
import type { GatewayStatuses } from '../ir/gateway.js';
import http from 'node:http';
import net from 'node:net';
import { RouterError } from '../errors.js';
import type { RoutingIR } from '../ir/types.js';
import type { ModelRoute, ModelServer, Pod, Problem, ResourceSet } from '../resources/types.js';
import { listen } from './metrics.js';
import { resolveCredential, secretsByKey, type ExternalModelProvider } from '../resources/external-provider.js';
import type { PodMetricsView } from '../scrape/scraper.js';
import type { ThreadMemory } from '../shared/memory.js';

export interface DebugSource {
  /** What the provider currently knows (validated, defaulted). */
  resources(): ResourceSet;
  /** Every validation and translation problem, with file and field. */
  problems(): readonly Problem[];
  /** The IR of the live snapshot, null before the first publish. */
  ir(): RoutingIR | null;
  generation(): number;
  /** The frozen, validated router configuration. */
  initialConfig(): object;
  /**
   * Scraped engine metrics of a pod, by `namespace/name`. Optional until the metrics scraper
   * exists; without it (or for a pod not scraped yet) every metric reads 0 and `models` is empty.
   */
  podMetrics?(key: string): PodMetricsView | undefined;
  /**
   * The workers' live counters of an endpoint slot (in flight, per PD phase, attempts, failures),
   * shown as `router` on each pod; absent without it.
   */
  slotCounters?(slot: number): SlotCounters;
  /** Statuses the translator computed for Gateway API objects (and the bootstrap objects assumed). */
  /** The status conditions computed for a ModelRoute or ModelServer (src/translator/status.ts), when known. */
  kthenaStatus?(kind: 'ModelRoute' | 'ModelServer' | 'ExternalModelProvider', namespace: string, name: string): Record<string, unknown> | undefined;
  gateway?(): { statuses: GatewayStatuses; bootstrap: readonly { kind: string; metadata: { namespace: string; name: string }; spec: unknown }[] };
  /**
   * Fault injection for tests and chaos drills, present only with KTHENA_ROUTER_FAULT_INJECTION=1:
   * `POST /debug/fault/crash-worker?index=N` makes worker N throw an uncaught exception;
   * `POST /debug/fault/fail-rebuild` makes the next snapshot rebuild reject after translation;
   * `POST /debug/fault/unhandled-rejection` leaves one rejected promise unhandled on the control thread;
   * `POST /debug/fault/gc` runs a full GC on every thread and answers each one's memory after it
   * (`GET /debug/fault/gc`: the same without the GC).
   */
  faults?: { crashWorker(index: number): boolean; failNextRebuild(): void; unhandledRejection(): void; memory(gc: boolean): Promise<ThreadMemory[]> };
}

export interface SlotCounters {
  inflight: number;
  inflightPrefill: number;
  inflightDecode: number;
  /** In-flight requests of the other router replicas on this pod (REDIS_HOST set; else 0). */
  remoteInflight: number;
  requestsTotal: number;
  failuresTotal: number;
  /** Passive outlier detection (workers/outlier.ts). */
  consecutiveFailures: number;
  /** Unix seconds until which the endpoint is ejected; 0 when it never was. */
  ejectedUntilSec: number;
  ejected: boolean;
  ejections: number;
}

export interface DebugServerOptions {
  port: number;
  /** Must be a loopback address (127.0.0.0/8, ::1) or `localhost`. Default 127.0.0.1. */
  host?: string;
}

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(h);
  if (family === 4) return loopback.check(h, 'ipv4');
  if (family === 6) return loopback.check(h, 'ipv6');
  return false;
}

const JSON_TYPE = 'application/json; charset=utf-8';

// pprof is Go's profiler; a Node.js process is profiled through the inspector instead.
const PPROF_MESSAGE = 'pprof endpoints exist only in the Go router; profile this router with Node.js ' +
  'inspector tooling: start it with --inspect (or --cpu-prof / --heap-prof) and attach Chrome DevTools';

interface Reply {
  status: number;
  body: unknown;
}

function notFound(error: string): Reply {
  return { status: 404, body: { error } };
}

/** Go's Time.Format("2006-01-02T15:04:05Z"), which Kthena applies to the pod's start time. */
function goSecondsUTC(ts: string): string {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toISOString().slice(0, 19) + 'Z';
}


/**
 * The IR as dumped: API keys shown as counts per rule, users by id, never a digest (a digest
 * cannot be turned back into a key, but a dump is no place for credential material at all).
 */
function redactApiKeys(ir: RoutingIR | null): unknown {
  if (ir === null || ir.apiKeys === undefined) return ir;
  return {
    ...ir,
    apiKeys: {
      servers: ir.apiKeys.servers.map((s) => ({
        server: s.server,
        rules: s.rules.map((r) => ({ header: r.header, param: r.param, keys: r.keys.length, users: [...new Set(r.keys.map(([, user]) => user))].sort() })),
      })),
      known: ir.apiKeys.known.length,
    },
  };
}

class Dump {
  readonly #res: ResourceSet;
  readonly #ir: RoutingIR | null;
  readonly #source: DebugSource;

  constructor(source: DebugSource) {
    this.#source = source;
    this.#res = source.resources();
    this.#ir = source.ir();
  }

  /** Kthena's {name, namespace, spec}, plus the conditions this router computes (Kthena writes none). */
  #routeView(r: ModelRoute): object {
    const view: Record<string, unknown> = { name: r.metadata.name, namespace: r.metadata.namespace, spec: r.spec };
    const status = this.#source.kthenaStatus?.('ModelRoute', r.metadata.namespace, r.metadata.name);
    if (status !== undefined) view.status = status;
    return view;
  }

  /** namespace/name of the pods a ModelServer currently routes to (the snapshot's endpoints). */
  #associatedPods(serverKey: string): string[] {
    const ir = this.#ir;
    if (ir === null) return [];
    const server = ir.servers.find((s) => s.key === serverKey);
    if (server === undefined) return [];
    return server.endpoints.map((i) => ir.endpoints[i].key);
  }

  #serverView(ms: ModelServer): object {
    const view: Record<string, unknown> = {
      name: ms.metadata.name,
      namespace: ms.metadata.namespace,
      spec: ms.rawSpec ?? ms.spec,
    };
    // Kthena's associatedPods/decodePods/prefillPods are `omitempty` slices: absent when empty.
    const key = `${ms.metadata.namespace}/${ms.metadata.name}`;
    const pods = this.#associatedPods(key);
    if (pods.length > 0) view.associatedPods = pods;
    const ir = this.#ir;
    const server = ir?.servers.find((s) => s.key === key);
    if (ir !== null && server !== undefined) {
      const decode = server.pdGroups.flatMap((g) => g.decode.map((i) => ir.endpoints[i].key));
      const prefill = server.pdGroups.flatMap((g) => g.prefill.map((i) => ir.endpoints[i].key));
      if (decode.length > 0) view.decodePods = decode;
      if (prefill.length > 0) view.prefillPods = prefill;
    }
    const status = this.#source.kthenaStatus?.('ModelServer', ms.metadata.namespace, ms.metadata.name);
    if (status !== undefined) view.status = status;
    return view;
  }

  /**
   * As Kthena's store, only pods that some ModelServer selects (and that can take traffic) are
   * known; `withDetails` adds podInfo, as Kthena does for the single-pod dump.
   */
  #podViews(onlyKey: string | null, withDetails: boolean): object[] {
    const ir = this.#ir;
    if (ir === null) return [];
    const serversOf = new Map<number, number[]>();
    for (let s = 0; s < ir.servers.length; s++) {
      for (const e of ir.servers[s].endpoints) {
        let list = serversOf.get(e);
        if (list === undefined) serversOf.set(e, (list = []));
        list.push(s);
      }
    }
    let podsByKey: Map<string, Pod> | null = null;
    if (withDetails) {
      podsByKey = new Map(this.#res.pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    }
    const out: object[] = [];
    for (let i = 0; i < ir.endpoints.length; i++) {
      const ep = ir.endpoints[i];
      if (onlyKey !== null && ep.key !== onlyKey) continue;
      const servers = serversOf.get(i);
      if (servers === undefined) continue;
      const view: Record<string, unknown> = { name: ep.name, namespace: ep.namespace };
      if (podsByKey !== null) {
        const pod = podsByKey.get(ep.key);
        if (pod !== undefined) view.podInfo = podInfo(pod);
      }
      const m = this.#source.podMetrics?.(ep.key);
      view.engine = ir.servers[servers[0]].engine;
      view.metrics = {
        gpuCacheUsage: m?.gpuCacheUsage ?? 0,
        requestWaitingNum: m?.requestWaitingNum ?? 0,
        requestRunningNum: m?.requestRunningNum ?? 0,
        tpot: m?.tpot ?? 0,
        ttft: m?.ttft ?? 0,
      };
      view.models = m?.models ? [...m.models] : [];
      if (m?.scrapeState !== undefined) {
        view.scrape = {
          state: m.scrapeState, lastScrapeTime: m.lastScrapeTime ?? null, consecutiveFailures: m.consecutiveFailures ?? 0,
          lastError: m.lastError ?? null, prefixCacheHitRate: m.prefixCacheHitRate ?? null,
          loraRunning: [...(m.loraRunning ?? [])], loraWaiting: [...(m.loraWaiting ?? [])],
        };
      }
      view.modelServers = servers.map((s) => ir.servers[s].key);
      if (this.#source.slotCounters !== undefined) view.router = this.#source.slotCounters(ep.slot);
      out.push(view);
    }
    return out;
  }

  /**
   * {name, namespace, spec, status} plus the credential as the router resolved it: the Secret's
   * name and key and whether they resolved, never its value.
   */
  #providerView(p: ExternalModelProvider): object {
    const view: Record<string, unknown> = { name: p.metadata.name, namespace: p.metadata.namespace, spec: p.spec };
    const ref = p.spec.auth?.secretRef;
    if (ref !== undefined) {
      const c = resolveCredential(p.spec, p.metadata.namespace, secretsByKey(this.#res.secrets));
      view.credential = { secretName: ref.name, key: ref.key, resolved: c.reason === 'CredentialResolved', reason: c.reason };
    }
    const status = this.#source.kthenaStatus?.('ExternalModelProvider', p.metadata.namespace, p.metadata.name);
    if (status !== undefined) view.status = status;
    return view;
  }

  list(what: string): Reply {
    switch (what) {
      case 'externalmodelproviders':
        return { status: 200, body: { externalmodelproviders: nullIfEmpty((this.#res.externalModelProviders ?? []).map((p) => this.#providerView(p))) } };
      case 'modelroutes':
        return { status: 200, body: { modelroutes: nullIfEmpty(this.#res.modelRoutes.map((r) => this.#routeView(r))) } };
      case 'modelservers':
        return { status: 200, body: { modelservers: nullIfEmpty(this.#res.modelServers.map((ms) => this.#serverView(ms))) } };
      case 'pods':
        return { status: 200, body: { pods: nullIfEmpty(this.#podViews(null, false)) } };
      case 'gateways':
        return { status: 200, body: { gateways: nullIfEmpty(this.#gatewayViews('gateways')) } };
      case 'httproutes':
        return { status: 200, body: { httproutes: nullIfEmpty(this.#gatewayViews('httproutes')) } };
      case 'inferencepools':
        return { status: 200, body: { inferencepools: nullIfEmpty(this.#gatewayViews('inferencepools')) } };
      case 'problems':
        return { status: 200, body: { problems: [...this.#source.problems()] } };
      case 'snapshot':
        return { status: 200, body: { generation: this.#source.generation(), ir: redactApiKeys(redacted(this.#ir)) } };
      case 'initial_config':
        return { status: 200, body: this.#source.initialConfig() };
      default:
        return notFound('not found');
    }
  }

  one(kind: string, namespace: string, name: string): Reply {
    if (namespace === '' || name === '') {
      return { status: 400, body: { error: 'namespace and name parameters are required' } };
    }
    switch (kind) {
      case 'modelroutes': {
        const r = this.#res.modelRoutes.find((x) => x.metadata.namespace === namespace && x.metadata.name === name);
        return r ? { status: 200, body: this.#routeView(r) } : notFound('ModelRoute not found');
      }
      case 'modelservers': {
        const ms = this.#res.modelServers.find((x) => x.metadata.namespace === namespace && x.metadata.name === name);
        return ms ? { status: 200, body: this.#serverView(ms) } : notFound('ModelServer not found');
      }
      case 'externalmodelproviders': {
        const p = (this.#res.externalModelProviders ?? []).find((x) => x.metadata.namespace === namespace && x.metadata.name === name);
        return p ? { status: 200, body: this.#providerView(p) } : notFound('ExternalModelProvider not found');
      }
      case 'pods': {
        const views = this.#podViews(`${namespace}/${name}`, true);
        return views.length > 0 ? { status: 200, body: views[0] } : notFound('Pod not found');
      }
      case 'gateways': case 'httproutes': case 'inferencepools': {
        const v = this.#gatewayViews(kind).find((x) => x.namespace === namespace && x.name === name);
        return v ? { status: 200, body: v } : notFound(`${kind === 'gateways' ? 'Gateway' : kind === 'httproutes' ? 'HTTPRoute' : 'InferencePool'} not found`);
      }
      default:
        return notFound('not found');
    }
  }

  /** Kthena's {name, namespace, spec, status}, with the status this router computed (Kthena leaves it empty). */
  #gatewayViews(kind: 'gateways' | 'httproutes' | 'inferencepools' | string): { name: string; namespace: string; spec: unknown; status: unknown }[] {
    const g = this.#source.gateway?.();
    if (g === undefined) return [];
    const res = this.#res;
    const objects: readonly { metadata: { namespace: string; name: string }; spec: unknown }[] =
      kind === 'gateways' ? [...(res.gateways ?? []), ...g.bootstrap.filter((b) => b.kind === 'Gateway')]
        : kind === 'httproutes' ? res.httpRoutes ?? [] : res.inferencePools ?? [];
    const statuses: readonly { namespace: string; name: string; status: unknown }[] =
      kind === 'gateways' ? g.statuses.gateways : kind === 'httproutes' ? g.statuses.httpRoutes : g.statuses.inferencePools;
    const byKey = new Map(statuses.map((s) => [`${s.namespace}/${s.name}`, s.status]));
    return objects.map((o) => ({
      name: o.metadata.name, namespace: o.metadata.namespace, spec: o.spec, status: byKey.get(`${o.metadata.namespace}/${o.metadata.name}`) ?? {},
    })).sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
  }
}

function podInfo(pod: Pod): object {
  const info: Record<string, unknown> = {
    podIP: pod.status.podIP ?? '',
    nodeName: pod.spec.nodeName ?? '',
    phase: pod.status.phase ?? '',
  };
  if (pod.status.startTime) info.startTime = goSecondsUTC(pod.status.startTime);
  if (Object.keys(pod.metadata.labels).length > 0) info.labels = pod.metadata.labels;
  return info;
}

/** The IR with every provider credential replaced (the snapshot carries it for the workers). */
function redacted(ir: RoutingIR | null): RoutingIR | null {
  if (ir === null || (ir.providers ?? []).every((p) => p.authValue === '')) return ir;
  return { ...ir, providers: ir.providers!.map((p) => (p.authValue === '' ? p : { ...p, authValue: '<redacted>' })) };
}

/** Go marshals a nil slice as null; Kthena's list handlers start from a nil slice. */
function nullIfEmpty<T>(list: T[]): T[] | null {
  return list.length === 0 ? null : list;
}

const DUMP_PREFIX = '/debug/config_dump/';

function route(source: DebugSource, method: string, path: string, query: string): Reply | Promise<Reply> {
  if (path === '/debug/fault/crash-worker' && source.faults !== undefined) {
    if (method !== 'POST') return { status: 405, body: { error: 'use POST' } };
    const index = Number(new URLSearchParams(query).get('index') ?? '0');
    return source.faults.crashWorker(index) ? { status: 202, body: { crashed: index } } : notFound(`worker ${index} not running`);
  }
  if (path === '/debug/fault/fail-rebuild' && source.faults !== undefined) {
    if (method !== 'POST') return { status: 405, body: { error: 'use POST' } };
    source.faults.failNextRebuild();
    return { status: 202, body: { failNextRebuild: true } };
  }
  if (path === '/debug/fault/unhandled-rejection' && source.faults !== undefined) {
    if (method !== 'POST') return { status: 405, body: { error: 'use POST' } };
    source.faults.unhandledRejection();
    return { status: 202, body: { unhandledRejection: true } };
  }
  if (path === '/debug/fault/gc' && source.faults !== undefined) {
    if (method !== 'POST' && method !== 'GET') return { status: 405, body: { error: 'use POST (with a GC) or GET' } };
    return source.faults.memory(method === 'POST').then((threads) => ({ status: 200, body: { threads } }));
  }
  if (method !== 'GET' && method !== 'HEAD') return notFound('not found');
  if (path === '/debug/pprof' || path.startsWith('/debug/pprof/')) return notFound(PPROF_MESSAGE);
  if (!path.startsWith(DUMP_PREFIX)) return notFound('not found');
  let segs: string[];
  try {
    segs = path.slice(DUMP_PREFIX.length).split('/').map(decodeURIComponent);
  } catch {
    return notFound('not found');
  }
  if (segs.length === 1) return new Dump(source).list(segs[0]);
  if (segs.length === 4 && segs[0] === 'namespaces') return new Dump(source).one(segs[2], segs[1], segs[3]);
  return notFound('not found');
}

const LOOPBACK_HOST_HEADER = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$/i;

/** A Host header naming the loopback interface (with or without a port). */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  return host !== undefined && LOOPBACK_HOST_HEADER.test(host);
}

/**
 * Start the debug server on a loopback address only; any other host is refused with
 * RTR_ERR_CONFIG_INVALID before anything is bound.
 */
export async function startDebugServer(source: DebugSource, opts: DebugServerOptions): Promise<http.Server> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    throw new RouterError('RTR_ERR_CONFIG_INVALID', `the debug server binds only a loopback address, got host "${host}"`);
  }
  const server = http.createServer((req, res) => {
    // DNS rebinding: a page in a browser on this node can resolve its own name to 127.0.0.1 and
    // read the dumps (resources, pod addresses, configuration); it cannot forge the Host header.
    if (!isLoopbackHostHeader(req.headers.host)) {
      const body = JSON.stringify({ error: 'the debug server answers only Host 127.0.0.1, localhost or [::1]' });
      res.writeHead(403, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const send = (reply: Reply): void => {
      const body = JSON.stringify(reply.body);
      res.writeHead(reply.status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const failed = (err: unknown): Reply => ({ status: 500, body: { error: err instanceof Error ? err.message : String(err) } });
    let reply: Reply | Promise<Reply>;
    try {
      reply = route(source, req.method ?? 'GET', path, q === -1 ? '' : url.slice(q + 1));
    } catch (err) {
      reply = failed(err);
    }
    if (reply instanceof Promise) reply.then(send, (err: unknown) => send(failed(err)));
    else send(reply);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return listen(server, opts.port, host);
}
