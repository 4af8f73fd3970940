/**
 * ExternalModelProvider (networking.serving.volcano.sh/v1alpha1): the typed resource, its
 * validation in the order the API server and Kthena's webhook apply it (CRD schema with defaults,
 * the CRD's CEL rule on `auth`, then the webhook rules, whose text lives in validate.ts beside the
 * admission entry point), and the credential lookup that both the status conditions and the
 * routing snapshot use, so that a provider the status calls Ready is exactly one the workers can
 * call.
 *
 * Kthena's behaviour: volcano-sh/kthena:pkg/kthena-router/providers/adapter.go (ValidateConfiguration,
 * NormalizeCredential) and pkg/kthena-router/controller/externalmodelprovider_controller.go
 * (conditions).
 */
import type { Secret } from './gateway.js';
import { PROVIDER_CREDENTIAL_LABEL } from './secrets.js';
import type { ObjectMeta, Problem } from './types.js';
import {
  deepFreeze, externalModelProviderSpecSchema, externalModelProviderWebhook, finishMeta, isPlainObject, KTHENA_API_VERSION, parseMetadata,
  resourceIdentity, walk, type Issue,
} from './validate.js';

export type ProviderType = 'OpenAI' | 'Anthropic';
export type ProviderAuthScheme = 'Bearer' | 'APIKey';

export interface ExternalModelProvider {
  apiVersion: 'networking.serving.volcano.sh/v1alpha1';
  kind: 'ExternalModelProvider';
  metadata: ObjectMeta;
  spec: {
    /** Defaulted to OpenAI (CRD default). */
    providerType: ProviderType;
    model?: string;
    baseURL: string;
    insecureSkipVerify: boolean;
    auth?: { scheme?: ProviderAuthScheme; secretRef: { name: string; key: string } };
    headers?: Readonly<Record<string, string>>;
  };
}

export interface ProviderParseContext {
  file: string;
  now: () => string;
  previous?: { kind: string; spec?: unknown; metadata: ObjectMeta };
  generation?: number;
}

const TOP_LEVEL_KEYS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

export function isExternalModelProviderManifest(raw: unknown): boolean {
  return isPlainObject(raw) && raw.kind === 'ExternalModelProvider' && raw.apiVersion === KTHENA_API_VERSION;
}

/** kind/namespace/name of an ExternalModelProvider document, else null. */
export function externalModelProviderIdentity(raw: unknown): { kind: 'ExternalModelProvider'; namespace: string; name: string; key: string } | null {
  if (!isExternalModelProviderManifest(raw)) return null;
  const meta = (raw as Record<string, unknown>).metadata;
  if (!isPlainObject(meta) || typeof meta.name !== 'string' || meta.name === '') return null;
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  return { kind: 'ExternalModelProvider', namespace, name: meta.name, key: resourceIdentity('ExternalModelProvider', namespace, meta.name) };
}

interface SpecRaw {
  providerType: ProviderType;
  model?: string;
  baseURL: string;
  insecureSkipVerify: boolean;
  auth?: { scheme?: ProviderAuthScheme; secretRef: { name?: string; key: string; optional?: boolean } };
  headers?: Record<string, string>;
}

/** One ExternalModelProvider document in, the validated, defaulted, frozen resource (or problems) out. */
export function parseExternalModelProvider(raw: unknown, ctx: ProviderParseContext): { resource?: ExternalModelProvider; problems: Problem[] } {
  if (!isExternalModelProviderManifest(raw)) return { problems: [] };
  const r = raw as Record<string, unknown>;
  const ident = { namespace: 'default', name: '' };
  if (isPlainObject(r.metadata)) {
    if (typeof r.metadata.name === 'string') ident.name = r.metadata.name;
    if (typeof r.metadata.namespace === 'string' && r.metadata.namespace !== '') ident.namespace = r.metadata.namespace;
  }
  const rejected = (issues: Issue[]): { problems: Problem[] } => ({
    problems: issues.map((i) => ({ kind: 'ExternalModelProvider', namespace: ident.namespace, name: ident.name, file: ctx.file, field: i.field, message: i.message, severity: 'rejected' as const })),
  });
  const issues: Issue[] = [];
  for (const key of Object.keys(r)) if (!TOP_LEVEL_KEYS.has(key)) issues.push({ field: key, message: `unknown field ${JSON.stringify(key)}` });
  const meta = parseMetadata(r.metadata, issues);
  if (r.spec === undefined || r.spec === null) {
    issues.push({ field: 'spec', message: 'Required value' });
    return rejected(issues);
  }
  const spec = walk(r.spec, externalModelProviderSpecSchema, 'spec', issues) as SpecRaw | undefined;
  // The CRD's CEL rule, then Kthena's webhook rules (only for what passed the schema, as on a cluster).
  if (spec?.auth?.secretRef.optional === true) issues.push({ field: 'spec.auth', message: 'secretRef.optional must be false or unset' });
  if (issues.length > 0 || spec === undefined || meta === undefined) return rejected(issues);
  for (const e of externalModelProviderWebhook(spec)) {
    issues.push({ field: e.field, message: e.type === 'NotSupported' ? `Unsupported value: ${JSON.stringify(e.value)}: supported values: ${(e.supported ?? []).map((v) => JSON.stringify(v)).join(', ')}` : e.detail });
  }
  if (issues.length > 0) return rejected(issues);
  const typed: ExternalModelProvider['spec'] = { providerType: spec.providerType, baseURL: spec.baseURL, insecureSkipVerify: spec.insecureSkipVerify };
  if (spec.model !== undefined) typed.model = spec.model;
  if (spec.auth !== undefined) {
    typed.auth = { secretRef: { name: spec.auth.secretRef.name ?? '', key: spec.auth.secretRef.key } };
    if (spec.auth.scheme !== undefined) typed.auth.scheme = spec.auth.scheme;
  }
  if (spec.headers !== undefined) typed.headers = spec.headers;
  const provider: ExternalModelProvider = {
    apiVersion: KTHENA_API_VERSION, kind: 'ExternalModelProvider',
    metadata: finishMeta(meta, 'ExternalModelProvider', typed, ctx),
    spec: typed,
  };
  return { resource: deepFreeze(provider), problems: [] };
}

// ---------------------------------------------------------------------------------------------
// Credentials and configuration, as Kthena's controller and adapter judge them
// ---------------------------------------------------------------------------------------------

export type CredentialReason = 'CredentialNotRequired' | 'CredentialResolved' | 'CredentialNotFound' | 'CredentialKeyNotFound' | 'CredentialInvalid';

export interface CredentialState {
  reason: CredentialReason;
  /** Kthena's condition message. */
  message: string;
  /** The trimmed credential; '' unless reason is CredentialResolved. Never logged or dumped. */
  value: string;
}

/** Go's httpguts.ValidHeaderFieldValue: no control byte but horizontal tab, no DEL. */
export function validHeaderValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/** Go's strings.TrimSpace (Unicode White_Space), which JavaScript's trim() matches for these inputs. */
function trimSpace(v: string): string {
  return v.trim();
}

/**
 * Kthena's credential resolution (reconcileProviderStatus, NormalizeCredential): only Secrets
 * carrying the credential label count; an absent or empty key is CredentialKeyNotFound; the value
 * is whitespace-trimmed and must then be a non-empty valid header value.
 */
export function resolveCredential(
  spec: { auth?: { secretRef?: { name?: unknown; key?: unknown } } | null },
  namespace: string,
  secrets: ReadonlyMap<string, Secret>,
): CredentialState {
  const auth = spec.auth;
  if (auth === undefined || auth === null) return { reason: 'CredentialNotRequired', message: 'No credential is configured', value: '' };
  const name = typeof auth.secretRef?.name === 'string' ? auth.secretRef.name : '';
  const key = typeof auth.secretRef?.key === 'string' ? auth.secretRef.key : '';
  const secret = secrets.get(`${namespace}/${name}`);
  if (secret === undefined || !(secret.purposes ?? []).includes('provider-credential')) {
    return { reason: 'CredentialNotFound', message: `Credential Secret is not found or does not have label ${PROVIDER_CREDENTIAL_LABEL}=true`, value: '' };
  }
  const raw = secret.data?.[key];
  if (raw === undefined || raw === '') return { reason: 'CredentialKeyNotFound', message: 'Credential Secret key is not found', value: '' };
  const value = trimSpace(raw);
  if (value === '') return { reason: 'CredentialInvalid', message: 'provider credential is empty after trimming whitespace', value: '' };
  if (!validHeaderValue(value)) return { reason: 'CredentialInvalid', message: 'provider credential contains invalid HTTP header characters', value: '' };
  return { reason: 'CredentialResolved', message: 'Credential Secret and key are available', value };
}

/** Headers a provider may not set statically (Kthena's common.IsReservedProviderHeader). */
export const RESERVED_PROVIDER_HEADERS: ReadonlySet<string> = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'host', 'content-length', 'connection',
  'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te',
]);
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Kthena's ValidateConfiguration over the spec as the API server holds it (Kubernetes mode may
 * hold a version the webhook never saw): the reason the provider is ConfigurationInvalid, or null.
 */
export function providerConfigError(spec: { providerType?: unknown; baseURL?: unknown; headers?: unknown; auth?: { scheme?: unknown } | null }): string | null {
  const type = spec.providerType ?? '';
  if (type !== '' && type !== 'OpenAI' && type !== 'Anthropic') return `unsupported provider type ${JSON.stringify(type)}`;
  if (typeof spec.baseURL !== 'string') return 'invalid provider base URL';
  let u: URL;
  try { u = new URL(spec.baseURL); } catch { return 'invalid provider base URL'; }
  if (u.protocol !== 'https:' || u.hostname === '' || !/^https:\/\/[^/?#]/i.test(spec.baseURL)) return 'invalid provider base URL: provider base URL must use https and include a host';
  if (u.username !== '' || u.password !== '' || spec.baseURL.includes('?') || spec.baseURL.includes('#')) {
    return 'invalid provider base URL: provider base URL must not contain userinfo, query, or fragment';
  }
  if (spec.headers !== undefined && spec.headers !== null) {
    if (!isPlainObject(spec.headers)) return 'static headers must be a map';
    for (const [k, v] of Object.entries(spec.headers)) {
      if (!TOKEN_RE.test(k)) return `static header ${JSON.stringify(k)} has an invalid name`;
      if (RESERVED_PROVIDER_HEADERS.has(k.toLowerCase())) return `static header ${JSON.stringify(k)} is reserved`;
      if (typeof v !== 'string' || !validHeaderValue(v)) return `static header ${JSON.stringify(k)} has an invalid value`;
    }
  }
  const scheme = spec.auth?.scheme ?? '';
  if (scheme !== '' && scheme !== 'Bearer' && scheme !== 'APIKey') return `unsupported provider auth scheme ${JSON.stringify(scheme)}`;
  return null;
}

/** Secrets by namespace/name, for resolveCredential. */
export function secretsByKey(secrets: readonly Secret[] | undefined): Map<string, Secret> {
  return new Map((secrets ?? []).map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
}
