/**
 * Kthena's session-sticky proposal: a ModelRoute with a `JWTClaim` session source needs JWT
 * authentication (routerConfiguration `auth:`), otherwise the source could never have a value and
 * the route would silently never be sticky. The one rule, for the translator (the route is
 * rejected and reported) and the validating webhook (the object is denied).
 */
export const JWT_CLAIM_WITHOUT_AUTH = 'a JWTClaim session source needs JWT authentication: set auth.jwksUri and auth.issuer in the router configuration';

/** Index of the first JWTClaim source of a ModelRoute spec's sessionSticky, -1 when none. */
export function jwtClaimSource(spec: unknown): number {
  if (spec === null || typeof spec !== 'object') return -1;
  const sticky = (spec as { sessionSticky?: unknown }).sessionSticky;
  if (sticky === null || typeof sticky !== 'object') return -1;
  const sources = (sticky as { sources?: unknown }).sources;
  if (!Array.isArray(sources)) return -1;
  return sources.findIndex((s: unknown) => s !== null && typeof s === 'object' && (s as { type?: unknown }).type === 'JWTClaim');
}
