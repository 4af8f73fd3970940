/**
 * Worker threads started by a test get no vitest transform: this transpiles every TypeScript file
 * of src/ and workers/ (types stripped, no type check) into a temporary directory, with the
 * project's node_modules linked beside it, so a plain-JS worker fixture can import the modules
 * under test from source, whatever the state of dist/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function transpileSources(prefix = 'kthena-transpiled-'): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, entry.name);
      if (entry.isDirectory()) { walk(r); continue; }
      if (!entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
      const js = ts.transpileModule(fs.readFileSync(path.join(root, r), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
        fileName: r,
      }).outputText;
      const dst = path.join(dir, r.replace(/\.ts$/, '.js'));
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.writeFileSync(dst, js);
    }
  };
  walk('src');
  walk('workers');
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
