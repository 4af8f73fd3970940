/**
 * Public shapes of the engine simulator. Kept apart from the server code so that the CLI, the demo
 * and tests can import them without pulling node:http in, and so the fuller simulator (continuous
 * batching, prefix cache, PD roles) can grow behind the same contract.
 */

export type SimEngine = 'vLLM' | 'SGLang';

export interface SimPodSpec {
  /** Pod name, as in the Pod manifest; sent back in the `x-sim-pod` response header. */
  name: string;
  /** Loopback address to bind (any of 127.0.0.0/8 routes to lo on Linux). */
  ip: string;
  /** 0 picks a free port; the bound port is then on `SimPod.port`. */
  port: number;
  /** First entry is the base model; the rest are LoRA adapters served on top of it. */
  models: string[];
  engine?: SimEngine;
  /** Delay from admission to the first token. Default 20. */
  ttftMs?: number;
  /** Delay between tokens. Default 5. */
  itlMs?: number;
  /** Tokens generated per request, capped by the request's max_tokens. Default 16. */
  outputTokens?: number;
  /** Answer every completion with this status. */
  failStatus?: number;
  /** Requests generating at once; the rest wait (and show up as waiting in /metrics). Default unlimited. */
  maxRunning?: number;
  /** KV cache size in tokens, the denominator of the reported cache usage. Default 16384. */
  kvCacheTokens?: number;
  /**
   * Publish KV events as the Kthena runtime sidecar does (src/sim/kv-events.ts): once a prompt is
   * prefilled, HSET `matrix:kv:block:{model}@{hash}` `{name}.{namespace}` = unix seconds for every
   * full block of its token ids. Off by default.
   */
  kvEvents?: { redisUrl: string; namespace: string; blockSize?: number };
  /**
   * Metric family names (src/sim/metrics.ts): 'current' (default; vLLM 0.10+ `kv_cache_usage_perc`,
   * `inter_token_latency_seconds`, `prefix_cache_*`) or 'legacy' (`gpu_cache_usage_perc`,
   * `time_per_output_token_seconds`, `gpu_prefix_cache_*`; SGLang `time_per_output_token_seconds`).
   */
  metricNames?: SimMetricNames;
  /** More label sets rendered beside the pod's own series, with fixed values (series-selection tests). */
  extraMetricSeries?: SimExtraSeries[];
}

export type SimMetricNames = 'current' | 'legacy';

/** One extra series of every engine family; absent fields render as 0. */
export interface SimExtraSeries {
  /** The series' labels, e.g. `{ model_name: 'other-model' }` or `{ model_name: 'm', engine: '1' }`. */
  labels: Record<string, string>;
  running?: number;
  waiting?: number;
  kvCacheUsage?: number;
  ttft?: { sum: number; count: number };
  tpot?: { sum: number; count: number };
  prefixCacheHits?: number;
  prefixCacheQueries?: number;
}

/** Live behaviour of a pod; every field can be changed with `SimPod.set` or `POST /sim/control`. */
export interface SimControl {
  /** Answer every completion with this status (vLLM error body); null answers normally. */
  failStatus: number | null;
  ttftMs: number;
  itlMs: number;
  outputTokens: number;
  /** Destroy the socket after this many SSE events of the next streaming response (one-shot). */
  dieMidStreamAfter: number | null;
  /** Reset the connection of every completion request, after reading it, without answering. */
  resetBeforeHeaders: boolean;
  /** Delay before anything is answered to a completion request. */
  hangMs: number;
  /** Values reported by /metrics instead of the measured ones, to steer a router's scorers. */
  metricsOverride: SimMetricsOverride;
}

export interface SimMetricsOverride {
  running?: number;
  waiting?: number;
  /** Fraction 0..1, as vLLM reports `kv_cache_usage_perc`. */
  kvCacheUsage?: number;
  /**
   * While set, real requests are not observed into the TTFT (resp. inter-token) histogram and each
   * /metrics answer observes this value once, so a scraper's interval mean is exactly this value.
   */
  ttftSeconds?: number;
  tpotSeconds?: number;
  /** Cumulative prefix-cache counters reported instead of the measured ones (hits 0, queries = prompt tokens). */
  prefixCacheHits?: number;
  prefixCacheQueries?: number;
  /** Adapters reported in `vllm:lora_requests_info` instead of those of the running/waiting requests. */
  loraRunning?: string[];
  loraWaiting?: string[];
}

export interface RecordedRequest {
  /** Per-pod sequence number, from 1. */
  seq: number;
  /** Epoch milliseconds at which the request head arrived. */
  receivedAt: number;
  method: string;
  /** Path with query string, as sent. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  body: unknown;
}

export interface SimPod {
  readonly name: string;
  readonly ip: string;
  /** The bound port (differs from the spec only when the spec asked for 0). */
  readonly port: number;
  readonly engine: SimEngine;
  readonly models: readonly string[];
  /** `http://ip:port` */
  readonly url: string;
  /**
   * The last requests received (oldest first), bounded. Not recorded: control calls under /sim/,
   * and the GETs of /metrics, /v1/models and /health that scrapers and probes send (see `probes`).
   */
  readonly requests: RecordedRequest[];
  /** GET /metrics, /v1/models and /health requests received (a router's scraper, probes). */
  readonly probes: number;
  /** Completion requests received and not yet finished (waiting, hanging or generating). */
  readonly inflight: number;
  readonly control: Readonly<SimControl>;
  set(control: Partial<SimControl>): void;
  clearRequests(): void;
  close(): Promise<void>;
}

export interface SimFleet {
  pods: SimPod[];
  /** Throws when no pod has this name. */
  pod(name: string): SimPod;
  close(): Promise<void>;
}

export interface SimFleetOptions {
  /** Requests kept per pod. Default 1000. */
  requestLogSize?: number;
}
