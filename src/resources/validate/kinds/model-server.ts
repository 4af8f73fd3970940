/**
 * ModelServer (networking.serving.volcano.sh/v1alpha1): its CRD schema (transcribed from Kthena's
 * charts/kthena/charts/networking/crds; test/unit/validate.test.ts compares it with the copies in
 * test/fixtures/crds/), its durations and Kthena's webhook rules.
 */
import type { ApiKeyRule, ModelServer } from '../../types.js';
import { apiKeyRulesIssues, apiKeyRulesSchema } from '../api-key-rules.js';
import { parseDurationMs } from '../../../util/duration.js';
import { type FieldError, type Issue, type Schema, fileIssue, int, map, obj, str, walk } from '../schema.js';
import { selectorError } from '../names.js';
import { type AdmissionRules, CRD_TOP_LEVEL_KEYS, type KindRules, KTHENA_API_VERSION } from '../kind.js';

export const modelServerSpecSchema: Schema = obj({
  apiKeyRules: apiKeyRulesSchema,
  inferenceEngine: str({ enum: ['vLLM', 'SGLang'] }),
  kvConnector: obj({ type: str({ enum: ['http', 'lmcache', 'nixl', 'mooncake'], default: 'http' }) }),
  model: str({ maxLength: 256 }),
  trafficPolicy: obj({
    retry: obj({ attempts: int(), retryInterval: str({ default: '100ms' }) }),
    timeout: str(),
  }),
  workloadPort: obj({
    port: int({ minimum: 1, maximum: 65535 }),
    protocol: str({ enum: ['http', 'https'], default: 'http' }),
  }, ['port']),
  workloadSelector: obj({
    matchLabels: map(str()),
    pdGroup: obj({ decodeLabels: map(str()), groupKey: str(), prefillLabels: map(str()) }, ['decodeLabels', 'groupKey', 'prefillLabels']),
  }),
}, ['inferenceEngine', 'workloadPort', 'workloadSelector']);

interface ModelServerSpecRaw {
  model?: string;
  inferenceEngine: 'vLLM' | 'SGLang';
  workloadSelector: { matchLabels?: Record<string, string>; pdGroup?: { groupKey: string; prefillLabels: Record<string, string>; decodeLabels: Record<string, string> } };
  workloadPort: { port: number; protocol: 'http' | 'https' };
  trafficPolicy?: { timeout?: string; retry?: { attempts?: number; retryInterval: string } };
  kvConnector?: { type: 'http' | 'lmcache' | 'nixl' | 'mooncake' };
  apiKeyRules?: ApiKeyRule[];
}

const DURATION_HINT = 'must be a non-negative duration such as "10s", "1m30s" or "500ms"';

/** Durations parsed to ms; an invalid one rejects the object (Kthena's informer would fail to decode it). */
function modelServerTyped(w: ModelServerSpecRaw, issues: Issue[]): ModelServer['spec'] | undefined {
  const spec: ModelServer['spec'] = {
    inferenceEngine: w.inferenceEngine,
    workloadSelector: { matchLabels: w.workloadSelector.matchLabels ?? {} },
    workloadPort: w.workloadPort,
  };
  if (w.model !== undefined) spec.model = w.model;
  if (w.workloadSelector.pdGroup !== undefined) spec.workloadSelector.pdGroup = w.workloadSelector.pdGroup;
  if (w.kvConnector !== undefined) spec.kvConnector = w.kvConnector;
  const before = issues.length;
  if (w.apiKeyRules !== undefined) {
    apiKeyRulesIssues(w.apiKeyRules, issues);
    spec.apiKeyRules = w.apiKeyRules;
  }
  if (w.trafficPolicy !== undefined) {
    const tp: NonNullable<ModelServer['spec']['trafficPolicy']> = {};
    if (w.trafficPolicy.timeout !== undefined) {
      const ms = parseDurationMs(w.trafficPolicy.timeout);
      if (ms === null) issues.push({ field: 'spec.trafficPolicy.timeout', message: `Invalid value: ${JSON.stringify(w.trafficPolicy.timeout)}: ${DURATION_HINT}` });
      else tp.timeoutMs = ms;
    }
    const retry = w.trafficPolicy.retry;
    if (retry !== undefined) {
      const ms = parseDurationMs(retry.retryInterval);
      if (ms === null) issues.push({ field: 'spec.trafficPolicy.retry.retryInterval', message: `Invalid value: ${JSON.stringify(retry.retryInterval)}: ${DURATION_HINT}` });
      // attempts is a plain int32 in Kthena's Go type: unset reads as 0.
      else tp.retry = { attempts: retry.attempts ?? 0, retryIntervalMs: ms };
    }
    spec.trafficPolicy = tp;
  }
  return issues.length === before ? spec : undefined;
}

/** Kthena's webhook rules for ModelServer, in its order. */
export function modelServerWebhook(spec: ModelServer['spec']): FieldError[] {
  const errs: FieldError[] = [];
  const ws = 'spec.workloadSelector';
  const selector = (field: string, labels: Record<string, string>): void => {
    if (Object.keys(labels).length === 0) {
      errs.push({ field, type: 'Required', detail: 'labels must contain at least one label' });
      return;
    }
    const e = selectorError(labels);
    if (e !== null) errs.push({ field, type: 'Invalid', value: labels, detail: `invalid selector: ${e}` });
  };
  selector(`${ws}.matchLabels`, spec.workloadSelector.matchLabels);
  const pd = spec.workloadSelector.pdGroup;
  if (pd !== undefined) {
    if (pd.groupKey === '') errs.push({ field: `${ws}.pdGroup.groupKey`, type: 'Required', detail: 'groupKey must be specified' });
    selector(`${ws}.pdGroup.prefillLabels`, pd.prefillLabels);
    selector(`${ws}.pdGroup.decodeLabels`, pd.decodeLabels);
  }
  return errs;
}

export const modelServer: KindRules<ModelServer> & AdmissionRules = {
  kind: 'ModelServer',
  apiVersions: [KTHENA_API_VERSION],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const written = walk(raw.spec, modelServerSpecSchema, 'spec', issues) as ModelServerSpecRaw | undefined;
    const spec = written === undefined ? undefined : modelServerTyped(written, issues);
    // Webhook rules run only on objects the API server would have stored.
    if (issues.length > 0 || spec === undefined) return undefined;
    issues.push(...modelServerWebhook(spec).map(fileIssue));
    if (issues.length > 0) return undefined;
    return {
      generationOf: spec,
      build: (metadata) => ({ apiVersion: KTHENA_API_VERSION, kind: 'ModelServer', metadata, spec, rawSpec: structuredClone(raw.spec) }),
    };
  },
  admit(raw, issues) {
    const w = walk(raw, modelServerSpecSchema, 'spec', issues) as ModelServerSpecRaw | undefined;
    const spec = w === undefined ? undefined : modelServerTyped(w, issues);
    return spec === undefined || issues.length > 0 ? undefined : modelServerWebhook(spec);
  },
};
