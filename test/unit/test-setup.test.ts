/**
 * scripts/test-setup.mjs, npm test's pretest step: finds redis-server, installs it as root with
 * apt-get, or stops with a message naming the package. Checked without uninstalling anything: the
 * decision is a pure function of PATH, uid and the files that exist, and the script's --dry-run
 * prints it for a PATH made of temporary directories holding fake binaries.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

type Decision = { action: 'found'; paths: Record<string, string> } | { action: 'install'; packages: string[]; commands: string[][] } | { action: 'fail'; message: string };
interface Need { binary: string; pkg: string; env: string | null; dirs: string[]; why: string }
interface SetupModule {
  decide(o: { env: Record<string, string | undefined>; uid: number; executable?: (f: string) => boolean; needs?: Need[] }): Decision;
  NEEDS: Need[];
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'test-setup.mjs');
let setup: SetupModule;
let tmp: string;

/** A directory holding executable stand-ins named `names`. */
function binDir(name: string, names: string[]): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const n of names) {
    writeFileSync(path.join(dir, n), '#!/bin/sh\nexit 0\n');
    chmodSync(path.join(dir, n), 0o755);
  }
  return dir;
}

beforeAll(async () => {
  setup = (await import(SCRIPT)) as SetupModule;
  tmp = mkdtempSync(path.join(tmpdir(), 'test-setup-'));
});
afterAll(() => { rmSync(tmp, { recursive: true, force: true }); });

describe('the decision', () => {
  const files = (...present: string[]) => (f: string) => present.includes(f);
  const REDIS: Need = { binary: 'redis-server', pkg: 'redis-server', env: 'REDIS_SERVER', dirs: ['/usr/bin', '/usr/local/bin'], why: 'redis tests' };
  const SSL: Need = { binary: 'openssl', pkg: 'openssl', env: null, dirs: ['/usr/bin'], why: 'cert tests' };

  it('needs redis-server and openssl, by their Debian package names', () => {
    expect(setup.NEEDS.map((n) => [n.binary, n.pkg])).toEqual([['redis-server', 'redis-server'], ['openssl', 'openssl']]);
  });

  it('found: the env variable first, then PATH, then the usual directories', () => {
    expect(setup.decide({ env: { REDIS_SERVER: '/opt/r/redis-server', PATH: '/a' }, uid: 1000, needs: [REDIS], executable: files('/opt/r/redis-server', '/a/redis-server') }))
      .toEqual({ action: 'found', paths: { 'redis-server': '/opt/r/redis-server' } });
    expect(setup.decide({ env: { PATH: '/a:/b' }, uid: 1000, needs: [REDIS, SSL], executable: files('/b/redis-server', '/usr/bin/redis-server', '/usr/bin/openssl') }))
      .toEqual({ action: 'found', paths: { 'redis-server': '/b/redis-server', openssl: '/usr/bin/openssl' } });
    expect(setup.decide({ env: { PATH: '/a' }, uid: 1000, needs: [REDIS], executable: files('/usr/local/bin/redis-server') }))
      .toEqual({ action: 'found', paths: { 'redis-server': '/usr/local/bin/redis-server' } });
  });

  it('missing, root, apt-get on PATH: installs exactly the missing packages', () => {
    const d = setup.decide({ env: { PATH: '/sbin:/usr/bin' }, uid: 0, needs: [REDIS, SSL], executable: files('/usr/bin/apt-get', '/usr/bin/openssl') });
    expect(d).toEqual({
      action: 'install', packages: ['redis-server'],
      commands: [['/usr/bin/apt-get', 'update', '-qq'], ['/usr/bin/apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'redis-server']],
    });
  });

  it('missing and not root, or no apt-get: fails naming the packages and why', () => {
    const notRoot = setup.decide({ env: { PATH: '/usr/bin' }, uid: 1000, needs: [REDIS, SSL], executable: files('/usr/bin/apt-get') });
    expect(notRoot.action).toBe('fail');
    expect((notRoot as { message: string }).message).toMatch(/needs redis-server \(redis tests\) and openssl \(cert tests\).*not running as root.*packages "redis-server" "openssl".*apt-get install -y redis-server openssl.*REDIS_SERVER/);
    const noApt = setup.decide({ env: { PATH: '/usr/bin' }, uid: 0, needs: [REDIS], executable: files() });
    expect((noApt as { message: string }).message).toMatch(/apt-get is not available.*package "redis-server"/);
  });
});

describe('the script', () => {
  /** Runs the script with only PATH (and REDIS_SERVER) from `env`; nowhere else to find redis-server. */
  const run = (env: Record<string, string>, args: string[] = []) => spawnSync(process.execPath, [SCRIPT, ...args], { env, encoding: 'utf8' });

  it('--dry-run reports what it found on PATH and changes nothing', () => {
    const dir = binDir('with-both', ['redis-server', 'openssl']);
    const r = run({ PATH: dir }, ['--dry-run']);
    expect(r.status).toBe(0);
    const d = JSON.parse(r.stdout) as Decision;
    // On this machine /usr/bin has them too; PATH comes first.
    expect(d).toEqual({ action: 'found', paths: { 'redis-server': path.join(dir, 'redis-server'), openssl: path.join(dir, 'openssl') } });
  });

  it('exits 0 silently when everything is there', () => {
    const dir = binDir('with-both-2', ['redis-server', 'openssl']);
    const r = run({ PATH: dir });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('is npm test\'s pretest step, before the build and the tests\' type check; .ci/run runs exactly the README\'s command', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.pretest).toBe('node scripts/test-setup.mjs && npm run build && tsc -p tsconfig.test.json');
    const ci = readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(ci[ci.length - 1]).toBe('npm ci && npm test');
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toContain('npm ci && npm test');
    expect(ci.join('\n')).not.toMatch(/apt-get|redis/);
  });
});
