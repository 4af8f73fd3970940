/**
 * The validating webhook's HTTPS server, run by the control thread in Kubernetes mode (Kthena runs
 * it in the router process too). It never touches routing: a certificate problem or a crash of a
 * handler leaves the router serving.
 *
 * Certificate files are re-read every `reloadIntervalMs` and swapped in with setSecureContext when
 * they change (a mounted Secret or cert-manager renewal), without dropping connections. Kthena
 * loads them once at start.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { RouterError } from '../errors.js';
import type { Logger } from '../log.js';
import { handleWebhookRequest, type AdmissionOutcome } from './admission.js';
import {
  createCertSecret, loadCertSecret, patchWebhookCaBundle, readCertFiles, webhookDnsNames,
  generateWebhookCertificate, type CertBundle, type KubeFetch,
} from './certs.js';

export interface WebhookServerOptions {
  /** --webhook-port (0: any free port, for tests). */
  port: number;
  /** Bind address; all interfaces by default, as Kthena. */
  host?: string;
  certFile: string;
  keyFile: string;
  certSecretName: string;
  serviceName: string;
  /** POD_NAMESPACE: where the Secret lives and the Service DNS names point. */
  namespace: string;
  /** Kubernetes API access. Without it: files, else a certificate generated in memory (no Secret, no CA patch). */
  kube?: KubeFetch;
  log: Logger;
  /** How often certificate files are checked for changes (default 10 s). */
  reloadIntervalMs?: number;
  /** Whether JWT authentication is configured now (the live router configuration); default: not. */
  jwtAuth?: () => boolean;
  /** Largest AdmissionReview accepted (default 16 MiB; the API server sends a few MiB at most). */
  maxBodyBytes?: number;
}

export type CertSource = 'secret' | 'files' | 'generated';

export interface WebhookServer {
  readonly port: number;
  readonly source: CertSource;
  /** The CA that signs the serving certificate, when known (what the CA bundle is patched to). */
  readonly caPem: string | undefined;
  /** Resolves once the server is closed and the reload timer stopped. */
  close(): Promise<void>;
}

interface ResolvedCert { bundle: CertBundle; source: CertSource }

/**
 * Kthena's precedence: Secret, then files, then self-generated ('generated': stored in the Secret
 * when there is API access, so that the next start and the other replicas reuse it).
 */
export async function resolveWebhookCertificate(opts: WebhookServerOptions): Promise<ResolvedCert> {
  if (opts.kube !== undefined) {
    try {
      const fromSecret = await loadCertSecret(opts.kube, opts.namespace, opts.certSecretName);
      if (fromSecret !== null) return { bundle: fromSecret, source: 'secret' };
    } catch (e) {
      // As Kthena: an unreadable Secret is a warning, the files or a new certificate still serve.
      opts.log.warn({ err: e }, `reading webhook certificate Secret ${opts.namespace}/${opts.certSecretName} failed`);
    }
  }
  const files = await readCertFiles(opts.certFile, opts.keyFile);
  if (files !== null) return { bundle: files, source: 'files' };
  const dns = webhookDnsNames(opts.serviceName, opts.namespace);
  if (opts.kube !== undefined) {
    return { bundle: await createCertSecret(opts.kube, opts.namespace, opts.certSecretName, dns), source: 'generated' };
  }
  return { bundle: generateWebhookCertificate(dns), source: 'generated' };
}

function digest(b: CertBundle): string {
  return createHash('sha256').update(b.certPem).update('\0').update(b.keyPem).digest('hex');
}

export async function startWebhookServer(opts: WebhookServerOptions): Promise<WebhookServer> {
  const log = opts.log;
  const { bundle, source } = await resolveWebhookCertificate(opts);
  try {
    // Fails here, with the source named, rather than inside https.createServer.
    createSecureContext({ cert: bundle.certPem, key: bundle.keyPem, minVersion: 'TLSv1.2' });
  } catch (e) {
    throw new RouterError('RTR_ERR_WEBHOOK_CERT', `the ${source} certificate does not load: ${(e as Error).message}`, { cause: e });
  }

  if (bundle.caPem !== undefined && opts.kube !== undefined) {
    try {
      const r = await patchWebhookCaBundle(opts.kube, bundle.caPem);
      log.info(r === 'patched' ? 'webhook CA bundle written to the ValidatingWebhookConfiguration' : 'no ValidatingWebhookConfiguration to write the CA bundle to');
    } catch (e) {
      log.warn({ err: e }, 'writing the webhook CA bundle failed');
    }
  }

  const maxBody = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const server = https.createServer({
    cert: bundle.certPem,
    key: bundle.keyPem,
    minVersion: 'TLSv1.2',
    // Kthena's 30 s read/write timeouts.
    requestTimeout: 30_000,
    headersTimeout: 30_000,
  }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Past the limit the rest is read and dropped, so that the answer below still reaches the caller.
      if (size > maxBody) {
        tooLarge = true;
        chunks.length = 0;
      }
      if (!tooLarge) chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', connection: 'close' });
        res.end(`failed to read request body: larger than ${maxBody} bytes\n`);
        return;
      }
      const path = (req.url ?? '/').split('?')[0]!;
      const outcome: AdmissionOutcome = {};
      let reply;
      try {
        reply = handleWebhookRequest(path, req.headers['content-type'], Buffer.concat(chunks), outcome, { jwtAuth: opts.jwtAuth?.() === true });
      } catch (e) {
        log.error({ err: e }, 'webhook handler failed');
        reply = { status: 500, contentType: 'text/plain; charset=utf-8', body: 'internal error\n' };
      }
      if (outcome.allowed !== undefined) {
        log.debug({ kind: outcome.kind, namespace: outcome.namespace, name: outcome.name, uid: outcome.uid, allowed: outcome.allowed }, 'admission review');
      } else if (reply.status >= 400 && path !== '/healthz') {
        log.warn({ path, status: reply.status, reason: reply.body.trimEnd() }, 'admission review refused');
      }
      res.writeHead(reply.status, { 'content-type': reply.contentType, 'x-content-type-options': 'nosniff' });
      res.end(reply.body);
    });
    req.on('error', () => { /* client went away; nothing to answer */ });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(new RouterError('RTR_ERR_LISTEN', `webhook port ${opts.port}: ${e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => log.error({ err: e }, 'webhook server error'));

  let timer: NodeJS.Timeout | undefined;
  if (source === 'files') {
    let current = digest(bundle);
    let busy = false;
    timer = setInterval(() => {
      if (busy) return;
      busy = true;
      readCertFiles(opts.certFile, opts.keyFile).then((next) => {
        if (next === null || digest(next) === current) return;
        try {
          server.setSecureContext({ cert: next.certPem, key: next.keyPem, minVersion: 'TLSv1.2' });
          current = digest(next);
          log.info({ certFile: opts.certFile }, 'webhook certificate reloaded');
        } catch (e) {
          // A half-written pair (certificate renewed, key not yet) is retried at the next tick.
          log.warn({ err: e }, 'webhook certificate files changed but do not load; keeping the previous one');
        }
      }).catch((e: unknown) => log.warn({ err: e }, 'reading webhook certificate files failed'))
        .finally(() => { busy = false; });
    }, opts.reloadIntervalMs ?? 10_000);
    timer.unref();
  }

  const port = (server.address() as AddressInfo).port;
  log.info({ port, source }, 'validating webhook listening');
  return {
    port,
    source,
    caPem: bundle.caPem,
    close: () => new Promise<void>((resolve) => {
      if (timer !== undefined) clearInterval(timer);
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
