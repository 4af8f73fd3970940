/**
 * What the repository says about itself agrees: the license, the Node version (package.json,
 * .nvmrc, the Dockerfile, the uWS binaries), and the ws override (docs/runtime.md).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (f: string): string => readFileSync(path.join(ROOT, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { license: string; engines: { node: string }; overrides: Record<string, Record<string, string>> };

describe('repository metadata', () => {
  it('LICENSE is the full Apache License 2.0 text that package.json names', () => {
    expect(pkg.license).toBe('Apache-2.0');
    const text = read('LICENSE');
    expect(text).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(text).toContain('TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION');
    expect(text).toContain('END OF TERMS AND CONDITIONS');
  });

  it('Node 20 everywhere: engines, .nvmrc, the Dockerfile, and the running test process', () => {
    expect(pkg.engines.node).toBe('>=20.18.1 <21');
    expect(read('.nvmrc').trim()).toBe('20');
    expect(read('Dockerfile')).toMatch(/^FROM node:20-bookworm-slim/m);
    expect(process.versions.node.split('.')[0]).toBe('20');
  });

  it('the ws that the uWS package pins is overridden past CVE-2024-37890 (fixed in 8.17.1)', () => {
    expect(pkg.overrides['uWebSockets.js']).toEqual({ ws: '^8.17.1' });
    const uwsDir = path.dirname(createRequire(import.meta.url).resolve('uWebSockets.js/package.json'));
    const wsVersion = (JSON.parse(readFileSync(createRequire(path.join(uwsDir, 'package.json')).resolve('ws/package.json'), 'utf8')) as { version: string }).version;
    const [major, minor, patch] = wsVersion.split('.').map(Number) as [number, number, number];
    expect(major === 8 && (minor > 17 || (minor === 17 && patch >= 1)), `ws ${wsVersion}`).toBe(true);
  });
});
