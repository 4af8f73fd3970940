/**
 * native-bench is its own package (native-bench/package.json) installed by the root `npm ci`:
 * every package it imports is declared in its package.json, and the root declares the same range,
 * so a fresh clone's `npm ci && npm run build` gives a working `npx --no-install native-bench`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const benchDir = path.join(root, 'native-bench');

interface Pkg { name: string; bin?: Record<string, string>; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }
const readPkg = (file: string): Pkg => JSON.parse(readFileSync(file, 'utf8')) as Pkg;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mjs)$/.test(e.name) ? [p] : [];
  });
}

/** Bare package names a source file imports (static or dynamic), without node: built-ins. */
function bareImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'([^'.][^']*)'/g)) {
    const spec = m[1]!;
    if (spec.startsWith('node:')) continue;
    out.push(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
  }
  return out;
}

describe('native-bench package', () => {
  const bench = readPkg(path.join(benchDir, 'package.json'));
  const rootPkg = readPkg(path.join(root, 'package.json'));

  it('declares every package its sources import', () => {
    const declared = new Set(Object.keys(bench.dependencies ?? {}));
    const used = new Set(sources(path.join(benchDir, 'src')).flatMap(bareImports));
    expect([...used].filter((d) => !declared.has(d))).toEqual([]);
    expect(used.size).toBeGreaterThan(0);
  });

  it('has its dependencies installed by the root package with the same ranges', () => {
    const rootDeps = { ...rootPkg.devDependencies, ...rootPkg.dependencies };
    for (const [name, range] of Object.entries(bench.dependencies ?? {})) expect([name, rootDeps[name]]).toEqual([name, range]);
  });

  it('exposes the same native-bench executable from the root and from its own package', () => {
    expect(path.resolve(benchDir, bench.bin!['native-bench']!)).toBe(path.resolve(root, rootPkg.bin!['native-bench']!));
  });

  it('holds the engine simulator: the router tree has no src/sim and nothing imports it from there', () => {
    expect(readdirSync(path.join(root, 'src'))).not.toContain('sim');
    expect(readdirSync(path.join(benchDir, 'src', 'sim'))).toContain('engine.ts');
    const stale = ['src', 'workers', 'test'].flatMap((d) => sources(path.join(root, d)))
      .filter((f) => /from '(\.\.\/)+src\/sim\//.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(root, f));
    expect(stale).toEqual([]);
  });
});
