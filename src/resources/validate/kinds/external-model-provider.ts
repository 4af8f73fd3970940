/**
 * ExternalModelProvider (networking.serving.volcano.sh/v1alpha1): its CRD schema, the CRD's CEL
 * rule on `auth` and Kthena's webhook rules, for file and Kubernetes mode and for the admission
 * webhook. The credential and the provider's readiness are judged in
 * src/resources/external-provider.ts.
 */
import type { ExternalModelProvider } from '../../external-provider.js';
import { type FieldError, type Schema, fileIssue, map, obj, str, walk } from '../schema.js';
import { type AdmissionRules, CRD_TOP_LEVEL_KEYS, type KindRules, KTHENA_API_VERSION } from '../kind.js';

export const externalModelProviderSpecSchema: Schema = obj({
  auth: obj({
    scheme: str({ enum: ['Bearer', 'APIKey'] }),
    secretRef: obj({ key: str(), name: str({ default: '' }), optional: { t: 'boolean' } }, ['key']),
  }, ['secretRef']),
  baseURL: str({ minLength: 1, pattern: '^https://.+' }),
  headers: map(str()),
  insecureSkipVerify: { t: 'boolean', default: false },
  model: str({ maxLength: 256 }),
  providerType: str({ enum: ['OpenAI', 'Anthropic'], default: 'OpenAI' }),
}, ['baseURL']);

interface ExternalModelProviderSpec {
  providerType?: string;
  model?: string;
  baseURL: string;
  insecureSkipVerify?: boolean;
  auth?: { scheme?: string; secretRef: { name?: string; key: string; optional?: boolean } };
  headers?: Record<string, string>;
}

/** Headers an ExternalModelProvider may not set statically (Kthena's common.IsReservedProviderHeader). */
const RESERVED_PROVIDER_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'host', 'content-length', 'connection',
  'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te',
]);
const HEADER_TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** httpguts.ValidHeaderFieldValue: no control characters but horizontal tab, no DEL. */
function validHeaderValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/**
 * Go's url.Parse read of an https base URL: authority up to the first '/', '?' or '#'. A WHATWG
 * URL would read `https:///x` as host "x" where Go sees an empty host.
 */
function baseUrlError(u: string): string | null {
  if (!/^https:\/\//i.test(u)) return 'baseURL must use https';
  const rest = u.slice('https://'.length);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (authority.slice(at + 1) === '') return 'baseURL must use https';
  try {
    new URL(u);
  } catch {
    return 'baseURL must use https';
  }
  const hash = u.indexOf('#');
  const beforeHash = hash < 0 ? u : u.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const query = q < 0 ? '' : beforeHash.slice(q + 1);
  const fragment = hash < 0 ? '' : u.slice(hash + 1);
  if (at >= 0 || query !== '' || fragment !== '') return 'baseURL must not contain userinfo, query, or fragment';
  return null;
}

/** Kthena's webhook rules for ExternalModelProvider, in its order (header names sorted). */
export function externalModelProviderWebhook(spec: ExternalModelProviderSpec): FieldError[] {
  const errs: FieldError[] = [];
  const pt = spec.providerType ?? '';
  if (pt !== '' && pt !== 'OpenAI' && pt !== 'Anthropic') {
    errs.push({ field: 'spec.providerType', type: 'NotSupported', value: pt, supported: ['OpenAI', 'Anthropic'], detail: '' });
  }
  const urlErr = baseUrlError(spec.baseURL);
  if (urlErr !== null) errs.push({ field: 'spec.baseURL', type: 'Invalid', value: spec.baseURL, detail: urlErr });
  const headers = spec.headers ?? {};
  for (const name of Object.keys(headers).sort()) {
    const field = `spec.headers[${name}]`;
    if (!HEADER_TOKEN_RE.test(name)) {
      errs.push({ field, type: 'Invalid', value: name, detail: 'header name is invalid' });
      continue;
    }
    if (RESERVED_PROVIDER_HEADERS.has(name.toLowerCase())) {
      errs.push({ field, type: 'Invalid', value: name, detail: 'header is reserved and cannot be configured as a static header' });
    }
    if (!validHeaderValue(headers[name])) errs.push({ field, type: 'Invalid', value: headers[name], detail: 'header value is invalid' });
  }
  const auth = spec.auth;
  if (auth !== undefined) {
    const scheme = auth.scheme ?? '';
    if (scheme !== '' && scheme !== 'Bearer' && scheme !== 'APIKey') {
      errs.push({ field: 'spec.auth.scheme', type: 'NotSupported', value: scheme, supported: ['Bearer', 'APIKey'], detail: '' });
    }
    if ((auth.secretRef.name ?? '') === '') errs.push({ field: 'spec.auth.secretRef.name', type: 'Required', detail: 'secret name is required' });
    if (auth.secretRef.key === '') errs.push({ field: 'spec.auth.secretRef.key', type: 'Required', detail: 'secret key is required' });
    if (auth.secretRef.optional === true) errs.push({ field: 'spec.auth.secretRef.optional', type: 'Invalid', value: true, detail: 'optional must be false or unset' });
  }
  return errs;
}

/** The typed spec of a valid object (CRD defaults applied; `auth.secretRef.optional` is false or unset). */
function typedSpec(spec: ExternalModelProviderSpec): ExternalModelProvider['spec'] {
  const typed: ExternalModelProvider['spec'] = {
    providerType: spec.providerType as ExternalModelProvider['spec']['providerType'],
    baseURL: spec.baseURL,
    insecureSkipVerify: spec.insecureSkipVerify === true,
  };
  if (spec.model !== undefined) typed.model = spec.model;
  if (spec.auth !== undefined) {
    typed.auth = { secretRef: { name: spec.auth.secretRef.name ?? '', key: spec.auth.secretRef.key } };
    if (spec.auth.scheme !== undefined) typed.auth.scheme = spec.auth.scheme as 'Bearer' | 'APIKey';
  }
  if (spec.headers !== undefined) typed.headers = spec.headers;
  return typed;
}

export const externalModelProvider: KindRules<ExternalModelProvider> & AdmissionRules = {
  kind: 'ExternalModelProvider',
  apiVersions: [KTHENA_API_VERSION],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: true,
  parse(raw, issues) {
    const spec = walk(raw.spec, externalModelProviderSpecSchema, 'spec', issues) as ExternalModelProviderSpec | undefined;
    // The CRD's CEL rule (self = spec.auth), with its message.
    if (spec?.auth?.secretRef.optional === true) issues.push({ field: 'spec.auth', message: 'secretRef.optional must be false or unset' });
    if (issues.length > 0 || spec === undefined) return undefined;
    issues.push(...externalModelProviderWebhook(spec).map(fileIssue));
    if (issues.length > 0) return undefined;
    const typed = typedSpec(spec);
    return { generationOf: typed, build: (metadata) => ({ apiVersion: KTHENA_API_VERSION, kind: 'ExternalModelProvider', metadata, spec: typed }) };
  },
  // The CRD's CEL rule on secretRef.optional is left to the webhook rule, which words it as Kthena's webhook.
  admit(raw, issues) {
    const spec = walk(raw, externalModelProviderSpecSchema, 'spec', issues) as ExternalModelProviderSpec | undefined;
    return spec === undefined || issues.length > 0 ? undefined : externalModelProviderWebhook(spec);
  },
};
