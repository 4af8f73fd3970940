/**
 * The Gateway API translator: validated resources in, the Gateway routing IR (ir/gateway.ts), the
 * statuses a status writer PUTs, and problems out. Pure and deterministic like translator/index.ts
 * (no I/O, no clock, code-unit string order only), so equal inputs give deep-equal output.
 *
 * Semantics follow Gateway API v1.6.1 (docs/reference/gateway-api.md §3) and GIE v1 (§1.1); where
 * Kthena defines the behaviour (bootstrap objects, listener selection, ModelRoute binding,
 * docs/reference/kthena-behaviour.md §6) we do what Kthena does. What a pure function cannot know (whether a port
 * can be bound, the Gateway's address) is left to the caller: a listener here is "Programmed" when
 * it is in the IR.
 */
import { re2SyntaxError } from '../../shared/re2.js';
import { isIP } from 'node:net';
import type {
  BackendIR, ConditionIR, EndpointPickerIR, FiltersIR, GatewayEndpointIR, GatewayEntryIR, GatewayIR, GatewayStatuses, HeaderModifierIR, InferencePoolStatusIR, ListenerIR, ListenerStatusIR, MatchEntryIR, ParentRefIR, PathModifierIR, PoolIR, PortIR, RouteParentStatusIR, RuleIR,
} from '../../ir/gateway.js';
import { emptyGatewayIR } from '../../ir/gateway.js';
import {
  GATEWAY_GROUP, INFERENCE_GROUP, KTHENA_CONTROLLER_NAME, KTHENA_GATEWAY_CLASS, type Gateway, type GatewayClass, type HTTPHeaderModifier,
  type HTTPPathModifier, type HTTPRoute, type HTTPRouteFilter, type HTTPRouteRule, type InferencePool, type LabelSelector, type Listener,
  type ReferenceGrant, type Service,
} from '../../resources/gateway.js';
import type { ModelRoute, ObjectMeta, Pod, Problem, ResourceSet } from '../../resources/types.js';
import { deepFreeze } from '../../resources/validate.js';

export interface GatewayTranslateOptions {
  /** --enable-gateway-api: without it nothing is translated (Kthena: Gateways are not watched). */
  enableGatewayApi: boolean;
  /** --enable-gateway-api-inference-extension: InferencePool backends and statuses. */
  enableInferenceExtension: boolean;
  /** $POD_NAMESPACE (Kthena: else "default"): where the default Gateway lives. */
  podNamespace: string;
  /** --port: the default Gateway's listener port. */
  defaultPort: number;
  /**
   * --inference-pool-picker: 'inprocess' (default, Kthena's way: endpointPickerRef is a placeholder
   * and the route's scheduler profile picks) or 'external' (call the pool's Endpoint Picker).
   */
  inferencePoolPicker?: 'inprocess' | 'external';
}

export interface GatewayTranslateResult {
  ir: GatewayIR;
  statuses: GatewayStatuses;
  problems: Problem[];
  /**
   * Kthena's bootstrap objects (docs/reference/kthena-behaviour.md §6.1) that do not exist in the input and were assumed: the
   * GatewayClass `kthena-router` and the Gateway `default` in podNamespace. The Kubernetes provider
   * creates them; file mode serves them as if they existed.
   */
  bootstrap: (GatewayClass | Gateway)[];
}

/** Node's timers fire at once for delays above 2^31-1 ms. */
const MAX_DURATION_MS = 2147483647;
const EPOCH = '1970-01-01T00:00:00Z';
const HTTP_ROUTE_KIND = { group: GATEWAY_GROUP, kind: 'HTTPRoute' };

/** Per-listener working state while translating. */
interface ListenerState {
  gw: Gateway;
  gwIndex: number;
  l: Listener;
  /** Protocol served and route kinds allow HTTPRoute (routes may attach if otherwise valid). */
  allowsHTTPRoute: boolean;
  programmed: boolean;
  conditions: ConditionIR[];
  supportedKinds: { group: string; kind: string }[];
  certificates: string[];
  attached: Set<string>;
  entries: MatchEntryIR[];
  irIndex: number;
}

interface GatewayState {
  gw: Gateway;
  accepted: boolean;
  addressProblem: boolean;
  listeners: ListenerState[];
}

export function translateGateway(resources: ResourceSet, opts: GatewayTranslateOptions): GatewayTranslateResult {
  const problems: Problem[] = [];
  const statuses: GatewayStatuses = { gatewayClasses: [], gateways: [], httpRoutes: [], inferencePools: [] };
  if (!opts.enableGatewayApi) return { ir: deepFreeze(emptyGatewayIR()), statuses: deepFreeze(statuses), problems, bootstrap: [] };

  const podNamespace = opts.podNamespace === '' ? 'default' : opts.podNamespace;
  const bootstrap: (GatewayClass | Gateway)[] = [];
  const classes = [...(resources.gatewayClasses ?? [])];
  if (!classes.some((c) => c.metadata.name === KTHENA_GATEWAY_CLASS)) {
    const c: GatewayClass = {
      apiVersion: `${GATEWAY_GROUP}/v1`, kind: 'GatewayClass', metadata: syntheticMeta('', KTHENA_GATEWAY_CLASS), spec: { controllerName: KTHENA_CONTROLLER_NAME },
    };
    classes.push(c);
    bootstrap.push(c);
  }
  const gateways = [...(resources.gateways ?? [])];
  if (!gateways.some((g) => g.metadata.namespace === podNamespace && g.metadata.name === 'default')) {
    const g: Gateway = {
      apiVersion: `${GATEWAY_GROUP}/v1`, kind: 'Gateway', metadata: syntheticMeta(podNamespace, 'default'),
      spec: {
        gatewayClassName: KTHENA_GATEWAY_CLASS,
        listeners: [{ name: 'default', port: opts.defaultPort, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' }, kinds: [] } }],
        addresses: [],
      },
    };
    gateways.push(g);
    bootstrap.push(g);
  }

  const ourClasses = new Set<string>();
  for (const c of [...classes].sort((a, b) => cmp(a.metadata.name, b.metadata.name))) {
    if (c.spec.controllerName !== KTHENA_CONTROLLER_NAME) continue;
    ourClasses.add(c.metadata.name);
    statuses.gatewayClasses.push({
      name: c.metadata.name, generation: c.metadata.generation,
      status: { conditions: [cond('Accepted', 'True', 'Accepted', 'GatewayClass is accepted by the kthena-router controller', c.metadata)] },
    });
  }

  const grants = resources.referenceGrants ?? [];
  const secrets = new Map((resources.secrets ?? []).map((s) => [key(s), s]));
  const services = new Map((resources.services ?? []).map((s) => [key(s), s]));
  const nsLabels = new Map((resources.namespaces ?? []).map((n) => [n.metadata.name, n.metadata.labels]));
  const pods = resources.pods.filter(eligible);

  // ---- Gateways and listeners ----------------------------------------------------------------
  const ours = gateways.filter((g) => ourClasses.has(g.spec.gatewayClassName)).sort(oldestFirst);
  const gwStates: GatewayState[] = ours.map((gw, gwIndex) => {
    const addressProblem = gw.spec.addresses.length > 0;
    const listeners = gw.spec.listeners.map((l): ListenerState => {
      const st: ListenerState = {
        gw, gwIndex, l, allowsHTTPRoute: false, programmed: false, conditions: [], supportedKinds: [], certificates: [],
        attached: new Set(), entries: [], irIndex: -1,
      };
      const m = gw.metadata;
      const served = l.protocol === 'HTTP' || l.protocol === 'HTTPS';
      let resolved = cond('ResolvedRefs', 'True', 'ResolvedRefs', 'All references are resolved', m);
      if (served) {
        const kinds = l.allowedRoutes.kinds;
        st.supportedKinds = kinds.length === 0 ? [HTTP_ROUTE_KIND] : kinds.filter((k) => k.group === GATEWAY_GROUP && k.kind === 'HTTPRoute').map(() => HTTP_ROUTE_KIND).slice(0, 1);
        if (kinds.some((k) => !(k.group === GATEWAY_GROUP && k.kind === 'HTTPRoute'))) {
          const bad = kinds.filter((k) => !(k.group === GATEWAY_GROUP && k.kind === 'HTTPRoute')).map((k) => `${k.group}/${k.kind}`).join(', ');
          resolved = cond('ResolvedRefs', 'False', 'InvalidRouteKinds', `Route kinds not supported on this listener: ${bad}`, m);
        }
        st.allowsHTTPRoute = st.supportedKinds.length > 0;
      }
      let certsOk = true;
      if (served && l.protocol === 'HTTPS') {
        const bad = certificateProblem(gw, l, secrets, grants, st.certificates);
        if (bad !== null) resolved = cond('ResolvedRefs', 'False', bad.reason, bad.message, m);
        certsOk = bad === null;
      }
      const accepted = served
        ? cond('Accepted', 'True', 'Accepted', 'Listener is accepted', m)
        : cond('Accepted', 'False', 'UnsupportedProtocol', `Protocol ${l.protocol} is not supported; supported: HTTP, HTTPS`, m);
      // An unsupported kind beside HTTPRoute is reported (InvalidRouteKinds) but the listener still
      // serves HTTPRoutes; one that allows no route kind at all serves nothing.
      st.programmed = served && !addressProblem && certsOk && st.allowsHTTPRoute;
      st.conditions = [accepted, resolved];
      return st;
    });
    return { gw, accepted: !addressProblem, addressProblem, listeners };
  });

  // Conflicts on a shared port, across Gateways: the oldest Gateway's listener keeps the port's
  // protocol and a hostname; later ones that clash are not programmed (one socket per port).
  const byPort = new Map<number, ListenerState[]>();
  for (const g of gwStates) for (const st of g.listeners) {
    if (!st.programmed) continue;
    const list = byPort.get(st.l.port) ?? [];
    byPort.set(st.l.port, list);
    const first = list[0];
    const m = st.gw.metadata;
    if (first !== undefined && first.l.protocol !== st.l.protocol) {
      st.conditions.push(cond('Conflicted', 'True', 'ProtocolConflict', `Port ${st.l.port} is served as ${first.l.protocol} by ${key(first.gw)} listener ${first.l.name}`, m));
      st.programmed = false;
      continue;
    }
    const clash = list.find((o) => (o.l.hostname ?? '') === (st.l.hostname ?? ''));
    if (clash !== undefined) {
      st.conditions.push(cond('Conflicted', 'True', 'HostnameConflict', `Hostname ${st.l.hostname ?? '(any)'} on port ${st.l.port} is already served by ${key(clash.gw)} listener ${clash.l.name}`, m));
      st.programmed = false;
      continue;
    }
    list.push(st);
  }
  for (const g of gwStates) for (const st of g.listeners) {
    const m = st.gw.metadata;
    if (!st.conditions.some((c) => c.type === 'Conflicted')) st.conditions.push(cond('Conflicted', 'False', 'NoConflicts', 'No conflicts', m));
    st.conditions.splice(1, 0, st.programmed
      ? cond('Programmed', 'True', 'Programmed', 'Listener is programmed', m)
      : cond('Programmed', 'False', 'Invalid', g.addressProblem ? 'The Gateway is not accepted' : 'Listener is not valid', m));
  }

  // ---- Inference pools -----------------------------------------------------------------------
  // Only backends of routes attached to one of our listeners contribute endpoints: a pod reached
  // only through another controller's Gateway must not cost a scheduler slot or a scrape.
  const endpointKeys = new Map<string, GatewayEndpointIR>();
  const candidates = new Map<string, GatewayEndpointIR>();
  const endpointKey = (p: Pod, port: number): string => {
    const k = `${p.metadata.namespace}/${p.metadata.name}:${port}`;
    if (!candidates.has(k)) candidates.set(k, { key: k, namespace: p.metadata.namespace, pod: p.metadata.name, ip: p.status.podIP!, port, slot: -1, gen: 0, startedAtSec: startedAtSec(p) });
    return k;
  };
  const addEndpoint = (p: Pod, port: number): string => {
    const k = endpointKey(p, port);
    endpointKeys.set(k, candidates.get(k)!);
    return k;
  };
  const poolsByKey = new Map((opts.enableInferenceExtension ? resources.inferencePools ?? [] : []).map((p) => [key(p), p]));
  const external = opts.inferencePoolPicker === 'external';

  // ---- Routes --------------------------------------------------------------------------------
  const routes = [...(resources.httpRoutes ?? [])].sort(oldestFirst);
  const routeIRs = routes.map((r) => ({ key: key(r), namespace: r.metadata.namespace, name: r.metadata.name }));
  interface PendingRule { rule: Omit<RuleIR, 'backends'> & { backends: (Omit<BackendIR, 'endpoints' | 'pool'> & { endpointKeys: string[]; poolKey: string })[] } }
  const rules: PendingRule[] = [];
  /** pool key -> gateway keys with an accepted route using it. */
  const poolParents = new Map<string, Set<string>>();
  const gwByKey = new Map(gwStates.map((g) => [key(g.gw), g]));
  /** Indexes of routes accepted by at least one of our parents. */
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
        const r = resolveBackend(route, b, j, i);
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

  function resolveBackend(route: HTTPRoute, b: HTTPRouteRule['backendRefs'][number], j: number, i: number):
    Omit<BackendIR, 'endpoints' | 'pool'> & { endpointKeys: string[]; poolKey: string; message: string } {
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
        if (p.metadata.namespace === ns && sel.length > 0 && sel.every(([lk, lv]) => p.metadata.labels[lk] === lv)) endpointKeysOut.push(endpointKey(p, sp.targetPort));
      }
    }
    return { ...base, kind: 'service' as const, status: 0, reason: '', message: '', endpointKeys: endpointKeysOut };
  }

  // ---- Pools: IR for referenced ones, status for all -------------------------------------------
  const objectives = opts.enableInferenceExtension ? resources.inferenceObjectives ?? [] : [];
  const poolIRs: PoolIR[] = [];
  const poolEndpointKeys: string[][] = [];
  const poolIndex = new Map<string, number>();
  // Drop what no listener can reach, keeping relative order (route order is the age tie-break).
  const routeMap = new Map([...attachedRoutes].sort((a, b) => a - b).map((old, i) => [old, i]));
  const ruleMap = new Map<number, number>();
  const keptRules = rules.filter((r, i) => {
    if (!routeMap.has(r.rule.route)) return false;
    ruleMap.set(i, ruleMap.size);
    return true;
  });
  for (const g of gwStates) for (const st of g.listeners) {
    for (const e of st.entries) {
      e.route = routeMap.get(e.route)!;
      e.rule = ruleMap.get(e.rule)!;
    }
  }
  for (const r of keptRules) for (const b of r.rule.backends) for (const k of b.endpointKeys) endpointKeys.set(k, candidates.get(k)!);
  const referencedPools = [...new Set(keptRules.flatMap((r) => r.rule.backends.filter((b) => b.kind === 'pool').map((b) => b.poolKey)))].sort(cmp);
  for (const pk of referencedPools) {
    const pool = poolsByKey.get(pk)!;
    const sel = Object.entries(pool.spec.selector.matchLabels);
    const eps: string[] = [];
    for (const p of pods) {
      if (p.metadata.namespace !== pool.metadata.namespace || sel.length === 0 || !sel.every(([lk, lv]) => p.metadata.labels[lk] === lv)) continue;
      for (const tp of pool.spec.targetPorts) eps.push(addEndpoint(p, tp.number));
    }
    const epp = external ? endpointPicker(pool, services, pods) : null;
    poolIndex.set(pk, poolIRs.length);
    poolEndpointKeys.push(eps);
    poolIRs.push({
      key: pk, namespace: pool.metadata.namespace, name: pool.metadata.name, appProtocol: pool.spec.appProtocol,
      endpoints: [],
      picker: epp === null ? 'in-process' : 'external',
      epp,
      objectives: objectives
        .filter((o) => o.metadata.namespace === pool.metadata.namespace && objectiveApplies(o.spec, pool))
        .map((o) => ({ name: o.metadata.name, priority: o.spec.priority ?? 0 }))
        .sort((a, b) => cmp(a.name, b.name)),
    });
    if (epp !== null && epp.unresolved !== '') {
      problems.push(problem(pool, 'spec.endpointPickerRef', `${epp.unresolved}: requests to this pool ${epp.failOpen
        ? 'are scheduled in-process (failureMode FailOpen)' : 'are answered 503 (failureMode FailClose)'}`, 'warning'));
    }
  }
  for (const pool of poolsByKey.values()) {
    const m = pool.metadata;
    const parentKeys = [...(poolParents.get(key(pool)) ?? [])].sort(cmp);
    const resolved = external ? eppResolved(pool, services) : inProcessResolved(pool);
    const ref = pool.spec.endpointPickerRef;
    const pickedBy = external && ref !== undefined
      ? `endpoints are picked by the Endpoint Picker ${m.namespace}/${ref.name} (failureMode ${ref.failureMode})`
      : 'endpoints are picked in-process by the router';
    const parents: RouteParentStatusIR[] = parentKeys.map((gk) => {
      const g = gwByKey.get(gk)!.gw;
      return {
        parentRef: { group: GATEWAY_GROUP, kind: 'Gateway', namespace: g.metadata.namespace, name: g.metadata.name },
        controllerName: KTHENA_CONTROLLER_NAME,
        conditions: [cond('Accepted', 'True', 'Accepted', `InferencePool is accepted by the Gateway; ${pickedBy}`, m), resolved],
      };
    });
    statuses.inferencePools.push({ namespace: m.namespace, name: m.name, generation: m.generation, status: { parents } } satisfies InferencePoolStatusIR);
  }

  // ---- Endpoints, then the IR ------------------------------------------------------------------
  const endpoints = [...endpointKeys.values()].sort((a, b) => cmp(a.key, b.key));
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

  // ---- Gateway statuses ------------------------------------------------------------------------
  for (const g of gwStates) {
    const m = g.gw.metadata;
    const valid = g.listeners.filter((st) => st.programmed).length;
    let accepted: ConditionIR;
    if (g.addressProblem) accepted = cond('Accepted', 'False', 'UnsupportedAddress', 'spec.addresses is not supported: the router serves on its own addresses', m);
    else if (valid === g.listeners.length) accepted = cond('Accepted', 'True', 'Accepted', 'Gateway is accepted', m);
    else if (valid > 0) accepted = cond('Accepted', 'True', 'ListenersNotValid', `${g.listeners.length - valid} of ${g.listeners.length} listeners are not valid`, m);
    else accepted = cond('Accepted', 'False', 'ListenersNotValid', 'No listener is valid', m);
    const programmed = g.accepted && valid > 0
      ? cond('Programmed', 'True', 'Programmed', 'Gateway is programmed', m)
      : cond('Programmed', 'False', 'Invalid', 'Gateway has no programmed listener', m);
    const ls: ListenerStatusIR[] = g.listeners.map((st) => ({
      name: st.l.name, supportedKinds: st.supportedKinds, attachedRoutes: st.attached.size, conditions: st.conditions,
    }));
    statuses.gateways.push({ namespace: m.namespace, name: m.name, generation: m.generation, status: { conditions: [accepted, programmed], listeners: ls } });
  }
  statuses.httpRoutes.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  statuses.gateways.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  statuses.inferencePools.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));

  const ir: GatewayIR = {
    ports, listeners, gateways: gatewayEntries, routes: routeIRs.filter((_r, i) => routeMap.has(i)), rules: ruleIRs, pools: poolIRs, endpoints,
  };
  return { ir: deepFreeze(ir), statuses: deepFreeze(statuses), problems, bootstrap };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function syntheticMeta(namespace: string, name: string): ObjectMeta {
  return { name, namespace, creationTimestamp: EPOCH, resourceVersion: '', generation: 1, labels: {}, uid: '' };
}

function cond(type: string, status: ConditionIR['status'], reason: string, message: string, m: ObjectMeta): ConditionIR {
  return { type, status, reason, message, observedGeneration: m.generation };
}

/** Running, Ready, not terminating, with an IP (the same rule as translator/index.ts). */
function eligible(p: Pod): boolean {
  return p.status.phase === 'Running' && p.status.ready && p.metadata.deletionTimestamp === undefined &&
    p.status.podIP !== undefined && isIP(p.status.podIP) !== 0;
}

function clampMs(v: number | undefined): number {
  return v === undefined ? 0 : Math.min(MAX_DURATION_MS, Math.ceil(v));
}

function trimSlash(v: string): string {
  return v.endsWith('/') ? v.replace(/\/+$/, '') : v;
}

/** Header names compare case-insensitively; only the first of equivalent names counts (spec). */
function firstByName<T extends { name: string }>(list: T[], caseInsensitive: boolean): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const n = caseInsensitive ? x.name.toLowerCase() : x.name;
    if (seen.has(n)) return false;
    seen.add(n);
    return true;
  });
}

function unsupportedFilter(rule: HTTPRouteRule): string | null {
  const supported = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']);
  const bad = rule.filters.find((f) => !supported.has(f.type));
  if (bad !== undefined) return `filter ${bad.type} is not supported`;
  for (const b of rule.backendRefs) {
    const bb = b.filters.find((f) => f.type !== 'RequestHeaderModifier' && f.type !== 'ResponseHeaderModifier');
    if (bb !== undefined) return `backendRef filter ${bb.type} is not supported (only header modifiers)`;
  }
  return null;
}

function headerModIR(h: HTTPHeaderModifier | undefined): HeaderModifierIR | null {
  if (h === undefined) return null;
  return {
    set: firstByName(h.set, true).map((x) => [x.name.toLowerCase(), x.value]),
    add: h.add.map((x) => [x.name.toLowerCase(), x.value]),
    remove: [...new Set(h.remove.map((x) => x.toLowerCase()))],
  };
}

function pathModIR(p: HTTPPathModifier | undefined): PathModifierIR | null {
  if (p === undefined) return null;
  return { type: p.type, value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '' };
}

function filtersIR(filters: HTTPRouteFilter[]): FiltersIR {
  const out: FiltersIR = { requestHeaders: null, responseHeaders: null, redirect: null, rewrite: null };
  for (const f of filters) {
    if (f.type === 'RequestHeaderModifier') out.requestHeaders = headerModIR(f.requestHeaderModifier);
    else if (f.type === 'ResponseHeaderModifier') out.responseHeaders = headerModIR(f.responseHeaderModifier);
    else if (f.type === 'RequestRedirect' && f.requestRedirect !== undefined) {
      const r = f.requestRedirect;
      out.redirect = { scheme: r.scheme ?? '', hostname: r.hostname ?? '', port: r.port ?? 0, path: pathModIR(r.path), statusCode: r.statusCode };
    } else if (f.type === 'URLRewrite' && f.urlRewrite !== undefined) {
      out.rewrite = { hostname: f.urlRewrite.hostname ?? '', path: pathModIR(f.urlRewrite.path) };
    }
  }
  return out;
}

/**
 * A ReferenceGrant in the target namespace allows (fromGroup, fromKind, fromNamespace) to refer to
 * (toGroup, toKind[, name]).
 */
export function referenceGranted(
  grants: readonly ReferenceGrant[], fromGroup: string, fromKind: string, fromNamespace: string, toGroup: string, toKind: string, toNamespace: string, toName: string,
): boolean {
  return grants.some((g) => g.metadata.namespace === toNamespace &&
    g.spec.from.some((f) => f.group === fromGroup && f.kind === fromKind && f.namespace === fromNamespace) &&
    g.spec.to.some((t) => t.group === toGroup && t.kind === toKind && (t.name === undefined || t.name === '' || t.name === toName)));
}

function certificateProblem(
  gw: Gateway, l: Listener, secrets: Map<string, { type: string; tls?: unknown }>, grants: readonly ReferenceGrant[], out: string[],
): { reason: string; message: string } | null {
  const refs = l.tls?.certificateRefs ?? [];
  if (refs.length === 0) return { reason: 'InvalidCertificateRef', message: 'HTTPS listener has no certificateRefs' };
  for (const ref of refs) {
    const ns = ref.namespace ?? gw.metadata.namespace;
    const k = `${ns}/${ref.name}`;
    if (ref.group !== '' || ref.kind !== 'Secret') return { reason: 'InvalidCertificateRef', message: `certificateRef ${ref.group}/${ref.kind} ${k} is not a Secret` };
    if (ns !== gw.metadata.namespace && !referenceGranted(grants, GATEWAY_GROUP, 'Gateway', gw.metadata.namespace, '', 'Secret', ns, ref.name)) {
      return { reason: 'RefNotPermitted', message: `certificateRef Secret ${k} is in another namespace and no ReferenceGrant allows it` };
    }
    const s = secrets.get(k);
    if (s === undefined) return { reason: 'InvalidCertificateRef', message: `certificateRef Secret ${k} not found` };
    if (s.type !== 'kubernetes.io/tls' || s.tls === undefined) return { reason: 'InvalidCertificateRef', message: `certificateRef Secret ${k} is not a kubernetes.io/tls Secret with tls.crt and tls.key` };
    out.push(k);
  }
  return null;
}

function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions) {
    const v = labels[e.key];
    if (e.operator === 'In' && (v === undefined || !e.values.includes(v))) return false;
    if (e.operator === 'NotIn' && v !== undefined && e.values.includes(v)) return false;
    if (e.operator === 'Exists' && v === undefined) return false;
    if (e.operator === 'DoesNotExist' && v !== undefined) return false;
  }
  return true;
}

function namespaceAllowed(st: ListenerState, routeNs: string, nsLabels: Map<string, Readonly<Record<string, string>>>): boolean {
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

const PATH_RANK: Readonly<Record<MatchEntryIR['pathType'], number>> = { Exact: 0, RegularExpression: 1, PathPrefix: 2 };

/** docs/reference/gateway-api.md §3.3 precedence across all routes on a listener; see the header of ir/gateway.ts. */
function entryOrder(a: MatchEntryIR, b: MatchEntryIR): number {
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

function timeOf(m: ObjectMeta): number {
  const t = Date.parse(m.creationTimestamp);
  return Number.isNaN(t) ? 0 : t;
}

/** Gateway API tie-breaks: oldest creationTimestamp, then "namespace/name". */
function oldestFirst(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  return timeOf(a.metadata) - timeOf(b.metadata) || cmp(key(a), key(b));
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

function objectiveApplies(spec: { poolRef?: { kind: string; name: string }; poolRefs?: { kind: string; name: string }[]; poolSelector?: LabelSelector }, pool: InferencePool): boolean {
  // Resolved by kind + name in the objective's namespace, whatever group spelling (GIE vs llm-d).
  const refs = [...(spec.poolRef !== undefined ? [spec.poolRef] : []), ...(spec.poolRefs ?? [])];
  if (refs.some((r) => r.kind === 'InferencePool' && r.name === pool.metadata.name)) return true;
  return spec.poolSelector !== undefined && selectorMatches(spec.poolSelector, pool.metadata.labels);
}

/**
 * Why an endpointPickerRef cannot be called ('' when it can): GIE allows only a core Service, not
 * an ExternalName one, and requires the Service port.
 */
function eppProblem(pool: InferencePool, services: Map<string, Service>): string {
  const epp = pool.spec.endpointPickerRef;
  if (epp === undefined) return 'no endpointPickerRef';
  const k = `${pool.metadata.namespace}/${epp.name}`;
  if (epp.group !== '' || epp.kind !== 'Service') return `endpointPickerRef ${epp.group}/${epp.kind} ${k} is not a Service`;
  const svc = services.get(k);
  if (svc === undefined) return `endpointPickerRef Service ${k} not found`;
  if (svc.spec.type === 'ExternalName') return `endpointPickerRef Service ${k} is an ExternalName Service`;
  if (epp.port === undefined) return `endpointPickerRef Service ${k} has no port (required for a Service)`;
  if (!svc.spec.ports.some((p) => p.port === epp.port!.number)) return `endpointPickerRef Service ${k} has no port ${epp.port.number}`;
  return '';
}

/** With --inference-pool-picker=external: the ResolvedRefs condition of the pool's endpointPickerRef. */
function eppResolved(pool: InferencePool, services: Map<string, Service>): ConditionIR {
  const m = pool.metadata;
  if (pool.spec.endpointPickerRef === undefined) return cond('ResolvedRefs', 'True', 'ResolvedRefs', 'No endpointPickerRef: scheduled in-process by the router', m);
  const bad = eppProblem(pool, services);
  if (bad !== '') return cond('ResolvedRefs', 'False', 'InvalidExtensionRef', bad, m);
  return cond('ResolvedRefs', 'True', 'ResolvedRefs', 'All references are resolved', m);
}

/**
 * With --inference-pool-picker=inprocess (default) the endpointPickerRef is not called, so it is
 * not resolved either: Kthena's examples name a placeholder Service that does not exist.
 */
function inProcessResolved(pool: InferencePool): ConditionIR {
  const m = pool.metadata;
  const epp = pool.spec.endpointPickerRef;
  if (epp === undefined) return cond('ResolvedRefs', 'True', 'ResolvedRefs', 'No endpointPickerRef: scheduled in-process by the router', m);
  return cond('ResolvedRefs', 'True', 'ResolvedRefs',
    `endpointPickerRef ${m.namespace}/${epp.name} is not called: the router schedules this pool in-process (--inference-pool-picker=inprocess)`, m);
}

/**
 * The Endpoint Picker of a pool that has an endpointPickerRef, for --inference-pool-picker=external;
 * null when the pool has none (scheduled in-process). A ref that does not resolve still yields a
 * picker (with `unresolved`), so that requests take the failureMode path (GIE conformance
 * InferencePoolInvalidEPPService expects a 5xx under FailClose).
 */
function endpointPicker(pool: InferencePool, services: Map<string, Service>, pods: readonly Pod[]): EndpointPickerIR | null {
  const ref = pool.spec.endpointPickerRef;
  if (ref === undefined) return null;
  const ns = pool.metadata.namespace;
  const out: EndpointPickerIR = { service: `${ns}/${ref.name}`, addresses: [], dns: '', failOpen: ref.failureMode === 'FailOpen', unresolved: eppProblem(pool, services) };
  if (out.unresolved !== '') return out;
  const svc = services.get(out.service)!;
  const sp = svc.spec.ports.find((p) => p.port === ref.port!.number)!;
  if (svc.spec.selector === undefined || typeof sp.targetPort === 'string' || Object.keys(svc.spec.selector).length === 0) {
    // Endpoints managed by hand or a named port: only cluster DNS knows where the picker runs.
    out.dns = `${ref.name}.${ns}.svc:${sp.port}`;
    return out;
  }
  const sel = Object.entries(svc.spec.selector);
  const tp = sp.targetPort;
  const addrs = new Set<string>();
  for (const p of pods) {
    if (p.metadata.namespace !== ns || !sel.every(([lk, lv]) => p.metadata.labels[lk] === lv)) continue;
    const ip = p.status.podIP!;
    addrs.add(isIP(ip) === 6 ? `[${ip}]:${tp}` : `${ip}:${tp}`);
  }
  out.addresses = [...addrs].sort(cmp);
  return out;
}

export interface Condition extends ConditionIR {
  lastTransitionTime: string;
}

/**
 * For a status writer: the conditions to PUT, keeping each previous lastTransitionTime when the
 * condition's status did not change (Kubernetes' meta.SetStatusCondition rule) and stamping `now`
 * otherwise.
 */
export function mergeConditions(previous: readonly Condition[], next: readonly ConditionIR[], now: string): Condition[] {
  return next.map((c) => {
    const old = previous.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: old !== undefined && old.status === c.status ? old.lastTransitionTime : now };
  });
}

function key(o: { metadata: { namespace: string; name: string } }): string {
  return `${o.metadata.namespace}/${o.metadata.name}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function problem(o: { kind: string; metadata: ObjectMeta }, field: string, message: string, severity: Problem['severity']): Problem {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, field, message, severity };
}


/**
 * Every structural problem of a Gateway IR (indexes in range, sorted and unique keys, ports, weights,
 * regexes the workers will compile), gathered rather than stopping at the first. Non-empty means:
 * do not publish. The translator never produces one; this guards the encode/decode path.
 */
export function validateGatewayIR(ir: GatewayIR): string[] {
  const errs: string[] = [];
  const idx = (v: number, len: number): boolean => Number.isInteger(v) && v >= 0 && v < len;
  const portOk = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;
  ir.endpoints.forEach((e, i) => {
    const at = `endpoints[${i}] (${e.key})`;
    if (e.key !== `${e.namespace}/${e.pod}:${e.port}`) errs.push(`${at}: key must be namespace/pod:port`);
    if (i > 0 && !(ir.endpoints[i - 1]!.key < e.key)) errs.push(`${at}: endpoints must be sorted by key and unique`);
    if (isIP(e.ip) === 0) errs.push(`${at}: ip ${JSON.stringify(e.ip)} is not an IP address`);
    if (!portOk(e.port)) errs.push(`${at}: port ${e.port} out of range 1-65535`);
  });
  const endpointList = (at: string, list: readonly number[]): void => list.forEach((e, j) => {
    if (!idx(e, ir.endpoints.length)) errs.push(`${at}.endpoints[${j}] = ${e} is out of range`);
    else if (j > 0 && !(list[j - 1]! < e)) errs.push(`${at}.endpoints must be strictly ascending`);
  });
  ir.pools.forEach((p, i) => endpointList(`pools[${i}] (${p.key})`, p.endpoints));
  ir.rules.forEach((r, i) => {
    const at = `rules[${i}]`;
    if (!idx(r.route, ir.routes.length)) errs.push(`${at}: route ${r.route} is out of range`);
    let total = 0;
    r.backends.forEach((b, j) => {
      const bat = `${at}.backends[${j}] (${b.key})`;
      if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 1000000) errs.push(`${bat}: weight ${b.weight} must be an integer in 0-1000000`);
      total += b.weight;
      if (b.kind === 'pool' && (!idx(b.pool, ir.pools.length) || ir.pools[b.pool]!.key !== b.key)) errs.push(`${bat}: pool ${b.pool} does not name ${b.key}`);
      if (b.kind !== 'pool' && b.pool !== -1) errs.push(`${bat}: pool must be -1 for a ${b.kind} backend`);
      if ((b.kind === 'invalid') !== (b.status !== 0)) errs.push(`${bat}: status ${b.status} does not fit kind ${b.kind}`);
      endpointList(bat, b.endpoints);
    });
    if (total !== r.totalWeight) errs.push(`${at}: totalWeight ${r.totalWeight} is not the sum of the weights (${total})`);
    for (const [name, v] of [['requestTimeoutMs', r.requestTimeoutMs], ['backendRequestTimeoutMs', r.backendRequestTimeoutMs]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_DURATION_MS) errs.push(`${at}: ${name} ${v} must be an integer in 0-${MAX_DURATION_MS}`);
    }
  });
  // The workers compile with RE2 (src/shared/re2.ts), so that is the engine to ask.
  const compiles = (re: string): boolean => re2SyntaxError(`^(?:${re})$`) === null;
  ir.listeners.forEach((l, i) => {
    const at = `listeners[${i}] (${l.gateway}/${l.name})`;
    if (!idx(l.gatewayIndex, ir.gateways.length) || ir.gateways[l.gatewayIndex]!.key !== l.gateway) errs.push(`${at}: gatewayIndex does not name ${l.gateway}`);
    if (!portOk(l.port)) errs.push(`${at}: port ${l.port} out of range 1-65535`);
    l.entries.forEach((e, j) => {
      const eat = `${at}.entries[${j}]`;
      if (!idx(e.rule, ir.rules.length)) errs.push(`${eat}: rule ${e.rule} is out of range`);
      else if (ir.rules[e.rule]!.route !== e.route) errs.push(`${eat}: route ${e.route} is not the route of rule ${e.rule}`);
      if (j > 0 && entryOrder(l.entries[j - 1]!, e) > 0) errs.push(`${eat}: entries are not in precedence order`);
      const regexes = [...(e.pathType === 'RegularExpression' ? [e.path] : []), ...[...e.headers, ...e.queryParams].filter((m) => m.type === 'RegularExpression').map((m) => m.value)];
      for (const re of regexes) if (!compiles(re)) errs.push(`${eat}: regex ${JSON.stringify(re)} does not compile`);
    });
  });
  const seenPorts = new Set<number>();
  ir.ports.forEach((p, i) => {
    const at = `ports[${i}] (${p.port})`;
    if (seenPorts.has(p.port) || (i > 0 && !(ir.ports[i - 1]!.port < p.port))) errs.push(`${at}: ports must be sorted and unique`);
    seenPorts.add(p.port);
    const targets = [...p.exact.map((x) => x[1]), ...p.wildcard.map((x) => x[1]), ...(p.any >= 0 ? [p.any] : [])];
    for (const t of targets) {
      if (!idx(t, ir.listeners.length)) errs.push(`${at}: listener ${t} is out of range`);
      else if (ir.listeners[t]!.port !== p.port || ir.listeners[t]!.protocol !== p.protocol) errs.push(`${at}: listener ${t} is not a ${p.protocol} listener on this port`);
    }
    if (targets.length === 0) errs.push(`${at}: no listener`);
  });
  return errs;
}

function startedAtSec(p: Pod): number {
  const at = p.status.containersStartedAt ?? p.status.startTime;
  const t = at !== undefined ? Date.parse(at) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}
