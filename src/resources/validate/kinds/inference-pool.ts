/** InferencePool (inference.networking.k8s.io/v1): schema and CEL rules. */
import { INFERENCE_GROUP, type InferencePool } from '../../gateway.js';
import { type Issue, arr, map, obj, str, walk } from '../schema.js';
import { labelErrors } from '../names.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import { group, kind, objectName, port } from './gateway-api-fields.js';

const inferencePoolSpecSchema = obj({
  selector: obj({ matchLabels: map(str({ maxLength: 63 })) }, ['matchLabels']),
  targetPorts: arr(obj({ number: port }, ['number']), { minItems: 1, maxItems: 8 }),
  appProtocol: str({ enum: ['http', 'kubernetes.io/h2c'], default: 'http' }),
  endpointPickerRef: obj({
    group: group(''),
    kind: kind('Service'),
    name: objectName,
    port: obj({ number: port }, ['number']),
    failureMode: str({ enum: ['FailOpen', 'FailClose'], default: 'FailClose' }),
  }, ['name']),
}, ['selector', 'targetPorts']);

function inferencePoolCel(spec: InferencePool['spec'], issues: Issue[]): void {
  const n = Object.keys(spec.selector.matchLabels).length;
  if (n < 1) issues.push({ field: 'spec.selector.matchLabels', message: 'Invalid value: 0: must have at least 1 properties' });
  if (n > 64) issues.push({ field: 'spec.selector.matchLabels', message: `Too many: ${n}: must have at most 64 properties` });
  for (const e of labelErrors(spec.selector.matchLabels as Record<string, string>)) issues.push({ field: 'spec.selector.matchLabels', message: e });
  if (spec.targetPorts.some((p1) => spec.targetPorts.filter((p2) => p1.number === p2.number).length !== 1)) {
    issues.push({ field: 'spec.targetPorts', message: 'port number must be unique' });
  }
  const epp = spec.endpointPickerRef;
  if (epp !== undefined && epp.kind === 'Service' && epp.port === undefined) {
    issues.push({ field: 'spec.endpointPickerRef', message: "port is required when kind is 'Service' or unspecified (defaults to 'Service')" });
  }
}

export const inferencePool: KindRules<InferencePool> = {
  kind: 'InferencePool',
  apiVersions: [`${INFERENCE_GROUP}/v1`],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const spec = walk(raw.spec ?? {}, inferencePoolSpecSchema, 'spec', issues) as InferencePool['spec'] | undefined;
    if (spec !== undefined) inferencePoolCel(spec, issues);
    if (issues.length > 0 || spec === undefined) return undefined;
    const typed: InferencePool['spec'] = {
      selector: { matchLabels: spec.selector.matchLabels },
      targetPorts: spec.targetPorts,
      appProtocol: spec.appProtocol,
    };
    if (spec.endpointPickerRef !== undefined) typed.endpointPickerRef = spec.endpointPickerRef;
    return { generationOf: typed, build: (metadata, apiVersion) => ({ apiVersion, kind: 'InferencePool', metadata, spec: typed }) };
  },
};
