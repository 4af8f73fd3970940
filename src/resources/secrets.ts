/**
 * Which Secrets the router may read the data of, and what for. A Secret is read only when it
 * carries one of these labels with the value "true" (Kthena caches only labelled credential
 * Secrets); any other Secret keeps its metadata and type (and TLS material for Gateway listeners)
 * and its data is dropped on ingestion. One entry per purpose: the file provider keeps the data
 * of a labelled Secret, and Kubernetes mode watches one label selector per entry
 * (src/provider/kube/kinds.ts), so a new kind of Secret-backed setting is one line here.
 *
 * Secret values never leave the control thread except inside the routing snapshot (the workers
 * need the credential); every dump, log line and problem names a Secret by namespace/name and key.
 */

export interface SecretPurpose {
  /** Short id, used in informer ids (`Secret/<purpose>`) and in the debug dumps. */
  purpose: string;
  /** Label key; the label value must be "true". */
  label: string;
}

/** Kthena's ExternalModelProvider credential label (pkg/apis/networking/v1alpha1, ExternalModelProviderSecretLabelKey). */
export const PROVIDER_CREDENTIAL_LABEL = 'networking.serving.volcano.sh/external-model-provider-credential';

export const SECRET_PURPOSES: readonly SecretPurpose[] = Object.freeze([
  Object.freeze({ purpose: 'provider-credential', label: PROVIDER_CREDENTIAL_LABEL }),
]);

/** The purposes a Secret's labels grant, in table order (empty: its data is not read). */
export function secretPurposes(labels: Readonly<Record<string, string>> | undefined): string[] {
  if (labels === undefined) return [];
  const out: string[] = [];
  for (const p of SECRET_PURPOSES) if (labels[p.label] === 'true') out.push(p.purpose);
  return out;
}
