/**
 * The control thread, composed. It never proxies traffic; it runs the pipeline DESIGN.md draws,
 * level-triggered (any change marks dirty, one coalesced rebuild follows):
 *
 *   provider (file | Kubernetes)   resources and their problems           #onResources
 *   -> translate                   RoutingIR + Gateway IR + statuses      translate()
 *   -> validate                    structural checks; invalid: keep last  validateIR()
 *   -> publish                     slots, encode, generation (SAB)        Publisher
 *   -> listeners                   Gateway ports the workers serve        ListenerSync
 *   -> status                      Kthena and Gateway API statuses        desiredStatuses()
 *
 * Around it: the worker threads (src/control/worker-pool.ts), the router configuration
 * (src/routerconfig/), engine scraping (src/scrape/), metrics and debug servers (src/admin/),
 * Kubernetes mode's composition (src/control/kubernetes.ts).
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { FileChangeWatcher } from './tls-watch.js';
import { redactedConfig, type RouterConfig } from './config.js';
import { RouterError } from './errors.js';
import { createLogger, droppedLogLines, type Logger } from './log.js';
import { FileProvider } from './provider/file/index.js';
import type { Provider } from './provider/types.js';
import type { KubernetesMode } from './control/kubernetes.js';
import type { KubeSnapshot } from './provider/kube/index.js';
import { ListenerSync, probePort } from './control/listeners.js';
import { desiredStatuses } from './control/statuses.js';
import { WorkerPool } from './control/worker-pool.js';
import { parseRouterConfig } from './routerconfig/parse.js';
import { translate, validateIR } from './translator/index.js';
import { Publisher } from './publish/publisher.js';
import {
  allocateRegions, epIndex, kEndpointStride, kEpConsecFailures, kEpEjectedUntilSec, kEpEjections, kEpFailuresTotal, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kEpRemoteInflight, kEpRequestsTotal, kDefaultMaxEndpoints, kDefaultSnapshotHalfBytes, kHdrDraining, kHdrReady, kHdrScrapeReady, kPxHdrEntries,
  snapshotHalfBytes, type SharedRegions,
} from './shared/layout.js';
import type { AuthIR, RoutingIR, SchedulerIR } from './ir/types.js';
import { ROUTER_DEFAULT_SCHEDULER } from './routerconfig/defaults.js';
import { RouterConfigWatcher } from './routerconfig/watch.js';
import { Scraper, type ScrapeTarget } from './scrape/scraper.js';
import { KvBlockGc } from './kvgc.js';
import { endpointSlots, sharedInflightBreaker, SharedInflight } from './shared-inflight/index.js';
import { AdmissionService } from './admission/service.js';
import { ScrapedBackendView } from './admission/backend-view.js';
import type { AdmissionSettings } from './shared/admission.js';
import { threadMemory } from './shared/memory.js';
import type { Problem, ResourceSet } from './resources/types.js';
import { MetricsHub, startMetricsServer } from './admin/metrics.js';
import { startDebugServer } from './admin/debug.js';
import { createAccessLogSink } from './admin/accesslog-sink.js';
import type { GatewayStatuses } from './ir/gateway.js';
import type { Gateway, GatewayClass } from './resources/gateway.js';
import type { DesiredStatus } from './translator/status.js';
import type { Server } from 'node:http';

export interface RunningRouter {
  /** Resolves when the router has stopped (after drain). */
  stopped: Promise<number>;
  stop(): Promise<number>;
  ready: Promise<void>;
}

export class ControlPlane {
  readonly cfg: Readonly<RouterConfig>;
  readonly log: Logger;
  #regions: SharedRegions;
  readonly #header: Int32Array;
  readonly #publisher: Publisher;
  readonly #hub: MetricsHub;
  readonly #pool: WorkerPool;
  readonly #listeners: ListenerSync;
  #provider: Provider | null = null;
  /** Kubernetes mode (--kubeconfig, or in-cluster): also writes statuses. */
  #kube: KubernetesMode | null = null;
  /** The ConfigMap text last applied (Kubernetes mode without --router-config). */
  #routerConfigText: string | null = null;
  #routerConfig: RouterConfigWatcher | null = null;
  #scheduler: SchedulerIR = ROUTER_DEFAULT_SCHEDULER;
  /** JWT authentication from the router configuration (null: off); carried in the snapshot. */
  #auth: AuthIR | null = null;
  #routerConfigProblems: Problem[] = [];
  #scraper: Scraper;
  #scrapeReadyWaiting = false;
  #kvGc: KvBlockGc | null = null;
  /** REDIS_HOST set: this replica's in-flight counts shared with the others (src/shared-inflight/). */
  #sharedInflight: SharedInflight | null = null;
  #resources: ResourceSet = { modelRoutes: [], modelServers: [], pods: [] };
  #providerProblems: Problem[] = [];
  #translatorProblems: Problem[] = [];
  #draining = false;
  #servers: Server[] = [];
  #sink: ReturnType<typeof createAccessLogSink> | null = null;
  #readyResolve!: () => void;
  readonly ready: Promise<void>;
  #stoppedResolve!: (code: number) => void;
  readonly stopped: Promise<number>;
  #rebuildScheduled = false;
  #rebuilding: Promise<void> = Promise.resolve();
  #tlsWatch: FileChangeWatcher | null = null;
  /** Fault injection: the next rebuild rejects after translation (outside its own try). */
  #failNextRebuild = false;
  #startupListenFailure: string | null = null;
  #startupFatal: { code: string; message: string } | null = null;
  #gatewayStatuses: GatewayStatuses = { gatewayClasses: [], gateways: [], httpRoutes: [], inferencePools: [] };
  #bootstrap: (GatewayClass | Gateway)[] = [];
  #poolModelsKey = '[]';
  /** Kthena's fairness queue or session boost: one queue per model for the whole router (null when off). */
  #admission: AdmissionService | null = null;
  #backendView: ScrapedBackendView | null = null;

  constructor(cfg: Readonly<RouterConfig>, log?: Logger) {
    this.cfg = cfg;
    this.log = log ?? createLogger(cfg.logLevel, cfg.appLog);
    this.#regions = allocateRegions(kDefaultMaxEndpoints, kDefaultSnapshotHalfBytes, cfg.prefixIndexEntries);
    this.#header = new Int32Array(this.#regions.headerSab);
    this.#publisher = new Publisher(this.#regions);
    this.#hub = new MetricsHub({ collectWorkers: () => this.#pool.collect() });
    const px = new Int32Array(this.#regions.prefixSab);
    this.#hub.addGauge('kthena_router_outlier_ejected_endpoints', 'Endpoints currently ejected by passive outlier detection', () => {
      const ep = new Int32Array(this.#regions.endpointSab);
      const now = Date.now() / 1000;
      let n = 0;
      for (let slot = 0, slots = ep.length / kEndpointStride; slot < slots; slot++) if (Atomics.load(ep, epIndex(slot, kEpEjectedUntilSec)) > now) n++;
      return n;
    });
    this.#hub.addCounter('kthena_router_log_dropped_lines_total', 'Application log lines dropped because stderr did not keep up and the bounded log buffer was full', droppedLogLines);
    this.#hub.addGauge('kthena_router_prefix_cache_entries', 'Entries in the shared prefix-cache index (all workers, all models)', () => Atomics.load(px, kPxHdrEntries));
    this.#pool = new WorkerPool({
      cfg, regions: () => this.#regions, hub: this.#hub, log: this.log, admission: () => this.#admission,
      events: {
        onStartFailure: (address, fatal) => {
          this.#startupListenFailure = address;
          if (fatal !== null) this.#startupFatal ??= fatal;
        },
        onAccess: (lines) => this.#sink?.write(lines),
        onListenersResult: (failed) => this.#listeners.bindResult(failed),
        onRetired: () => this.#maybeStopped(),
      },
    });
    this.#listeners = new ListenerSync({
      host: cfg.host, routerPort: cfg.port, log: this.log,
      send: (ports) => this.#pool.setListenPorts(ports),
      // Listener conditions changed (PortUnavailable): reported, and written in Kubernetes mode.
      onProblems: () => {
        this.#hub.setConfigProblems(this.#allProblems());
        this.#writeStatuses();
      },
      stopping: () => this.#draining,
    });
    this.#scraper = new Scraper({
      ep: new Int32Array(this.#regions.endpointSab),
      intervalMs: cfg.scrapeIntervalMs,
      modelIds: () => this.#publisher.modelIds.ids,
      log: this.log,
      registry: this.#hub.registry,
      onRound: () => { this.#checkPoolModels(); this.#backendView?.invalidate(); this.#admission?.backendChanged(); },
    });
    const adm = admissionSettings(cfg);
    if (adm !== null) {
      const ep = new Int32Array(this.#regions.endpointSab);
      this.#backendView = new ScrapedBackendView(ep, {
        slots: () => (this.#publisher.current?.endpoints ?? []).map((e) => e.slot),
        modelIds: () => this.#publisher.modelIds.ids,
      });
      this.#admission = new AdmissionService(adm, this.#backendView.view);
    }
    this.ready = new Promise((r) => { this.#readyResolve = r; });
    this.stopped = new Promise((r) => { this.#stoppedResolve = r; });
  }

  /** Starts everything; rejects (after cleaning up) when a port cannot be bound. */
  async start(): Promise<void> {
    const cfg = this.cfg;
    this.log.info({ flags: redactedConfig(cfg) }, 'starting kthena-router');
    if (cfg.noEffectFlags.length > 0) this.log.info({ flags: cfg.noEffectFlags }, 'klog flags accepted for Kthena compatibility; they have no effect here (docs/configuration.md)');
    if (cfg.kubeconfig !== '' || cfg.inCluster) {
      // Loaded before anything starts: an unusable kubeconfig is a usage error (exit 2).
      const { KubernetesMode } = await import('./control/kubernetes.js');
      this.#kube = KubernetesMode.fromConfig(cfg, { onChange: (snap) => this.#onKubeSnapshot(snap), log: this.log, registry: this.#hub.registry });
      this.log.info({ ignored: ['kubeApiQps', 'kubeApiBurst'], kubeconfig: cfg.kubeconfig || '(in-cluster)' }, 'Kubernetes mode; the kube API rate flags are accepted and ignored');
    } else {
      const k8sOnly = ['webhookPort', 'webhookTlsCertFile', 'webhookTlsPrivateKeyFile', 'certSecretName', 'webhookServiceName', 'kubeApiQps', 'kubeApiBurst', 'enableWebhook'] as const;
      this.log.info({ ignored: k8sOnly }, 'file mode: Kubernetes-mode flags (webhook, kube API) are accepted and ignored');
    }
    if (cfg.routerConfigFile !== '') await this.#loadRouterConfigFile();
    if (cfg.accessLog.enabled) this.#sink = createAccessLogSink(cfg.accessLog.output);
    try {
      if (cfg.metricsPort !== 0) this.#servers.push(await startMetricsServer(this.#hub, { host: '0.0.0.0', port: cfg.metricsPort }));
      if (cfg.debugPort !== 0) this.#servers.push(await this.#startDebugServer());
      // The workers bind with SO_REUSEPORT, which would silently share the port with another
      // process doing the same (a second router): a plain bind first fails on any holder.
      await probePort(cfg.host, cfg.port);
    } catch (err) {
      // No worker runs yet: close what did start and report the address (exit code 1).
      const e = err as { address?: string; port?: number; code?: string; message: string };
      const address = e.address !== undefined ? `${e.address}:${e.port}` : e.message;
      this.#startupListenFailure = address;
      this.#draining = true;
      this.#maybeStopped();
      throw new RouterError('RTR_ERR_LISTEN', `${address}${e.code ? ` (${e.code})` : ''}`, { cause: err });
    }
    await this.#pool.start(cfg.workers);
    if (this.#startupListenFailure !== null) {
      // A worker that could not start at all (no native uWS binary for this Node) is not a port problem.
      const fatal = this.#startupFatal;
      const err = fatal !== null ? Object.assign(new Error(fatal.message), { code: fatal.code }) : new RouterError('RTR_ERR_LISTEN', this.#startupListenFailure);
      await this.stop();
      throw err;
    }
    this.#routerConfig?.start();
    if (cfg.tlsCert !== '') {
      this.#tlsWatch = new FileChangeWatcher([cfg.tlsCert, cfg.tlsKey], 2000, () => void this.#reloadTls());
      await this.#tlsWatch.start();
    }
    this.#scraper.start();
    if (cfg.sharedInflight) await this.#startSharedInflight();
    this.#provider = this.#kube ?? new FileProvider(cfg.configDir, {
      onChange: (snap) => this.#onResources(snap.resources, snap.problems),
      log: this.log,
    });
    await this.#provider.start();
    if (this.#kube !== null && cfg.enableWebhook) {
      const { startWebhookFromConfig } = await import('./webhook/index.js');
      this.#kube.startWebhook((kube) => startWebhookFromConfig(cfg, this.log, kube, () => this.#auth !== null));
    }
  }

  // ---- the pipeline ------------------------------------------------------------------------------

  /** Provider: a new resource set (file mode, and Kubernetes mode through #onKubeSnapshot). */
  #onResources(resources: ResourceSet, problems: Problem[]): void {
    this.#resources = resources;
    this.#providerProblems = problems;
    this.#scheduleRebuild();
  }

  #scheduleRebuild(): void {
    if (this.#rebuildScheduled) return;
    this.#rebuildScheduled = true;
    // Level triggered: every change marks dirty; one rebuild runs after the current one.
    this.#rebuilding = this.#rebuilding.then(() => {
      this.#rebuildScheduled = false;
      return this.#rebuild();
    }).catch((err: unknown) => {
      // Without this, one rejected rebuild (a failed buffer growth, a publish that threw) would
      // leave the chain rejected: every later change would be skipped, silently, for good.
      this.#hub.translatorCrashed();
      this.log.error({ err: (err as Error)?.stack ?? String(err) }, 'snapshot rebuild failed; keeping the last good snapshot');
    });
  }

  /** translate -> validate -> publish -> listeners -> status. */
  async #rebuild(): Promise<void> {
    let ir: RoutingIR;
    try {
      const out = translate(this.#resources, this.#scheduler, {
        enableGatewayApi: this.cfg.enableGatewayApi, enableInferenceExtension: this.cfg.enableGatewayApiInferenceExtension,
        podNamespace: this.cfg.podNamespace, defaultPort: this.cfg.port, inferencePoolPicker: this.cfg.inferencePoolPicker,
      }, { jwtAuth: this.#auth !== null });
      this.#translatorProblems = out.problems;
      this.#gatewayStatuses = out.gatewayStatuses;
      this.#bootstrap = out.bootstrap;
      this.#writeStatuses();
      const structural = validateIR(out.ir);
      if (structural.length > 0) {
        this.log.error({ problems: structural }, 'translated snapshot is invalid; keeping the last good snapshot');
        this.#hub.snapshotPublished('rejected');
        return;
      }
      const withSlots = this.#publisher.withSlots(this.#auth === null ? out.ir : { ...out.ir, auth: this.#auth });
      if (withSlots === null) {
        this.log.error({ endpoints: out.ir.endpoints.length }, 'more endpoints than endpoint slots, or more local rate-limit buckets than bucket slots; keeping the last good snapshot');
        this.#hub.snapshotPublished('rejected');
        return;
      }
      ir = withPoolModels(withSlots, (key) => this.#scraper.view(key)?.models);
      this.#poolModelsKey = JSON.stringify(ir.gateway.poolModels ?? []);
      // Same synchronous turn as the slot assignment: a scrape of a departed pod that completes
      // later must find its target gone rather than write into a slot given to another pod.
      this.#scraper.setTargets(scrapeTargets(ir));
    } catch (err) {
      this.#hub.translatorCrashed();
      this.log.error({ err: (err as Error).stack }, 'translator crashed; keeping the last good snapshot');
      return;
    }
    this.#reportProblems();
    if (this.#failNextRebuild) {
      this.#failNextRebuild = false;
      throw new Error('rebuild failure requested through fault injection');
    }
    await this.#publish(ir);
    // New model ids (a route added an adapter) show in the pods' bit sets now, not at their next scrape.
    this.#scraper.refreshModelBits();
    this.#listeners.sync(ir, this.#resources);
    this.#syncKvGc();
    // Ready: a snapshot is live and the first scrape round over its pods is done, so the first
    // requests are scored on real engine metrics.
    if (!this.#scrapeReadyWaiting && this.#publisher.generation > 0) {
      this.#scrapeReadyWaiting = true;
      void this.#scraper.firstRound.then(() => {
        Atomics.store(this.#header, kHdrScrapeReady, 1);
        Atomics.store(this.#header, kHdrReady, 1);
        this.#readyResolve();
      });
    }
  }

  async #publish(ir: RoutingIR): Promise<void> {
    const bytes = this.#publisher.encode(ir);
    if (!this.#publisher.fits(bytes)) await this.#growSnapshotBuffer(bytes.byteLength);
    const result = this.#publisher.publish(ir, bytes);
    if (result === 'published' && this.#admission !== null) {
      this.#backendView!.invalidate();
      this.#admission.retainModels(new Set(ir.routes.flatMap((r) => [r.modelName, ...r.loraAdapters])));
      this.#admission.backendChanged();
    }
    this.#hub.snapshotPublished(result === 'too-large' ? 'rejected' : result);
    if (result === 'published') {
      this.#hub.setSnapshotGeneration(this.#publisher.generation);
      this.log.info({ generation: this.#publisher.generation, routes: ir.routes.length, servers: ir.servers.length, endpoints: ir.endpoints.length, bytes: bytes.byteLength }, 'published routing snapshot');
    }
  }

  /** Every status this router computes, from one place (src/control/statuses.ts). */
  #statuses(): DesiredStatus[] {
    return desiredStatuses({ resources: this.#resources, problems: this.#allProblems(), objects: this.#kube?.objects ?? null, gateway: this.gatewayStatuses() });
  }

  /** Kubernetes mode: hand the statuses to the writer (it writes while this replica leads). */
  #writeStatuses(): void {
    if (this.#kube !== null) this.#kube.writeStatuses(this.#statuses());
  }

  /** Gateway statuses as computed, with listeners on an unbindable port marked not programmed. */
  gatewayStatuses(): GatewayStatuses {
    return this.#listeners.adjust(this.#gatewayStatuses, this.#publisher.current);
  }

  #allProblems(): Problem[] {
    return [...this.#routerConfigProblems, ...this.#providerProblems, ...this.#translatorProblems, ...this.#listeners.problems];
  }

  #reportProblems(): void {
    const all = this.#allProblems();
    this.#hub.setConfigProblems(all);
    for (const p of all) {
      this.log.warn({ kind: p.kind, namespace: p.namespace, name: p.name, file: p.file, field: p.field, severity: p.severity }, p.message);
    }
  }

  // ---- inputs besides the provider ---------------------------------------------------------------

  /** --router-config FILE: loaded once (errors are fatal at start), then hot reloaded. */
  async #loadRouterConfigFile(): Promise<void> {
    const file = this.cfg.routerConfigFile;
    this.#routerConfig = new RouterConfigWatcher(file, {
      onChange: (scheduler, problems, auth) => {
        this.#scheduler = scheduler;
        this.#auth = auth;
        this.#routerConfigProblems = problems;
        this.log.info({ file, filters: scheduler.filters, scores: scheduler.scores }, 'router configuration reloaded');
        this.#scheduleRebuild();
      },
      onRejected: (problems) => {
        this.#routerConfigProblems = problems;
        this.log.error({ file }, 'router configuration rejected; the previous configuration stays live');
        this.#reportProblems();
      },
    });
    const first = await this.#routerConfig.load();
    this.#routerConfigProblems = first.problems;
    if (first.scheduler === null) {
      for (const p of first.problems) this.log.error({ field: p.field, file: p.file }, p.message);
      throw new RouterError('RTR_ERR_CONFIG_INVALID', `--router-config ${file}: ${first.problems.filter((p) => p.severity === 'rejected').map((p) => (p.field ? `${p.field}: ` : '') + p.message).join('; ')}`);
    }
    this.#scheduler = first.scheduler;
    this.#auth = first.auth;
  }

  /**
   * Kubernetes mode: the resources, plus the router configuration from ConfigMap
   * kthena-router-config unless --router-config names a file (which then wins). A missing
   * ConfigMap means the built-in default (as without --router-config); an invalid one keeps the
   * previous configuration.
   */
  #onKubeSnapshot(snap: KubeSnapshot): void {
    if (this.cfg.routerConfigFile === '' && snap.routerConfig !== this.#routerConfigText) {
      this.#routerConfigText = snap.routerConfig;
      const source = 'ConfigMap kthena-router-config';
      if (snap.routerConfig === null) {
        this.#scheduler = ROUTER_DEFAULT_SCHEDULER;
        this.#auth = null;
        this.#routerConfigProblems = [];
      } else {
        const r = parseRouterConfig(snap.routerConfig, source);
        this.#routerConfigProblems = r.problems;
        if (r.scheduler !== null) {
          this.#scheduler = r.scheduler;
          this.#auth = r.auth;
          this.log.info({ source, filters: r.scheduler.filters, scores: r.scheduler.scores }, 'router configuration reloaded');
        } else {
          this.log.error({ source }, 'router configuration rejected; the previous configuration stays live');
        }
      }
    }
    this.#onResources(snap.resources, snap.problems);
  }

  /** A scrape round changed what some InferencePool serves: GET /v1/models on its Gateways follows. */
  #checkPoolModels(): void {
    const ir = this.#publisher.current;
    if (ir === null || ir.gateway.pools.length === 0) return;
    const key = JSON.stringify(withPoolModels(ir, (k) => this.#scraper.view(k)?.models).gateway.poolModels ?? []);
    if (key !== this.#poolModelsKey) this.#scheduleRebuild();
  }

  /**
   * The router's certificate or key changed: check that the pair loads, then have the workers
   * re-listen with it one at a time (the others keep serving). A pair that does not load (a
   * half-written renewal) keeps the previous certificate; the next change is tried again.
   */
  async #reloadTls(): Promise<void> {
    const cfg = this.cfg;
    try {
      const [cert, key] = await Promise.all([readFile(cfg.tlsCert), readFile(cfg.tlsKey)]);
      createSecureContext({ cert, key });
    } catch (err) {
      this.log.error({ cert: cfg.tlsCert, key: cfg.tlsKey, err: (err as Error).message }, 'router TLS certificate changed but does not load; keeping the previous one');
      return;
    }
    await this.#pool.reloadTls();
    this.log.info({ cert: cfg.tlsCert }, 'router TLS certificate reloaded');
  }

  // ---- everything else ---------------------------------------------------------------------------

  unhandledRejection(reason: unknown): void {
    this.#hub.unhandledRejection();
    this.log.error({ err: (reason as Error)?.stack ?? String(reason) }, 'unhandled promise rejection on the control thread');
  }

  #startDebugServer(): Promise<Server> {
    const cfg = this.cfg;
    return startDebugServer({
      resources: () => this.#resources,
      problems: () => this.#allProblems(),
      podMetrics: (key: string) => this.#scraper.view(key),
      gateway: () => ({ statuses: this.gatewayStatuses(), bootstrap: this.#bootstrap }),
      kthenaStatus: (kind, namespace, name) => this.#statuses().find((d) => d.kind === kind && d.namespace === namespace && d.name === name)?.status,
      slotCounters: (slot: number) => {
        const ep = new Int32Array(this.#regions.endpointSab);
        return {
          inflight: Atomics.load(ep, epIndex(slot, kEpInflight)),
          inflightPrefill: Atomics.load(ep, epIndex(slot, kEpInflightPrefill)),
          inflightDecode: Atomics.load(ep, epIndex(slot, kEpInflightDecode)),
          remoteInflight: Atomics.load(ep, epIndex(slot, kEpRemoteInflight)),
          requestsTotal: Atomics.load(ep, epIndex(slot, kEpRequestsTotal)),
          failuresTotal: Atomics.load(ep, epIndex(slot, kEpFailuresTotal)),
          consecutiveFailures: Atomics.load(ep, epIndex(slot, kEpConsecFailures)),
          ejectedUntilSec: Atomics.load(ep, epIndex(slot, kEpEjectedUntilSec)),
          ejected: Atomics.load(ep, epIndex(slot, kEpEjectedUntilSec)) > Date.now() / 1000,
          ejections: Atomics.load(ep, epIndex(slot, kEpEjections)),
        };
      },
      ir: () => this.#publisher.current,
      generation: () => this.#publisher.generation,
      initialConfig: () => redactedConfig(cfg),
      faults: cfg.faultInjection ? {
        crashWorker: (i: number) => this.#pool.crash(i),
        failNextRebuild: () => { this.#failNextRebuild = true; this.#scheduleRebuild(); },
        unhandledRejection: () => { void Promise.reject(new Error('unhandled rejection requested through fault injection')); },
        memory: async (gc: boolean) => [threadMemory('control', gc), ...await this.#pool.memory(gc)],
      } : undefined,
    }, { port: cfg.debugPort, host: '127.0.0.1' });
  }

  async #startSharedInflight(): Promise<void> {
    const breaker = await sharedInflightBreaker(this.cfg.redis);
    let ir: RoutingIR | null = null;
    let slots = new Map<string, number>();
    const s = new SharedInflight({
      ep: new Int32Array(this.#regions.endpointSab),
      breaker,
      endpoints: () => {
        const cur = this.#publisher.current;
        if (cur !== ir) { ir = cur; slots = endpointSlots(cur); }
        return slots;
      },
      log: this.log,
      // Session boost's admission counts the other replicas' requests: fewer of them may open it.
      onChange: () => this.#admission?.backendChanged(),
    });
    this.#sharedInflight = s;
    this.#hub.addGauge('kthena_router_shared_inflight_redis_up', 'Shared in-flight counts: 1 while refreshes from Redis succeed, 0 after 3 failed refreshes or 1 s without success (each replica then balances on its own counts)', () => (s.up ? 1 : 0));
    this.#hub.addCounter('kthena_router_shared_inflight_redis_failures_total', 'Shared in-flight count refreshes that failed (Redis error, timeout or open circuit breaker)', () => s.failures);
    this.#hub.addGauge('kthena_router_shared_inflight_replicas', 'Other router replicas whose in-flight counts the last successful refresh summed', () => s.otherReplicas);
    this.log.info({ replicaId: s.replicaId, redis: `${this.cfg.redis.host}:${this.cfg.redis.port}`, intervalMs: s.intervalMs, ttlMs: s.ttlMs }, 'sharing in-flight counts with the other replicas through Redis');
    s.start();
  }

  /** Kthena's hourly GC of KV-block owners in Redis, run by the control thread while kvcache-aware is configured. */
  #syncKvGc(): void {
    const wanted = this.#scheduler.scores.some((s) => s.name === 'kvcache-aware');
    if (wanted && this.#kvGc === null) {
      this.#kvGc = new KvBlockGc(this.cfg.redis, this.log);
      this.#kvGc.start();
    } else if (!wanted && this.#kvGc !== null) {
      void this.#kvGc.stop();
      this.#kvGc = null;
    }
  }

  async #growSnapshotBuffer(needed: number): Promise<void> {
    let half = snapshotHalfBytes(this.#regions.snapshotSab);
    while (half < needed) half *= 2;
    const sab = new SharedArrayBuffer(half * 2);
    // Every worker must hold the new buffer before a generation points into it.
    await this.#pool.replaceSnapshotBuffer(sab);
    this.#regions = { ...this.#regions, snapshotSab: sab };
    this.#publisher.replaceSnapshotBuffer(sab);
    this.log.info({ halfBytes: half }, 'snapshot buffer enlarged');
  }

  /** SIGTERM: stop accepting, drain in-flight requests up to DRAIN_TIMEOUT, then stop. */
  async stop(): Promise<number> {
    if (!this.#draining) {
      this.#draining = true;
      Atomics.store(this.#header, kHdrDraining, 1);
      this.log.info({ drainTimeoutMs: this.cfg.drainTimeoutMs }, 'draining');
      await this.#provider?.stop();
      this.#tlsWatch?.stop();
      this.#routerConfig?.stop();
      await this.#scraper.stop();
      await this.#kvGc?.stop();
      // Requests still waiting in a fairness / session-boost queue are refused (503
      // RTR_ERR_FAIRNESS_QUEUE_CLOSED) instead of holding drain until their queue timeout.
      this.#admission?.close();
      this.#pool.drain(Date.now() + this.cfg.drainTimeoutMs);
      this.#maybeStopped();
    }
    return this.stopped;
  }

  #maybeStopped(): void {
    if (!this.#draining && this.#startupListenFailure === null) return;
    if (this.#pool.running > 0) return;
    void (async () => {
      await Promise.all(this.#servers.map((s) => new Promise<void>((r) => { s.closeAllConnections?.(); s.close(() => r()); })));
      this.#servers = [];
      await this.#sink?.close();
      // After the workers: the other replicas count our requests until the last one has finished.
      if (this.#sharedInflight !== null) {
        await this.#sharedInflight.stop();
        this.#sharedInflight = null;
      }
      this.#listeners.close();
      this.log.info({}, 'stopped');
      this.#stoppedResolve(this.#startupListenFailure !== null ? 1 : 0);
    })();
  }
}

/**
 * Fills GatewayIR.poolModels: per Gateway, the models the pods of the InferencePools its HTTPRoute
 * rules reach report in /v1/models (sorted, unique).
 */
export function withPoolModels(ir: RoutingIR, modelsOf: (key: string) => readonly string[] | undefined): RoutingIR {
  const g = ir.gateway;
  if (g.pools.length === 0) return ir;
  const perGateway = g.gateways.map(() => new Set<string>());
  for (const l of g.listeners) {
    for (const e of l.entries) {
      for (const b of g.rules[e.rule].backends) {
        if (b.kind !== 'pool') continue;
        for (const i of g.pools[b.pool].endpoints) for (const m of modelsOf(g.endpoints[i].key) ?? []) perGateway[l.gatewayIndex].add(m);
      }
    }
  }
  return { ...ir, gateway: { ...g, poolModels: perGateway.map((s) => [...s].sort()) } };
}

/**
 * What the scraper polls: every endpoint of the snapshot on the port of the first ModelServer (by
 * key) that selects it, as Kthena uses the first bound ModelServer's workloadPort.
 */
export function scrapeTargets(ir: RoutingIR): ScrapeTarget[] {
  const first = new Map<number, number>();
  const models = new Map<number, Set<string>>();
  ir.servers.forEach((s, si) => {
    for (const e of s.endpoints) {
      if (!first.has(e)) first.set(e, si);
      if (s.model !== '') {
        let m = models.get(e);
        if (!m) models.set(e, m = new Set());
        m.add(s.model);
      }
    }
  });
  const out: ScrapeTarget[] = [];
  ir.endpoints.forEach((e, i) => {
    const si = first.get(i);
    if (si === undefined || e.slot < 0) return;
    const s = ir.servers[si];
    out.push({ key: e.key, slot: e.slot, ip: e.ip, port: s.port, engine: s.engine, models: [...(models.get(i) ?? [])] });
  });
  // InferencePool endpoints (podIP:targetPort) are model servers too; Service backends are plain
  // HTTP services and are not scraped. The pool does not name its engine: they are read with
  // vLLM's metric names (an SGLang pool's pods then count as metrics-unknown).
  const pooled = new Set<number>();
  for (const p of ir.gateway.pools) for (const e of p.endpoints) pooled.add(e);
  ir.gateway.endpoints.forEach((e, i) => {
    if (!pooled.has(i) || e.slot < 0) return;
    out.push({ key: e.key, slot: e.slot, ip: e.ip, port: e.port, engine: 'vLLM', models: [] });
  });
  return out;
}

/** Runs the router until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runRouter(cfg: Readonly<RouterConfig>): Promise<number> {
  const cp = new ControlPlane(cfg);
  const onSignal = (sig: string): void => { cp.log.info({ signal: sig }, 'signal received'); void cp.stop(); };
  // A promise nobody awaited must not end the process (Node's default for an unhandled rejection):
  // it is a bug to report, not a reason to drop every connection.
  process.on('unhandledRejection', (reason) => cp.unhandledRejection(reason));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await cp.start();
  } catch (err) {
    cp.log.fatal({ code: (err as RouterError).code }, (err as Error).message);
    // Said in plain text too: on the wrong Node version nothing else will ever work.
    if ((err as RouterError).code === 'RTR_ERR_NATIVE_UWS') process.stderr.write(`kthena-router: ${(err as Error).message}\n`);
    // A rejected --router-config is a usage error found before anything was started.
    if ((err as RouterError).code === 'RTR_ERR_CONFIG_INVALID') return 2;
    return cp.stopped;
  }
  return cp.stopped;
}

/** The admission queue settings from the validated config; null when fairness and session boost are off. */
function admissionSettings(cfg: Readonly<RouterConfig>): AdmissionSettings | null {
  if (cfg.fairness.enabled) return { mode: 'fairness', fairness: cfg.fairness };
  if (cfg.sessionBoost.enabled) {
    const b = cfg.sessionBoost;
    return { mode: 'session-boost', sessionBoost: { header: b.header.toLowerCase(), maxSessions: b.maxSessions, inflightPerPod: b.inflightPerPod, gracePeriodMs: b.gracePeriodMs, timeoutMs: b.timeoutMs } };
  }
  return null;
}
