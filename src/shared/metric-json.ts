/**
 * Metric families as they cross from a worker thread to the control thread: the JSON shape of
 * prom-client's `registry.getMetricsAsJSON()`. Workers build it without prom-client (no per-request
 * label hashing); the control thread merges the answers with AggregatorRegistry.aggregate().
 */

/** One sample, exactly as prom-client's `registry.getMetricsAsJSON()` gives it. */
export interface MetricValueJSON {
  value: number;
  labels: Record<string, string | number>;
  /** Set on histogram samples: `<name>_bucket`, `<name>_sum`, `<name>_count`. */
  metricName?: string;
}

/** One family, exactly as prom-client's `registry.getMetricsAsJSON()` gives it. */
export interface MetricJSON {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricValueJSON[];
  aggregator: 'sum';
}
