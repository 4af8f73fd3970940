/**
 * Loads the native uWebSockets.js binary directly. The package's own entry point silently falls
 * back to a slow JavaScript imitation when the binary does not load; a router on that fallback
 * would be an order of magnitude slower without saying so, so we refuse to start instead.
 *
 * This is the one place that knows which Node versions can run the router (docs/runtime.md): the
 * package ships one binary per platform, architecture and Node ABI (`process.versions.modules`),
 * and the pinned build (@trufflesuite/uws-js-unofficial 20.30.0) has them for Node 16, 18 and 20
 * only. Moving to a newer Node means a uWS build with that ABI's binary, and nothing else here.
 */
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { RouterError } from '../src/errors.js';

export type Uws = typeof import('uWebSockets.js');

/** Node major version of each ABI number (nodejs/node doc/abi_version_registry.json). */
const NODE_OF_ABI: Readonly<Record<string, string>> = { 83: '14', 88: '15', 93: '16', 102: '17', 108: '18', 111: '19', 115: '20', 120: '21', 127: '22', 131: '23', 137: '24', 141: '25' };

export interface UwsTarget {
  platform: string;
  arch: string;
  /** process.versions.modules */
  abi: string;
  /** process.version, for the message */
  nodeVersion: string;
}

const RUNNING: UwsTarget = { platform: process.platform, arch: process.arch, abi: process.versions.modules, nodeVersion: process.version };

function nodeOf(abi: string): string {
  return NODE_OF_ABI[abi] !== undefined ? `Node ${NODE_OF_ABI[abi]}` : `ABI ${abi}`;
}

/**
 * Why `binaries/` has nothing for `t`, naming the Node versions it does have for this platform and
 * architecture; null when the binary is there.
 */
export function missingBinaryMessage(binaries: readonly string[], t: UwsTarget): string | null {
  const prefix = `uws_${t.platform}_${t.arch}_`;
  if (binaries.includes(`${prefix}${t.abi}.node`)) return null;
  const abis = binaries.filter((f) => f.startsWith(prefix) && f.endsWith('.node')).map((f) => f.slice(prefix.length, -'.node'.length))
    .sort((a, b) => Number(a) - Number(b));
  const have = abis.length === 0 ? `no Node version on ${t.platform}-${t.arch}` : `${abis.map(nodeOf).join(', ')} only`;
  return `this uWebSockets.js build has no binary for ${t.nodeVersion} (${nodeOf(t.abi)}, ABI ${t.abi}) on ${t.platform}-${t.arch}: it supports ${have}. `
    + 'Run the router with Node 20 (.nvmrc; docs/runtime.md)';
}

let cached: Uws | null = null;

export function loadNativeUws(t: UwsTarget = RUNNING, pkgDirOverride?: string): Uws {
  if (cached && t === RUNNING && pkgDirOverride === undefined) return cached;
  const require = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = pkgDirOverride ?? path.dirname(require.resolve('uWebSockets.js/package.json'));
  } catch (err) {
    throw new RouterError('RTR_ERR_NATIVE_UWS', 'package uWebSockets.js is not installed (run npm ci)', { cause: err });
  }
  let binaries: string[];
  try {
    binaries = readdirSync(path.join(pkgDir, 'binaries'));
  } catch (err) {
    throw new RouterError('RTR_ERR_NATIVE_UWS', `${path.join(pkgDir, 'binaries')}: ${(err as Error).message}`, { cause: err });
  }
  const missing = missingBinaryMessage(binaries, t);
  if (missing !== null) throw new RouterError('RTR_ERR_NATIVE_UWS', missing);
  const file = path.join(pkgDir, 'binaries', `uws_${t.platform}_${t.arch}_${t.abi}.node`);
  let loaded: Uws;
  try {
    loaded = require(file) as Uws;
  } catch (err) {
    // Present but not loadable: typically a C library older than the binary needs (glibc 2.36 on Debian bookworm works).
    throw new RouterError('RTR_ERR_NATIVE_UWS', `${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof loaded.App !== 'function' || typeof loaded.us_listen_socket_close !== 'function') {
    throw new RouterError('RTR_ERR_NATIVE_UWS', `${file} does not export App/us_listen_socket_close`);
  }
  if (t === RUNNING && pkgDirOverride === undefined) cached = loaded;
  return loaded;
}
