/**
 * The one place the router's statuses are computed: Kthena's kinds (ModelRoute, ModelServer,
 * ExternalModelProvider; src/translator/status.ts) from the resources and every problem reported,
 * plus the Gateway API statuses the Gateway translator produced. The debug dumps show this list
 * and, in Kubernetes mode, the status writer (src/status/writer.ts) reconciles the API server to it.
 */
import type { GatewayStatuses } from '../ir/gateway.js';
import type { Problem, ResourceSet } from '../resources/types.js';
import { computeStatuses, gatewayStatusEntries, type DesiredStatus, type StatusObject } from '../translator/status.js';

export interface StatusSources {
  resources: ResourceSet;
  problems: readonly Problem[];
  /**
   * The objects as the API server holds them, by kind (Kubernetes mode: versions that failed
   * validation included). null in file mode: the valid typed resources stand in.
   */
  objects: Readonly<Record<string, readonly StatusObject[]>> | null;
  gateway: GatewayStatuses;
}

export function desiredStatuses(s: StatusSources): DesiredStatus[] {
  const objects = s.objects ?? typedObjects(s.resources);
  return [...computeStatuses({ resources: s.resources, problems: s.problems, objects }), ...gatewayStatusEntries(s.gateway)];
}

function typedObjects(r: ResourceSet): Record<string, StatusObject[]> {
  const asObject = (kind: string) => (o: { metadata: { namespace: string; name: string; generation: number }; spec: unknown }): StatusObject => ({
    apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind, metadata: { ...o.metadata }, spec: o.spec,
  });
  return {
    ModelRoute: r.modelRoutes.map(asObject('ModelRoute')),
    ModelServer: r.modelServers.map(asObject('ModelServer')),
    ExternalModelProvider: (r.externalModelProviders ?? []).map(asObject('ExternalModelProvider')),
  };
}
