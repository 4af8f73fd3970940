/**
 * The translator: validated resources in, one routing IR snapshot out. Pure and deterministic (no
 * I/O, no clock, no randomness, code-unit string order only), so that equal inputs give a
 * deep-equal IR and the publisher can skip it. Problems are returned, never thrown; a resource that
 * cannot be translated is left out and reported, the rest still routes.
 */
import { re2SyntaxError } from '../shared/re2.js';
import { isIP } from 'node:net';
import type {
  EndpointIR, HeaderMatchIR, PdGroupIR, ProviderIR, RateLimitIR, RouteIR, RoutingIR, RuleIR, RuleMatchIR, SchedulerIR, ServerIR, StringMatchIR, TargetIR,
} from '../ir/types.js';
import { ROUTER_DEFAULT_SCHEDULER } from '../routerconfig/defaults.js';
import { translateGateway, type GatewayTranslateOptions } from './gateway/index.js';
import type { GatewayStatuses } from '../ir/gateway.js';
import type { Gateway, GatewayClass } from '../resources/gateway.js';

/** Gateway API off (file-mode default before --enable-gateway-api): no gateway IR, no statuses. */
export const GATEWAY_OFF: GatewayTranslateOptions = Object.freeze({ enableGatewayApi: false, enableInferenceExtension: false, podNamespace: 'default', defaultPort: 8080 });
import type { ModelRoute, ModelServer, Pod, Problem, ResourceSet, StringMatch } from '../resources/types.js';
import { deepFreeze, regexError } from '../resources/validate.js';
import { providerConfigError, resolveCredential, secretsByKey } from '../resources/external-provider.js';
import { PROVIDER_FALLBACK_ANNOTATION } from '../resources/annotations.js';
import { JWT_CLAIM_WITHOUT_AUTH, jwtClaimSource } from '../resources/sticky-auth.js';
import { apiKeysIR } from './api-keys.js';

export interface TranslateResult {
  ir: RoutingIR;
  problems: Problem[];
  /** Gateway API statuses (Gateway, listeners, HTTPRoute and InferencePool parents); empty while it is off. */
  gatewayStatuses: GatewayStatuses;
  /** Kthena's bootstrap objects assumed because they are missing (GatewayClass kthena-router, Gateway default). */
  bootstrap: (GatewayClass | Gateway)[];
}

export interface TranslateOptions {
  /** JWT authentication is configured (routerConfiguration `auth:`): JWTClaim session sources can have a value. */
  jwtAuth?: boolean;
}

/** Node's timers fire at once for delays above 2^31-1 ms, so no IR duration may exceed it. */
export const MAX_DURATION_MS = 2147483647;

/**
 * `scheduler` is the validated router configuration (`--router-config`), carried into the IR so
 * that workers compile their scheduling profile with the snapshot it belongs to.
 */
export function translate(resources: ResourceSet, scheduler: SchedulerIR = ROUTER_DEFAULT_SCHEDULER, gatewayOpts: GatewayTranslateOptions = GATEWAY_OFF, opts: TranslateOptions = {}): TranslateResult {
  const problems: Problem[] = [];

  const servers = [...resources.modelServers].sort((a, b) => cmp(key(a), key(b)));
  const selected = servers.map((s) => selectPods(s, resources.pods));
  const endpointKeys = [...new Set(selected.flatMap((pods) => pods.map(key)))].sort(cmp);
  const endpointIndex = new Map(endpointKeys.map((k, i) => [k, i]));
  const podsByKey = new Map(resources.pods.map((p) => [key(p), p]));
  const endpoints: EndpointIR[] = endpointKeys.map((k) => {
    const p = podsByKey.get(k)!;
    const startedAt = p.status.containersStartedAt ?? p.status.startTime;
    const started = startedAt !== undefined ? Date.parse(startedAt) : NaN;
    return {
      key: k, namespace: p.metadata.namespace, name: p.metadata.name, ip: p.status.podIP!, slot: -1, gen: 0,
      startedAtSec: Number.isNaN(started) ? 0 : Math.floor(started / 1000),
    };
  });

  const serverIndex = new Map<string, number>();
  const serverIRs: ServerIR[] = servers.map((s, i) => {
    serverIndex.set(key(s), i);
    return serverIR(s, selected[i]!.map((p) => endpointIndex.get(key(p))!).sort((a, b) => a - b), problems, pdGroupsOf(s, selected[i]!, endpointIndex));
  });

  const providers = providerIRs(resources);
  const providerIndex = new Map(providers.map((p, i) => [p.key, i]));

  const routes: RouteIR[] = [];
  for (const route of [...resources.modelRoutes].sort(oldestFirst)) {
    const ir = routeIR(route, serverIndex, providerIndex, problems, opts.jwtAuth === true);
    if (ir !== null) routes.push(ir);
  }

  const names = new Set<string>();
  for (const r of routes) {
    if (r.modelName !== '') names.add(r.modelName);
    for (const a of r.loraAdapters) names.add(a);
  }
  const modelNames = [...names].sort(cmp);
  const gw = translateGateway(resources, gatewayOpts);
  problems.push(...gw.problems);
  // Held but unused while the flags are off: said once per object, never silent.
  const off = (list: readonly { kind: string; metadata: { namespace: string; name: string } }[] | undefined, flag: string): void => {
    for (const o of list ?? []) problems.push({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, field: '', severity: 'warning', message: `ignored: ${flag} is off` });
  };
  if (!gatewayOpts.enableGatewayApi) {
    off(resources.gatewayClasses, '--enable-gateway-api');
    off(resources.gateways, '--enable-gateway-api');
    off(resources.httpRoutes, '--enable-gateway-api');
    off(resources.referenceGrants, '--enable-gateway-api');
  }
  if (!gatewayOpts.enableInferenceExtension) {
    off(resources.inferencePools, '--enable-gateway-api-inference-extension');
    off(resources.inferenceObjectives, '--enable-gateway-api-inference-extension');
  }
  const apiKeys = apiKeysIR(servers, resources.secrets, problems, opts.jwtAuth === true);
  return {
    // `providers` only when there are any, so that IRs (and golden files) without them keep their shape.
    ir: deepFreeze({ routes, servers: serverIRs, ...(providers.length > 0 ? { providers } : {}), endpoints, scheduler, modelNames, modelIds: [], gateway: gw.ir, ...(apiKeys !== undefined ? { apiKeys } : {}) }),
    problems, gatewayStatuses: gw.statuses, bootstrap: gw.bootstrap,
  };
}

/**
 * Kthena's candidate order (docs/reference/kthena-behaviour.md §6.3): creationTimestamp ascending, then resourceVersion (a plain
 * string compare, as Kthena does), then namespace/name.
 */
function oldestFirst(a: ModelRoute, b: ModelRoute): number {
  const ta = Date.parse(a.metadata.creationTimestamp);
  const tb = Date.parse(b.metadata.creationTimestamp);
  const byTime = Number.isNaN(ta) || Number.isNaN(tb)
    ? cmp(a.metadata.creationTimestamp, b.metadata.creationTimestamp)
    : ta - tb;
  return byTime || cmp(a.metadata.resourceVersion, b.metadata.resourceVersion) || cmp(key(a), key(b));
}

/** Same namespace, every matchLabel equal, Running, Ready, not terminating, with an IP. */
export function selectPods(server: ModelServer, pods: readonly Pod[]): Pod[] {
  const labels = Object.entries(server.spec.workloadSelector.matchLabels);
  // Validation refuses an empty selector; should one slip through, select nothing rather than the
  // whole namespace.
  if (labels.length === 0) return [];
  return pods.filter((p) =>
    p.metadata.namespace === server.metadata.namespace &&
    p.status.phase === 'Running' &&
    p.status.ready &&
    p.metadata.deletionTimestamp === undefined &&
    p.status.podIP !== undefined && isIP(p.status.podIP) !== 0 &&
    labels.every(([k, v]) => p.metadata.labels[k] === v));
}

/** docs/reference/kthena-behaviour.md §4.1: group by the groupKey label; decode labels are checked before prefill labels. */
function pdGroupsOf(s: ModelServer, pods: readonly Pod[], endpointIndex: Map<string, number>): PdGroupIR[] {
  const pd = s.spec.workloadSelector.pdGroup;
  if (pd === undefined) return [];
  const groups = new Map<string, PdGroupIR>();
  const matches = (p: Pod, want: Record<string, string>): boolean => Object.entries(want).every(([k, v]) => p.metadata.labels[k] === v);
  for (const p of pods) {
    const g = p.metadata.labels[pd.groupKey];
    if (g === undefined) continue;
    const role = matches(p, pd.decodeLabels) ? 'decode' : matches(p, pd.prefillLabels) ? 'prefill' : null;
    if (role === null) continue;
    let group = groups.get(g);
    if (group === undefined) groups.set(g, group = { name: g, decode: [], prefill: [] });
    group[role].push(endpointIndex.get(key(p))!);
  }
  return [...groups.values()].sort((a, b) => cmp(a.name, b.name)).map((g) => ({
    name: g.name, decode: g.decode.sort((a, b) => a - b), prefill: g.prefill.sort((a, b) => a - b),
  }));
}

function connectorOf(s: ModelServer): ServerIR['connector'] {
  if (s.spec.workloadSelector.pdGroup === undefined) return '';
  const t = s.spec.kvConnector?.type;
  if (t !== undefined && (t as string) !== '') return t;
  return s.spec.inferenceEngine === 'SGLang' ? 'sglang' : 'http';
}

function serverIR(s: ModelServer, endpoints: number[], problems: Problem[], pdGroups: PdGroupIR[]): ServerIR {
  const tp = s.spec.trafficPolicy;
  const ms = (v: number | undefined, field: string): number => {
    if (v === undefined) return 0;
    // Round up so that a sub-millisecond timeout stays a timeout instead of becoming "none" (0).
    const r = Math.ceil(v);
    if (r <= MAX_DURATION_MS) return r;
    problems.push(problem(s, field, `duration exceeds the supported maximum of ${MAX_DURATION_MS}ms (about 24.8 days); clamped`, 'warning'));
    return MAX_DURATION_MS;
  };
  return {
    key: key(s),
    namespace: s.metadata.namespace,
    name: s.metadata.name,
    model: s.spec.model ?? '',
    engine: s.spec.inferenceEngine,
    port: s.spec.workloadPort.port,
    timeoutMs: ms(tp?.timeoutMs, 'spec.trafficPolicy.timeout'),
    retryAttempts: retryAttempts(s, problems),
    retryIntervalMs: ms(tp?.retry?.retryIntervalMs, 'spec.trafficPolicy.retry.retryInterval'),
    endpoints,
    unsupported: '',
    pdGroups,
    connector: connectorOf(s),
  };
}

/** -1 when unset. The CRD sets no minimum; a negative count means "no retry", i.e. 0. */
function retryAttempts(s: ModelServer, problems: Problem[]): number {
  const retry = s.spec.trafficPolicy?.retry;
  if (retry === undefined) return -1;
  if (retry.attempts >= 0) return retry.attempts;
  problems.push(problem(s, 'spec.trafficPolicy.retry.attempts', `negative attempts (${retry.attempts}) read as 0`, 'warning'));
  return 0;
}

/**
 * Every valid ExternalModelProvider with its credential resolved (src/resources/external-provider.ts).
 * A provider whose credential does not resolve stays in the IR, marked not ready: its requests get
 * Kthena's 503 "not ready", not a 404.
 */
function providerIRs(resources: ResourceSet): ProviderIR[] {
  const secrets = secretsByKey(resources.secrets);
  return [...(resources.externalModelProviders ?? [])].sort((a, b) => cmp(key(a), key(b))).map((p) => {
    const spec = p.spec;
    const url = new URL(spec.baseURL);
    const cred = resolveCredential(spec, p.metadata.namespace, secrets);
    const scheme = spec.auth?.scheme ?? (spec.providerType === 'Anthropic' ? 'APIKey' : 'Bearer');
    const headers = Object.entries(spec.headers ?? {}).sort((a, b) => cmp(a[0].toLowerCase(), b[0].toLowerCase())).flat();
    const config = providerConfigError(spec);
    const resolved = cred.reason === 'CredentialResolved';
    return {
      key: key(p), namespace: p.metadata.namespace, name: p.metadata.name,
      type: spec.providerType,
      model: spec.model ?? '',
      origin: url.origin,
      basePath: url.pathname.replace(/\/+$/, ''),
      insecureSkipVerify: spec.insecureSkipVerify,
      headers,
      authHeader: resolved ? (scheme === 'APIKey' ? 'x-api-key' : 'authorization') : '',
      authValue: resolved ? (scheme === 'APIKey' ? cred.value : `Bearer ${cred.value}`) : '',
      notReady: config !== null ? 'ConfigurationInvalid' : cred.reason === 'CredentialNotRequired' || resolved ? '' : cred.reason,
    };
  });
}

function routeIR(route: ModelRoute, serverIndex: Map<string, number>, providerIndex: Map<string, number>, problems: Problem[], jwtAuth: boolean): RouteIR | null {
  const ns = route.metadata.namespace;
  const rules: RuleIR[] = [];
  const fallbackOn = providerFallback(route, problems);
  for (const [i, rule] of route.spec.rules.entries()) {
    const targets: TargetIR[] = rule.targetModels.map((t, j) => {
      if (t.modelServerName !== undefined && t.modelServerName !== '') {
        const k = `${ns}/${t.modelServerName}`;
        const idx = serverIndex.get(k);
        if (idx === undefined) {
          problems.push(problem(route, `spec.rules[${i}].targetModels[${j}].modelServerName`, `ModelServer ${k} not found`, 'warning'));
        }
        return { kind: 'server', key: k, server: idx ?? -1, weight: t.weight };
      }
      const k = `${ns}/${t.externalModelProviderName ?? ''}`;
      const idx = providerIndex.get(k);
      if (idx === undefined) {
        problems.push(problem(route, `spec.rules[${i}].targetModels[${j}].externalModelProviderName`, `ExternalModelProvider ${k} not found`, 'warning'));
      }
      return { kind: 'provider', key: k, server: idx ?? -1, weight: t.weight };
    });
    const totalWeight = targets.reduce((sum, t) => sum + t.weight, 0);
    if (totalWeight <= 0 || targets.length === 0) {
      // Validation refuses this; a rule that can never pick a target would fail every request.
      problems.push(problem(route, `spec.rules[${i}].targetModels`, 'total weight must be greater than zero', 'rejected'));
      return null;
    }
    const ir: RuleIR = { name: rule.name ?? '', match: matchIR(rule.modelMatch), targets, totalWeight };
    if (fallbackOn) {
      const p = targets.findIndex((t) => t.kind === 'provider');
      if (p >= 0 && targets.some((t) => t.kind === 'server')) ir.fallback = p;
    }
    rules.push(ir);
  }
  if (fallbackOn && !rules.some((r) => r.fallback !== undefined)) {
    problems.push(problem(route, `metadata.annotations[${PROVIDER_FALLBACK_ANNOTATION}]`, 'no rule has both a modelServerName and an externalModelProviderName target; nothing can fail over', 'warning'));
  }
  const modelName = route.spec.modelName ?? '';
  const loraAdapters = [...(route.spec.loraAdapters ?? [])];
  // Validation refuses the following too; checked again so that no typed input, whatever its
  // source, can make validateIR refuse the whole snapshot.
  if (modelName === '' && loraAdapters.length === 0) {
    problems.push(problem(route, 'spec', 'ModelName and LoraAdapters cannot both be empty', 'rejected'));
    return null;
  }
  const emptyLora = loraAdapters.indexOf('');
  if (emptyLora >= 0) {
    problems.push(problem(route, `spec.loraAdapters[${emptyLora}]`, 'lora adapter name cannot be an empty string', 'rejected'));
    return null;
  }
  for (const [i, rule] of rules.entries()) {
    const m = rule.match;
    if (m === null) continue;
    if (m.headers.some((h) => h.name === '')) {
      problems.push(problem(route, `spec.rules[${i}].modelMatch.headers`, 'header name must not be empty', 'rejected'));
      return null;
    }
    for (const sm of [...m.headers, ...(m.uri !== null ? [m.uri] : [])]) {
      const err = sm.type === 'regex' ? regexError(sm.value) : null;
      if (err !== null) {
        problems.push(problem(route, `spec.rules[${i}].modelMatch`, err, 'rejected'));
        return null;
      }
    }
  }
  const out: RouteIR = {
    key: key(route),
    namespace: ns,
    name: route.metadata.name,
    modelName,
    loraAdapters,
    hasParentRefs: (route.spec.parentRefs ?? []).length > 0,
    rules,
    rateLimit: rateLimitIR(route, problems),
  };
  const sticky = route.spec.sessionSticky;
  if (sticky !== undefined) {
    const jwt = jwtClaimSource(route.spec);
    if (jwt >= 0 && !jwtAuth) {
      // The proposal: a JWTClaim source without JWT authentication would always be empty, so the
      // route is refused rather than silently never sticky.
      problems.push(problem(route, `spec.sessionSticky.sources[${jwt}].type`, JWT_CLAIM_WITHOUT_AUTH, 'rejected'));
      return null;
    }
    out.sessionSticky = {
      ttlSec: sticky.sessionAffinitySeconds ?? 10_800,
      sources: sticky.sources.map((s) => ({ type: s.type, name: s.type === 'Header' ? s.name.toLowerCase() : s.name })),
    };
  }
  return out;
}

/** The route's opt-in to failing over to its provider target ("true"; "false" or absent: Kthena's behaviour). */
function providerFallback(route: ModelRoute, problems: Problem[]): boolean {
  const v = route.metadata.annotations?.[PROVIDER_FALLBACK_ANNOTATION];
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  problems.push(problem(route, `metadata.annotations[${PROVIDER_FALLBACK_ANNOTATION}]`, `${JSON.stringify(v)} is neither "true" nor "false"; read as "false"`, 'warning'));
  return false;
}

const kUnitSeconds: Readonly<Record<string, number>> = { second: 1, minute: 60, hour: 3600, day: 86_400, month: 2_592_000 };

/**
 * spec.rateLimit. A field that is absent is no limit in that direction (Kthena kept a removed
 * limit alive until the route was deleted, #1505/#1704). Local buckets are listed by publish/.
 */
function rateLimitIR(route: ModelRoute, problems: Problem[]): RateLimitIR | null {
  const rl = route.spec.rateLimit;
  if (rl === undefined) return null;
  const input = rl.inputTokensPerUnit ?? 0;
  const output = rl.outputTokensPerUnit ?? 0;
  if (input === 0 && output === 0) return null;
  let redisAddress = '';
  const address = rl.global?.redis?.address;
  if (address !== undefined) {
    redisAddress = address.trim();
    if (!/^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(:\d{1,5})?$/.test(redisAddress)) {
      // Still global: the worker answers as when that Redis is unreachable (--rate-limit-redis-failure).
      problems.push(problem(route, 'spec.rateLimit.global.redis.address', `"${address}" is not host:port; requests are answered as when Redis is unreachable`, 'warning'));
    }
  }
  return { inputTokensPerUnit: input, outputTokensPerUnit: output, unitSeconds: kUnitSeconds[rl.unit] ?? 1, redisAddress, buckets: [] };
}

function matchIR(mm: ModelRoute['spec']['rules'][number]['modelMatch']): RuleMatchIR | null {
  if (mm === undefined) return null;
  const headers: HeaderMatchIR[] = [];
  // Sorted so that key order in the manifest never changes the snapshot; conditions are ANDed.
  for (const [name, sm] of Object.entries(mm.headers ?? {})) {
    const m = stringMatchIR(sm);
    if (m !== null) headers.push({ name: name.toLowerCase(), type: m.type, value: m.value });
  }
  headers.sort((a, b) => cmp(a.name, b.name) || cmp(a.type, b.type) || cmp(a.value, b.value));
  const uri = mm.uri !== undefined ? stringMatchIR(mm.uri) : null;
  const bodyModel = mm.body?.model ?? null;
  // A match with no condition matches every request, exactly like no match.
  if (headers.length === 0 && uri === null && bodyModel === null) return null;
  return { headers, uri, bodyModel };
}

/** Kthena's evaluation order: exact, then prefix, then regex; none set matches anything (null). */
function stringMatchIR(sm: StringMatch): StringMatchIR | null {
  if (sm.exact !== undefined) return { type: 'exact', value: sm.exact };
  if (sm.prefix !== undefined) return { type: 'prefix', value: sm.prefix };
  if (sm.regex !== undefined) return { type: 'regex', value: sm.regex };
  return null;
}

/**
 * Every structural problem of an IR (indexes in range, weights, duplicates, ranges of the wire
 * format), gathered rather than stopping at the first. Non-empty means: do not publish.
 */
export function validateIR(ir: RoutingIR): string[] {
  const errs: string[] = [];
  const uint32 = (v: number, max = 0xffffffff): boolean => Number.isInteger(v) && v >= 0 && v <= max;

  const endpointKeys = new Set<string>();
  ir.endpoints.forEach((e, i) => {
    const at = `endpoints[${i}] (${e.key})`;
    if (e.key !== `${e.namespace}/${e.name}`) errs.push(`${at}: key must be namespace/name`);
    if (endpointKeys.has(e.key)) errs.push(`${at}: duplicate endpoint key`);
    endpointKeys.add(e.key);
    if (i > 0 && !(ir.endpoints[i - 1]!.key < e.key)) errs.push(`${at}: endpoints must be sorted by key`);
    if (isIP(e.ip) === 0) errs.push(`${at}: ip ${JSON.stringify(e.ip)} is not an IP address`);
    if (!Number.isInteger(e.slot) || e.slot < -1) errs.push(`${at}: slot ${e.slot} must be an integer >= -1`);
    if (!Number.isInteger(e.gen)) errs.push(`${at}: gen ${e.gen} must be an integer`);
    if (!uint32(e.startedAtSec)) errs.push(`${at}: startedAtSec ${e.startedAtSec} must be a uint32`);
  });
  if (ir.modelIds.length !== 0 && ir.modelIds.length !== ir.modelNames.length) errs.push('modelIds must be empty or parallel to modelNames');
  ir.modelNames.forEach((n, i) => { if (i > 0 && !(ir.modelNames[i - 1]! < n)) errs.push(`modelNames[${i}]: must be sorted and unique`); });

  const serverKeys = new Set<string>();
  ir.servers.forEach((s, i) => {
    const at = `servers[${i}] (${s.key})`;
    if (s.key !== `${s.namespace}/${s.name}`) errs.push(`${at}: key must be namespace/name`);
    if (serverKeys.has(s.key)) errs.push(`${at}: duplicate server key`);
    serverKeys.add(s.key);
    if (s.engine !== 'vLLM' && s.engine !== 'SGLang') errs.push(`${at}: unknown engine ${JSON.stringify(s.engine)}`);
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) errs.push(`${at}: port ${s.port} out of range 1-65535`);
    if (!uint32(s.timeoutMs, MAX_DURATION_MS)) errs.push(`${at}: timeoutMs ${s.timeoutMs} must be an integer in 0-${MAX_DURATION_MS}`);
    if (!uint32(s.retryIntervalMs, MAX_DURATION_MS)) errs.push(`${at}: retryIntervalMs ${s.retryIntervalMs} must be an integer in 0-${MAX_DURATION_MS}`);
    if (!Number.isInteger(s.retryAttempts) || s.retryAttempts < -1 || s.retryAttempts > 2147483647) errs.push(`${at}: retryAttempts ${s.retryAttempts} must be an integer >= -1`);
    s.endpoints.forEach((e, j) => {
      if (!Number.isInteger(e) || e < 0 || e >= ir.endpoints.length) errs.push(`${at}: endpoints[${j}] = ${e} is out of range`);
      else if (j > 0 && !(s.endpoints[j - 1]! < e)) errs.push(`${at}: endpoints must be strictly ascending (unique, in key order)`);
    });
    const own = new Set(s.endpoints);
    const seen = new Set<number>();
    s.pdGroups.forEach((g, j) => {
      if (j > 0 && !(s.pdGroups[j - 1]!.name < g.name)) errs.push(`${at}: pdGroups must be sorted by name, unique`);
      for (const e of [...g.decode, ...g.prefill]) {
        if (!own.has(e)) errs.push(`${at}: pdGroups[${j}] (${g.name}) names endpoint ${e}, not one of the server's`);
        if (seen.has(e)) errs.push(`${at}: endpoint ${e} is in more than one PD role or group`);
        seen.add(e);
      }
    });
    if (s.pdGroups.length > 0 && s.connector === '') errs.push(`${at}: PD groups need a connector`);
    if (!['', 'http', 'lmcache', 'nixl', 'mooncake', 'sglang'].includes(s.connector)) errs.push(`${at}: unknown connector ${JSON.stringify(s.connector)}`);
  });

  const providerKeys = new Set<string>();
  (ir.providers ?? []).forEach((p, i) => {
    const at = `providers[${i}] (${p.key})`;
    if (p.key !== `${p.namespace}/${p.name}`) errs.push(`${at}: key must be namespace/name`);
    if (providerKeys.has(p.key)) errs.push(`${at}: duplicate provider key`);
    providerKeys.add(p.key);
    if (p.type !== 'OpenAI' && p.type !== 'Anthropic') errs.push(`${at}: unknown provider type ${JSON.stringify(p.type)}`);
    if (!/^https:\/\/[^/?#]+$/.test(p.origin)) errs.push(`${at}: origin ${JSON.stringify(p.origin)} must be https://host[:port]`);
    if (p.headers.length % 2 !== 0) errs.push(`${at}: headers must be name/value pairs`);
    if (p.authHeader !== '' && p.authHeader !== 'authorization' && p.authHeader !== 'x-api-key') errs.push(`${at}: unknown auth header ${JSON.stringify(p.authHeader)}`);
  });

  const routeKeys = new Set<string>();
  ir.routes.forEach((r, i) => {
    const at = `routes[${i}] (${r.key})`;
    if (r.key !== `${r.namespace}/${r.name}`) errs.push(`${at}: key must be namespace/name`);
    if (routeKeys.has(r.key)) errs.push(`${at}: duplicate route key`);
    routeKeys.add(r.key);
    if (r.modelName === '' && r.loraAdapters.length === 0) errs.push(`${at}: neither modelName nor loraAdapters`);
    r.loraAdapters.forEach((a, j) => { if (a === '') errs.push(`${at}: loraAdapters[${j}] is empty`); });
    r.rules.forEach((rule, j) => {
      const rat = `${at}.rules[${j}]`;
      if (rule.targets.length === 0) errs.push(`${rat}: no targets`);
      let sum = 0;
      rule.targets.forEach((t, k) => {
        const tat = `${rat}.targets[${k}]`;
        if (!uint32(t.weight)) errs.push(`${tat}: weight ${t.weight} must be a non-negative integer`);
        sum += t.weight;
        if (t.kind === 'server') {
          if (!Number.isInteger(t.server) || t.server < -1 || t.server >= ir.servers.length) errs.push(`${tat}: server index ${t.server} is out of range`);
          else if (t.server >= 0 && ir.servers[t.server]!.key !== t.key) errs.push(`${tat}: server index ${t.server} is ${ir.servers[t.server]!.key}, not ${t.key}`);
        } else if (t.kind === 'provider') {
          const providers = ir.providers ?? [];
          if (!Number.isInteger(t.server) || t.server < -1 || t.server >= providers.length) errs.push(`${tat}: provider index ${t.server} is out of range`);
          else if (t.server >= 0 && providers[t.server]!.key !== t.key) errs.push(`${tat}: provider index ${t.server} is ${providers[t.server]!.key}, not ${t.key}`);
        } else {
          errs.push(`${tat}: unknown target kind ${JSON.stringify(t.kind)}`);
        }
      });
      if (rule.fallback !== undefined && rule.targets[rule.fallback]?.kind !== 'provider') errs.push(`${rat}: fallback ${rule.fallback} is not a provider target`);
      if (!(rule.totalWeight > 0)) errs.push(`${rat}: totalWeight ${rule.totalWeight} must be > 0`);
      else if (rule.totalWeight !== sum) errs.push(`${rat}: totalWeight ${rule.totalWeight} is not the sum of the target weights (${sum})`);
      else if (!uint32(rule.totalWeight)) errs.push(`${rat}: totalWeight ${rule.totalWeight} exceeds uint32`);
      const m = rule.match;
      if (m === null) return;
      const checkMatch = (sm: StringMatchIR, where: string): void => {
        if (sm.type !== 'exact' && sm.type !== 'prefix' && sm.type !== 'regex') errs.push(`${where}: unknown match type ${JSON.stringify(sm.type)}`);
        if (sm.type === 'regex') {
          // The workers compile with RE2 (src/shared/re2.ts), so that is the engine to ask.
          const err = re2SyntaxError(sm.value);
          if (err !== null) errs.push(`${where}: regex does not compile: ${err}`);
        }
      };
      m.headers.forEach((h, k) => {
        const hat = `${rat}.match.headers[${k}]`;
        if (h.name === '' || h.name !== h.name.toLowerCase()) errs.push(`${hat}: header name ${JSON.stringify(h.name)} must be non-empty lower case`);
        checkMatch(h, hat);
      });
      if (m.uri !== null) checkMatch(m.uri, `${rat}.match.uri`);
    });
  });
  return errs;
}

function key(o: { metadata: { namespace: string; name: string } }): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function problem(o: ModelRoute | ModelServer, field: string, message: string, severity: Problem['severity']): Problem {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, field, message, severity };
}
