/** Gateway (gateway.networking.k8s.io v1, v1beta1): schema and the listener CEL rules. */
import { GATEWAY_GROUP, type Gateway } from '../../gateway.js';
import { type Issue, ANY, arr, map, obj, str, walk } from '../schema.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import {
  GATEWAY_API_VERSIONS, type RawSelector, group, hostname, kind, labelSelectorSchema, namespaceName, objectName, port, sectionName,
  selectorErrors, selectorOf,
} from './gateway-api-fields.js';

const PROTOCOL = '^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9]+$';

const listenerSchema = obj({
  name: sectionName,
  hostname,
  port,
  protocol: str({ minLength: 1, maxLength: 255, pattern: PROTOCOL }),
  tls: obj({
    mode: str({ enum: ['Terminate', 'Passthrough'], default: 'Terminate' }),
    certificateRefs: arr(obj({
      group: group(''), kind: kind('Secret'), name: objectName, namespace: namespaceName,
    }, ['name']), { maxItems: 64 }),
    options: map(str()),
    frontendValidation: ANY,
  }),
  allowedRoutes: obj({
    namespaces: obj({
      from: str({ enum: ['All', 'Selector', 'Same', 'None'], default: 'Same' }),
      selector: labelSelectorSchema,
    }),
    kinds: arr(obj({ group: group(GATEWAY_GROUP), kind: kind() }, ['kind']), { maxItems: 8 }),
  }),
}, ['name', 'port', 'protocol']);

const gatewaySpecSchema = obj({
  gatewayClassName: str({ minLength: 1, maxLength: 253 }),
  listeners: arr(listenerSchema, { minItems: 1, maxItems: 64 }),
  addresses: arr(obj({ type: str({ default: 'IPAddress' }), value: str({ minLength: 1, maxLength: 253 }) }), { maxItems: 16 }),
  infrastructure: ANY,
  allowedListeners: ANY,
  tls: ANY,
  defaultScope: ANY,
  backendTLS: ANY,
}, ['gatewayClassName', 'listeners']);

function gatewayCel(spec: Gateway['spec'], issues: Issue[]): void {
  const ls = spec.listeners;
  const f = 'spec.listeners';
  if (ls.some((l) => ['HTTP', 'TCP', 'UDP'].includes(l.protocol) && l.tls !== undefined)) {
    issues.push({ field: f, message: "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']" });
  }
  if (ls.some((l) => l.protocol === 'HTTPS' && l.tls !== undefined && l.tls.mode !== 'Terminate')) {
    issues.push({ field: f, message: 'tls mode must be Terminate for protocol HTTPS' });
  }
  if (ls.some((l) => l.protocol === 'TLS' && l.tls === undefined)) issues.push({ field: f, message: 'tls mode must be set for protocol TLS' });
  if (ls.some((l) => ['TCP', 'UDP'].includes(l.protocol) && l.hostname !== undefined)) {
    issues.push({ field: f, message: "hostname must not be specified for protocols ['TCP', 'UDP']" });
  }
  if (ls.some((a) => ls.filter((b) => a.name === b.name).length !== 1)) issues.push({ field: f, message: 'Listener name must be unique within the Gateway' });
  if (ls.some((a) => ls.filter((b) => a.port === b.port && a.protocol === b.protocol && a.hostname === b.hostname).length !== 1)) {
    issues.push({ field: f, message: 'Combination of port, protocol and hostname must be unique for each listener' });
  }
  ls.forEach((l, i) => {
    if (l.tls !== undefined && l.tls.mode === 'Terminate' && (l.tls.certificateRefs ?? []).length === 0 && Object.keys((l.tls as { options?: object }).options ?? {}).length === 0) {
      issues.push({ field: `${f}[${i}].tls`, message: 'certificateRefs or options must be specified when mode is Terminate' });
    }
    const sel = l.allowedRoutes?.namespaces?.selector;
    if (sel !== undefined) for (const e of selectorErrors(sel as RawSelector)) issues.push({ field: `${f}[${i}].allowedRoutes.namespaces.selector`, message: e });
  });
}

export const gateway: KindRules<Gateway> = {
  kind: 'Gateway',
  apiVersions: GATEWAY_API_VERSIONS,
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const spec = walk(raw.spec ?? {}, gatewaySpecSchema, 'spec', issues) as Gateway['spec'] | undefined;
    if (spec !== undefined) gatewayCel(spec, issues);
    if (issues.length > 0 || spec === undefined) return undefined;
    const typed: Gateway['spec'] = {
      gatewayClassName: spec.gatewayClassName,
      listeners: spec.listeners.map((l) => {
        const out: Gateway['spec']['listeners'][number] = {
          name: l.name, port: l.port, protocol: l.protocol,
          allowedRoutes: {
            namespaces: { from: l.allowedRoutes?.namespaces?.from ?? 'Same' },
            kinds: (l.allowedRoutes?.kinds ?? []).map((x) => ({ group: x.group, kind: x.kind })),
          },
        };
        if (l.hostname !== undefined) out.hostname = l.hostname;
        const sel = l.allowedRoutes?.namespaces?.selector;
        if (sel !== undefined) out.allowedRoutes.namespaces.selector = selectorOf(sel);
        if (l.tls !== undefined) out.tls = { mode: l.tls.mode, certificateRefs: l.tls.certificateRefs ?? [] };
        return out;
      }),
      addresses: spec.addresses ?? [],
    };
    return { generationOf: typed, build: (metadata, apiVersion) => ({ apiVersion, kind: 'Gateway', metadata, spec: typed }) };
  },
};
