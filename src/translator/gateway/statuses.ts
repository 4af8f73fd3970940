/**
 * Phase 6: Gateway statuses (the listeners' conditions were set in phase 2, their attached routes
 * counted in phase 3), and every status list in namespace/name order. mergeConditions is for the
 * status writer.
 */
import type { ConditionIR, ListenerStatusIR } from '../../ir/gateway.js';
import { cmp, cond } from './common.js';
import type { TranslateContext } from './context.js';
import type { Listeners } from './listeners.js';

export function writeGatewayStatuses(ctx: TranslateContext, listeners: Listeners): void {
  const { statuses } = ctx;
  for (const g of listeners.gateways) {
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
