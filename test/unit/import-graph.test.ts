/**
 * The arrows between the two halves of the router, checked rather than hoped for.
 *
 * The control thread (src/) and the worker threads (workers/) meet only in a small shared core:
 * src/shared/ (the SharedArrayBuffer layout, the snapshot wire format, the thread messages, metric
 * JSON, the KV-block key scheme), src/ir/ (the frozen routing IR) and src/errors.ts (the one error
 * catalogue). Two rules follow:
 *
 *  1. No file under src/ imports anything under workers/, not even a type. A type the control
 *     thread needs from a worker is a contract between threads, so it belongs in src/shared/.
 *     One exception, by design: src/routerconfig/ imports the scheduler plugin registry
 *     (workers/scheduler/registry.ts), so that routerConfiguration is validated against the very
 *     definitions (names, argument schemas, defaults) the workers build plugins from, and a
 *     plugin stays one file. The registry's own run-time closure is held to workers/scheduler/
 *     and the shared core, with no package at all: the control thread gets plugin definitions,
 *     never the request path, uWS, undici or a Redis client. docs/architecture.md ("Arrows between
 *     the halves") says why every way of removing this arrow would be worse than keeping it.
 *  2. What a worker thread loads at run time stays inside workers/ and the shared core. Every
 *     workers/ file's transitive run-time imports are walked; reaching the translator, the
 *     manifest validator, a provider or any other control-thread module fails, as does loading a
 *     control-thread-only package (the Kubernetes client, the YAML parser, prom-client). Type-only
 *     imports (`import type`, or an import whose every name is marked `type`) are erased by tsc
 *     (this project does not set verbatimModuleSyntax), so a worker may name a control-side type
 *     such as RouterConfig without loading its module.
 *
 * The graph comes from TypeScript's own parser, not from regular expressions, so multi-line
 * imports, `export ... from` and `import()` expressions all count.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Edge {
  /** Repository-relative path of the imported .ts file, or the bare package name. */
  target: string;
  runtime: boolean;
  line: number;
}

/** Every relative or package import of one source text, classified as run-time or type-only. */
function importsOf(fileName: string, text: string): { specifier: string; runtime: boolean; line: number }[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const out: { specifier: string; runtime: boolean; line: number }[] = [];
  const lineOf = (n: ts.Node): number => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      let runtime = true;
      if (c !== undefined) {
        if (c.isTypeOnly) runtime = false;
        else if (c.name === undefined && c.namedBindings !== undefined && ts.isNamedImports(c.namedBindings)
          && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)) runtime = false;
      }
      out.push({ specifier: node.moduleSpecifier.text, runtime, line: lineOf(node) });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      const e = node.exportClause;
      const typeOnly = node.isTypeOnly || (e !== undefined && ts.isNamedExports(e) && e.elements.length > 0 && e.elements.every((x) => x.isTypeOnly));
      out.push({ specifier: node.moduleSpecifier.text, runtime: !typeOnly, line: lineOf(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
      && node.arguments.length === 1 && ts.isStringLiteralLike(node.arguments[0])) {
      out.push({ specifier: node.arguments[0].text, runtime: true, line: lineOf(node) });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      // `typeof import('x')` in a type position: erased.
      out.push({ specifier: node.argument.literal.text, runtime: false, line: lineOf(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(path.join(root, d), { withFileTypes: true })) {
      const rel = `${d}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

function buildGraph(): Map<string, Edge[]> {
  const graph = new Map<string, Edge[]>();
  for (const file of [...listTs('src'), ...listTs('workers')]) {
    const edges: Edge[] = [];
    for (const imp of importsOf(file, readFileSync(path.join(root, file), 'utf8'))) {
      let target: string;
      if (imp.specifier.startsWith('.')) {
        target = path.posix.normalize(path.posix.join(path.posix.dirname(file), imp.specifier)).replace(/\.js$/, '.ts');
      } else if (imp.specifier.startsWith('node:')) {
        target = imp.specifier;
      } else {
        const parts = imp.specifier.split('/');
        target = imp.specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
      }
      edges.push({ target, runtime: imp.runtime, line: imp.line });
    }
    graph.set(file, edges);
  }
  return graph;
}

/** Modules of src/ a worker thread may load: the shared core. */
function isSharedCore(file: string): boolean {
  return file.startsWith('src/shared/') || file.startsWith('src/ir/') || file === 'src/errors.ts';
}

/** Packages only the control thread has any use for. */
const CONTROL_ONLY_PACKAGES = new Set(['@kubernetes/client-node', 'yaml', 'prom-client']);

const graph = buildGraph();

const PLUGIN_REGISTRY = 'workers/scheduler/registry.ts';

/** Every module and package `start` loads at run time, itself excluded. */
function runtimeClosure(start: string): Set<string> {
  const seen = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    for (const e of graph.get(queue.shift()!) ?? []) {
      if (!e.runtime || seen.has(e.target)) continue;
      seen.add(e.target);
      if (e.target.endsWith('.ts')) queue.push(e.target);
    }
  }
  return seen;
}

describe('import graph', () => {
  it('classifies imports as run-time or type-only the way tsc emits them', () => {
    const got = importsOf('x.ts', [
      "import type { A } from './a.js';",
      "import { type B, type C } from './b.js';",
      "import { type D, E } from './d.js';",
      "import F from './f.js';",
      "import './side-effect.js';",
      "import * as G from './g.js';",
      "export type { H } from './h.js';",
      "export { I } from './i.js';",
      "export * from './j.js';",
      "const k = await import('./k.js');",
      "let l: typeof import('./l.js');",
      "import {\n  M,\n  N,\n} from './m.js';",
    ].join('\n')).map((i) => `${i.specifier}:${i.runtime ? 'run' : 'type'}`);
    expect(got).toEqual([
      './a.js:type', './b.js:type', './d.js:run', './f.js:run', './side-effect.js:run', './g.js:run',
      './h.js:type', './i.js:run', './j.js:run', './k.js:run', './l.js:type', './m.js:run',
    ]);
  });

  it('sees the edges that are known to exist (the walk is not vacuous)', () => {
    expect(graph.size).toBeGreaterThan(50);
    const targets = (f: string): string[] => (graph.get(f) ?? []).filter((e) => e.runtime).map((e) => e.target);
    expect(targets('workers/snapshot-reader.ts')).toContain('src/shared/snapshot-codec.ts');
    expect(targets('workers/worker.ts')).toContain('workers/pipeline.ts');
    expect(targets('src/control.ts')).toContain('src/publish/publisher.ts');
  });

  it('has no arrow from src/ into workers/ but the router configuration reading the plugin registry', () => {
    const bad: string[] = [];
    for (const [file, edges] of graph) {
      if (!file.startsWith('src/')) continue;
      for (const e of edges) {
        if (!e.target.startsWith('workers/')) continue;
        if (e.target === PLUGIN_REGISTRY && file.startsWith('src/routerconfig/')) continue;
        bad.push(`${file}:${e.line} imports ${e.target}${e.runtime ? '' : ' (type only)'}`);
      }
    }
    expect(bad, 'move the shared type or protocol into src/shared/').toEqual([]);
  });

  it('keeps the plugin registry, which the control thread loads, free of the request path', () => {
    const closure = runtimeClosure(PLUGIN_REGISTRY);
    expect(closure.has('workers/scheduler/plugins/least-request.ts'), 'the walk reaches the plugin files').toBe(true);
    const bad = [...closure].filter((t) => t.endsWith('.ts')
      ? !(t.startsWith('workers/scheduler/') || isSharedCore(t)) || t === 'workers/scheduler/kvcache-aware.ts'
      : !t.startsWith('node:'));
    expect(bad).toEqual([]);
  });

  it('keeps every worker thread module free of control-thread code at run time', () => {
    const bad: string[] = [];
    for (const start of graph.keys()) {
      if (!start.startsWith('workers/')) continue;
      // Breadth-first over run-time edges, remembering how each module was reached.
      const via = new Map<string, string>([[start, '']]);
      const queue = [start];
      while (queue.length > 0) {
        const f = queue.shift()!;
        for (const e of graph.get(f) ?? []) {
          if (!e.runtime || via.has(e.target)) continue;
          via.set(e.target, f);
          const isFile = e.target.endsWith('.ts');
          const allowed = isFile
            ? e.target.startsWith('workers/') || isSharedCore(e.target)
            : !CONTROL_ONLY_PACKAGES.has(e.target);
          if (!allowed) {
            const chain = [e.target];
            for (let at = f; at !== ''; at = via.get(at)!) chain.unshift(at);
            bad.push(chain.join(' -> '));
            continue;
          }
          if (isFile) queue.push(e.target);
        }
      }
    }
    expect([...new Set(bad)], 'a worker may load only workers/, src/shared/, src/ir/ and src/errors.ts').toEqual([]);
  });

  it('keeps the shared core free of control-thread code at run time', () => {
    const bad: string[] = [];
    for (const [file, edges] of graph) {
      if (!isSharedCore(file)) continue;
      for (const e of edges) {
        if (!e.runtime) continue;
        if (e.target.endsWith('.ts') ? !isSharedCore(e.target) : CONTROL_ONLY_PACKAGES.has(e.target)) bad.push(`${file}:${e.line} imports ${e.target}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
