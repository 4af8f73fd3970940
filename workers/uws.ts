/**
 * Loads the native uWebSockets.js binary directly. The package's own entry point silently falls
 * back to a slow JavaScript imitation when the binary does not load; a router on that fallback
 * would be an order of magnitude slower without saying so, so we refuse to start instead.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { RouterError } from '../src/errors.js';

export type Uws = typeof import('uWebSockets.js');

let cached: Uws | null = null;

export function loadNativeUws(): Uws {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  } catch (err) {
    throw new RouterError('RTR_ERR_NATIVE_UWS', 'package uWebSockets.js is not installed (run npm ci)', { cause: err });
  }
  const file = path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    cached = require(file) as Uws;
  } catch (err) {
    throw new RouterError('RTR_ERR_NATIVE_UWS', `${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof cached.App !== 'function' || typeof cached.us_listen_socket_close !== 'function') {
    cached = null;
    throw new RouterError('RTR_ERR_NATIVE_UWS', `${file} does not export App/us_listen_socket_close`);
  }
  return cached;
}
