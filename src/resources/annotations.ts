/**
 * Annotations this router reads (its own behaviour beyond Kthena's, switched on per object without
 * touching Kthena's CRD schemas: Kthena ignores them, and their absence means Kthena's behaviour).
 * Only annotations under this prefix are kept on ingestion; the rest (kubectl's last-applied
 * configuration, other controllers') are dropped.
 */
export const ROUTER_ANNOTATION_PREFIX = 'kthena-router.volcano.sh/';

/**
 * ModelRoute: "true" lets a rule that targets ModelServers fail over to the rule's
 * ExternalModelProvider target when no pod can serve the request (docs/traffic-policy.md#fallback-to-a-provider).
 */
export const PROVIDER_FALLBACK_ANNOTATION = `${ROUTER_ANNOTATION_PREFIX}provider-fallback`;

/** The router's own annotations of `all`, or undefined when there are none. */
export function routerAnnotations(all: Readonly<Record<string, string>> | undefined): Record<string, string> | undefined {
  if (all === undefined) return undefined;
  let out: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(all)) if (k.startsWith(ROUTER_ANNOTATION_PREFIX)) (out ??= {})[k] = v;
  return out;
}
