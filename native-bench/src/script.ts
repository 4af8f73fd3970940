/**
 * What the stand-alone benchmark scripts (scheduler/, regex/, ratelimit/, scrape/) share: strict
 * option parsing with usage errors that name the option, the test for "run as a program" (so that
 * a test can import a script for its option parser without running the benchmark), and the
 * compiled tree a script loads the router's modules from (`--dist`, so that two builds can be
 * measured by one script).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** A bad command line: the CLI prints the message and exits 2. */
export class ScriptUsageError extends Error {
  readonly code = 'BENCH_USAGE';
}

/** True when `moduleUrl` (import.meta.url) is the file node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  return pathToFileURL(path.resolve(entry)).href === moduleUrl;
}

/** The repository root (the folder holding bin/kthena-router.js), from a module's URL in it. */
export function repoRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (;;) {
    if (existsSync(path.join(dir, 'bin', 'kthena-router.js'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
}

/** `--name value` as a positive integer (or > 0 number when `integer` is false); undefined when absent. */
export function positive(v: string | undefined, name: string, integer = true): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new ScriptUsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
  }
  return n;
}

/** `--name a,b,c` as positive integers. */
export function positiveList(v: string, name: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((s) => s === '')) throw new ScriptUsageError(`--${name} must be a comma-separated list of positive integers, got "${v}"`);
  return parts.map((s) => positive(s, name)!);
}

/** A TCP port number. */
export function port(v: string, name: string): number {
  const n = positive(v, name)!;
  if (n > 65_535) throw new ScriptUsageError(`--${name} must be a port (1-65535), got "${v}"`);
  return n;
}

/** Imports a module of a compiled tree (dist/...) by its path relative to that tree. */
export function importFrom<T>(dist: string, rel: string): Promise<T> {
  return import(pathToFileURL(path.join(dist, rel)).href) as Promise<T>;
}

/**
 * Runs `main` when the module is the program: its resolved code becomes the exit code, a usage
 * error prints its message and exits 2.
 */
export function runIfMain(moduleUrl: string, main: (argv: string[]) => Promise<number>): void {
  if (!isMain(moduleUrl)) return;
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      if (err instanceof ScriptUsageError || (err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: unknown }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
        process.stderr.write(`${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
