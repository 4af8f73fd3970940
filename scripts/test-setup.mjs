#!/usr/bin/env node
/**
 * `npm test`'s pretest step: makes sure what the tests need outside npm is on this machine, so that
 * a fresh clone passes `npm ci && npm test` and no test is skipped or fails for a missing binary.
 *
 * That is redis-server (which the Redis tests start on a free port; test/helpers/redis.ts looks
 * in the same places) and openssl (NEEDS below). All found: nothing to do. Some missing, as root
 * with apt-get: their packages are installed. Missing otherwise: exit 1 with a message naming the
 * packages, before any test runs.
 *
 *   node scripts/test-setup.mjs             decide and act
 *   node scripts/test-setup.mjs --dry-run   print the decision as JSON, change nothing
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * What the tests run besides Node: the binary, the Debian/Ubuntu package that has it, the tests
 * that need it, and where to look besides $PATH (an `env` variable naming the binary wins).
 */
export const NEEDS = [
  { binary: 'redis-server', pkg: 'redis-server', env: 'REDIS_SERVER', dirs: ['/usr/bin', '/usr/local/bin'], why: 'the kvcache-aware and Redis fault tests start one' },
  { binary: 'openssl', pkg: 'openssl', env: null, dirs: ['/usr/bin'], why: 'the Kubernetes provider tests make certificates with it' },
];

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, or null. */
export function which(name, envPath, executable = isExecutable) {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (dir !== '' && executable(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** Where `need`'s binary is: its env variable, then PATH, then its dirs; null when nowhere. */
export function find(need, env, executable = isExecutable) {
  if (need.env !== null && env[need.env] && executable(env[need.env])) return env[need.env];
  return which(need.binary, env.PATH, executable) ?? need.dirs.map((d) => path.join(d, need.binary)).find((f) => executable(f)) ?? null;
}

/**
 * The decision, from the environment alone (pure, so tests can check every branch):
 * { action: 'found', paths } | { action: 'install', packages, commands } | { action: 'fail', message }.
 */
export function decide({ env, uid, executable = isExecutable, needs = NEEDS }) {
  const paths = {};
  const missing = [];
  for (const n of needs) {
    const p = find(n, env, executable);
    if (p === null) missing.push(n);
    else paths[n.binary] = p;
  }
  if (missing.length === 0) return { action: 'found', paths };
  const packages = missing.map((n) => n.pkg);
  const aptGet = which('apt-get', env.PATH, executable);
  if (aptGet !== null && uid === 0) {
    return { action: 'install', packages, commands: [[aptGet, 'update', '-qq'], [aptGet, 'install', '-y', '-qq', '--no-install-recommends', ...packages]] };
  }
  const why = aptGet === null ? 'apt-get is not available' : 'this is not running as root';
  const what = missing.map((n) => `${n.binary} (${n.why})`).join(' and ');
  const hint = missing.some((n) => n.env !== null) ? `, or point ${missing.filter((n) => n.env !== null).map((n) => n.env).join('/')} at the binary` : '';
  return {
    action: 'fail',
    message: `npm test needs ${what}, not installed; ${why}, so ${missing.length > 1 ? 'they' : 'it'} cannot be installed here. ` +
      `Install the package${packages.length > 1 ? 's' : ''} ${packages.map((p) => `"${p}"`).join(' ')} ` +
      `(Debian/Ubuntu: sudo apt-get install -y ${packages.join(' ')})${hint}, then run npm test again.`,
  };
}

function main(argv) {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const d = decide({ env: process.env, uid });
  if (argv.includes('--dry-run')) {
    process.stdout.write(JSON.stringify(d) + '\n');
    return 0;
  }
  if (d.action === 'found') return 0;
  if (d.action === 'fail') {
    process.stderr.write(`test-setup: ${d.message}\n`);
    return 1;
  }
  process.stderr.write(`test-setup: installing ${d.packages.join(' ')} (needed by the tests, not installed)\n`);
  for (const [cmd, ...args] of d.commands) {
    const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) {
      process.stderr.write(`test-setup: \`${[cmd, ...args].join(' ')}\` failed (${r.error?.message ?? `exit ${r.status}`}); install ${d.packages.join(' ')} and run npm test again\n`);
      return 1;
    }
  }
  const after = decide({ env: process.env, uid });
  if (after.action !== 'found') {
    process.stderr.write(`test-setup: installed ${d.packages.join(' ')}, yet ${NEEDS.filter((n) => find(n, process.env) === null).map((n) => n.binary).join(', ')} is still not found in PATH\n`);
    return 1;
  }
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
