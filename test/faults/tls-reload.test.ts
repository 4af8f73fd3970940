/**
 * Issue 18, defect 10: the router's own TLS certificate (--tls-cert/--tls-key) was never reloaded;
 * a renewed certificate needed a restart.
 */
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, eventually, startRouter, type RouterProc } from '../e2e/harness.js';
import { generateWebhookCertificate } from '../../src/webhook/certs.js';

let dir: string;
let certDir: string;
let router: RouterProc;

/** The DNS names of the certificate the router presents on a new connection. */
function servedNames(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'router.test' }, () => {
      resolve(s.getPeerCertificate().subjectaltname ?? '');
      s.end();
    });
    s.setTimeout(5000, () => s.destroy(new Error('TLS handshake timed out')));
    s.on('error', reject);
  });
}

async function install(name: string): Promise<void> {
  const b = generateWebhookCertificate([name]);
  // Written beside and renamed into place, as a Secret volume or cert-manager does.
  await writeFile(path.join(certDir, 'tls.crt.tmp'), b.certPem);
  await writeFile(path.join(certDir, 'tls.key.tmp'), b.keyPem);
  await rename(path.join(certDir, 'tls.key.tmp'), path.join(certDir, 'tls.key'));
  await rename(path.join(certDir, 'tls.crt.tmp'), path.join(certDir, 'tls.crt'));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kthena-faults-tls-'));
  certDir = await mkdtemp(path.join(os.tmpdir(), 'kthena-faults-certs-'));
  await install('first.router.test');
  router = await startRouter({ dir, workers: 2, args: ['--tls-cert', path.join(certDir, 'tls.crt'), '--tls-key', path.join(certDir, 'tls.key')] });
  await eventually(async () => { try { return (await servedNames(router.port)).includes('first.router.test'); } catch { return false; } }, 20_000, 'TLS listener up');
});

afterAll(async () => {
  await router?.stop();
  await cleanup(dir);
  await cleanup(certDir);
});

describe('router TLS certificate', () => {
  it('a renewed certificate is served on new connections without a restart', async () => {
    await install('second.router.test');
    // Every worker re-listens; new connections land on any of them, so ask several times.
    await eventually(async () => {
      const names = await Promise.all(Array.from({ length: 6 }, () => servedNames(router.port)));
      return names.every((n) => n.includes('second.router.test'));
    }, 10_000, 'renewed certificate served by every worker');
    expect(router.stderr.some((l) => l.includes('router TLS certificate reloaded'))).toBe(true);
  });

  it('a certificate file that does not load keeps the previous certificate', async () => {
    await writeFile(path.join(certDir, 'tls.crt'), 'not a certificate\n');
    await router.waitForLog((l) => l.includes('does not load; keeping the previous one'), 10_000, 'stderr');
    expect(await servedNames(router.port)).toContain('second.router.test');
  });
});
