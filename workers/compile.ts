/**
 * Compiles a decoded IR into the structures the request path reads: maps by model name, compiled
 * matchers, cumulative weights, per-endpoint origins and pre-joined label strings. Runs once per
 * snapshot generation, never per request.
 */
import { compileApiKeys, type CompiledApiKeyRule } from './auth/api-key.js';
import { compileRe2, type Re2Matcher } from '../src/shared/re2.js';
import type { RoutingIR, SchedulerIR, ServerIR, SessionStickyIR, StringMatchIR } from '../src/ir/types.js';
import { compileGateway, type CompiledGateway } from './gateway-match.js';
import { compileRateLimit, type CompiledRateLimit } from './ratelimit/limiter.js';
import { compileProvider, type CompiledProvider } from './provider/compile.js';

export interface CompiledMatch {
  type: 0 | 1 | 2; // exact, prefix, regex
  value: string;
  re: Re2Matcher | null;
}

export interface CompiledHeaderMatch extends CompiledMatch {
  name: string;
}

export interface CompiledEndpoint {
  /** namespace/pod */
  key: string;
  podName: string;
  namespace: string;
  ip: string;
  slot: number;
  /** kEpGen of the slot for this pod. */
  gen: number;
  startedAtSec: number;
  /** http://ip:port (IPv6 bracketed) */
  origin: string;
}

export interface CompiledServer {
  key: string;
  model: string;
  engine: 'vLLM' | 'SGLang';
  port: number;
  timeoutMs: number;
  retryAttempts: number;
  retryIntervalMs: number;
  endpoints: CompiledEndpoint[];
  unsupported: string;
  /** Prefill/decode pairing tables, built once per snapshot; null without pdGroup. */
  pd: CompiledPd | null;
  /** API-key rules (workers/auth/api-key.ts); null: none, the request needs no key. */
  apiKeys: CompiledApiKeyRule[] | null;
}

export interface CompiledPd {
  connector: 'http' | 'lmcache' | 'nixl' | 'mooncake' | 'sglang';
  /** Every decode endpoint of every group: the candidates decode scheduling scores. */
  decode: CompiledEndpoint[];
  /** decodeGroup[i] = group index of decode[i]; prefillByGroup[g] = the prefill endpoints of group g. */
  decodeGroup: Int32Array;
  prefillByGroup: CompiledEndpoint[][];
  /** Every prefill endpoint of every group (outlier detection's ejection cap counts per role). */
  prefill: CompiledEndpoint[];
  /** Index into the server's `endpoints` of decode[i] / prefillByGroup[g][j] (kvcache-aware scores all pods once, then gathers). */
  decodeIdx: Int32Array;
  prefillIdxByGroup: Int32Array[];
}

export interface CompiledTarget {
  kind: 'server' | 'provider';
  key: string;
  server: CompiledServer | null;
  /** kind 'provider': the ExternalModelProvider, null when it does not exist. */
  provider: CompiledProvider | null;
}

export interface CompiledRule {
  headers: CompiledHeaderMatch[];
  uri: CompiledMatch | null;
  bodyModel: string | null;
  matchAll: boolean;
  targets: CompiledTarget[];
  /** cumulative[i] = sum of weights of targets 0..i */
  cumulative: Int32Array;
  totalWeight: number;
  /** The provider target a ModelServer target fails over to (route annotation), null: none. */
  fallback: CompiledTarget | null;
}

export interface CompiledRoute {
  key: string;
  hasParentRefs: boolean;
  rules: CompiledRule[];
  /** Token rate limits by request model (workers/ratelimit/limiter.ts); null: none. */
  rateLimit: CompiledRateLimit | null;
  /** spec.sessionSticky (workers/request/sticky.ts), null when the route has none. */
  sticky: SessionStickyIR | null;
}

export interface CompiledSnapshot<P = unknown> {
  generation: number;
  /** The scheduling profile, compiled once per snapshot by the worker's Scheduler. */
  profile: P;
  /** Model/adapter name -> bit id (lora-affinity, per-model prefix metrics). */
  modelIds: Map<string, number>;
  byModel: Map<string, CompiledRoute[]>;
  byLora: Map<string, CompiledRoute[]>;
  /** Body of GET /v1/models, built once. */
  modelsBody: string;
  /** Every origin in this snapshot (pools for others can be closed). */
  origins: Set<string>;
  /** Largest endpoint count of any server (scratch arrays are sized to it). */
  maxEndpoints: number;
  ir: RoutingIR;
  /** Gateway API routing; null while --enable-gateway-api is off (no ports). */
  gateway: CompiledGatewaySnapshot | null;
  /** Redis addresses of the routes' global rate limits (each worker keeps one connection per address). */
  rateLimitRedis: Set<string>;
  /** Digests of every API key of the snapshot (a key admitted elsewhere answers 403); empty without keys. */
  apiKeysKnown: Set<string>;
}

/** The Gateway IR compiled for the request path (workers/gateway-match.ts), plus what dispatch needs. */
export interface CompiledGatewaySnapshot {
  match: CompiledGateway;
  /**
   * backends[rule][b]: Service and InferencePool backends as servers the upstream path already
   * knows how to schedule and proxy to (null for an invalid backend). Endpoint objects are shared
   * between backends that use the same podIP:port.
   */
  backends: (CompiledServer | null)[][];
  /** Per Gateway index: model name or adapter -> keys of the ModelRoutes bound to that Gateway. */
  models: Map<string, Set<string>>[];
  /** Per Gateway index: GET /v1/models on that Gateway (its ModelRoute names and adapters). */
  modelsBody: string[];
}

function compileMatch(m: StringMatchIR): CompiledMatch {
  const type = m.type === 'exact' ? 0 : m.type === 'prefix' ? 1 : 2;
  // RE2 semantics and linear-time matching (src/shared/re2.ts). Validation already rejected
  // patterns RE2 cannot compile; one that still fails here matches nothing, as Kthena treats an
  // invalid regex at run time.
  const re = type === 2 ? compileRe2(m.value) : null;
  return { type, value: m.value, re };
}

export function testMatch(m: CompiledMatch, v: string): boolean {
  if (m.type === 0) return v === m.value;
  if (m.type === 1) return v.startsWith(m.value);
  return m.re!.test(v);
}

function originOf(ip: string, port: number): string {
  return ip.includes(':') ? `http://[${ip}]:${port}` : `http://${ip}:${port}`;
}

function compileServer(ir: RoutingIR, s: ServerIR): CompiledServer {
  const endpoints = s.endpoints.map((i) => {
    const e = ir.endpoints[i];
    return {
      key: e.key, podName: e.name, namespace: e.namespace, ip: e.ip, slot: e.slot, gen: e.gen,
      startedAtSec: e.startedAtSec, origin: originOf(e.ip, s.port),
    };
  });
  // The same endpoint objects as `endpoints` (the scheduler caches per endpoint array and slot).
  const byIndex = new Map(s.endpoints.map((i, j) => [i, endpoints[j]]));
  const position = new Map(s.endpoints.map((i, j) => [i, j]));
  let pd: CompiledPd | null = null;
  if (s.connector !== '') {
    const decode: CompiledEndpoint[] = [];
    const decodeIdx: number[] = [];
    const groups: number[] = [];
    const prefillIdxByGroup: Int32Array[] = [];
    const prefillByGroup = s.pdGroups.map((g, gi) => {
      for (const i of g.decode) { decode.push(byIndex.get(i)!); decodeIdx.push(position.get(i)!); groups.push(gi); }
      prefillIdxByGroup.push(Int32Array.from(g.prefill, (i) => position.get(i)!));
      return g.prefill.map((i) => byIndex.get(i)!);
    });
    pd = {
      connector: s.connector, decode, decodeGroup: Int32Array.from(groups), prefillByGroup, prefill: prefillByGroup.flat(),
      decodeIdx: Int32Array.from(decodeIdx), prefillIdxByGroup,
    };
  }
  return {
    key: s.key,
    model: s.model,
    engine: s.engine,
    port: s.port,
    timeoutMs: s.timeoutMs,
    retryAttempts: s.retryAttempts,
    retryIntervalMs: s.retryIntervalMs,
    unsupported: s.unsupported,
    endpoints,
    pd,
    apiKeys: null,
  };
}

function compileGatewaySnapshot(ir: RoutingIR, origins: Set<string>): CompiledGatewaySnapshot {
  const g = ir.gateway;
  const endpoints: CompiledEndpoint[] = g.endpoints.map((e) => {
    const origin = originOf(e.ip, e.port);
    origins.add(origin);
    return { key: e.key, podName: e.pod, namespace: e.namespace, ip: e.ip, slot: e.slot, gen: e.gen, startedAtSec: e.startedAtSec, origin };
  });
  const backends = g.rules.map((rule) => rule.backends.map((b): CompiledServer | null => (b.kind === 'invalid' ? null : {
    key: b.key, model: '', engine: 'vLLM', port: 0,
    timeoutMs: rule.backendRequestTimeoutMs, retryAttempts: -1, retryIntervalMs: 0,
    endpoints: b.endpoints.map((i) => endpoints[i]), unsupported: '', pd: null, apiKeys: null,
  })));
  const models = g.gateways.map((gw) => new Map(gw.models.map((m) => [m.name, new Set(m.routes)])));
  const modelsBody = g.gateways.map((gw, i) => JSON.stringify({
    object: 'list',
    data: [...new Set([...gw.models.map((m) => m.name), ...(g.poolModels?.[i] ?? [])])].sort()
      .map((id) => ({ id, object: 'model', created: 0, owned_by: 'kthena' })),
  }));
  return { match: compileGateway(g), backends, models, modelsBody };
}

export function compileSnapshot<P>(ir: RoutingIR, generation: number, compileProfile: (s: SchedulerIR) => P): CompiledSnapshot<P> {
  const servers = ir.servers.map((s) => compileServer(ir, s));
  const providers = (ir.providers ?? []).map(compileProvider);
  const apiKeys = compileApiKeys(ir.apiKeys);
  if (apiKeys !== null) for (const s of servers) s.apiKeys = apiKeys.byServer.get(s.key) ?? null;
  const byModel = new Map<string, CompiledRoute[]>();
  const byLora = new Map<string, CompiledRoute[]>();
  const names = new Set<string>();
  const origins = new Set<string>();
  let maxEndpoints = 0;
  for (const s of servers) {
    maxEndpoints = Math.max(maxEndpoints, s.endpoints.length);
    for (const e of s.endpoints) origins.add(e.origin);
  }
  const rateLimitRedis = new Set<string>();
  for (const r of ir.routes) {
    if (r.rateLimit != null && r.rateLimit.redisAddress !== '') rateLimitRedis.add(r.rateLimit.redisAddress);
    const route: CompiledRoute = {
      key: r.key,
      hasParentRefs: r.hasParentRefs,
      rateLimit: r.rateLimit == null ? null : compileRateLimit(r.rateLimit, r.modelName !== '' ? [r.modelName, ...r.loraAdapters] : r.loraAdapters),
      sticky: r.sessionSticky ?? null,
      rules: r.rules.map((rule) => {
        const cumulative = new Int32Array(rule.targets.length);
        let sum = 0;
        rule.targets.forEach((t, i) => { sum += t.weight; cumulative[i] = sum; });
        const targets: CompiledTarget[] = rule.targets.map((t) => ({
          kind: t.kind, key: t.key,
          server: t.kind === 'server' && t.server >= 0 ? servers[t.server] : null,
          provider: t.kind === 'provider' && t.server >= 0 ? providers[t.server] ?? null : null,
        }));
        return {
          headers: rule.match ? rule.match.headers.map((h) => ({ ...compileMatch(h), name: h.name })) : [],
          uri: rule.match?.uri ? compileMatch(rule.match.uri) : null,
          bodyModel: rule.match ? rule.match.bodyModel : null,
          matchAll: rule.match === null || (rule.match.headers.length === 0 && rule.match.uri === null && rule.match.bodyModel === null),
          targets,
          cumulative,
          totalWeight: sum,
          fallback: rule.fallback !== undefined ? targets[rule.fallback] ?? null : null,
        };
      }),
    };
    // ir.routes is oldest first, so pushing keeps each candidate list oldest first.
    if (r.modelName !== '') {
      names.add(r.modelName);
      let list = byModel.get(r.modelName);
      if (!list) byModel.set(r.modelName, list = []);
      list.push(route);
    }
    for (const a of r.loraAdapters) {
      names.add(a);
      let list = byLora.get(a);
      if (!list) byLora.set(a, list = []);
      list.push(route);
    }
  }
  const data = [...names].sort().map((id) => ({ id, object: 'model', created: 0, owned_by: 'kthena' }));
  const modelIds = new Map<string, number>();
  ir.modelNames.forEach((n, i) => { const id = ir.modelIds[i]; if (id !== undefined && id >= 0) modelIds.set(n, id); });
  const gateway = ir.gateway.ports.length > 0 ? compileGatewaySnapshot(ir, origins) : null;
  if (gateway !== null) for (const rule of gateway.backends) for (const b of rule) if (b !== null) maxEndpoints = Math.max(maxEndpoints, b.endpoints.length);
  return {
    generation, profile: compileProfile(ir.scheduler), modelIds, byModel, byLora,
    modelsBody: JSON.stringify({ object: 'list', data }), origins, maxEndpoints, ir, gateway, rateLimitRedis,
    apiKeysKnown: apiKeys?.known ?? new Set(),
  };
}
