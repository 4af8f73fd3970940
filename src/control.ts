/**
 * The control thread: watches manifests, translates, publishes snapshots into shared memory,
 * supervises the worker threads and serves metrics and debug endpoints. It never proxies traffic.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { FileChangeWatcher } from './tls-watch.js';
import { createServer } from 'node:net';
import { computeStatuses } from './translator/status.js';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { AdmissionService } from './admission/service.js';
import { ScrapedBackendView } from './admission/backend-view.js';
import type { AdmissionSettings } from './shared/admission.js';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { redactedConfig, type RouterConfig } from './config.js';
import { RouterError } from './errors.js';
import { createLogger, droppedLogLines, type Logger } from './log.js';
import { FileProvider } from './provider/file/index.js';
import type { Provider } from './provider/types.js';
import type { KubernetesMode } from './control/kubernetes.js';
import type { KubeSnapshot } from './provider/kube/index.js';
import { parseRouterConfig } from './routerconfig/parse.js';
import { translate, validateIR } from './translator/index.js';
import { Publisher } from './publish/publisher.js';
import {
  allocateRegions, epIndex, kEpFailuresTotal, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kEpRequestsTotal, kDefaultMaxEndpoints, kDefaultSnapshotHalfBytes, kHdrDraining, kHdrReady, kHdrScrapeReady, kPxHdrEntries,
  snapshotHalfBytes, type SharedRegions,
} from './shared/layout.js';
import type { AuthIR, SchedulerIR } from './ir/types.js';
import { ROUTER_DEFAULT_SCHEDULER } from './routerconfig/defaults.js';
import { RouterConfigWatcher } from './routerconfig/watch.js';
import { Scraper, type ScrapeTarget } from './scrape/scraper.js';
import { KvBlockGc } from './kvgc.js';
import type { Problem, ResourceSet } from './resources/types.js';
import type { RoutingIR } from './ir/types.js';
import { MetricsHub, startMetricsServer } from './admin/metrics.js';
import type { MetricJSON } from './shared/metric-json.js';
import { startDebugServer } from './admin/debug.js';
import { createAccessLogSink } from './admin/accesslog-sink.js';
import type { FromWorker, ListenPort, ToWorker, WorkerInit } from './shared/messages.js';
import type { GatewayStatuses } from './ir/gateway.js';
import type { Gateway, GatewayClass } from './resources/gateway.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Server } from 'node:http';

const here = path.dirname(fileURLToPath(import.meta.url));
const workerFile = path.join(here, '..', 'workers', 'worker.js');

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  /** threadId of the current worker: the metrics hub's id, never reused. */
  id: number;
  listening: boolean;
  restarts: number;
  /** The metrics a worker posted on its way out (graceful drain or a caught crash). */
  finalMetrics: MetricJSON[] | null;
}

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
  readonly #workers: WorkerSlot[] = [];
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
  #resources: ResourceSet = { modelRoutes: [], modelServers: [], pods: [] };
  #providerProblems: Problem[] = [];
  #translatorProblems: Problem[] = [];
  #draining = false;
  #servers: Server[] = [];
  #sink: ReturnType<typeof createAccessLogSink> | null = null;
  #collectId = 1;
  #pendingCollect = new Map<number, Map<number, (data: MetricJSON[]) => void>>();
  #pendingAcks = new Map<number, { remaining: Set<number>; resolve: () => void }>();
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
  /** Gateway listener ports the workers serve (besides --port), as last sent. */
  #listenPorts: ListenPort[] = [];
  #listenKey = '';
  /** Ports some worker could not bind: port -> error. */
  #portFailures = new Map<number, string>();
  /** Gateway ports another process holds (found by probePort before the workers are told). */
  #probeFailures = new Map<number, string>();
  #wantedPorts: ListenPort[] = [];
  #reprobe: NodeJS.Timeout | null = null;
  #listenerProblems: Problem[] = [];
  #tlsDir: string | null = null;
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
    this.#hub = new MetricsHub({ collectWorkers: () => this.#collect() });
    const px = new Int32Array(this.#regions.prefixSab);
    this.#hub.addCounter('kthena_router_log_dropped_lines_total', 'Application log lines dropped because stderr did not keep up and the bounded log buffer was full', droppedLogLines);
    this.#hub.addGauge('kthena_router_prefix_cache_entries', 'Entries in the shared prefix-cache index (all workers, all models)', () => Atomics.load(px, kPxHdrEntries));
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
    if (cfg.routerConfigFile !== '') {
      this.#routerConfig = new RouterConfigWatcher(cfg.routerConfigFile, {
        onChange: (scheduler, problems, auth) => {
          this.#scheduler = scheduler;
          this.#auth = auth;
          this.#routerConfigProblems = problems;
          this.log.info({ file: cfg.routerConfigFile, filters: scheduler.filters, scores: scheduler.scores }, 'router configuration reloaded');
          this.#scheduleRebuild();
        },
        onRejected: (problems) => {
          this.#routerConfigProblems = problems;
          this.log.error({ file: cfg.routerConfigFile }, 'router configuration rejected; the previous configuration stays live');
          this.#reportProblems();
        },
      });
      const first = await this.#routerConfig.load();
      this.#routerConfigProblems = first.problems;
      if (first.scheduler === null) {
        for (const p of first.problems) this.log.error({ field: p.field, file: p.file }, p.message);
        throw new RouterError('RTR_ERR_CONFIG_INVALID', `--router-config ${cfg.routerConfigFile}: ${first.problems.filter((p) => p.severity === 'rejected').map((p) => (p.field ? `${p.field}: ` : '') + p.message).join('; ')}`);
      }
      this.#scheduler = first.scheduler;
      this.#auth = first.auth;
    }
    if (cfg.accessLog.enabled) this.#sink = createAccessLogSink(cfg.accessLog.output);
    try {
      if (cfg.metricsPort !== 0) this.#servers.push(await startMetricsServer(this.#hub, { host: '0.0.0.0', port: cfg.metricsPort }));
      if (cfg.debugPort !== 0) {
        this.#servers.push(await startDebugServer({
          resources: () => this.#resources,
          problems: () => this.#allProblems(),
          podMetrics: (key: string) => this.#scraper.view(key),
          gateway: () => ({ statuses: this.gatewayStatuses(), bootstrap: this.#bootstrap }),
          kthenaStatus: (kind, namespace, name) => this.#kthenaStatuses().get(`${kind}/${namespace}/${name}`),
          slotCounters: (slot: number) => {
            const ep = new Int32Array(this.#regions.endpointSab);
            return {
              inflight: Atomics.load(ep, epIndex(slot, kEpInflight)),
              inflightPrefill: Atomics.load(ep, epIndex(slot, kEpInflightPrefill)),
              inflightDecode: Atomics.load(ep, epIndex(slot, kEpInflightDecode)),
              requestsTotal: Atomics.load(ep, epIndex(slot, kEpRequestsTotal)),
              failuresTotal: Atomics.load(ep, epIndex(slot, kEpFailuresTotal)),
            };
          },
          ir: () => this.#publisher.current,
          generation: () => this.#publisher.generation,
          initialConfig: () => redactedConfig(cfg),
          faults: cfg.faultInjection ? {
            crashWorker: (i: number) => this.#crashWorker(i),
            failNextRebuild: () => { this.#failNextRebuild = true; this.#scheduleRebuild(); },
            unhandledRejection: () => { void Promise.reject(new Error('unhandled rejection requested through fault injection')); },
          } : undefined,
        }, { port: cfg.debugPort, host: '127.0.0.1' }));
      }
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
    const listening = Array.from({ length: cfg.workers }, (_, i) => this.#spawn(i));
    await Promise.all(listening);
    if (this.#startupListenFailure !== null) {
      // A worker that could not start at all (no native uWS binary for this Node) is not a port problem.
      const fatal = this.#startupFatal;
      const err = fatal !== null ? Object.assign(new Error(fatal.message), { code: fatal.code }) : new RouterError('RTR_ERR_LISTEN', this.#startupListenFailure);
      await this.stop();
      throw err;
    }
    this.#hub.setRunningWorkers(this.#workers.filter((w) => w.worker !== null).length);
    this.#routerConfig?.start();
    if (cfg.tlsCert !== '') {
      this.#tlsWatch = new FileChangeWatcher([cfg.tlsCert, cfg.tlsKey], 2000, () => void this.#reloadTls());
      await this.#tlsWatch.start();
    }
    this.#scraper.start();
    this.#provider = this.#kube ?? new FileProvider(cfg.configDir, {
      onChange: (snap) => {
        this.#resources = snap.resources;
        this.#providerProblems = snap.problems;
        this.#scheduleRebuild();
      },
      log: this.log,
    });
    await this.#provider.start();
    if (this.#kube !== null && cfg.enableWebhook) {
      const { startWebhookFromConfig } = await import('./webhook/index.js');
      this.#kube.startWebhook((kube) => startWebhookFromConfig(cfg, this.log, kube));
    }
  }

  /**
   * Kubernetes mode: the resources, plus the router configuration from ConfigMap
   * kthena-router-config unless --router-config names a file (which then wins). A missing
   * ConfigMap means the built-in default (as without --router-config); an invalid one keeps the
   * previous configuration.
   */
  #onKubeSnapshot(snap: KubeSnapshot): void {
    this.#resources = snap.resources;
    this.#providerProblems = snap.problems;
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
    this.#scheduleRebuild();
  }

  #spawn(index: number): Promise<void> {
    const init: WorkerInit = { index, cfg: this.cfg, regions: this.#regions };
    let transfer: MessagePort[] | undefined;
    if (this.#admission !== null) {
      // One port per worker incarnation; a restarted worker gets a fresh one (detach() closed the old).
      const ch = new MessageChannel();
      this.#admission.attach(index, ch.port1);
      init.admission = ch.port2;
      transfer = [ch.port2];
    }
    const worker = new Worker(workerFile, { workerData: init, transferList: transfer, name: `kthena-router-worker-${index}` });
    const slot: WorkerSlot = this.#workers[index] ?? { index, worker: null, id: 0, listening: false, restarts: 0, finalMetrics: null };
    slot.worker = worker;
    slot.id = worker.threadId;
    slot.listening = false;
    slot.finalMetrics = null;
    this.#workers[index] = slot;
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => { if (!settled) { settled = true; resolve(); } };
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'listening':
            if (m.ok) {
              slot.listening = true;
              if (this.#listenPorts.length > 0) this.#sendListeners(slot);
            }
            else {
              this.#startupListenFailure = m.error ?? `${this.cfg.host}:${this.cfg.port}`;
              this.log.error({ worker: index, address: m.error }, new RouterError('RTR_ERR_LISTEN', m.error).message);
            }
            settle();
            break;
          case 'fatal':
            this.#startupListenFailure = m.message;
            this.#startupFatal ??= { code: m.code, message: m.message };
            this.log.fatal({ worker: index, code: m.code }, m.message);
            settle();
            break;
          case 'access':
            this.#sink?.write(m.lines);
            break;
          case 'log':
            this.log[m.level](m.obj, m.msg);
            break;
          case 'metrics':
            if (m.id === 0) slot.finalMetrics = m.data as MetricJSON[];
            else this.#onCollected(m.id, index, m.data as MetricJSON[]);
            break;
          case 'ack': {
            const p = this.#pendingAcks.get(m.id);
            if (p) { p.remaining.delete(index); if (p.remaining.size === 0) { this.#pendingAcks.delete(m.id); p.resolve(); } }
            break;
          }
          case 'listeners-result':
            this.#onListenersResult(m.failed);
            break;
          case 'render-metrics':
            this.#hub.render().then(
              (r) => worker.postMessage({ type: 'metrics-text', id: m.id, text: r.body } satisfies ToWorker),
              () => worker.postMessage({ type: 'metrics-text', id: m.id, text: null } satisfies ToWorker),
            );
            break;
        }
      });
      worker.on('error', (err) => {
        this.log.error({ worker: index, err: err.stack }, 'worker error');
      });
      worker.on('exit', (code) => {
        settle();
        this.#admission?.detach(index);
        slot.worker = null;
        if (slot.finalMetrics !== null) this.#hub.retire(slot.finalMetrics, slot.id);
        else this.#hub.retireWorker(slot.id);
        slot.finalMetrics = null;
        this.#hub.setRunningWorkers(this.#workers.filter((w) => w.worker !== null).length);
        for (const [id, p] of this.#pendingAcks) { if (p.remaining.delete(index) && p.remaining.size === 0) { this.#pendingAcks.delete(id); p.resolve(); } }
        if (this.#draining || this.#startupListenFailure !== null || !slot.listening) {
          this.#maybeStopped();
          return;
        }
        slot.restarts++;
        this.#hub.workerRestarted();
        const delay = Math.min(5000, 100 * 2 ** Math.min(slot.restarts - 1, 6));
        this.log.error({ worker: index, exitCode: code, restartInMs: delay }, 'worker exited unexpectedly; restarting it');
        setTimeout(() => {
          if (this.#draining) return;
          void this.#spawn(index).then(() => {
            this.#hub.setRunningWorkers(this.#workers.filter((w) => w.worker !== null).length);
            this.log.info({ worker: index }, 'worker restarted');
          });
        }, delay);
      });
    });
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
    for (const w of this.#workers) {
      if (w.worker === null || this.#draining) continue;
      const id = this.#collectId++;
      const worker = w.worker;
      await new Promise<void>((resolve) => {
        this.#pendingAcks.set(id, { remaining: new Set([w.index]), resolve });
        worker.postMessage({ type: 'reload-tls', id } satisfies ToWorker);
      });
    }
    this.log.info({ cert: cfg.tlsCert }, 'router TLS certificate reloaded');
  }

  unhandledRejection(reason: unknown): void {
    this.#hub.unhandledRejection();
    this.log.error({ err: (reason as Error)?.stack ?? String(reason) }, 'unhandled promise rejection on the control thread');
  }

  #crashWorker(index: number): boolean {
    const w = this.#workers[index]?.worker;
    if (!w) return false;
    w.postMessage({ type: 'crash' } satisfies ToWorker);
    return true;
  }

  /** One promise per live worker; the hub shows a worker that does not answer in time with its last answer. */
  #collect(): Map<number, Promise<MetricJSON[]>> {
    const id = this.#collectId++;
    const waiting = new Map<number, (data: MetricJSON[]) => void>();
    const answers = new Map<number, Promise<MetricJSON[]>>();
    // The admission queue's families, as if from one more worker that never retires (id -1).
    if (this.#admission !== null) answers.set(-1, Promise.resolve(this.#admission.metricsJSON()));
    for (const w of this.#workers) {
      if (w.worker === null) continue;
      answers.set(w.id, new Promise<MetricJSON[]>((resolve) => waiting.set(w.index, resolve)));
      w.worker.postMessage({ type: 'collect', id } satisfies ToWorker);
    }
    this.#pendingCollect.set(id, waiting);
    setTimeout(() => this.#pendingCollect.delete(id), 5000).unref();
    return answers;
  }

  #onCollected(id: number, index: number, data: MetricJSON[]): void {
    const waiting = this.#pendingCollect.get(id);
    const resolve = waiting?.get(index);
    if (resolve === undefined) return;
    waiting!.delete(index);
    if (waiting!.size === 0) this.#pendingCollect.delete(id);
    resolve(data);
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

  async #rebuild(): Promise<void> {
    let ir: RoutingIR;
    try {
      const out = translate(this.#resources, this.#scheduler, {
        enableGatewayApi: this.cfg.enableGatewayApi, enableInferenceExtension: this.cfg.enableGatewayApiInferenceExtension,
        podNamespace: this.cfg.podNamespace, defaultPort: this.cfg.port, inferencePoolPicker: this.cfg.inferencePoolPicker,
      });
      this.#translatorProblems = out.problems;
      this.#gatewayStatuses = out.gatewayStatuses;
      this.#bootstrap = out.bootstrap;
      this.#kube?.translated(this.#resources, [...this.#providerProblems, ...this.#translatorProblems], this.gatewayStatuses());
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
    // New model ids (a route added an adapter) show in the pods' bit sets now, not at their next scrape.
    this.#scraper.refreshModelBits();
    this.#syncListeners(ir);
    this.#syncKvGc();
    // Ready (Kthena §8.4): a snapshot is live and the first scrape round over its pods is done, so
    // the first requests are scored on real engine metrics.
    if (!this.#scrapeReadyWaiting && this.#publisher.generation > 0) {
      this.#scrapeReadyWaiting = true;
      void this.#scraper.firstRound.then(() => {
        Atomics.store(this.#header, kHdrScrapeReady, 1);
        Atomics.store(this.#header, kHdrReady, 1);
        this.#readyResolve();
      });
    }
  }

  /** A scrape round changed what some InferencePool serves: GET /v1/models on its Gateways follows. */
  #checkPoolModels(): void {
    const ir = this.#publisher.current;
    if (ir === null || ir.gateway.pools.length === 0) return;
    const key = JSON.stringify(withPoolModels(ir, (k) => this.#scraper.view(k)?.models).gateway.poolModels ?? []);
    if (key !== this.#poolModelsKey) this.#scheduleRebuild();
  }

  /**
   * ModelRoute and ModelServer conditions (src/translator/status.ts) for the debug dumps; in
   * Kubernetes mode the same computation is written to the API server.
   */
  #kthenaStatuses(): Map<string, Record<string, unknown>> {
    const r = this.#resources;
    const asObject = (kind: string) => (o: { metadata: { namespace: string; name: string; generation: number }; spec: unknown }) => ({
      apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind, metadata: { ...o.metadata }, spec: o.spec,
    });
    const desired = computeStatuses({
      resources: r, problems: this.#allProblems(),
      objects: { ModelRoute: r.modelRoutes.map(asObject('ModelRoute')), ModelServer: r.modelServers.map(asObject('ModelServer')) },
    });
    return new Map(desired.map((d) => [`${d.kind}/${d.namespace}/${d.name}`, d.status]));
  }

  #allProblems(): Problem[] {
    return [...this.#routerConfigProblems, ...this.#providerProblems, ...this.#translatorProblems, ...this.#listenerProblems];
  }

  /**
   * Gateway listener ports: every worker listens on each port of the snapshot's Gateways (besides
   * --port, which the default Gateway shares). HTTPS ports get the certificate of their first
   * listener, written from its Secret into a private temporary directory (uWS reads files).
   */
  #syncListeners(ir: RoutingIR): void {
    const secrets = new Map((this.#resources.secrets ?? []).map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
    const ports: ListenPort[] = [];
    for (const p of ir.gateway.ports) {
      if (p.port === this.cfg.port) continue;
      if (p.protocol === 'HTTP') { ports.push({ port: p.port, tls: null }); continue; }
      const l = ir.gateway.listeners.find((x) => x.port === p.port && x.certificates.length > 0);
      const secret = l !== undefined ? secrets.get(l.certificates[0]) : undefined;
      if (secret?.tls === undefined) continue; // the translator reported the unresolved reference
      this.#tlsDir ??= mkdtempSync(path.join(tmpdir(), 'kthena-router-tls-'));
      const base = path.join(this.#tlsDir, `${secret.metadata.namespace}_${secret.metadata.name}`);
      writeFileSync(`${base}.crt`, secret.tls.cert, { mode: 0o600 });
      writeFileSync(`${base}.key`, secret.tls.key, { mode: 0o600 });
      ports.push({ port: p.port, tls: { cert: `${base}.crt`, key: `${base}.key` } });
    }
    const key = JSON.stringify(ports);
    if (key === this.#listenKey) return;
    this.#listenKey = key;
    void this.#probeListeners(ports);
  }

  /**
   * Gateway ports held by another process are found before the workers bind them with
   * SO_REUSEPORT (which could otherwise share a port silently with another router).
   */
  async #probeListeners(ports: ListenPort[]): Promise<void> {
    this.#wantedPorts = ports;
    const known = new Set(this.#listenPorts.map((p) => p.port));
    const failed: { port: number; error: string }[] = [];
    for (const p of ports) {
      if (known.has(p.port)) continue;
      try {
        await probePort(this.cfg.host, p.port);
      } catch (err) {
        failed.push({ port: p.port, error: `${this.cfg.host}:${p.port} is in use by another process (${(err as { code?: string }).code ?? (err as Error).message})` });
      }
    }
    for (const f of failed) if (!this.#probeFailures.has(f.port)) this.log.error({ port: f.port }, new RouterError('RTR_ERR_LISTEN', `${f.error} (Gateway listener)`).message);
    this.#probeFailures = new Map(failed.map((f) => [f.port, f.error]));
    this.#listenPorts = ports.filter((p) => !this.#probeFailures.has(p.port));
    this.#onListenersResult([]);
    for (const w of this.#workers) if (w.worker !== null && w.listening) this.#sendListeners(w);
    // A port another process holds is tried again until it is free (or no longer wanted).
    if (this.#probeFailures.size > 0 && this.#reprobe === null && !this.#draining) {
      this.#reprobe = setTimeout(() => {
        this.#reprobe = null;
        if (!this.#draining && this.#wantedPorts === ports) void this.#probeListeners(ports);
      }, 5000);
      this.#reprobe.unref();
    }
  }

  #sendListeners(w: WorkerSlot): void {
    w.worker!.postMessage({ type: 'listeners', id: this.#collectId++, ports: this.#listenPorts } satisfies ToWorker);
  }

  /** A worker's bind result: a port that cannot be bound is reported, never silent. */
  #onListenersResult(failed: { port: number; error: string }[]): void {
    const wanted = this.#listenPorts;
    const now = new Map(failed.map((f) => [f.port, f.error]));
    for (const p of wanted) {
      const err = now.get(p.port);
      if (err !== undefined && !this.#portFailures.has(p.port)) {
        this.log.error({ port: p.port }, new RouterError('RTR_ERR_LISTEN', `${err} (Gateway listener)`).message);
        this.#portFailures.set(p.port, err);
      } else if (err === undefined && this.#portFailures.has(p.port)) {
        this.#portFailures.delete(p.port);
      }
    }
    for (const p of [...this.#portFailures.keys()]) if (!wanted.some((x) => x.port === p)) this.#portFailures.delete(p);
    for (const [port, error] of this.#probeFailures) this.#portFailures.set(port, error);
    this.#listenerProblems = [...this.#portFailures].map(([port, error]) => ({
      kind: 'Gateway', namespace: '', name: `port ${port}`, field: 'spec.listeners[].port', message: `${error}: listeners on this port are not programmed (PortUnavailable)`, severity: 'rejected' as const,
    }));
    this.#hub.setConfigProblems(this.#allProblems());
    // Listener conditions changed (PortUnavailable): Kubernetes mode writes them.
    this.#kube?.translated(this.#resources, [...this.#providerProblems, ...this.#translatorProblems], this.gatewayStatuses());
  }

  /** Gateway statuses as computed, with listeners on an unbindable port marked not programmed. */
  gatewayStatuses(): GatewayStatuses {
    if (this.#portFailures.size === 0) return this.#gatewayStatuses;
    const ports = new Map<string, number>();
    for (const l of this.#publisher.current?.gateway.listeners ?? []) ports.set(`${l.gateway}/${l.name}`, l.port);
    return {
      ...this.#gatewayStatuses,
      gateways: this.#gatewayStatuses.gateways.map((g) => ({
        ...g,
        status: {
          ...g.status,
          listeners: g.status.listeners.map((l) => {
            const port = ports.get(`${g.namespace}/${g.name}/${l.name}`);
            const err = port !== undefined ? this.#portFailures.get(port) : undefined;
            if (err === undefined) return l;
            return {
              ...l,
              conditions: l.conditions.map((c) => (c.type === 'Programmed'
                ? { ...c, status: 'False' as const, reason: 'PortUnavailable', message: err }
                : c.type === 'Accepted' ? { ...c, status: 'False' as const, reason: 'PortUnavailable', message: err } : c)),
            };
          }),
        },
      })),
    };
  }

  #reportProblems(): void {
    const all = this.#allProblems();
    this.#hub.setConfigProblems(all);
    for (const p of all) {
      this.log.warn({ kind: p.kind, namespace: p.namespace, name: p.name, file: p.file, field: p.field, severity: p.severity }, p.message);
    }
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
    const live = this.#workers.filter((w) => w.worker !== null);
    const id = this.#collectId++;
    // Every worker must hold the new buffer before a generation points into it.
    await new Promise<void>((resolve) => {
      if (live.length === 0) { resolve(); return; }
      this.#pendingAcks.set(id, { remaining: new Set(live.map((w) => w.index)), resolve });
      for (const w of live) w.worker!.postMessage({ type: 'snapshot-buffer', sab, id } satisfies ToWorker);
    });
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
      const deadlineMs = Date.now() + this.cfg.drainTimeoutMs;
      for (const w of this.#workers) w.worker?.postMessage({ type: 'drain', deadlineMs } satisfies ToWorker);
      this.#maybeStopped();
    }
    return this.stopped;
  }

  #maybeStopped(): void {
    if (!this.#draining && this.#startupListenFailure === null) return;
    if (this.#workers.some((w) => w.worker !== null)) return;
    void (async () => {
      await Promise.all(this.#servers.map((s) => new Promise<void>((r) => { s.closeAllConnections?.(); s.close(() => r()); })));
      this.#servers = [];
      await this.#sink?.close();
      if (this.#tlsDir !== null) rmSync(this.#tlsDir, { recursive: true, force: true });
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


/** Binds and releases `host:port` without SO_REUSEPORT: rejects (EADDRINUSE, EACCES) when anything holds it. */
function probePort(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve()));
  });
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
