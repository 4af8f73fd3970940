import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsHub, startMetricsServer, type WorkerAnswers } from '../../src/admin/metrics.js';
import { RequestRecord } from '../../workers/record.js';
import { DURATION_BUCKETS, WorkerMetrics } from '../../workers/metrics.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';

function record(fields: Partial<RequestRecord> = {}): RequestRecord {
  const rec = new RequestRecord();
  rec.method = 'POST';
  rec.path = '/v1/chat/completions';
  rec.statusCode = 200;
  rec.t0 = 0;
  rec.tEnd = 20;
  return Object.assign(rec, fields);
}

const routed: Partial<RequestRecord> = {
  modelLabel: 'llama',
  modelRoute: 'default/llama',
  modelServer: 'default/llama-ms',
  backendType: 'model_server',
  backendName: 'default/llama-ms',
  upstreamModel: 'meta/llama-3',
};

function family(json: MetricJSON[], name: string): MetricJSON {
  const f = json.find((m) => m.name === name);
  if (!f) throw new Error(`no family ${name}`);
  return f;
}

/** Every sample line of a family in the exposition text, by its full `name{labels}` text. */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"`;
const VALUE = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?Inf|NaN|Nan)';
const kHelp = new RegExp(`^# HELP (${NAME}) .*$`);
const kType = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const kSample = new RegExp(`^(${NAME})(?:\\{(?:${LABEL})(?:,${LABEL})*\\})? ${VALUE}$`);

/** Checks the Prometheus text format 0.0.4: HELP then TYPE per family, samples named after it. */
function assertExposition(body: string): void {
  expect(body.endsWith('\n')).toBe(true);
  const typed = new Map<string, string>();
  let current = '';
  for (const line of body.split('\n')) {
    if (line === '') continue;
    let m = kHelp.exec(line);
    if (m) {
      expect(typed.has(m[1]), `family ${m[1]} appears twice`).toBe(false);
      current = m[1];
      continue;
    }
    m = kType.exec(line);
    if (m) {
      expect(m[1]).toBe(current);
      typed.set(m[1], m[2]);
      continue;
    }
    m = kSample.exec(line);
    expect(m, `not a valid sample line: ${line}`).not.toBeNull();
    const name = m![1];
    const type = typed.get(current);
    if (type === 'histogram') {
      expect([`${current}_bucket`, `${current}_sum`, `${current}_count`]).toContain(name);
    } else if (type === 'summary') {
      expect([current, `${current}_sum`, `${current}_count`]).toContain(name);
    } else {
      expect(name).toBe(current);
    }
  }
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe('WorkerMetrics labels', () => {
  it('defaults unrouted requests to unknown/none/unresolved and derives error_type from the status', () => {
    const m = new WorkerMetrics();
    m.requestStarted();
    m.requestFinished(record({ statusCode: 200 }));
    m.requestStarted();
    m.requestFinished(record({ statusCode: 500 }));
    m.requestStarted();
    m.requestFinished(record({ statusCode: 404, errorType: 'route_not_found' }));
    const values = family(m.toJSON(), 'kthena_router_requests_total').values;
    const base = {
      model: 'unknown', path: '/v1/chat/completions', model_route: 'none', backend_type: 'unresolved',
      backend_name: 'none', upstream_model: 'none',
    };
    expect(values).toEqual([
      { value: 1, labels: { ...base, status_code: '200', error_type: 'successful_request' } },
      { value: 1, labels: { ...base, status_code: '500', error_type: 'request_failed' } },
      { value: 1, labels: { ...base, status_code: '404', error_type: 'route_not_found' } },
    ]);
    // Kthena's label order, not just the same set.
    expect(Object.keys(values[0].labels)).toEqual([
      'model', 'path', 'status_code', 'error_type', 'model_route', 'backend_type', 'backend_name', 'upstream_model',
    ]);
  });

  it('records no request metrics for unlogged requests but still tracks them as active', () => {
    const m = new WorkerMetrics();
    m.requestStarted();
    m.requestStarted();
    expect(family(m.toJSON(), 'kthena_router_active_requests').values).toEqual([{ value: 2, labels: {} }]);
    m.requestFinished(record({ logged: false }));
    const json = m.toJSON();
    expect(family(json, 'kthena_router_requests_total').values).toEqual([]);
    expect(family(json, 'kthena_router_request_duration_seconds').values).toEqual([]);
    expect(family(json, 'kthena_router_active_requests').values).toEqual([{ value: 1, labels: {} }]);
  });

  it('labels active upstream requests with model_server = backend_name only for model servers', () => {
    const m = new WorkerMetrics();
    const ms = record(routed);
    const ext = record({ ...routed, backendType: 'external_provider', backendName: 'default/openai', modelServer: '' });
    m.upstreamStarted(ms);
    m.upstreamStarted(ms);
    m.upstreamStarted(ext);
    m.upstreamFinished(ms);
    m.upstreamFinished(ext);
    expect(family(m.toJSON(), 'kthena_router_active_upstream_requests').values).toEqual([
      { value: 1, labels: { model_server: 'default/llama-ms', model_route: 'default/llama', backend_type: 'model_server', backend_name: 'default/llama-ms', upstream_model: 'meta/llama-3' } },
      // A gauge back at zero keeps its series, as prom-client does.
      { value: 0, labels: { model_server: 'none', model_route: 'default/llama', backend_type: 'external_provider', backend_name: 'default/openai', upstream_model: 'meta/llama-3' } },
    ]);
  });

  it('counts downstream requests per model', () => {
    const m = new WorkerMetrics();
    m.downstreamStarted('llama');
    m.downstreamStarted('llama');
    m.downstreamStarted('unknown');
    m.downstreamFinished('llama');
    expect(family(m.toJSON(), 'kthena_router_active_downstream_requests').values).toEqual([
      { value: 1, labels: { model: 'llama' } },
      { value: 1, labels: { model: 'unknown' } },
    ]);
  });

  it('adds tokens by type and ignores non-positive counts', () => {
    const m = new WorkerMetrics();
    const rec = record(routed);
    m.tokens(rec, 'input', 10);
    m.tokens(rec, 'input', 5);
    m.tokens(rec, 'output', 0);
    m.tokens(rec, 'output', -1);
    m.tokens(rec, 'output', 3);
    const labels = {
      model: 'llama', path: '/v1/chat/completions', model_route: 'default/llama', backend_type: 'model_server',
      backend_name: 'default/llama-ms', upstream_model: 'meta/llama-3',
    };
    expect(family(m.toJSON(), 'kthena_router_tokens_total').values).toEqual([
      { value: 15, labels: { model: labels.model, path: labels.path, token_type: 'input', model_route: labels.model_route, backend_type: labels.backend_type, backend_name: labels.backend_name, upstream_model: labels.upstream_model } },
      { value: 3, labels: { model: labels.model, path: labels.path, token_type: 'output', model_route: labels.model_route, backend_type: labels.backend_type, backend_name: labels.backend_name, upstream_model: labels.upstream_model } },
    ]);
  });
});

describe('WorkerMetrics histogram', () => {
  it('uses Kthena duration buckets, cumulative, with +Inf, _sum and _count', () => {
    const m = new WorkerMetrics();
    for (const ms of [3, 5, 7, 200, 100_000]) {
      m.requestStarted();
      m.requestFinished(record({ t0: 1000, tEnd: 1000 + ms }));
    }
    const values = family(m.toJSON(), 'kthena_router_request_duration_seconds').values;
    const buckets = values.filter((v) => v.metricName === 'kthena_router_request_duration_seconds_bucket');
    expect(buckets.map((v) => v.labels.le)).toEqual([...DURATION_BUCKETS, '+Inf']);
    expect(buckets.map((v) => v.value)).toEqual([2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5]);
    const sum = values.find((v) => v.metricName === 'kthena_router_request_duration_seconds_sum')!;
    const count = values.find((v) => v.metricName === 'kthena_router_request_duration_seconds_count')!;
    expect(sum.value).toBeCloseTo(100.215, 9);
    expect(count.value).toBe(5);
    expect(Object.keys(sum.labels)).not.toContain('le');
    expect(Object.keys(sum.labels)).not.toContain('error_type');
  });

  it('produces exactly what prom-client getMetricsAsJSON() gives for the same observations', async () => {
    const m = new WorkerMetrics();
    const reg = new Registry();
    const reqNames = ['model', 'path', 'status_code', 'error_type', 'model_route', 'backend_type', 'backend_name', 'upstream_model'] as const;
    const durNames = ['model', 'path', 'status_code', 'model_route', 'backend_type', 'backend_name', 'upstream_model'] as const;
    const counter = new Counter({ name: 'kthena_router_requests_total', help: 'Total number of HTTP requests processed by the router', labelNames: reqNames, registers: [reg] });
    const hist = new Histogram({ name: 'kthena_router_request_duration_seconds', help: 'End-to-end request processing latency distribution for all requests', labelNames: durNames, buckets: [...DURATION_BUCKETS], registers: [reg] });
    const active = new Gauge({ name: 'kthena_router_active_requests', help: 'Current number of active requests being handled by the router', registers: [reg] });
    active.set(0);
    const recs = [record(routed), record({ ...routed, tEnd: 3000, statusCode: 503, errorType: 'proxy' }), record(routed)];
    for (const rec of recs) {
      m.requestStarted();
      m.requestFinished(rec);
      const l = {
        model: rec.modelLabel, path: rec.path, status_code: String(rec.statusCode), model_route: rec.modelRoute,
        backend_type: rec.backendType, backend_name: rec.backendName, upstream_model: rec.upstreamModel,
      };
      counter.inc({ ...l, error_type: rec.errorType || 'successful_request' });
      hist.observe(l, (rec.tEnd - rec.t0) / 1000);
    }
    const strip = (json: unknown): unknown => JSON.parse(JSON.stringify(json, (k, v) => (k === 'exemplar' ? undefined : v)));
    const theirs = strip(await reg.getMetricsAsJSON()) as MetricJSON[];
    const ours = strip(m.toJSON()) as MetricJSON[];
    for (const name of ['kthena_router_requests_total', 'kthena_router_request_duration_seconds', 'kthena_router_active_requests']) {
      expect(family(ours, name)).toEqual(family(theirs, name));
    }
  });
});

function hubOf(workers: Map<number, () => Promise<MetricJSON[]>>, timeoutMs?: number): MetricsHub {
  return new MetricsHub({
    collectWorkers: (): WorkerAnswers => new Map([...workers].map(([id, ask]) => [id, ask()])),
    timeoutMs,
  });
}

const OK_LABELS = 'model="llama",path="/v1/chat/completions",status_code="200",error_type="successful_request",model_route="default/llama",backend_type="model_server",backend_name="default/llama-ms",upstream_model="meta/llama-3"';

describe('MetricsHub', () => {
  it('sums two workers exactly in the Prometheus text', async () => {
    const a = new WorkerMetrics();
    const b = new WorkerMetrics();
    for (let i = 0; i < 3; i++) {
      a.requestStarted();
      a.requestFinished(record({ ...routed, tEnd: 4 }));
    }
    for (let i = 0; i < 4; i++) {
      b.requestStarted();
      b.requestFinished(record({ ...routed, tEnd: 300 }));
    }
    a.requestStarted();
    b.requestStarted();
    b.requestStarted();
    a.tokens(record(routed), 'input', 11);
    b.tokens(record(routed), 'input', 31);
    const hub = hubOf(new Map([[1, async () => a.toJSON()], [2, async () => b.toJSON()]]));
    const { contentType, body } = await hub.render();
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    assertExposition(body);
    const s = samples(body);
    expect(s.get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(7);
    const hl = OK_LABELS.replace(',error_type="successful_request"', '');
    expect(s.get(`kthena_router_request_duration_seconds_bucket{le="0.005",${hl}}`)).toBe(3);
    expect(s.get(`kthena_router_request_duration_seconds_bucket{le="0.25",${hl}}`)).toBe(3);
    expect(s.get(`kthena_router_request_duration_seconds_bucket{le="0.5",${hl}}`)).toBe(7);
    expect(s.get(`kthena_router_request_duration_seconds_bucket{le="+Inf",${hl}}`)).toBe(7);
    expect(s.get(`kthena_router_request_duration_seconds_count{${hl}}`)).toBe(7);
    expect(s.get(`kthena_router_request_duration_seconds_sum{${hl}}`)).toBeCloseTo(1.212, 9);
    expect(s.get('kthena_router_active_requests')).toBe(3);
    expect([...s].find(([k]) => k.startsWith('kthena_router_tokens_total{') && k.includes('token_type="input"'))?.[1]).toBe(42);
    expect(body).toContain('# HELP kthena_router_requests_total Total number of HTTP requests processed by the router\n# TYPE kthena_router_requests_total counter\n');
    expect(body).toContain('# TYPE kthena_router_request_duration_seconds histogram\n');
    expect(body).toContain('# TYPE kthena_router_active_requests gauge\n');
  });

  it('exposes the control-thread families next to process and Node.js runtime metrics', async () => {
    const hub = hubOf(new Map());
    hub.snapshotPublished('published');
    hub.snapshotPublished('published');
    hub.snapshotPublished('rejected');
    hub.setSnapshotGeneration(7);
    hub.translatorCrashed();
    hub.workerRestarted();
    hub.setRunningWorkers(4);
    hub.setConfigProblems([
      { kind: 'ModelRoute', namespace: 'ns', name: 'a', field: 'spec.rules', message: 'x', severity: 'rejected' },
      { kind: 'ModelRoute', namespace: 'ns', name: 'b', field: 'spec.rules', message: 'x', severity: 'rejected' },
      { kind: 'ModelServer', namespace: 'ns', name: 'c', field: 'spec', message: 'x', severity: 'warning' },
    ]);
    hub.setConfigProblems([{ kind: 'ModelServer', namespace: 'ns', name: 'c', field: 'spec', message: 'x', severity: 'warning' }]);
    const { body } = await hub.render();
    assertExposition(body);
    const s = samples(body);
    expect(s.get('kthena_router_snapshot_publish_total{result="published"}')).toBe(2);
    expect(s.get('kthena_router_snapshot_publish_total{result="unchanged"}')).toBe(0);
    expect(s.get('kthena_router_snapshot_publish_total{result="rejected"}')).toBe(1);
    expect(s.get('kthena_router_snapshot_generation')).toBe(7);
    expect(s.get('kthena_router_translator_crashes_total')).toBe(1);
    expect(s.get('kthena_router_worker_restarts_total')).toBe(1);
    expect(s.get('kthena_router_workers{state="running"}')).toBe(4);
    // A problem kind that went away reads 0 instead of vanishing.
    expect(s.get('kthena_router_config_problems{kind="ModelRoute",severity="rejected"}')).toBe(0);
    expect(s.get('kthena_router_config_problems{kind="ModelServer",severity="warning"}')).toBe(1);
    expect(body).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(body).toMatch(/^nodejs_heap_size_total_bytes \d/m);
  });

  it('uses a worker\'s last answer when it does not answer in time', async () => {
    const a = new WorkerMetrics();
    a.requestStarted();
    a.requestFinished(record(routed));
    let hang = false;
    const hub = hubOf(new Map([[1, () => (hang ? new Promise<MetricJSON[]>(() => {}) : Promise.resolve(a.toJSON()))]]), 30);
    expect(samples((await hub.render()).body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(1);
    hang = true;
    const t = Date.now();
    const { body } = await hub.render();
    expect(Date.now() - t).toBeLessThan(1000);
    expect(samples(body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(1);
  });

  it('falls back to the previous whole answer when collectWorkers returns one promise', async () => {
    const a = new WorkerMetrics();
    a.requestStarted();
    a.requestFinished(record(routed));
    let hang = false;
    const hub = new MetricsHub({
      collectWorkers: () => (hang ? new Promise<MetricJSON[][]>(() => {}) : Promise.resolve([a.toJSON()])),
      timeoutMs: 30,
    });
    await hub.render();
    hang = true;
    expect(samples((await hub.render()).body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(1);
  });

  it('keeps counters monotonic across a worker restart and drops the dead worker\'s gauges', async () => {
    const old = new WorkerMetrics();
    for (let i = 0; i < 5; i++) {
      old.requestStarted();
      old.requestFinished(record(routed));
    }
    old.requestStarted();
    old.downstreamStarted('llama');
    const workers = new Map<number, () => Promise<MetricJSON[]>>([[1, async () => old.toJSON()]]);
    const hub = hubOf(workers);
    const before = samples((await hub.render()).body);
    expect(before.get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(5);
    expect(before.get('kthena_router_active_requests')).toBe(1);

    // Worker 1 crashes (never answers again); worker 2 replaces it and starts from zero.
    workers.delete(1);
    expect(hub.retireWorker(1)).toBe(true);
    const fresh = new WorkerMetrics();
    fresh.requestStarted();
    fresh.requestFinished(record(routed));
    workers.set(2, async () => fresh.toJSON());
    const after = samples((await hub.render()).body);
    expect(after.get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(6);
    expect(after.get(`kthena_router_request_duration_seconds_count{${OK_LABELS.replace(',error_type="successful_request"', '')}}`)).toBe(6);
    expect(after.get('kthena_router_active_requests')).toBe(0);
    expect(after.get('kthena_router_active_downstream_requests{model="llama"}')).toBeUndefined();

    // Retiring twice does not count twice.
    hub.retire(old.toJSON(), 1);
    expect(samples((await hub.render()).body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(6);
  });

  it('leaves out of a scrape in flight a worker retired while it was being asked', async () => {
    const w = new WorkerMetrics();
    w.requestStarted();
    w.requestFinished(record(routed));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const hub = hubOf(new Map([[1, async () => {
      await gate;
      return w.toJSON();
    }]]));
    const pending = hub.render();
    hub.retire(w.toJSON(), 1);
    release();
    expect(samples((await pending).body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(1);
  });

  it('serves GET /metrics and 404 elsewhere', async () => {
    const w = new WorkerMetrics();
    w.requestStarted();
    w.requestFinished(record(routed));
    const hub = hubOf(new Map([[1, async () => w.toJSON()]]));
    const server = await startMetricsServer(hub, { host: '127.0.0.1', port: 0 });
    servers.push(server);
    expect(server.headersTimeout).toBe(10_000);
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const body = await res.text();
    assertExposition(body);
    expect(samples(body).get(`kthena_router_requests_total{${OK_LABELS}}`)).toBe(1);
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('404 page not found\n');
  });
});
