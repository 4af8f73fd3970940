/**
 * The runtime told honestly (docs/runtime.md): on a Node whose ABI the pinned uWebSockets.js build
 * has no binary for, the real CLI exits 1 at start with one plain line naming the Node versions it
 * supports, never falling back to uWS's slow JavaScript imitation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { ROOT, cleanup, docs, freePort, podYaml, routeYaml, runCli, serverYaml, tempDir, writeFile } from './harness.js';

let dir: string;

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-runtime-');
  await writeFile(path.join(dir, 'all.yaml'), docs(podYaml('p', '127.0.0.1'), serverYaml('s', { port: 8000 }), routeYaml('r', 'm', 's')));
});
afterAll(async () => { if (dir) await cleanup(dir); });

describe('Node version', () => {
  it('on Node 22 (ABI 127) the router exits 1 naming the supported Node versions', async () => {
    const r = await runCli(['--config', dir, '--host', '127.0.0.1', '--port', String(await freePort()), '--metrics-port', '0', '--debug-port', '0', '--workers', '1'], {
      env: { NODE_OPTIONS: `--require ${path.join(ROOT, 'test', 'fixtures', 'fake-node22.cjs')}` },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('kthena-router: the native uWebSockets.js binary could not be loaded: this uWebSockets.js build has no binary for v22.12.0 '
      + `(Node 22, ABI 127) on ${process.platform}-${process.arch}: it supports Node 16, Node 18, Node 20 only. Run the router with Node 20 (.nvmrc; docs/runtime.md)`);
    expect(r.stderr).toContain('"code":"RTR_ERR_NATIVE_UWS"');
  });
});
