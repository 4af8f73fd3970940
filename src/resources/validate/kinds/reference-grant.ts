/** ReferenceGrant (gateway.networking.k8s.io v1, v1beta1): schema only. */
import type { ReferenceGrant } from '../../gateway.js';
import { arr, obj, str, walk } from '../schema.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import { GATEWAY_API_VERSIONS, GROUP, kind, namespaceName, objectName } from './gateway-api-fields.js';

const referenceGrantSpecSchema = obj({
  from: arr(obj({ group: str({ maxLength: 253, pattern: GROUP }), kind: kind(), namespace: namespaceName }, ['group', 'kind', 'namespace']), { minItems: 1, maxItems: 16 }),
  to: arr(obj({ group: str({ maxLength: 253, pattern: GROUP }), kind: kind(), name: objectName }, ['group', 'kind']), { minItems: 1, maxItems: 16 }),
}, ['from', 'to']);

export const referenceGrant: KindRules<ReferenceGrant> = {
  kind: 'ReferenceGrant',
  apiVersions: GATEWAY_API_VERSIONS,
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const spec = walk(raw.spec ?? {}, referenceGrantSpecSchema, 'spec', issues) as ReferenceGrant['spec'] | undefined;
    if (issues.length > 0 || spec === undefined) return undefined;
    return { generationOf: spec, build: (metadata, apiVersion) => ({ apiVersion, kind: 'ReferenceGrant', metadata, spec }) };
  },
};
