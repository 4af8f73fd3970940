/**
 * The per-worker request metrics: Kthena's request, token and in-flight families, kept in plain Maps
 * and typed arrays so that the request path creates no prom-client objects (prom-client hashes a
 * labels object on every inc/observe, which allocates). The control thread asks each worker for
 * toJSON() on scrape and sums the answers with prom-client's AggregatorRegistry.aggregate().
 *
 * Names, help texts, label names and label order are Kthena's
 * (volcano-sh/kthena:pkg/kthena-router/metrics/metrics.go); docs/metrics.md lists them.
 */
import type { RequestRecord } from './record.js';
import type { MetricJSON, MetricValueJSON } from '../src/shared/metric-json.js';

export const REQUESTS_TOTAL = 'kthena_router_requests_total';
export const REQUEST_DURATION = 'kthena_router_request_duration_seconds';
export const TOKENS_TOTAL = 'kthena_router_tokens_total';
export const ACTIVE_REQUESTS = 'kthena_router_active_requests';
export const ACTIVE_DOWNSTREAM = 'kthena_router_active_downstream_requests';
export const ACTIVE_UPSTREAM = 'kthena_router_active_upstream_requests';
export const PREFILL_DURATION = 'kthena_router_request_prefill_duration_seconds';
export const DECODE_DURATION = 'kthena_router_request_decode_duration_seconds';
export const PROVIDER_FALLBACKS = 'kthena_router_provider_fallbacks_total';

/** Kthena's duration buckets (seconds). */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
const kBounds = Float64Array.from(DURATION_BUCKETS);
const kNumBounds = kBounds.length;

/**
 * Series are found through one nested Map level per label value rather than through one Map keyed
 * by the joined label values: building and hashing a ~80-character joined key costs ~450 ns per
 * lookup on Node 20 (the rope is flattened, then hashed), walking 7 levels ~70-110 ns (each label
 * string from the snapshot already carries its cached hash; only the per-request path is hashed).
 */
type Level = Map<string | number, unknown>;

function level(parent: Level, key: string | number): Level {
  let next = parent.get(key) as Level | undefined;
  if (next === undefined) {
    next = new Map();
    parent.set(key, next);
  }
  return next;
}

const NONE = 'none';
const UNRESOLVED = 'unresolved';

/**
 * The `path` label: the client picks the URL, so an unbounded label set would let any client grow
 * /metrics without limit (20,000 distinct /v1/... paths made it 90 MB and a scrape 8-10 s). The
 * OpenAI API paths keep their own value; every other path (Kthena labels it as sent) is folded into
 * PATH_LABEL_OTHER (docs/compat.md).
 */
export const PATH_LABEL_OTHER = 'other';
export const KNOWN_PATHS: ReadonlySet<string> = new Set([
  '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/v1/responses',
  '/v1/moderations', '/v1/rerank', '/v1/score', '/v1/audio/transcriptions', '/v1/audio/translations',
  '/v1/audio/speech', '/v1/images/generations', '/v1/images/edits', '/v1/images/variations',
  '/v1/batches', '/v1/files',
]);

export function pathLabel(path: string): string {
  return KNOWN_PATHS.has(path) ? path : PATH_LABEL_OTHER;
}

class ScalarSeries {
  value = 0;
  constructor(readonly labels: Record<string, string>) {}
}

class HistogramSeries {
  /** Per-bucket (not cumulative) counts; observations above the last bound are only in `count`. */
  readonly buckets = new Float64Array(kNumBounds);
  sum = 0;
  count = 0;
  constructor(readonly labels: Record<string, string>) {}
}

/** The duration series of one label set, and the request counters that share its labels. */
class RequestEntry {
  readonly byErrorType = new Map<string, ScalarSeries>();
  constructor(readonly histogram: HistogramSeries) {}
}

function errorTypeLabel(rec: RequestRecord): string {
  if (rec.metricErrorType !== '') return rec.metricErrorType;
  if (rec.errorType !== '') return rec.errorType;
  return rec.statusCode < 400 ? 'successful_request' : 'request_failed';
}

/** Per-worker store. Not thread-safe, and need not be: one instance per worker thread. */
export class WorkerMetrics {
  readonly #requestTree: Level = new Map();
  readonly #tokenTree: Level = new Map();
  readonly #upstreamTree: Level = new Map();
  readonly #downstream = new Map<string, ScalarSeries>();
  // Creation order, for toJSON().
  readonly #requests: ScalarSeries[] = [];
  readonly #durations: HistogramSeries[] = [];
  readonly #tokens: ScalarSeries[] = [];
  readonly #upstream: ScalarSeries[] = [];
  readonly #phaseTree: [Level, Level] = [new Map(), new Map()];
  readonly #phases: [HistogramSeries[], HistogramSeries[]] = [[], []];
  #active = 0;

  /** A request arrived (any path). Pair with exactly one requestFinished(). */
  requestStarted(): void {
    this.#active++;
  }

  downstreamStarted(modelLabel: string): void {
    let s = this.#downstream.get(modelLabel);
    if (s === undefined) {
      s = new ScalarSeries({ model: modelLabel });
      this.#downstream.set(modelLabel, s);
    }
    s.value++;
  }

  downstreamFinished(modelLabel: string): void {
    const s = this.#downstream.get(modelLabel);
    if (s !== undefined) s.value--;
  }

  /**
   * An upstream attempt started. The series is found again from the same record fields by
   * upstreamFinished(), so the pipeline must not change modelRoute, backendType, backendName or
   * upstreamModel between the two calls.
   */
  upstreamStarted(rec: RequestRecord): void {
    this.#upstreamSeries(rec).value++;
  }

  upstreamFinished(rec: RequestRecord): void {
    this.#upstreamSeries(rec).value--;
  }

  /** Add `n` tokens of one type; n <= 0 records nothing (as Kthena). */
  tokens(rec: RequestRecord, type: 'input' | 'output', n: number): void {
    if (!(n > 0)) return;
    const model = rec.modelLabel || 'unknown';
    const route = rec.modelRoute || NONE;
    const backendType = rec.backendType || UNRESOLVED;
    const backendName = rec.backendName || NONE;
    const upstreamModel = rec.upstreamModel || NONE;
    const path = pathLabel(rec.path);
    const leaf = level(level(level(level(level(this.#tokenTree, model), path), type), route), backendType);
    const byName = level(leaf, backendName);
    let s = byName.get(upstreamModel) as ScalarSeries | undefined;
    if (s === undefined) {
      s = new ScalarSeries({
        model, path, token_type: type, model_route: route,
        backend_type: backendType, backend_name: backendName, upstream_model: upstreamModel,
      });
      byName.set(upstreamModel, s);
      this.#tokens.push(s);
    }
    s.value += n;
  }

  /**
   * The request ended: active_requests goes down for every request; the request counter and the
   * duration histogram (seconds, tEnd - t0) are recorded only for logged (/v1/*) requests.
   */
  requestFinished(rec: RequestRecord): void {
    this.#active--;
    if (!rec.logged) return;
    const model = rec.modelLabel || 'unknown';
    const route = rec.modelRoute || NONE;
    const backendType = rec.backendType || UNRESOLVED;
    const backendName = rec.backendName || NONE;
    const upstreamModel = rec.upstreamModel || NONE;
    // Label objects (and the status string) are built only when a series is first seen.
    const path = pathLabel(rec.path);
    const byName = level(level(level(level(level(this.#requestTree, model), path), rec.statusCode), route), backendType);
    const byUpstream = level(byName, backendName);
    let e = byUpstream.get(upstreamModel) as RequestEntry | undefined;
    if (e === undefined) {
      const h = new HistogramSeries({
        model, path, status_code: '' + rec.statusCode, model_route: route,
        backend_type: backendType, backend_name: backendName, upstream_model: upstreamModel,
      });
      e = new RequestEntry(h);
      byUpstream.set(upstreamModel, e);
      this.#durations.push(h);
    }

    const errorType = errorTypeLabel(rec);
    let c = e.byErrorType.get(errorType);
    if (c === undefined) {
      const hl = e.histogram.labels;
      c = new ScalarSeries({
        model, path: hl.path, status_code: hl.status_code, error_type: errorType, model_route: route,
        backend_type: backendType, backend_name: backendName, upstream_model: upstreamModel,
      });
      e.byErrorType.set(errorType, c);
      this.#requests.push(c);
    }
    c.value++;

    observe(e.histogram, (rec.tEnd - rec.t0) / 1000);
  }

  /**
   * One PD leg ended (phase 0 prefill, 1 decode): Kthena's per-phase histograms, status_code "200"
   * for a leg that succeeded and "500" for one that failed.
   */
  pdPhase(phase: 0 | 1, rec: RequestRecord, ok: boolean, seconds: number): void {
    const model = rec.modelLabel || 'unknown';
    const status = ok ? '200' : '500';
    const path = pathLabel(rec.path);
    const byPath = level(level(this.#phaseTree[phase], model), path);
    let h = byPath.get(status) as HistogramSeries | undefined;
    if (h === undefined) {
      h = new HistogramSeries({ model, path, status_code: status });
      byPath.set(status, h);
      this.#phases[phase].push(h);
    }
    observe(h, seconds);
  }

  /** Current in-flight count of this worker (for drain logic). */
  get activeRequests(): number {
    return this.#active;
  }

  #upstreamSeries(rec: RequestRecord): ScalarSeries {
    const route = rec.modelRoute || NONE;
    const backendType = rec.backendType || UNRESOLVED;
    const backendName = rec.backendName || NONE;
    const upstreamModel = rec.upstreamModel || NONE;
    const byName = level(level(level(this.#upstreamTree, route), backendType), backendName);
    let s = byName.get(upstreamModel) as ScalarSeries | undefined;
    if (s === undefined) {
      s = new ScalarSeries({
        model_server: backendType === 'model_server' ? backendName : NONE, model_route: route,
        backend_type: backendType, backend_name: backendName, upstream_model: upstreamModel,
      });
      byName.set(upstreamModel, s);
      this.#upstream.push(s);
    }
    return s;
  }

  /**
   * prom-client's getMetricsAsJSON() shape, every family present (possibly without samples) and
   * gauges keeping series that went back to zero, as prom-client does. Label objects are copies,
   * so the answer can be kept or mutated by the receiver. Runs at scrape time only.
   */
  readonly #fallbacks = new Map<string, ScalarSeries>();

  /** A request failed over from its ModelServer to the rule's ExternalModelProvider (rare: keyed by a joined string). */
  providerFallback(modelRoute: string, provider: string, reason: string): void {
    const key = `${modelRoute}|${provider}|${reason}`;
    let s = this.#fallbacks.get(key);
    if (s === undefined) this.#fallbacks.set(key, s = new ScalarSeries({ model_route: modelRoute || NONE, provider, reason }));
    s.value++;
  }

  toJSON(): MetricJSON[] {
    return [
      scalarFamily(REQUESTS_TOTAL, 'Total number of HTTP requests processed by the router', 'counter', this.#requests),
      histogramFamily(REQUEST_DURATION, 'End-to-end request processing latency distribution for all requests', this.#durations),
      scalarFamily(TOKENS_TOTAL, 'Total tokens processed/generated', 'counter', this.#tokens),
      {
        name: ACTIVE_REQUESTS,
        help: 'Current number of active requests being handled by the router',
        type: 'gauge',
        values: [{ value: this.#active, labels: {} }],
        aggregator: 'sum',
      },
      scalarFamily(ACTIVE_DOWNSTREAM, 'Current number of active downstream requests (from clients to router)', 'gauge', this.#downstream.values()),
      scalarFamily(ACTIVE_UPSTREAM, 'Current number of active upstream requests (from router to upstream backends)', 'gauge', this.#upstream),
      histogramFamily(PREFILL_DURATION, 'Prefill phase latency distribution for prefill/decode disaggregated requests', this.#phases[0]),
      histogramFamily(DECODE_DURATION, 'Decode phase latency distribution for prefill/decode disaggregated requests', this.#phases[1]),
      scalarFamily(PROVIDER_FALLBACKS, 'Requests sent to the rule\'s ExternalModelProvider because no pod of its ModelServer could serve them (route annotation kthena-router.volcano.sh/provider-fallback)', 'counter', this.#fallbacks.values()),
    ];
  }
}

function observe(h: HistogramSeries, seconds: number): void {
  h.sum += seconds;
  h.count++;
  for (let i = 0; i < kNumBounds; i++) {
    if (seconds <= kBounds[i]) {
      h.buckets[i]++;
      break;
    }
  }
}

function scalarFamily(name: string, help: string, type: 'counter' | 'gauge', series: Iterable<ScalarSeries>): MetricJSON {
  const values: MetricValueJSON[] = [];
  for (const s of series) values.push({ value: s.value, labels: { ...s.labels } });
  return { name, help, type, values, aggregator: 'sum' };
}

function histogramFamily(name: string, help: string, series: readonly HistogramSeries[]): MetricJSON {
  const bucketName = name + '_bucket';
  const values: MetricValueJSON[] = [];
  for (const s of series) {
    let acc = 0;
    for (let i = 0; i < kNumBounds; i++) {
      acc += s.buckets[i];
      values.push({ value: acc, labels: { le: kBounds[i], ...s.labels }, metricName: bucketName });
    }
    values.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: bucketName });
    values.push({ value: s.sum, labels: { ...s.labels }, metricName: name + '_sum' });
    values.push({ value: s.count, labels: { ...s.labels }, metricName: name + '_count' });
  }
  return { name, help, type: 'histogram', values, aggregator: 'sum' };
}
