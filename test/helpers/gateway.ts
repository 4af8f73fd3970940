/**
 * Manifests (YAML text) -> ResourceSet with every kind, through the same validators the file
 * provider uses, with a fixed clock. Every document must be valid: a test input that the
 * validators reject would silently test nothing.
 */
import { expect } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { GatewayResource } from '../../src/resources/gateway.js';
import type { AnyResource, ResourceSet } from '../../src/resources/types.js';
import { isGatewayManifest, parseGatewayObject, toFullResourceSet } from '../../src/resources/validate.js';
import { parseManifestObject } from '../../src/resources/validate.js';

export const GOLDEN_NOW = '2025-01-01T00:00:00Z';

export function loadManifests(text: string, file = 'inline.yaml'): ResourceSet {
  const out: (AnyResource | GatewayResource)[] = [];
  for (const doc of parseAllDocuments(text)) {
    expect(doc.errors, `${file}: YAML errors`).toEqual([]);
    const raw: unknown = doc.toJS();
    if (raw === null || raw === undefined) continue;
    const r = isGatewayManifest(raw)
      ? parseGatewayObject(raw, { file, now: () => GOLDEN_NOW })
      : parseManifestObject(raw, { file, now: () => GOLDEN_NOW });
    expect(r.problems, `${file}: every input must be valid`).toEqual([]);
    if (r.resource) out.push(r.resource);
  }
  return toFullResourceSet(out);
}
