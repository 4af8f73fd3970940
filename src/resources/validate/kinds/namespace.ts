/** Namespace (v1): read for its labels (Gateway listeners select namespaces by label). */
import type { Namespace } from '../../gateway.js';
import type { KindRules } from '../kind.js';

export const namespace: KindRules<Namespace> = {
  kind: 'Namespace',
  apiVersions: ['v1'],
  clusterScoped: true,
  topLevelKeys: null,
  specRequired: false,
  parse(_raw, _issues, _ctx, meta) {
    if (meta === undefined) return undefined;
    return { generationOf: meta.labels, build: (metadata) => ({ apiVersion: 'v1', kind: 'Namespace', metadata }) };
  },
};
