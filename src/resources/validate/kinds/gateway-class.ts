/** GatewayClass (gateway.networking.k8s.io v1, v1beta1): schema and the immutable controllerName. */
import type { GatewayClass } from '../../gateway.js';
import { ANY, obj, str, walk } from '../schema.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import { GATEWAY_API_VERSIONS } from './gateway-api-fields.js';

const CONTROLLER = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&\'()*+,;=:]+$';

const gatewayClassSpecSchema = obj({
  controllerName: str({ minLength: 1, maxLength: 253, pattern: CONTROLLER }),
  description: str({ maxLength: 64 }),
  parametersRef: ANY,
}, ['controllerName']);

export const gatewayClass: KindRules<GatewayClass> = {
  kind: 'GatewayClass',
  apiVersions: GATEWAY_API_VERSIONS,
  clusterScoped: true,
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues, ctx) {
    const spec = walk(raw.spec ?? {}, gatewayClassSpecSchema, 'spec', issues) as { controllerName: string } | undefined;
    const prev = ctx.previous?.kind === 'GatewayClass' ? ctx.previous : undefined;
    if (spec !== undefined && prev !== undefined && prev.spec.controllerName !== spec.controllerName) {
      issues.push({ field: 'spec.controllerName', message: 'Value is immutable' });
    }
    if (issues.length > 0 || spec === undefined) return undefined;
    const typed = { controllerName: spec.controllerName };
    return { generationOf: typed, build: (metadata, apiVersion) => ({ apiVersion, kind: 'GatewayClass', metadata, spec: typed }) };
  },
};
