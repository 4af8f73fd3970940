/**
 * Phase 5: the Gateway IR. Endpoints are final now, so backends and pools name them by index;
 * programmed listeners get their match entries in precedence order; each port gets its hostname
 * lookup; each Gateway lists the models its ModelRoutes bind (docs/reference/kthena-behaviour.md §6.3).
 */
import type { BackendIR, GatewayEntryIR, GatewayIR, ListenerIR, MatchEntryIR, PortIR, RuleIR } from '../../ir/gateway.js';
import { GATEWAY_GROUP, type Gateway } from '../../resources/gateway.js';
import type { ModelRoute } from '../../resources/types.js';
import { cmp, key, timeOf } from './common.js';
import type { TranslateContext } from './context.js';
import type { Listeners } from './listeners.js';
import type { Pools } from './pools.js';
import type { Routes } from './routes.js';

export function buildIR(ctx: TranslateContext, listenerPhase: Listeners, routes: Routes, pools: Pools): GatewayIR {
  const { resources } = ctx;
  const { gateways: gwStates, byPort } = listenerPhase;
  const { routeMap, keptRules, pools: poolIRs, poolEndpointKeys, poolIndex } = pools;
  const endpoints = ctx.endpoints.sorted();
  const epIndex = new Map(endpoints.map((e, i) => [e.key, i]));
  const toIdx = (keys: string[]): number[] => [...new Set(keys.map((k) => epIndex.get(k)!))].sort((a, b) => a - b);
  poolIRs.forEach((p, i) => { p.endpoints = toIdx(poolEndpointKeys[i]!); });
  const ruleIRs: RuleIR[] = keptRules.map(({ rule }) => ({
    ...rule,
    route: routeMap.get(rule.route)!,
    backends: rule.backends.map((b): BackendIR => ({
      kind: b.kind, key: b.key, weight: b.weight, status: b.status, reason: b.reason,
      endpoints: b.kind === 'pool' ? poolIRs[poolIndex.get(b.poolKey)!]!.endpoints : toIdx(b.endpointKeys),
      pool: b.kind === 'pool' ? poolIndex.get(b.poolKey)! : -1,
      requestHeaders: b.requestHeaders, responseHeaders: b.responseHeaders,
    })),
  }));

  const listeners: ListenerIR[] = [];
  const gatewayEntries: GatewayEntryIR[] = [];
  const modelRoutes = [...resources.modelRoutes].sort(kthenaOldestFirst);
  for (const g of gwStates) {
    const programmed = g.listeners.filter((st) => st.programmed);
    for (const st of programmed) {
      st.irIndex = listeners.length;
      listeners.push({
        gateway: key(g.gw), gatewayIndex: gatewayEntries.length, name: st.l.name, port: st.l.port, protocol: st.l.protocol as 'HTTP' | 'HTTPS',
        hostname: st.l.hostname ?? null, certificates: st.certificates, entries: st.entries.sort(entryOrder),
      });
    }
    gatewayEntries.push({
      key: key(g.gw), namespace: g.gw.metadata.namespace, name: g.gw.metadata.name,
      listeners: programmed.map((st) => st.l.name),
      models: g.accepted ? modelsFor(g.gw, modelRoutes) : [],
    });
  }

  const ports: PortIR[] = [];
  for (const [port, list] of [...byPort].sort((a, b) => a[0] - b[0])) {
    const live = list.filter((st) => st.programmed);
    if (live.length === 0) continue;
    const p: PortIR = { port, protocol: live[0]!.l.protocol as 'HTTP' | 'HTTPS', exact: [], wildcard: [], any: -1 };
    for (const st of live) {
      const h = st.l.hostname;
      if (h === undefined) p.any = st.irIndex;
      else if (h.startsWith('*.')) p.wildcard.push([h.slice(1), st.irIndex]);
      else p.exact.push([h, st.irIndex]);
    }
    p.exact.sort((a, b) => cmp(a[0], b[0]));
    p.wildcard.sort((a, b) => b[0].length - a[0].length || cmp(a[0], b[0]));
    ports.push(p);
  }
  return {
    ports, listeners, gateways: gatewayEntries, routes: routes.routeIRs.filter((_r, i) => routeMap.has(i)), rules: ruleIRs, pools: poolIRs, endpoints,
  };
}

const PATH_RANK: Readonly<Record<MatchEntryIR['pathType'], number>> = { Exact: 0, RegularExpression: 1, PathPrefix: 2 };

/** docs/reference/gateway-api.md §3.3 precedence across all routes on a listener; see the header of ir/gateway.ts. */
export function entryOrder(a: MatchEntryIR, b: MatchEntryIR): number {
  return PATH_RANK[a.pathType] - PATH_RANK[b.pathType] ||
    b.path.length - a.path.length ||
    Number(b.method !== '') - Number(a.method !== '') ||
    b.headers.length - a.headers.length ||
    b.queryParams.length - a.queryParams.length ||
    hostRank(b.hostname) - hostRank(a.hostname) ||
    a.route - b.route || // routes are indexed oldest first, then namespace/name
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex;
}

/** Exact hostnames outrank wildcards, longer outranks shorter, '*' (any) comes last. */
function hostRank(h: string): number {
  if (h === '*') return 0;
  return h.startsWith('*.') ? h.length : 1000 + h.length;
}

/** Kthena's ModelRoute order (docs/reference/kthena-behaviour.md §6.3): creationTimestamp, resourceVersion (string), namespace/name. */
function kthenaOldestFirst(a: ModelRoute, b: ModelRoute): number {
  return timeOf(a.metadata) - timeOf(b.metadata) || cmp(a.metadata.resourceVersion, b.metadata.resourceVersion) || cmp(key(a), key(b));
}

/**
 * docs/reference/kthena-behaviour.md §6.3: a ModelRoute with parentRefs binds to a Gateway one of them names (group/kind unset or
 * Gateway API's, namespace defaulting to the route's; a sectionName must name one of its listeners,
 * not necessarily the receiving one; port ignored). Without parentRefs it binds to every Gateway in
 * its own namespace.
 */
export function modelRouteBindsTo(route: ModelRoute, gw: Gateway): boolean {
  const refs = route.spec.parentRefs ?? [];
  if (refs.length === 0) return route.metadata.namespace === gw.metadata.namespace;
  return refs.some((p) => (p.group === undefined || p.group === GATEWAY_GROUP) && (p.kind === undefined || p.kind === 'Gateway') &&
    p.name === gw.metadata.name && (p.namespace ?? route.metadata.namespace) === gw.metadata.namespace &&
    (p.sectionName === undefined || gw.spec.listeners.some((l) => l.name === p.sectionName)));
}

function modelsFor(gw: Gateway, routes: readonly ModelRoute[]): { name: string; routes: string[] }[] {
  const byName = new Map<string, string[]>();
  for (const r of routes) {
    if (!modelRouteBindsTo(r, gw)) continue;
    const names = new Set([...(r.spec.modelName ? [r.spec.modelName] : []), ...(r.spec.loraAdapters ?? [])]);
    for (const n of names) {
      const list = byName.get(n) ?? [];
      list.push(key(r));
      byName.set(n, list);
    }
  }
  return [...byName].sort((a, b) => cmp(a[0], b[0])).map(([name, rs]) => ({ name, routes: rs }));
}
