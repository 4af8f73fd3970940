/**
 * InferenceObjective (inference.networking.x-k8s.io/v1alpha2 as GIE v1.5 wrote it, and llm-d.ai/v1alpha2
 * as llm-d-router carries it on): schema and the pool-reference rules.
 */
import { INFERENCE_GROUP, INFERENCE_X_GROUP, LLMD_GROUP, type InferenceObjective } from '../../gateway.js';
import { arr, int, obj, walk } from '../schema.js';
import { type KindRules, CRD_TOP_LEVEL_KEYS } from '../kind.js';
import { type RawSelector, group, kind, labelSelectorSchema, objectName, selectorOf } from './gateway-api-fields.js';

const poolRefSchema = obj({ group: group(INFERENCE_GROUP), kind: kind('InferencePool'), name: objectName }, ['name']);

const inferenceObjectiveSpecSchema = obj({
  priority: int(),
  poolRef: poolRefSchema,
  poolRefs: arr(poolRefSchema, { minItems: 1 }),
  poolSelector: labelSelectorSchema,
});

interface RawObjectiveSpec {
  priority?: number;
  poolRef?: InferenceObjective['spec']['poolRef'];
  poolRefs?: InferenceObjective['spec']['poolRefs'];
  poolSelector?: RawSelector & { matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[] };
}

export const inferenceObjective: KindRules<InferenceObjective> = {
  kind: 'InferenceObjective',
  apiVersions: [`${INFERENCE_X_GROUP}/v1alpha2`, `${LLMD_GROUP}/v1alpha2`],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const apiVersion = raw.apiVersion as string;
    const spec = walk(raw.spec ?? {}, inferenceObjectiveSpecSchema, 'spec', issues) as RawObjectiveSpec | undefined;
    if (spec !== undefined && apiVersion.startsWith(`${INFERENCE_X_GROUP}/`) && spec.poolRef === undefined) {
      // GIE v1.5 required poolRef; llm-d-router made it optional beside poolRefs/poolSelector.
      issues.push({ field: 'spec.poolRef', message: 'Required value' });
    }
    if (spec !== undefined && spec.poolRef === undefined && spec.poolRefs === undefined && spec.poolSelector === undefined) {
      issues.push({ field: 'spec', message: 'one of poolRef, poolRefs or poolSelector must be set' });
    }
    if (issues.length > 0 || spec === undefined) return undefined;
    const typed: InferenceObjective['spec'] = {};
    if (spec.priority !== undefined) typed.priority = spec.priority;
    if (spec.poolRef !== undefined) typed.poolRef = spec.poolRef;
    if (spec.poolRefs !== undefined) typed.poolRefs = spec.poolRefs;
    if (spec.poolSelector !== undefined) typed.poolSelector = selectorOf(spec.poolSelector);
    return { generationOf: typed, build: (metadata, apiVersion) => ({ apiVersion, kind: 'InferenceObjective', metadata, spec: typed }) };
  },
};
