/**
 * ModelRoute (networking.serving.volcano.sh/v1alpha1): its CRD schema (transcribed from Kthena's
 * charts/kthena/charts/networking/crds; test/unit/validate.test.ts compares it with the copies in
 * test/fixtures/crds/), its CEL rules and Kthena's webhook rules.
 */
import type { ModelRoute } from '../../types.js';
import { type FieldError, type Issue, type Schema, arr, fileIssue, int, map, obj, str, walk } from '../schema.js';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN } from '../names.js';
import { regexError } from '../regex.js';
import { type AdmissionRules, CRD_TOP_LEVEL_KEYS, type KindRules, type Resource, KTHENA_API_VERSION } from '../kind.js';

const stringMatchSchema = obj({ exact: str(), prefix: str(), regex: str() });

export const modelRouteSpecSchema: Schema = obj({
  loraAdapters: arr(str(), { maxItems: 10 }),
  modelName: str(),
  parentRefs: arr(obj({
    group: str({ default: 'gateway.networking.k8s.io', maxLength: 253, pattern: `^$|${DNS1123_SUBDOMAIN}` }),
    kind: str({ default: 'Gateway', minLength: 1, maxLength: 63, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$' }),
    name: str({ minLength: 1, maxLength: 253 }),
    namespace: str({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL }),
    port: int({ minimum: 1, maximum: 65535 }),
    sectionName: str({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN }),
  }, ['name'])),
  rateLimit: obj({
    global: obj({ redis: obj({ address: str() }, ['address']) }),
    inputTokensPerUnit: int({ minimum: 1 }),
    outputTokensPerUnit: int({ minimum: 1 }),
    unit: str({ enum: ['second', 'minute', 'hour', 'day', 'month'], default: 'second' }),
  }, ['unit']),
  // Kthena's session-sticky proposal (volcano-sh/kthena:docs/proposal/infer-gateway-session-sticky.md);
  // not in Kthena's CRD at the version this router follows (test/unit/validate.test.ts lists it as ours).
  sessionSticky: obj({
    sessionAffinitySeconds: int({ minimum: 1 }),
    sources: arr(obj({
      type: str({ enum: ['Header', 'Query', 'Cookie', 'JWTClaim'] }),
      name: str({ minLength: 1 }),
    }, ['type', 'name']), { minItems: 1, maxItems: 16 }),
  }, ['sources']),
  rules: arr(obj({
    modelMatch: obj({
      body: obj({ model: str() }),
      headers: map(stringMatchSchema),
      uri: stringMatchSchema,
    }),
    name: str(),
    targetModels: arr(obj({
      externalModelProviderName: str(),
      modelServerName: str(),
      weight: int({ minimum: 0, maximum: 100, default: 100 }),
    }), { minItems: 1, maxItems: 16 }),
  }, ['targetModels']), { maxItems: 16 }),
}, ['rules']);

function modelRouteCel(spec: ModelRoute['spec'], previous: Resource | undefined, issues: Issue[]): void {
  if ((spec.modelName ?? '') === '' && (spec.loraAdapters ?? []).length === 0) {
    issues.push({ field: 'spec', message: 'ModelName and LoraAdapters cannot both be empty' });
  }
  spec.rules.forEach((rule, i) => rule.targetModels.forEach((t, j) => {
    if (((t.modelServerName ?? '') !== '') === ((t.externalModelProviderName ?? '') !== '')) {
      issues.push({ field: `spec.rules[${i}].targetModels[${j}]`, message: 'exactly one of modelServerName or externalModelProviderName must be set' });
    }
  }));
  // A CEL transition rule (self == oldSelf) runs only when the field exists in both versions.
  if (previous !== undefined && previous.kind === 'ModelRoute' && previous.spec.modelName !== undefined &&
    spec.modelName !== undefined && previous.spec.modelName !== spec.modelName) {
    issues.push({ field: 'spec.modelName', message: 'modelName is immutable' });
  }
}

/**
 * Kthena's webhook rules for ModelRoute (pkg/kthena-router/webhook/validator.go), in its order.
 * The rules the CRD's CEL already enforces are repeated, as Kthena's webhook does, so that the
 * admission webhook answers like Kthena's even behind an older CRD.
 */
export function modelRouteWebhook(spec: ModelRoute['spec']): FieldError[] {
  const errs: FieldError[] = [];
  const lora = spec.loraAdapters ?? [];
  if ((spec.modelName ?? '') === '' && lora.length === 0) {
    errs.push({ field: 'spec', type: 'Required', detail: 'either modelName or loraAdapters must be specified' });
  }
  lora.forEach((a, i) => {
    if (a === '') errs.push({ field: `spec.loraAdapters[${i}]`, type: 'Invalid', value: a, detail: 'lora adapter name cannot be an empty string' });
  });
  spec.rules.forEach((rule, i) => {
    const rf = `spec.rules[${i}]`;
    if (rule.targetModels.length === 0) {
      errs.push({ field: `${rf}.targetModels`, type: 'Required', detail: 'each rule must have at least one target model' });
      return;
    }
    let total = 0;
    rule.targetModels.forEach((t, j) => {
      const server = t.modelServerName ?? '';
      const provider = t.externalModelProviderName ?? '';
      if ((server !== '') === (provider !== '')) {
        errs.push({ field: `${rf}.targetModels[${j}]`, type: 'Invalid', value: `${server}/${provider}`, detail: 'exactly one of modelServerName or externalModelProviderName must be set' });
      }
      if (provider !== '' && lora.length > 0) {
        errs.push({ field: `${rf}.targetModels[${j}].externalModelProviderName`, type: 'Invalid', value: provider, detail: 'lora routes must target modelServerName' });
      }
      total += t.weight;
    });
    if (total === 0) errs.push({ field: `${rf}.targetModels`, type: 'Invalid', value: total, detail: 'total weight must be greater than zero' });
    const mm = rule.modelMatch;
    if (mm === undefined) return;
    for (const [key, sm] of Object.entries(mm.headers ?? {})) {
      // Not a Kthena rule: an empty name reads as a missing header, which no request can send.
      if (key === '') errs.push({ field: `${rf}.modelMatch.headers`, type: 'Invalid', value: key, detail: 'header name must not be empty' });
      if (sm.regex === undefined) continue;
      const err = regexError(sm.regex);
      if (err !== null) errs.push({ field: `${rf}.modelMatch.headers[${key}].regex`, type: 'Invalid', value: sm.regex, detail: err });
    }
    if (mm.uri?.regex !== undefined) {
      const err = regexError(mm.uri.regex);
      if (err !== null) errs.push({ field: `${rf}.modelMatch.uri.regex`, type: 'Invalid', value: mm.uri.regex, detail: err });
    }
  });
  return errs;
}

export const modelRoute: KindRules<ModelRoute> & AdmissionRules = {
  kind: 'ModelRoute',
  apiVersions: [KTHENA_API_VERSION],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues, ctx) {
    const spec = walk(raw.spec, modelRouteSpecSchema, 'spec', issues) as ModelRoute['spec'] | undefined;
    if (spec !== undefined) modelRouteCel(spec, ctx.previous, issues);
    // Webhook rules run only on objects the API server would have stored.
    if (issues.length > 0 || spec === undefined) return undefined;
    issues.push(...modelRouteWebhook(spec).map(fileIssue));
    if (issues.length > 0) return undefined;
    return { generationOf: spec, build: (metadata) => ({ apiVersion: KTHENA_API_VERSION, kind: 'ModelRoute', metadata, spec }) };
  },
  admit(raw, issues) {
    const spec = walk(raw, modelRouteSpecSchema, 'spec', issues) as ModelRoute['spec'] | undefined;
    return spec === undefined || issues.length > 0 ? undefined : modelRouteWebhook(spec);
  },
};
