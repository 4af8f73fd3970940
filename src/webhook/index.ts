/**
 * The validating webhook, as the control plane starts it in Kubernetes mode (`--enable-webhook`,
 * Kthena's default). The call site (src/control.ts, Kubernetes mode only) is one line:
 *
 *   if (cfg.enableWebhook) this.#webhook = await startWebhookFromConfig(cfg, this.log, kubeFetch);
 *
 * and `await this.#webhook?.close()` on shutdown. `kubeFetch` is the Kubernetes provider's client
 * as a KubeFetch (see certs.ts); without it the webhook still serves, from the certificate files
 * or a certificate generated in memory, but can neither store it nor patch the CA bundle.
 */
import type { RouterConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { KubeFetch } from './certs.js';
import { startWebhookServer, type WebhookServer } from './server.js';

export { startWebhookServer, type WebhookServer, type WebhookServerOptions, type CertSource } from './server.js';
export type { KubeFetch, CertBundle } from './certs.js';

export function startWebhookFromConfig(cfg: Readonly<RouterConfig>, log: Logger, kube?: KubeFetch, jwtAuth?: () => boolean): Promise<WebhookServer> {
  return startWebhookServer({
    port: cfg.webhookPort,
    certFile: cfg.webhookTlsCertFile,
    keyFile: cfg.webhookTlsPrivateKeyFile,
    certSecretName: cfg.certSecretName,
    serviceName: cfg.webhookServiceName,
    namespace: cfg.podNamespace,
    kube,
    jwtAuth,
    log: log.child({ component: 'webhook' }),
  });
}
