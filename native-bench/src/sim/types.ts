/**
 * Public shapes of the engine simulator. Kept apart from the server code so that the CLI, the demo
 * and tests can import them without pulling node:http in.
 *
 * ## Two modes per pod
 *
 * - fixed delays (the default, what the router's e2e suites use): every request waits `ttftMs` for
 *   its first token and `itlMs` between tokens, at most `maxRunning` at once;
 * - model (`model: {...}`, even `{}`): an engine model (native-bench/src/sim/model.ts) with continuous
 *   batching on a step clock, a block-hashed prefix cache with finite KV capacity, LoRA slots and
 *   PD transfers; `ttftMs`, `itlMs` and `maxRunning` are ignored; a request generates `max_tokens`
 *   tokens (as with `ignore_eos`; `outputTokens` when it has none) and `usage` carries
 *   `prompt_tokens_details.cached_tokens`; prompt token counts come from native-bench/src/sim/tokenize.ts
 *   instead of the chars/4 estimate.
 *
 * ## Time scale and reported timing
 *
 * Each pod has a virtual clock: virtual ms = (wall ms since the process's simulator epoch) x
 * `timeScale`. Every engine duration (fixed-mode ttftMs/itlMs, model steps, LoRA loads, KV transfers,
 * the bootstrap timeout) is virtual, so it takes duration / timeScale of wall time; `hangMs` is a
 * failure switch and stays in wall ms. In model mode the engine's steps are computed in virtual
 * time (a step starts at max(previous step end, arrival)); timers only pace delivery, so simulated
 * latencies do not depend on timeScale or on event-loop jitter (as long as the process keeps up:
 * `GET /sim/state` shows `engineLagMs`).
 *
 * With `reportTiming` on, the pod tells clients its simulated times, so a load generator can
 * measure without wall-clock noise:
 * - response header `x-sim-time-scale: <timeScale>` on completion responses;
 * - every streamed chunk (role, tokens, usage) carries `"sim_t": <simulated ms since the pod
 *   received the request>`; the chunk with a token carries the time that token was produced;
 * - a non-streaming body carries `"sim_timing": {"ttft_ms", "e2e_ms", "queue_ms"}` (simulated ms
 *   since receipt: first token, last token, and admission: the start of the first engine step that
 *   scheduled the request or began its KV transfer; fixed mode: when its ttft timer started).
 * - On the decode leg of a vLLM PD request whose prefill leg was served by this same simulator
 *   process (it finds `sim_received_at_ms` in `kv_transfer_params`), times count from when the
 *   prefill pod received its leg, so the client sees the PD request's whole TTFT. SGLang legs are
 *   concurrent, so the decode leg's own times already include the wait for the prefill.
 * In fixed mode the values are measured wall ms x timeScale (they include timer jitter).
 */
import type { ModelStats } from './model.js';

export type SimEngine = 'vLLM' | 'SGLang';

/**
 * PD role: 'both' (default) serves whole requests and has no KV connector; 'prefill' and 'decode'
 * speak the engine's PD protocol (native-bench/src/sim/pd.ts).
 */
export type SimRole = 'prefill' | 'decode' | 'both';

/** Options of the engine model; every field is optional (defaults in MODEL_DEFAULTS). */
export interface SimModelSpec {
  /** a: fixed duration of one engine step, ms. Default 10. */
  stepMs?: number;
  /** b: ms per prompt token computed (uncached prefill) in a step. Default 0.06. */
  prefillMsPerToken?: number;
  /** c: ms per sequence decoding in a step. Default 0.08. */
  decodeMsPerSeq?: number;
  /** d: ms per 1000 context tokens of the decoding sequences. Default 0 (off). */
  decodeMsPerKContextToken?: number;
  /** vLLM `--max-num-seqs`: sequences in the running batch. Default 256. */
  maxNumSeqs?: number;
  /** vLLM `--max-num-batched-tokens`: tokens computed per step. Default 8192. */
  maxNumBatchedTokens?: number;
  /** Split prompts longer than the remaining budget across steps. Default true (vLLM V1). */
  chunkedPrefill?: boolean;
  /** Tokens per KV block. Default 16. */
  blockSize?: number;
  /** Reuse cached prompt blocks. Default true. */
  prefixCaching?: boolean;
  /** Longest prompt + output accepted (vLLM's 400 beyond it). Default 32768. */
  maxModelLen?: number;
  /** Distinct adapters in one batch, and adapters kept loaded. Default 4 (vLLM's default is 1). */
  maxLoras?: number;
  /** Cost of loading an adapter that is not resident, added to the step that needs it. Default 50. */
  loraLoadMs?: number;
  /** PD decode side: ms to receive the KV of 1000 prompt tokens from the prefill pod. Default 5. */
  kvTransferMsPerKToken?: number;
}


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
   * Publish KV events as the Kthena runtime sidecar does (native-bench/src/sim/kv-events.ts): once a prompt is
   * prefilled, HSET `matrix:kv:block:{model}@{hash}` `{name}.{namespace}` = unix seconds for every
   * full block of its token ids. Off by default.
   */
  kvEvents?: { redisUrl: string; namespace: string; blockSize?: number };
  /**
   * Metric family names (native-bench/src/sim/metrics.ts): 'current' (default; vLLM 0.10+ `kv_cache_usage_perc`,
   * `inter_token_latency_seconds`, `prefix_cache_*`) or 'legacy' (`gpu_cache_usage_perc`,
   * `time_per_output_token_seconds`, `gpu_prefix_cache_*`; SGLang `time_per_output_token_seconds`).
   */
  metricNames?: SimMetricNames;
  /** More label sets rendered beside the pod's own series, with fixed values (series-selection tests). */
  extraMetricSeries?: SimExtraSeries[];
  /**
   * Run the engine model (continuous batching, prefix cache, KV capacity, LoRA slots, PD transfer)
   * instead of fixed delays; `{}` takes every default (MODEL_DEFAULTS in native-bench/src/sim/model.ts). In this
   * mode `kvCacheTokens` is the KV capacity (default 400000).
   */
  model?: SimModelSpec;
  /** PD role (native-bench/src/sim/pd.ts). Default 'both'. */
  role?: SimRole;
  /** SGLang decode leg: how long (simulated ms) to wait for the prefill of its room. Default 30000. */
  bootstrapTimeoutMs?: number;
  /** Simulated ms per wall ms (>= 1); see "Time scale and reported timing". Default 1. */
  timeScale?: number;
  /** Report simulated times to clients (`sim_t`, `sim_timing`, `x-sim-time-scale`). Default false. */
  reportTiming?: boolean;
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
  /** Fixed mode only (simulated ms; the engine model computes its own). */
  ttftMs: number;
  itlMs: number;
  /** Tokens per completion; in model mode only for requests without max_tokens. */
  outputTokens: number;
  /** Destroy the socket after this many SSE events of the next streaming response (one-shot). */
  dieMidStreamAfter: number | null;
  /** Reset the connection of every completion request, after reading it, without answering. */
  resetBeforeHeaders: boolean;
  /** Delay (wall ms, not scaled) before anything is answered to a completion request. */
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

/** What became of a completion request, filled in as it is served (on `RecordedRequest.outcome`). */
export interface SimRequestOutcome {
  mode: 'fixed' | 'model';
  /** The PD leg this request was, for this pod's engine and role. */
  pd: 'none' | 'nixl-prefill' | 'nixl-decode' | 'bootstrap-prefill' | 'bootstrap-decode';
  /** Status answered; 0 while in flight or when the connection was reset. */
  status: number;
  /** Served model (base or adapter) once parsed. */
  model?: string;
  promptTokens?: number;
  /** Prompt tokens found in the prefix cache (model mode). */
  cachedTokens?: number;
  completionTokens?: number;
  /** Simulated ms since receipt (as reported with reportTiming, without the PD offset). */
  queueMs?: number;
  ttftMs?: number;
  e2eMs?: number;
  /** Model mode: times this request was preempted, whether its adapter had to be loaded. */
  preemptions?: number;
  loraLoaded?: boolean;
  /** PD decode leg: prompt tokens received from the prefill pod and the simulated transfer time. */
  kvTransferTokens?: number;
  kvTransferMs?: number;
  /** vLLM PD: remote_engine_id received (decode) or answered (prefill). */
  remoteEngineId?: string;
  /** SGLang PD: the room, and for a decode leg the prefill host it waited for. */
  bootstrapRoom?: string;
  bootstrapHost?: string;
  /** Error message answered, if any. */
  error?: string;
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
  /** Completion requests only: what the pod did with it, updated while it is served. */
  outcome?: SimRequestOutcome;
}

/** `SimPod.state()` and `GET /sim/state`. */
export interface SimPodState {
  pod: string;
  mode: 'fixed' | 'model';
  role: SimRole;
  engine: SimEngine;
  timeScale: number;
  /** The pod's virtual clock now (simulated ms since the simulator epoch). */
  virtualNowMs: number;
  /** Model mode: how far (simulated ms) the engine's step clock is behind the virtual clock while busy. */
  engineLagMs: number;
  /** Model mode only. */
  engineModel?: Omit<ModelStats, 'promptTokens' | 'generationTokens' | 'lastStepEnd'> & {
    config: Record<string, number | boolean>;
  };
  /** Adapters served (registered at start or with /v1/load_lora_adapter). */
  adapters: string[];
}

export interface SimPod {
  readonly name: string;
  readonly ip: string;
  /** The bound port (differs from the spec only when the spec asked for 0). */
  readonly port: number;
  readonly engine: SimEngine;
  /** Base model first, then the adapters currently registered (changes with load/unload). */
  readonly models: readonly string[];
  readonly mode: 'fixed' | 'model';
  readonly role: SimRole;
  readonly timeScale: number;
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
  /** Engine state (also `GET /sim/state`). */
  state(): SimPodState;
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
  /** Default `timeScale` of pods that set none. */
  timeScale?: number;
  /** Default `reportTiming` of pods that set none. */
  reportTiming?: boolean;
}
