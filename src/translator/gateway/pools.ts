/**
 * Phase 4: what no listener accepted is dropped (routes, rules, their endpoints; relative order
 * kept, since route order is the age tie-break), then InferencePools: IR for the ones a kept rule
 * references, status for all (GIE v1, docs/reference/gateway-api.md §1.1).
 */
import type { ConditionIR, EndpointPickerIR, InferencePoolStatusIR, PoolIR, RouteParentStatusIR } from '../../ir/gateway.js';
import { isIP } from 'node:net';
import { GATEWAY_GROUP, KTHENA_CONTROLLER_NAME, type InferencePool, type LabelSelector, type Service } from '../../resources/gateway.js';
import type { Pod } from '../../resources/types.js';
import { cmp, cond, key, problem, selectorMatches } from './common.js';
import type { TranslateContext } from './context.js';
import type { Listeners } from './listeners.js';
import type { PendingRule, Routes } from './routes.js';

export interface Pools {
  /** Old route index -> index among the kept routes. */
  routeMap: Map<number, number>;
  keptRules: PendingRule[];
  pools: PoolIR[];
  /** Per pool, its endpoints by key. */
  poolEndpointKeys: string[][];
  poolIndex: Map<string, number>;
}

export function translatePools(ctx: TranslateContext, listeners: Listeners, routes: Routes): Pools {
  const { objectives, poolsByKey, external, services, pods, problems, statuses } = ctx;
  const { attachedRoutes, rules, poolParents } = routes;
  const gwByKey = listeners.byKey;
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
  for (const g of listeners.gateways) for (const st of g.listeners) {
    for (const e of st.entries) {
      e.route = routeMap.get(e.route)!;
      e.rule = ruleMap.get(e.rule)!;
    }
  }
  for (const r of keptRules) for (const b of r.rule.backends) for (const k of b.endpointKeys) ctx.endpoints.use(k);
  const referencedPools = [...new Set(keptRules.flatMap((r) => r.rule.backends.filter((b) => b.kind === 'pool').map((b) => b.poolKey)))].sort(cmp);
  for (const pk of referencedPools) {
    const pool = poolsByKey.get(pk)!;
    const sel = Object.entries(pool.spec.selector.matchLabels);
    const eps: string[] = [];
    for (const p of pods) {
      if (p.metadata.namespace !== pool.metadata.namespace || sel.length === 0 || !sel.every(([lk, lv]) => p.metadata.labels[lk] === lv)) continue;
      for (const tp of pool.spec.targetPorts) eps.push(ctx.endpoints.add(p, tp.number));
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
  return { routeMap, keptRules, pools: poolIRs, poolEndpointKeys, poolIndex };
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
function eppProblem(pool: InferencePool, services: ReadonlyMap<string, Service>): string {
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
function eppResolved(pool: InferencePool, services: ReadonlyMap<string, Service>): ConditionIR {
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
function endpointPicker(pool: InferencePool, services: ReadonlyMap<string, Service>, pods: readonly Pod[]): EndpointPickerIR | null {
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
