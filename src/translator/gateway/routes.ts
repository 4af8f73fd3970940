/**
 * Phase 3: HTTPRoutes, oldest first. Each rule's backends are resolved once (they do not depend on
 * the parent); then each parentRef is checked against the listeners it names (section, port,
 * allowed kinds and namespaces, hostnames) and the route's match entries are added to the
 * listeners that accept it. Route and rule indexes here count every route; phase 4 drops the ones
 * no listener accepted.
 */
import type { BackendIR, ConditionIR, ParentRefIR, RouteParentStatusIR, RuleIR } from '../../ir/gateway.js';
import { GATEWAY_GROUP, INFERENCE_GROUP, KTHENA_CONTROLLER_NAME, type HTTPRoute, type HTTPRouteRule } from '../../resources/gateway.js';
import { MAX_DURATION_MS, cmp, cond, key, oldestFirst, problem, referenceGranted, selectorMatches } from './common.js';
import type { TranslateContext } from './context.js';
import { filtersIR, firstByName, unsupportedFilter } from './filters.js';
import type { ListenerState, Listeners } from './listeners.js';

/** A rule whose backends still name endpoints by key (indexes exist once the endpoints are final). */
export interface PendingRule { rule: Omit<RuleIR, 'backends'> & { backends: (Omit<BackendIR, 'endpoints' | 'pool'> & { endpointKeys: string[]; poolKey: string })[] } }

export interface Routes {
  /** Every route, oldest first (the index a rule's and an entry's `route` counts in). */
  routeIRs: { key: string; namespace: string; name: string }[];
  rules: PendingRule[];
  /** pool key -> gateway keys with an accepted route using it. */
  poolParents: Map<string, Set<string>>;
  /** Indexes of routes accepted by at least one of our parents. */
  attachedRoutes: Set<number>;
}

export function translateRoutes(ctx: TranslateContext, listeners: Listeners): Routes {
  const { resources, problems, statuses, nsLabels } = ctx;
  const gwByKey = listeners.byKey;
  const routes = [...(resources.httpRoutes ?? [])].sort(oldestFirst);
  const routeIRs = routes.map((r) => ({ key: key(r), namespace: r.metadata.namespace, name: r.metadata.name }));
  const rules: PendingRule[] = [];
  const poolParents = new Map<string, Set<string>>();
  const attachedRoutes = new Set<number>();

  routes.forEach((route, routeIndex) => {
    const m = route.metadata;
    const ns = m.namespace;
    // Backends and rule validity do not depend on the parent.
    let resolvedRefs = cond('ResolvedRefs', 'True', 'ResolvedRefs', 'All references are resolved', m);
    const dropped: string[] = [];
    const ruleIdx: number[] = [];
    const usedPools = new Set<string>();
    route.spec.rules.forEach((rule, i) => {
      const unsupported = unsupportedFilter(rule);
      if (unsupported !== null) {
        dropped.push(`Dropped Rule ${i}: ${unsupported}`);
        problems.push(problem(route, `spec.rules[${i}]`, `rule dropped: ${unsupported}`, 'warning'));
        ruleIdx.push(-1);
        return;
      }
      const backends = rule.backendRefs.map((b, j) => {
        const r = resolveBackend(ctx, route, b, j, i);
        if (r.reason !== '' && resolvedRefs.status === 'True') resolvedRefs = cond('ResolvedRefs', 'False', r.reason, r.message, m);
        if (r.kind === 'pool') usedPools.add(r.poolKey);
        return r;
      });
      const totalWeight = backends.reduce((s, b) => s + b.weight, 0);
      const filters = filtersIR(rule.filters);
      const directStatus = filters.redirect !== null ? 0 : backends.length === 0 || totalWeight === 0 ? 500 : 0;
      ruleIdx.push(rules.length);
      rules.push({
        rule: {
          route: routeIndex, ruleIndex: i, name: rule.name ?? '', filters, backends, totalWeight, directStatus,
          requestTimeoutMs: clampMs(rule.timeouts?.requestMs), backendRequestTimeoutMs: clampMs(rule.timeouts?.backendRequestMs),
        },
      });
    });
    const allDropped = dropped.length === route.spec.rules.length;

    const parents: RouteParentStatusIR[] = [];
    route.spec.parentRefs.forEach((pr) => {
      if (pr.group !== GATEWAY_GROUP || pr.kind !== 'Gateway') return;
      const g = gwByKey.get(`${pr.namespace ?? ns}/${pr.name}`);
      if (g === undefined) return;
      const parentRef: ParentRefIR = { group: pr.group, kind: pr.kind, name: pr.name };
      if (pr.namespace !== undefined) parentRef.namespace = pr.namespace;
      if (pr.sectionName !== undefined) parentRef.sectionName = pr.sectionName;
      if (pr.port !== undefined) parentRef.port = pr.port;
      const candidates = g.listeners.filter((st) => (pr.sectionName === undefined || st.l.name === pr.sectionName) && (pr.port === undefined || st.l.port === pr.port));
      let accepted: ConditionIR;
      const attachedTo: { st: ListenerState; hosts: string[] }[] = [];
      if (!g.accepted) {
        accepted = cond('Accepted', 'False', 'NoMatchingParent', 'The Gateway is not accepted', m);
      } else if (candidates.length === 0) {
        accepted = cond('Accepted', 'False', 'NoMatchingParent', `No listener matches${pr.sectionName !== undefined ? ` sectionName ${pr.sectionName}` : ''}${pr.port !== undefined ? ` port ${pr.port}` : ''}`, m);
      } else {
        let allowed = 0;
        let ready = 0;
        for (const st of candidates) {
          if (!st.allowsHTTPRoute || !namespaceAllowed(st, ns, nsLabels)) continue;
          allowed++;
          if (!st.programmed) continue;
          ready++;
          const hosts = intersectHostnames(st.l.hostname, route.spec.hostnames);
          if (hosts !== null) attachedTo.push({ st, hosts });
        }
        if (attachedTo.length > 0 && allDropped) accepted = cond('Accepted', 'False', 'UnsupportedValue', dropped.join('; '), m);
        else if (attachedTo.length > 0) accepted = cond('Accepted', 'True', 'Accepted', 'Route is accepted', m);
        else if (allowed === 0) accepted = cond('Accepted', 'False', 'NotAllowedByListeners', 'No listener of the parent allows this route (allowedRoutes kinds or namespaces)', m);
        else if (ready === 0) accepted = cond('Accepted', 'False', 'NoMatchingParent', 'No matching listener is programmed', m);
        else accepted = cond('Accepted', 'False', 'NoMatchingListenerHostname', 'No listener hostname intersects the route hostnames', m);
      }
      const conditions = [accepted, resolvedRefs];
      if (accepted.status === 'True' && dropped.length > 0) conditions.push(cond('PartiallyInvalid', 'True', 'UnsupportedValue', dropped.join('; '), m));
      parents.push({ parentRef, controllerName: KTHENA_CONTROLLER_NAME, conditions });
      if (accepted.status !== 'True') return;
      attachedRoutes.add(routeIndex);
      for (const pk of usedPools) {
        const set = poolParents.get(pk) ?? new Set<string>();
        set.add(key(g.gw));
        poolParents.set(pk, set);
      }
      for (const { st, hosts } of attachedTo) {
        if (st.attached.has(key(route))) continue;
        st.attached.add(key(route));
        for (const h of hosts) {
          route.spec.rules.forEach((rule, i) => {
            if (ruleIdx[i] === -1) return;
            rule.matches.forEach((mm, j) => {
              st.entries.push({
                hostname: h, route: routeIndex, rule: ruleIdx[i]!, ruleIndex: i, matchIndex: j,
                pathType: mm.path.type,
                path: mm.path.type === 'PathPrefix' ? trimSlash(mm.path.value) : mm.path.value,
                method: mm.method ?? '',
                headers: firstByName(mm.headers, true).map((h2) => ({ name: h2.name.toLowerCase(), type: h2.type, value: h2.value })),
                queryParams: firstByName(mm.queryParams, false).map((q) => ({ name: q.name, type: q.type, value: q.value })),
              });
            });
          });
        }
      }
    });
    statuses.httpRoutes.push({ namespace: ns, name: m.name, generation: m.generation, status: { parents } });
  });
  return { routeIRs, rules, poolParents, attachedRoutes };
}

function resolveBackend(ctx: TranslateContext, route: HTTPRoute, b: HTTPRouteRule['backendRefs'][number], j: number, i: number):
  Omit<BackendIR, 'endpoints' | 'pool'> & { endpointKeys: string[]; poolKey: string; message: string } {
  const { opts, grants, poolsByKey, services, problems, pods } = ctx;
  const ns = b.namespace ?? route.metadata.namespace;
  const k = `${ns}/${b.name}`;
  const bf = filtersIR(b.filters);
  const base = { key: k, weight: b.weight, requestHeaders: bf.requestHeaders, responseHeaders: bf.responseHeaders, endpointKeys: [] as string[], poolKey: '' };
  const invalid = (reason: string, message: string) => ({ ...base, kind: 'invalid' as const, status: 500, reason, message });
  const isService = b.group === '' && b.kind === 'Service';
  const isPool = b.group === INFERENCE_GROUP && b.kind === 'InferencePool';
  if (!isService && !(isPool && opts.enableInferenceExtension)) {
    return invalid('InvalidKind', `backendRefs[${j}] of rule ${i}: kind ${b.group === '' ? 'core' : b.group}/${b.kind} is not supported`);
  }
  if (ns !== route.metadata.namespace && !referenceGranted(grants, GATEWAY_GROUP, 'HTTPRoute', route.metadata.namespace, b.group, b.kind, ns, b.name)) {
    return invalid('RefNotPermitted', `backendRefs[${j}] of rule ${i}: ${b.kind} ${k} is in another namespace and no ReferenceGrant allows it`);
  }
  if (isPool) {
    const pool = poolsByKey.get(k);
    if (pool === undefined) return invalid('BackendNotFound', `backendRefs[${j}] of rule ${i}: InferencePool ${k} not found`);
    // backendRef.port is ignored for an InferencePool: its targetPorts decide (GIE conformance).
    return { ...base, kind: 'pool' as const, status: 0, reason: '', message: '', poolKey: k };
  }
  const svc = services.get(k);
  if (svc === undefined) return invalid('BackendNotFound', `backendRefs[${j}] of rule ${i}: Service ${k} not found`);
  if (svc.spec.type === 'ExternalName') return invalid('InvalidKind', `backendRefs[${j}] of rule ${i}: ExternalName Service ${k} is not supported`);
  const sp = svc.spec.ports.find((p) => p.port === b.port);
  if (sp === undefined) return invalid('BackendNotFound', `backendRefs[${j}] of rule ${i}: Service ${k} has no port ${b.port}`);
  const endpointKeysOut: string[] = [];
  if (svc.spec.selector === undefined) {
    problems.push(problem(route, `spec.rules[${i}].backendRefs[${j}]`, `Service ${k} has no selector; its endpoints are not known to this router (answered 503)`, 'warning'));
  } else if (typeof sp.targetPort === 'string') {
    problems.push(problem(route, `spec.rules[${i}].backendRefs[${j}]`, `Service ${k} port ${sp.port} uses the named targetPort ${sp.targetPort}, which this router cannot resolve yet (answered 503)`, 'warning'));
  } else {
    const sel = Object.entries(svc.spec.selector);
    for (const p of pods) {
      if (p.metadata.namespace === ns && sel.length > 0 && sel.every(([lk, lv]) => p.metadata.labels[lk] === lv)) endpointKeysOut.push(ctx.endpoints.candidate(p, sp.targetPort));
    }
  }
  return { ...base, kind: 'service' as const, status: 0, reason: '', message: '', endpointKeys: endpointKeysOut };
}

function namespaceAllowed(st: ListenerState, routeNs: string, nsLabels: ReadonlyMap<string, Readonly<Record<string, string>>>): boolean {
  const ns = st.l.allowedRoutes.namespaces;
  if (ns.from === 'All') return true;
  if (ns.from === 'Same') return routeNs === st.gw.metadata.namespace;
  if (ns.from === 'Selector') {
    // The API server always sets kubernetes.io/metadata.name, also where no Namespace manifest exists.
    const labels = { ...(nsLabels.get(routeNs) ?? {}), 'kubernetes.io/metadata.name': routeNs };
    return ns.selector !== undefined && selectorMatches(ns.selector, labels);
  }
  return false;
}

function wildcardCovers(wild: string, host: string): boolean {
  const suffix = wild.slice(1);
  return host.length > suffix.length && host.endsWith(suffix);
}

/**
 * Effective hostnames of a route on a listener (docs/reference/gateway-api.md §3.3), or null when none
 * intersect. '*' stands for "any host" (neither side sets one).
 */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] | null {
  if (route.length === 0) return [listener ?? '*'];
  if (listener === undefined) return [...new Set(route)];
  const out = new Set<string>();
  const lw = listener.startsWith('*.');
  for (const r of route) {
    const rw = r.startsWith('*.');
    if (r === listener) out.add(r);
    else if (lw && !rw && wildcardCovers(listener, r)) out.add(r);
    else if (!lw && rw && wildcardCovers(r, listener)) out.add(listener);
    else if (lw && rw) {
      if (wildcardCovers(listener, r.slice(1))) out.add(r);
      else if (wildcardCovers(r, listener.slice(1))) out.add(listener);
    }
  }
  return out.size === 0 ? null : [...out].sort(cmp);
}

function clampMs(v: number | undefined): number {
  return v === undefined ? 0 : Math.min(MAX_DURATION_MS, Math.ceil(v));
}

function trimSlash(v: string): string {
  return v.endsWith('/') ? v.replace(/\/+$/, '') : v;
}
