/**
 * ExternalModelProvider (networking.serving.volcano.sh/v1alpha1): the typed resource (validated by
 * validate/kinds/external-model-provider.ts) and the credential lookup that both the status
 * conditions and the routing snapshot use, so that a provider the status calls Ready is exactly
 * one the workers can call.
 *
 * Kthena's behaviour: volcano-sh/kthena:pkg/kthena-router/providers/adapter.go (ValidateConfiguration,
 * NormalizeCredential) and pkg/kthena-router/controller/externalmodelprovider_controller.go
 * (conditions).
 */
import type { Secret } from './gateway.js';
import { PROVIDER_CREDENTIAL_LABEL } from './secret.js';
import type { ObjectMeta } from './types.js';
import { isPlainObject } from './validate/util.js';

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
  // Only Secrets labelled for provider credentials keep their values (src/resources/secret.ts).
  const credentials = secrets.get(`${namespace}/${name}`)?.credentials;
  if (credentials === undefined) {
    return { reason: 'CredentialNotFound', message: `Credential Secret is not found or does not have label ${PROVIDER_CREDENTIAL_LABEL}=true`, value: '' };
  }
  const raw = credentials[key];
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
