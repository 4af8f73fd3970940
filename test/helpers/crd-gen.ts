/**
 * Our CRD manifests (deploy/crds, and the chart's crds/), generated from the schemas the router
 * validates with (src/resources/validate.ts), so that what the API server accepts and what the
 * router accepts in file mode cannot drift apart. The CEL rules and printer columns are Kthena's;
 * test/unit/deploy.test.ts checks that every spec schema equals Kthena's and that the status
 * schemas accept what Kthena's do plus the conditions our status writer sets.
 */
import {
  externalModelProviderSpecSchema, modelRouteSpecSchema, modelServerSpecSchema, type Schema,
} from '../../src/resources/validate.js';

type Json = Record<string, unknown>;

const GROUP = 'networking.serving.volcano.sh';

/** Kthena's CEL rules, by field path under spec ('' is spec itself, [] an array item). */
const VALIDATIONS: Record<string, Record<string, { rule: string; message: string }[]>> = {
  ModelRoute: {
    '': [{ message: 'ModelName and LoraAdapters cannot both be empty', rule: 'self.modelName != "" || size(self.loraAdapters) > 0' }],
    modelName: [{ message: 'modelName is immutable', rule: 'self == oldSelf' }],
    'rules[].targetModels[]': [{
      message: 'exactly one of modelServerName or externalModelProviderName must be set',
      rule: '(has(self.modelServerName) && self.modelServerName != "") != (has(self.externalModelProviderName) && self.externalModelProviderName != "")',
    }],
  },
  ModelServer: {
    // Ours (Kthena's authorization proposal); the router checks the same in file mode.
    'apiKeyRules[]': [{ message: 'one of secretName or labelSelector is required', rule: 'has(self.secretName) || (has(self.labelSelector) && size(self.labelSelector) > 0)' }],
  },
  ExternalModelProvider: {
    auth: [{ message: 'secretRef.optional must be false or unset', rule: '!has(self.secretRef.optional) || !self.secretRef.optional' }],
  },
};

/** Kubernetes' metav1.Condition, as controller-gen writes it. */
const CONDITION: Json = {
  type: 'object',
  required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
  properties: {
    lastTransitionTime: { type: 'string', format: 'date-time' },
    message: { type: 'string', maxLength: 32768 },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    type: {
      type: 'string', maxLength: 316,
      pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    },
  },
};

/** Kthena's ModelRoute/ModelServer status is an empty object; ours carries the conditions the status writer sets. */
const STATUS: Json = {
  type: 'object',
  properties: {
    conditions: { type: 'array', items: CONDITION },
    observedGeneration: { type: 'integer', format: 'int64' },
  },
};

function openApi(s: Schema, kind: string, at: string): Json {
  const v = VALIDATIONS[kind]![at];
  const out = ((): Json => {
    switch (s.t) {
      case 'string': {
        const o: Json = { type: 'string' };
        if (s.default !== undefined) o.default = s.default;
        if (s.enum !== undefined) o.enum = [...s.enum];
        if (s.maxLength !== undefined) o.maxLength = s.maxLength;
        if (s.minLength !== undefined) o.minLength = s.minLength;
        if (s.pattern !== undefined) o.pattern = s.pattern;
        return o;
      }
      case 'integer': {
        // Every integer of these CRDs is an int32.
        const o: Json = { type: 'integer', format: 'int32' };
        if (s.default !== undefined) o.default = s.default;
        if (s.maximum !== undefined) o.maximum = s.maximum;
        if (s.minimum !== undefined) o.minimum = s.minimum;
        return o;
      }
      case 'boolean': return s.default !== undefined ? { type: 'boolean', default: s.default } : { type: 'boolean' };
      case 'array': {
        const o: Json = { type: 'array', items: openApi(s.items, kind, `${at}[]`) };
        if (s.maxItems !== undefined) o.maxItems = s.maxItems;
        if (s.minItems !== undefined) o.minItems = s.minItems;
        return o;
      }
      case 'object': {
        const o: Json = { type: 'object' };
        if (s.values !== undefined) o.additionalProperties = openApi(s.values, kind, `${at}{}`);
        if (s.properties !== undefined) {
          o.properties = Object.fromEntries(Object.keys(s.properties).sort()
            .map((k) => [k, openApi(s.properties![k]!, kind, at === '' ? k : `${at}.${k}`)]));
        }
        if (s.required !== undefined && s.required.length > 0) o.required = [...s.required].sort();
        return o;
      }
      case 'any': return { 'x-kubernetes-preserve-unknown-fields': true };
    }
  })();
  if (v !== undefined) out['x-kubernetes-validations'] = v;
  return out;
}

interface KindDef {
  kind: 'ModelRoute' | 'ModelServer' | 'ExternalModelProvider';
  plural: string;
  spec: Schema;
  specRequired: boolean;
  status: Json;
  printerColumns?: Json[];
}

const AGE = { jsonPath: '.metadata.creationTimestamp', name: 'Age', type: 'date' };

const KINDS: KindDef[] = [
  { kind: 'ExternalModelProvider', plural: 'externalmodelproviders', spec: externalModelProviderSpecSchema, specRequired: false, status: STATUS },
  { kind: 'ModelRoute', plural: 'modelroutes', spec: modelRouteSpecSchema, specRequired: true, status: STATUS, printerColumns: [AGE] },
  {
    kind: 'ModelServer', plural: 'modelservers', spec: modelServerSpecSchema, specRequired: false, status: STATUS,
    printerColumns: [
      { description: 'Inference engine used to serve the model', jsonPath: '.spec.inferenceEngine', name: 'Engine', type: 'string' },
      { description: 'Model server port', jsonPath: '.spec.workloadPort.port', name: 'Port', type: 'integer' },
      { description: 'Model server protocol', jsonPath: '.spec.workloadPort.protocol', name: 'Protocol', type: 'string' },
      AGE,
    ],
  },
];

export function generateCrds(): { file: string; crd: Json }[] {
  return KINDS.map((k) => {
    const root: Json = {
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: { type: 'object' },
        spec: openApi(k.spec, k.kind, ''),
        status: k.status,
      },
    };
    if (k.specRequired) root.required = ['spec'];
    const version: Json = { name: 'v1alpha1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: root } };
    if (k.printerColumns !== undefined) version.additionalPrinterColumns = k.printerColumns;
    return {
      file: `${GROUP}_${k.plural}.yaml`,
      crd: {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: {
          name: `${k.plural}.${GROUP}`,
          labels: { 'app.kubernetes.io/part-of': 'kthena-router' },
        },
        spec: {
          group: GROUP,
          names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.kind.toLowerCase() },
          scope: 'Namespaced',
          versions: [version],
        },
      },
    };
  });
}
