/**
 * Kubernetes mode, composed: one Provider that owns the API connection (src/kube/), the informers
 * (src/provider/kube/), the Gateway API bootstrap, leader election and the status writer
 * (src/status/). The control plane computes the statuses (src/control/statuses.ts) from the
 * objects this mode watched (`objects`) and hands them over (`writeStatuses`); they are written
 * while this replica leads.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import type { RouterConfig } from '../config.js';
import type { DesiredStatus, StatusObject } from '../translator/status.js';
import { backoffDelay, type BackoffOptions } from '../kube/backoff.js';
import { KubeClient } from '../kube/client.js';
import { LeaderElector } from '../status/leader.js';
import { StatusWriter } from '../status/writer.js';
import type { Provider, ProviderLog } from '../provider/types.js';
import { GatewayBootstrap } from '../provider/kube/bootstrap.js';
import { KubeProvider, type KubeSnapshot } from '../provider/kube/index.js';

export const LEASE_NAME = 'kthena-router';

export interface KubernetesModeOptions {
  client: KubeClient;
  podNamespace: string;
  port: number;
  enableGatewayApi: boolean;
  enableGatewayApiInferenceExtension: boolean;
  onChange(snapshot: KubeSnapshot): void;
  log?: ProviderLog;
  registry?: Registry;
  backoff?: BackoffOptions;
  /** Leader election timings (client-go's defaults: 15 s, 10 s, 2 s). */
  lease?: { durationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  identity?: string;
}

export class KubernetesMode implements Provider {
  readonly provider: KubeProvider;
  readonly elector: LeaderElector;
  readonly writer: StatusWriter;
  readonly bootstrap: GatewayBootstrap | null;
  readonly #client: KubeClient;
  readonly #log: ProviderLog | undefined;
  readonly #backoff: BackoffOptions | undefined;
  #webhook: { close(): Promise<void> } | null = null;
  #webhookTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  #last: KubeSnapshot | null = null;

  /** From the validated config: --kubeconfig FILE, or in-cluster. Throws RTR_ERR_CONFIG_INVALID. */
  static fromConfig(cfg: Readonly<RouterConfig>, o: Pick<KubernetesModeOptions, 'onChange' | 'log' | 'registry'>): KubernetesMode {
    const client = KubeClient.load({ kubeconfig: cfg.kubeconfig, inCluster: cfg.inCluster });
    return new KubernetesMode({
      client, podNamespace: cfg.podNamespace, port: cfg.port, enableGatewayApi: cfg.enableGatewayApi,
      enableGatewayApiInferenceExtension: cfg.enableGatewayApiInferenceExtension, ...o,
    });
  }

  constructor(o: KubernetesModeOptions) {
    this.#client = o.client;
    this.#log = o.log;
    this.#backoff = o.backoff;
    this.provider = new KubeProvider({
      client: o.client,
      context: { podNamespace: o.podNamespace, gatewayApi: o.enableGatewayApi, inferenceExtension: o.enableGatewayApiInferenceExtension },
      onChange: (snap) => {
        this.#last = snap;
        o.onChange(snap);
      },
      log: o.log, registry: o.registry, backoff: o.backoff,
    });
    this.writer = new StatusWriter({
      client: o.client,
      current: (kind, namespace, name) => this.provider.get(kind, namespace, name),
      isLeader: () => this.elector.isLeader,
      log: o.log, registry: o.registry,
    });
    this.elector = new LeaderElector({
      client: o.client, namespace: o.podNamespace, name: LEASE_NAME,
      identity: o.identity ?? `${hostname()}_${randomUUID()}`,
      leaseDurationMs: o.lease?.durationMs, renewDeadlineMs: o.lease?.renewDeadlineMs, retryPeriodMs: o.lease?.retryPeriodMs,
      onStartedLeading: () => this.writer.kick(),
      onStoppedLeading: () => undefined,
      log: o.log,
    });
    if (o.registry !== undefined) {
      const elector = this.elector;
      new Gauge({
        name: 'kthena_router_leader', help: 'Kubernetes mode: 1 while this replica holds the kthena-router Lease and writes statuses',
        registers: [o.registry], collect() { this.set(elector.isLeader ? 1 : 0); },
      });
    }
    this.bootstrap = o.enableGatewayApi ? new GatewayBootstrap({ client: o.client, namespace: o.podNamespace, port: o.port, backoff: o.backoff, log: o.log }) : null;
  }

  async start(): Promise<void> {
    await this.provider.start();
    this.elector.start();
    this.bootstrap?.start();
  }

  /**
   * Starts the validating webhook (src/webhook) with this API connection (certificate Secret, CA
   * bundle patch). In the background and retried with backoff: an API server that is unreachable
   * at start must not stop the router (the webhook's failures never affect routing).
   */
  startWebhook(start: (kube: KubeClient['fetch']) => Promise<{ close(): Promise<void> }>): void {
    let failures = 0;
    const attempt = (): void => {
      this.#webhookTimer = null;
      if (this.#stopped) return;
      start((path, init) => this.#client.fetch(path, init)).then((server) => {
        if (this.#stopped) void server.close();
        else this.#webhook = server;
      }, (err: Error & { code?: string }) => {
        failures++;
        const delay = backoffDelay(failures, this.#backoff ?? { initialMs: 1000, maxMs: 60_000 });
        this.#log?.error({ code: err.code, err: err.message, retryInMs: delay }, 'validating webhook not started; retrying (routing is unaffected)');
        this.#webhookTimer = setTimeout(attempt, delay);
        this.#webhookTimer.unref();
      });
    };
    attempt();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#webhookTimer !== null) clearTimeout(this.#webhookTimer);
    await this.#webhook?.close();
    this.bootstrap?.stop();
    await this.provider.stop();
    await this.writer.stop();
    // Last: releasing the Lease is the one request worth waiting for (a successor takes over at once).
    await this.elector.stop();
    this.#client.close();
  }

  /** The watched objects by kind, as the API server holds them (null before the first sync). */
  get objects(): Readonly<Record<string, readonly StatusObject[]>> | null {
    return this.#last?.raw ?? null;
  }

  /** The statuses this router wants (src/control/statuses.ts); written while leading. */
  writeStatuses(desired: DesiredStatus[]): void {
    if (this.#last === null) return;
    this.writer.update(desired);
  }
}
