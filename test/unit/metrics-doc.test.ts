/**
 * docs/metrics.md and the code name the same metric families, both ways (the counterpart of the
 * errors.md test): every `kthena_router_*` family the code defines has a row in a table of the doc,
 * and every family a row documents is defined somewhere in src/ or workers/.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const code = [...sources('src'), ...sources('workers')].map((f) => readFileSync(f, 'utf8')).join('\n');
/** Family names as string literals; a literal ending in `_` is a prefix the code completes (fairness queue families). */
const literals = [...new Set([...code.matchAll(/['"`](kthena_router_[a-z0-9_]+)['"`]/g)].map((m) => m[1]))];
const families = literals.filter((n) => !n.endsWith('_'));
const prefixes = literals.filter((n) => n.endsWith('_'));

const doc = readFileSync('docs/metrics.md', 'utf8');
/** Names in the first cell of a table row (a row may document several families). */
const documented = new Set(doc.split('\n').filter((l) => l.startsWith('| `kthena_router_')).flatMap((l) => [...l.split('|')[1].matchAll(/`(kthena_router_[a-z0-9_]+)`/g)].map((m) => m[1])));

describe('docs/metrics.md', () => {
  it('finds families on both sides', () => {
    expect(families).toContain('kthena_router_requests_total');
    expect(documented.has('kthena_router_requests_total')).toBe(true);
  });

  it('documents every family the code defines', () => {
    expect(families.filter((n) => !documented.has(n)).sort()).toEqual([]);
  });

  it('defines every family it documents', () => {
    const defined = (n: string): boolean => families.includes(n) || prefixes.some((p) => n.startsWith(p));
    expect([...documented].filter((n) => !defined(n)).sort()).toEqual([]);
  });
});
