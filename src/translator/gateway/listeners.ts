/**
 * Phase 2: Gateways and their listeners. Each listener is checked on its own (protocol, route kinds,
 * certificates), then against the others on its port, across Gateways. A listener here is
 * "Programmed" when it will be in the IR; whether its port can be bound is the caller's business.
 */
import type { ConditionIR, MatchEntryIR } from '../../ir/gateway.js';
import { GATEWAY_GROUP, type Gateway, type Listener, type ReferenceGrant } from '../../resources/gateway.js';
import { cond, key, referenceGranted } from './common.js';
import type { TranslateContext } from './context.js';

const HTTP_ROUTE_KIND = { group: GATEWAY_GROUP, kind: 'HTTPRoute' };

/** Per-listener working state while translating. */
export interface ListenerState {
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

export interface GatewayState {
  gw: Gateway;
  accepted: boolean;
  addressProblem: boolean;
  listeners: ListenerState[];
}

export interface Listeners {
  /** Our Gateways, oldest first. */
  gateways: GatewayState[];
  byKey: Map<string, GatewayState>;
  /** Programmed listeners by port, the one that keeps the port first. */
  byPort: Map<number, ListenerState[]>;
}

export function translateListeners(ctx: TranslateContext, ours: readonly Gateway[]): Listeners {
  const { secrets, grants } = ctx;
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
  return { gateways: gwStates, byKey: new Map(gwStates.map((g) => [key(g.gw), g])), byPort };
}

function certificateProblem(
  gw: Gateway, l: Listener, secrets: ReadonlyMap<string, { type: string; tls?: unknown }>, grants: readonly ReferenceGrant[], out: string[],
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
