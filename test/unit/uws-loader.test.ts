/**
 * workers/uws.ts: the native uWebSockets.js binary for the running Node ABI, or a start-up error
 * that names the Node versions the installed build supports (docs/runtime.md).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { loadNativeUws, missingBinaryMessage } from '../../workers/uws.js';

const pkgDir = path.dirname(createRequire(import.meta.url).resolve('uWebSockets.js/package.json'));
const shipped = readdirSync(path.join(pkgDir, 'binaries'));

describe('the uWS loader', () => {
  it('loads the native binary on this Node (20), not the JavaScript fallback', () => {
    expect(process.versions.modules).toBe('115');
    const uws = loadNativeUws();
    expect(typeof uws.App).toBe('function');
    expect(typeof uws.us_listen_socket_close).toBe('function');
  });

  it('the pinned build ships Linux x64 binaries for Node 16, 18 and 20 only (what engines.node and .nvmrc say)', () => {
    expect(shipped.filter((f) => f.startsWith('uws_linux_x64_')).sort()).toEqual(['uws_linux_x64_108.node', 'uws_linux_x64_115.node', 'uws_linux_x64_93.node']);
  });

  it('on Node 22 or 24 it refuses to start, naming the versions the build supports', () => {
    for (const [abi, node] of [['127', 'v22.12.0'], ['137', 'v24.1.0']] as const) {
      const t = { platform: 'linux', arch: 'x64', abi, nodeVersion: node };
      expect(missingBinaryMessage(shipped, t)).toBe(
        `this uWebSockets.js build has no binary for ${node} (Node ${node.slice(1, 3)}, ABI ${abi}) on linux-x64: it supports Node 16, Node 18, Node 20 only. Run the router with Node 20 (.nvmrc; docs/runtime.md)`);
      let err: { code?: string; message?: string } = {};
      try { loadNativeUws(t, pkgDir); } catch (e) { err = e as typeof err; }
      expect(err.code).toBe('RTR_ERR_NATIVE_UWS');
      expect(err.message).toContain('it supports Node 16, Node 18, Node 20 only');
    }
  });

  it('on a platform the build lacks it says so', () => {
    expect(missingBinaryMessage(shipped, { platform: 'linux', arch: 'riscv64', abi: '115', nodeVersion: 'v20.20.2' }))
      .toMatch(/no binary for v20\.20\.2 \(Node 20, ABI 115\) on linux-riscv64: it supports no Node version on linux-riscv64/);
    expect(missingBinaryMessage(shipped, { platform: 'linux', arch: 'x64', abi: '115', nodeVersion: 'v20.20.2' })).toBeNull();
  });
});
