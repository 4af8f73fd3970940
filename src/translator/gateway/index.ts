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
 *
 * The translation runs in phases, one file each, around a shared context (context.ts), as Envoy
 * Gateway's translator does: classes.ts (GatewayClasses, bootstrap objects) -> listeners.ts
 * (Gateways, listeners, port conflicts) -> routes.ts (HTTPRoutes, backends, parents, match entries)
 * -> pools.ts (unreachable routes dropped, InferencePools) -> ir.ts (the IR) -> statuses.ts
 * (Gateway statuses). validate-ir.ts checks an IR's structure.
 */
import type { GatewayIR, GatewayStatuses } from '../../ir/gateway.js';
import { emptyGatewayIR } from '../../ir/gateway.js';
import type { Gateway, GatewayClass } from '../../resources/gateway.js';
import type { Problem, ResourceSet } from '../../resources/types.js';
import { deepFreeze } from '../../resources/validate.js';
import { type GatewayTranslateOptions, newContext } from './context.js';
import { translateGatewayClasses } from './classes.js';
import { translateListeners } from './listeners.js';
import { translateRoutes } from './routes.js';
import { translatePools } from './pools.js';
import { buildIR } from './ir.js';
import { writeGatewayStatuses } from './statuses.js';

export type { GatewayTranslateOptions } from './context.js';
export { referenceGranted } from './common.js';
export { intersectHostnames } from './routes.js';
export { modelRouteBindsTo } from './ir.js';
export { type Condition, mergeConditions } from './statuses.js';
export { validateGatewayIR } from './validate-ir.js';

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


export function translateGateway(resources: ResourceSet, opts: GatewayTranslateOptions): GatewayTranslateResult {
  if (!opts.enableGatewayApi) {
    const statuses: GatewayStatuses = { gatewayClasses: [], gateways: [], httpRoutes: [], inferencePools: [] };
    return { ir: deepFreeze(emptyGatewayIR()), statuses: deepFreeze(statuses), problems: [], bootstrap: [] };
  }
  const ctx = newContext(resources, opts);
  const gateways = translateGatewayClasses(ctx);
  const listeners = translateListeners(ctx, gateways);
  const routes = translateRoutes(ctx, listeners);
  const pools = translatePools(ctx, listeners, routes);
  const ir: GatewayIR = buildIR(ctx, listeners, routes, pools);
  writeGatewayStatuses(ctx, listeners);
  return { ir: deepFreeze(ir), statuses: deepFreeze(ctx.statuses), problems: ctx.problems, bootstrap: ctx.bootstrap };
}
