/**
 * The control thread's view of metrics: its own prom-client registry (process, Node.js runtime and
 * control-plane families) plus the request families that each worker keeps in a WorkerMetrics and
 * hands over as getMetricsAsJSON()-shaped data. On every scrape the worker answers are summed with
 * prom-client's AggregatorRegistry.aggregate(), the same code prom-client uses for node:cluster, so
 * sums are exactly what a single process would have counted.
 */
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { PrometheusContentType } from 'prom-client';
import type { MetricJSON, MetricValueJSON } from '../shared/metric-json.js';
import type { Problem } from '../resources/types.js';

/**
 * One pending answer per live worker, keyed by a worker id that is never reused (a Worker's
 * threadId). Lets the hub fall back to one worker's last answer without waiting for the others.
 */
export type WorkerAnswers = ReadonlyMap<number, Promise<MetricJSON[]>>;

export interface MetricsHubOptions {
  /**
   * Ask every live worker for `WorkerMetrics.toJSON()`. Preferably return a WorkerAnswers map (one
   * promise per worker id): a worker that has not answered within `timeoutMs` is then represented
   * by its last answer, and retirement is exact. A plain `Promise<MetricJSON[][]>` is accepted
   * too; then the whole collection falls back to the previous whole answer on timeout.
   */
  collectWorkers: () => Promise<MetricJSON[][]> | WorkerAnswers;
  /** How long a scrape waits for a worker. Default 1000 ms. */
  timeoutMs?: number;
}

export type PublishResult = 'published' | 'unchanged' | 'rejected';

const S = '\u0001';
const TIMED_OUT: unique symbol = Symbol('timed out');

function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function labelKey(labels: Record<string, string | number>): string {
  const names = Object.keys(labels).sort();
  let k = '';
  for (const n of names) k += n + '=' + labels[n] + S;
  return k;
}

/**
 * Counters and histograms of workers that exited. Added to every scrape so the sums never go
 * backwards when a worker is replaced (its successor starts from zero). Gauges are not kept: the
 * requests a dead worker had in flight are no longer in flight.
 */
class RetiredMetrics {
  readonly #families = new Map<string, { name: string; help: string; type: MetricJSON['type']; values: Map<string, MetricValueJSON> }>();

  add(json: readonly MetricJSON[]): void {
    for (const fam of json) {
      if (fam.type !== 'counter' && fam.type !== 'histogram') continue;
      let f = this.#families.get(fam.name);
      if (f === undefined) {
        f = { name: fam.name, help: fam.help, type: fam.type, values: new Map() };
        this.#families.set(fam.name, f);
      }
      for (const v of fam.values) {
        const key = (v.metricName ?? '') + S + labelKey(v.labels);
        const cur = f.values.get(key);
        if (cur !== undefined) {
          cur.value += v.value;
        } else {
          const copy: MetricValueJSON = { value: v.value, labels: { ...v.labels } };
          if (v.metricName !== undefined) copy.metricName = v.metricName;
          f.values.set(key, copy);
        }
      }
    }
  }

  toJSON(): MetricJSON[] {
    const out: MetricJSON[] = [];
    for (const f of this.#families.values()) {
      out.push({
        name: f.name, help: f.help, type: f.type, aggregator: 'sum',
        values: [...f.values.values()].map((v) => ({ ...v, labels: { ...v.labels } })),
      });
    }
    return out;
  }
}

export class MetricsHub {
  /** Control-thread metrics; `render()` merges the workers' aggregate into a copy of it. */
  readonly registry: Registry;

  readonly #collectWorkers: MetricsHubOptions['collectWorkers'];
  readonly #timeoutMs: number;
  readonly #last = new Map<number, MetricJSON[]>();
  #lastAll: MetricJSON[][] | null = null;
  readonly #retired = new RetiredMetrics();
  readonly #retiredIds = new Set<number>();

  readonly #configProblems: Gauge<'kind' | 'severity'>;
  readonly #problemSeries = new Set<string>();
  readonly #generation: Gauge;
  readonly #publish: Counter<'result'>;
  readonly #translatorCrashes: Counter;
  readonly #workerRestarts: Counter;
  readonly #unhandled: Counter;
  readonly #workers: Gauge<'state'>;

  constructor(opts: MetricsHubOptions) {
    if (typeof opts?.collectWorkers !== 'function') {
      throw new TypeError('MetricsHub: collectWorkers must be a function');
    }
    const timeoutMs = opts.timeoutMs ?? 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TypeError(`MetricsHub: timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    this.#collectWorkers = opts.collectWorkers;
    this.#timeoutMs = timeoutMs;

    const registry = new Registry();
    this.registry = registry;
    // No prefix: process_* and nodejs_* stand where Go's process and runtime collectors put
    // process_* and go_* in Kthena's output.
    collectDefaultMetrics({ register: registry });

    this.#configProblems = new Gauge({
      name: 'kthena_router_config_problems',
      help: 'Current number of validation and translation problems in the watched resources, by resource kind and severity',
      labelNames: ['kind', 'severity'] as const,
      registers: [registry],
    });
    this.#generation = new Gauge({
      name: 'kthena_router_snapshot_generation',
      help: 'Generation of the routing snapshot currently published to the workers',
      registers: [registry],
    });
    this.#publish = new Counter({
      name: 'kthena_router_snapshot_publish_total',
      help: 'Routing snapshot rebuilds, by outcome: published (new snapshot), unchanged (deep-equal to the live one), rejected (invalid; the last good snapshot stays live)',
      labelNames: ['result'] as const,
      registers: [registry],
    });
    for (const result of ['published', 'unchanged', 'rejected'] as const) this.#publish.inc({ result }, 0);
    this.#translatorCrashes = new Counter({
      name: 'kthena_router_translator_crashes_total',
      help: 'Translator runs that threw; the last good snapshot stays live',
      registers: [registry],
    });
    this.#workerRestarts = new Counter({
      name: 'kthena_router_worker_restarts_total',
      help: 'Worker threads restarted after exiting unexpectedly',
      registers: [registry],
    });
    this.#unhandled = new Counter({
      name: 'kthena_router_unhandled_rejections_total',
      help: 'Promise rejections on the control thread that no handler caught (logged; the process keeps running)',
      registers: [registry],
    });
    this.#workers = new Gauge({
      name: 'kthena_router_workers',
      help: 'Worker threads serving traffic',
      labelNames: ['state'] as const,
      registers: [registry],
    });
    this.#workers.set({ state: 'running' }, 0);
  }

  /** A counter whose cumulative value is read at scrape time. */
  addCounter(name: string, help: string, read: () => number): void {
    new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(read()); } });
  }

  /** A gauge whose value is read at scrape time (Kthena's GaugeFunc). */
  addGauge(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /**
   * Replace the problem counts. A (kind, severity) pair seen before and now absent reads 0 rather
   * than disappearing, so alerts on `> 0` resolve instead of going stale.
   */
  setConfigProblems(problems: readonly Problem[]): void {
    const counts = new Map<string, number>();
    for (const p of problems) {
      const key = p.kind + S + p.severity;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      this.#problemSeries.add(key);
    }
    for (const key of this.#problemSeries) {
      const [kind, severity] = key.split(S);
      this.#configProblems.set({ kind, severity }, counts.get(key) ?? 0);
    }
  }

  setSnapshotGeneration(generation: number): void {
    this.#generation.set(generation);
  }

  snapshotPublished(result: PublishResult): void {
    this.#publish.inc({ result });
  }

  translatorCrashed(): void {
    this.#translatorCrashes.inc();
  }

  workerRestarted(): void {
    this.#workerRestarts.inc();
  }

  unhandledRejection(): void {
    this.#unhandled.inc();
  }

  setRunningWorkers(count: number): void {
    this.#workers.set({ state: 'running' }, count);
  }

  /**
   * A worker exited: keep its counters and histograms forever. Pass its final toJSON() when it
   * could still answer (graceful exit), with its id so that it is left out of any scrape in flight
   * and of later ones. Retiring the same id twice does nothing.
   */
  retire(workerJson: readonly MetricJSON[], workerId?: number): void {
    if (workerId !== undefined) {
      if (this.#retiredIds.has(workerId)) return;
      this.#retiredIds.add(workerId);
      this.#last.delete(workerId);
    } else {
      // Without an id the previous whole answer may include this worker; using it again on a
      // timeout would count it twice.
      this.#lastAll = null;
    }
    this.#retired.add(workerJson);
  }

  /**
   * A worker died without answering: retire it with the last answer it gave a scrape. Whatever it
   * counted after that answer is lost, but no exposed counter ever decreases. Returns false when
   * the hub never heard from it (it is still marked retired).
   */
  retireWorker(workerId: number): boolean {
    const last = this.#last.get(workerId);
    if (last === undefined) {
      this.#retiredIds.add(workerId);
      return false;
    }
    this.retire(last, workerId);
    return true;
  }

  /** Every live worker's answer (or its last one on timeout) plus the retired accumulator. */
  async collect(): Promise<MetricJSON[][]> {
    const answers = this.#collectWorkers();
    let workers: MetricJSON[][];
    if (answers instanceof Map) {
      workers = await this.#collectEach(answers as WorkerAnswers);
    } else {
      workers = await this.#collectAll(answers as Promise<MetricJSON[][]>);
    }
    workers.push(this.#retired.toJSON());
    return workers;
  }

  async #collectEach(answers: WorkerAnswers): Promise<MetricJSON[][]> {
    const ids = [...answers.keys()];
    const results = await Promise.all(ids.map(async (id) => {
      let json: MetricJSON[] | typeof TIMED_OUT;
      try {
        json = await within(answers.get(id)!, this.#timeoutMs);
      } catch {
        json = TIMED_OUT;
      }
      if (json === TIMED_OUT) return this.#last.get(id);
      if (!this.#retiredIds.has(id)) this.#last.set(id, json);
      return json;
    }));
    const out: MetricJSON[][] = [];
    for (let i = 0; i < ids.length; i++) {
      const json = results[i];
      // A worker retired while this scrape waited is already in the retired accumulator.
      if (json !== undefined && !this.#retiredIds.has(ids[i])) out.push(json);
    }
    return out;
  }

  async #collectAll(answer: Promise<MetricJSON[][]>): Promise<MetricJSON[][]> {
    let json: MetricJSON[][] | typeof TIMED_OUT;
    try {
      json = await within(answer, this.#timeoutMs);
    } catch {
      json = TIMED_OUT;
    }
    if (json === TIMED_OUT) return this.#lastAll ? [...this.#lastAll] : [];
    this.#lastAll = json;
    return [...json];
  }

  /** The Prometheus text exposition of the workers' sums and the control-thread registry. */
  async render(): Promise<{ contentType: string; body: string }> {
    const workers = await this.collect();
    const aggregated = AggregatorRegistry.aggregate<PrometheusContentType>(workers);
    const merged = Registry.merge([aggregated, this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}

export interface MetricsServerOptions {
  /** Default: every interface (Kthena listens on `:9090`). */
  host?: string;
  port: number;
}

/**
 * `GET /metrics` on its own port, as Kthena's metrics server; any other path answers Go's
 * `404 page not found`. headersTimeout plays the role of Go's ReadHeaderTimeout.
 */
export function startMetricsServer(hub: MetricsHub, opts: MetricsServerOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('404 page not found\n');
      return;
    }
    hub.render().then(({ contentType, body }) => {
      res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (err: unknown) => {
      const msg = 'An error has occurred while serving metrics:\n\n' + (err instanceof Error ? err.message : String(err)) + '\n';
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(msg);
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return listen(server, opts.port, opts.host);
}

export function listen(server: http.Server, port: number, host: string | undefined): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}
