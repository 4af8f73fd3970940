/**
 * Phase 1: GatewayClasses and Kthena's bootstrap objects (docs/reference/kthena-behaviour.md §6.1:
 * the GatewayClass `kthena-router` and the Gateway `default` in the pod's namespace, assumed when
 * absent), the classes this controller accepts, and the Gateways of those classes, oldest first.
 */
import { GATEWAY_GROUP, KTHENA_CONTROLLER_NAME, KTHENA_GATEWAY_CLASS, type Gateway, type GatewayClass } from '../../resources/gateway.js';
import { cmp, cond, oldestFirst, syntheticMeta } from './common.js';
import type { TranslateContext } from './context.js';

export function translateGatewayClasses(ctx: TranslateContext): Gateway[] {
  const { resources, opts, podNamespace, bootstrap, statuses } = ctx;
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
  return gateways.filter((g) => ourClasses.has(g.spec.gatewayClassName)).sort(oldestFirst);
}
