/**
 * Endpoint Picker families (docs/metrics.md), per worker, in the prom-client getMetricsAsJSON()
 * shape the control thread sums: one counter by outcome and one histogram of the pick's duration
 * (request sent to destination known, or failure), labelled by InferencePool. Series live in Maps
 * keyed by strings the snapshot already holds, so recording allocates nothing once a series exists.
 */
import type { MetricJSON, MetricValueJSON } from '../../src/shared/metric-json.js';

export const EPP_REQUESTS_TOTAL = 'kthena_router_endpoint_picker_requests_total';
export const EPP_DURATION = 'kthena_router_endpoint_picker_duration_seconds';

/**
 * picked: routed to the picker's endpoint; immediate: the picker answered the client itself;
 * failed / timeout: the picker could not be used (then failureMode decides).
 */
export type EppOutcome = 'picked' | 'immediate' | 'failed' | 'timeout';
const OUTCOMES: readonly EppOutcome[] = ['picked', 'immediate', 'failed', 'timeout'];

const BOUNDS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

interface Series {
  counts: Float64Array;
  buckets: Float64Array;
  sum: number;
  n: number;
}

export class EppMetrics {
  readonly #series = new Map<string, Series>();

  record(pool: string, outcome: EppOutcome, seconds: number): void {
    let s = this.#series.get(pool);
    if (s === undefined) {
      s = { counts: new Float64Array(OUTCOMES.length), buckets: new Float64Array(BOUNDS.length), sum: 0, n: 0 };
      this.#series.set(pool, s);
    }
    s.counts[OUTCOMES.indexOf(outcome)]++;
    for (let i = 0; i < BOUNDS.length; i++) if (seconds <= BOUNDS[i]!) { s.buckets[i]++; break; }
    s.sum += seconds;
    s.n++;
  }

  metricsJSON(): MetricJSON[] {
    if (this.#series.size === 0) return [];
    const counter: MetricValueJSON[] = [];
    const hist: MetricValueJSON[] = [];
    for (const [pool, s] of this.#series) {
      OUTCOMES.forEach((o, i) => { if (s.counts[i]! > 0) counter.push({ value: s.counts[i]!, labels: { inference_pool: pool, outcome: o } }); });
      let acc = 0;
      BOUNDS.forEach((b, i) => {
        acc += s.buckets[i]!;
        hist.push({ value: acc, labels: { le: b, inference_pool: pool }, metricName: `${EPP_DURATION}_bucket` });
      });
      hist.push({ value: s.n, labels: { le: '+Inf', inference_pool: pool }, metricName: `${EPP_DURATION}_bucket` });
      hist.push({ value: s.sum, labels: { inference_pool: pool }, metricName: `${EPP_DURATION}_sum` });
      hist.push({ value: s.n, labels: { inference_pool: pool }, metricName: `${EPP_DURATION}_count` });
    }
    return [
      { name: EPP_REQUESTS_TOTAL, help: "Requests whose InferencePool endpoint was asked of the pool's Endpoint Picker, by outcome", type: 'counter', values: counter, aggregator: 'sum' },
      { name: EPP_DURATION, help: "Time from sending a request to the Endpoint Picker to knowing its destination (or its failure)", type: 'histogram', values: hist, aggregator: 'sum' },
    ];
  }
}
