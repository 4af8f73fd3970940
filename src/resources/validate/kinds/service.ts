/**
 * Service (v1): read, never served; only the fields the router reads (type, selector, ports) are
 * checked and everything else is ignored.
 */
import type { Service } from '../../gateway.js';
import { type Issue, ANY, arr, map, obj, show, str, walk } from '../schema.js';
import { labelErrors } from '../names.js';
import type { KindRules } from '../kind.js';
import { port } from './gateway-api-fields.js';

const serviceSpecSchema = obj({
  type: str({ enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'], default: 'ClusterIP' }),
  selector: map(str()),
  ports: arr(obj({
    name: str(),
    port,
    targetPort: ANY,
    protocol: str({ enum: ['TCP', 'UDP', 'SCTP'], default: 'TCP' }),
    appProtocol: str(),
  }, ['port'], { ignoreUnknown: true })),
}, [], { ignoreUnknown: true });

type RawServiceSpec = Omit<Service['spec'], 'ports'> & { ports?: (Omit<Service['spec']['ports'][number], 'targetPort'> & { targetPort?: unknown })[] };

function serviceTyped(spec: RawServiceSpec, issues: Issue[]): Service['spec'] | undefined {
  const before = issues.length;
  const ports = (spec.ports ?? []).map((p, i) => {
    let targetPort: number | string = p.port;
    const tp = p.targetPort;
    if (typeof tp === 'number' && Number.isInteger(tp) && tp >= 1 && tp <= 65535) targetPort = tp;
    else if (typeof tp === 'string' && /^[0-9]+$/.test(tp) && Number(tp) >= 1 && Number(tp) <= 65535) targetPort = Number(tp);
    else if (typeof tp === 'string' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(tp) && tp.length <= 15 && /[a-z]/.test(tp)) targetPort = tp;
    else if (tp !== undefined) issues.push({ field: `spec.ports[${i}].targetPort`, message: `Invalid value: ${show(tp)}: must be a port number (1-65535) or an IANA_SVC_NAME` });
    const out: Service['spec']['ports'][number] = { port: p.port, targetPort, protocol: p.protocol };
    if (p.name !== undefined) out.name = p.name;
    if (p.appProtocol !== undefined) out.appProtocol = p.appProtocol;
    return out;
  });
  if (ports.length > 1 && ports.some((p) => p.name === undefined || p.name === '')) {
    issues.push({ field: 'spec.ports', message: 'Required value: when multiple ports are specified, each port must have a name' });
  }
  if (spec.selector !== undefined) for (const e of labelErrors(spec.selector)) issues.push({ field: 'spec.selector', message: e });
  if (issues.length > before) return undefined;
  const out: Service['spec'] = { type: spec.type, ports };
  if (spec.selector !== undefined) out.selector = spec.selector;
  return out;
}

export const service: KindRules<Service> = {
  kind: 'Service',
  apiVersions: ['v1'],
  topLevelKeys: null,
  specRequired: false,
  parse(raw, issues) {
    const spec = walk(raw.spec ?? {}, serviceSpecSchema, 'spec', issues) as RawServiceSpec | undefined;
    const typed = spec !== undefined ? serviceTyped(spec, issues) : undefined;
    if (issues.length > 0 || typed === undefined) return undefined;
    return { generationOf: typed, build: (metadata) => ({ apiVersion: 'v1', kind: 'Service', metadata, spec: typed }) };
  },
};
