/**
 * v1 Secrets the router reads for a purpose of its own, chosen by a label (one table, so that
 * another purpose is one entry): what each purpose keeps of the decoded values, and which Secrets
 * the Kubernetes provider watches (one label-selected informer per purpose, src/provider/kube/kinds.ts).
 * A Secret without any of these labels keeps no value at all (a listener certificate, read by
 * validate/kinds/secret.ts, is the one other use).
 *
 *  - `apiKeys` (label networking.serving.volcano.sh/api-key=true): every data entry is one API key
 *    of one user. Keys are reduced to their SHA-256 digests here and the raw values are dropped;
 *    ModelServer.spec.apiKeyRules select these Secrets (docs/traffic-policy.md#api-keys).
 *  - `providerCredential` (Kthena's label networking.serving.volcano.sh/external-model-provider-
 *    credential=true): values kept as decoded, for ExternalModelProvider.spec.auth.secretRef.
 *
 * No value of either kind may reach a log line, a metric, a debug dump or an error body: problems
 * name the field, never the value.
 */
import { DIGEST_PREFIX, secretValueDigest } from '../shared/api-key.js';

export const API_KEY_LABEL = 'networking.serving.volcano.sh/api-key';
/** Optional: the user id of a Secret's keys (default: the Secret's name). */
export const API_KEY_USER_LABEL = 'networking.serving.volcano.sh/api-key-user';
export const PROVIDER_CREDENTIAL_LABEL = 'networking.serving.volcano.sh/external-model-provider-credential';

export type SecretPurpose = 'apiKeys' | 'providerCredential';

export interface SecretPurposeEntry {
  purpose: SecretPurpose;
  /** The Secret carries `<label>: "true"`. */
  label: string;
}

export const SECRET_PURPOSES: readonly SecretPurposeEntry[] = Object.freeze([
  { purpose: 'providerCredential', label: PROVIDER_CREDENTIAL_LABEL },
  { purpose: 'apiKeys', label: API_KEY_LABEL },
]);

/** The API keys of one Secret: whose they are and their digests (hex SHA-256, sorted, unique). */
export interface ApiKeySet {
  user: string;
  digests: readonly string[];
}

/** What a Secret's purposes keep of its values. */
export interface SecretContent {
  apiKeys?: ApiKeySet;
  /** Provider credentials by data key, as decoded (the provider trims and checks them). */
  credentials?: Readonly<Record<string, string>>;
}

export function hasPurpose(labels: Readonly<Record<string, string>> | undefined, purpose: SecretPurpose): boolean {
  const e = SECRET_PURPOSES.find((p) => p.purpose === purpose);
  return e !== undefined && labels?.[e.label] === 'true';
}

/** The label selector of a purpose's Secrets (for a watch). */
export function purposeSelector(e: SecretPurposeEntry): string {
  return `${e.label}=true`;
}

/**
 * The content each of the Secret's purposes keeps of its decoded `values` (data and stringData
 * merged). API keys: each value trimmed (a key written with `echo | base64` ends in a newline),
 * empty values ignored, so blanking an entry revokes it.
 */
export function secretContent(labels: Readonly<Record<string, string>>, name: string, values: Readonly<Record<string, string>>): SecretContent {
  const out: SecretContent = {};
  if (hasPurpose(labels, 'apiKeys')) {
    const digests = new Set<string>();
    for (const v of Object.values(values)) {
      const key = v.trim();
      if (key !== '') digests.add(secretValueDigest(key));
    }
    const user = labels[API_KEY_USER_LABEL];
    out.apiKeys = { user: user !== undefined && user !== '' ? user : name, digests: [...digests].sort() };
  }
  if (hasPurpose(labels, 'providerCredential')) out.credentials = { ...values };
  return out;
}

/**
 * Kubernetes mode: the API-key informer keeps only digests in its cache (each data value replaced
 * by base64 of `sha256:<hex>`, which secretContent reads back as the same digest), so raw keys
 * live no longer than one watch event.
 */
export function digestSecretData(data: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, b64] of Object.entries(data ?? {})) {
    if (typeof b64 !== 'string') continue;
    const key = Buffer.from(b64, 'base64').toString('utf8').trim();
    if (key === '') continue;
    out[k] = Buffer.from(DIGEST_PREFIX + secretValueDigest(key), 'utf8').toString('base64');
  }
  return out;
}
