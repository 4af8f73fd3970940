/**
 * The one digest of an API key, shared by the control thread (which hashes the keys of labelled
 * Secrets when it reads them, src/resources/secret.ts) and the workers (which hash the key a
 * request presents, workers/auth/api-key.ts). Only digests cross the thread boundary.
 *
 * SHA-256, unsalted: API keys are long random strings, not passwords, so a slow or salted hash buys
 * nothing, and one digest per request costs about a microsecond. A Secret may also hold the digest
 * itself (`sha256:<64 hex>`), so that the raw key never needs to be stored in the cluster at all.
 */
import { createHash } from 'node:crypto';

export const DIGEST_PREFIX = 'sha256:';
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** Hex SHA-256 of the key's UTF-8 bytes. */
export function apiKeyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The digest a Secret value stands for: the value's own digest, or the value when it is one (`sha256:<hex>`). */
export function secretValueDigest(value: string): string {
  return DIGEST_RE.test(value) ? value.slice(DIGEST_PREFIX.length) : apiKeyDigest(value);
}
