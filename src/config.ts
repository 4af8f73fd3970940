/**
 * Flags and environment, validated once and deep-frozen. Nothing else reads process.env or argv:
 * every setting reaches the workers through this object (workerData), so a worker and the control
 * thread can never disagree.
 *
 * The command line is Kthena's (`cmd/kthena-router`: spf13/pflag with klog's Go flags added), so
 * that Kthena's Helm chart starts this image unchanged: `--name=value` and `--name value`, booleans
 * as `--flag` or `--flag=true|false`, klog's `-v` shorthand (`-v 4`, `-v=4`, `-v4`), `--` ends the
 * flags. Adding a flag is one row in FLAGS (plus its field in RouterConfig); adding an environment
 * variable is one row in ENV.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { RouterError } from './errors.js';
import { parseDurationMs } from './util/duration.js';

export interface AccessLogConfig {
  enabled: boolean;
  format: 'text' | 'json';
  /** 'stdout' | 'stderr' | a file path (appended). */
  output: string;
}

/** Kthena's fairness scheduling (ENABLE_FAIRNESS_SCHEDULING, FAIRNESS_*), validated; served by src/admission/. */
export interface FairnessConfig {
  enabled: boolean;
  windowMs: number;
  inputTokenWeight: number;
  outputTokenWeight: number;
  queueTimeoutMs: number;
  maxConcurrent: number;
  maxQps: number;
  priorityRefreshRetries: number;
  rebuildThreshold: number;
  priorityTokenWeight: number;
  priorityRequestNumWeight: number;
}

/** Kthena's session boost (ENABLE_SESSION_BOOST, SESSION_BOOST_*), validated; served by src/admission/. */
export interface SessionBoostConfig {
  enabled: boolean;
  header: string;
  maxSessions: number;
  inflightPerPod: number;
  gracePeriodMs: number;
  /** A non-positive value disables the queue timeout (Kthena: "0s" disables). */
  timeoutMs: number;
  ttlMs: number;
  pollIntervalMs: number;
}

/** Where application logs go: klog's --logtostderr / --alsologtostderr / --log_file / --log_dir. */
export interface AppLogConfig {
  /** '' = stderr only. */
  file: string;
  /** Also write to stderr when writing to a file. */
  alsoStderr: boolean;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface RouterConfig {
  command: 'serve' | 'demo';
  /** Directory of manifests (file mode). */
  configDir: string;
  routerConfigFile: string;
  /** Address the router port binds ('0.0.0.0' by default, as Kthena). */
  host: string;
  port: number;
  metricsPort: number;
  debugPort: number;
  workers: number;
  tlsCert: string;
  tlsKey: string;
  enableGatewayApi: boolean;
  enableGatewayApiInferenceExtension: boolean;
  enableWebhook: boolean;
  exposeMetricsOnRouterPort: boolean;
  kubeconfig: string;
  /**
   * Kubernetes mode with the pod's service account: KUBERNETES_SERVICE_HOST is set and neither
   * --config nor --kubeconfig is given.
   */
  inCluster: boolean;
  /** Request bodies above this are answered 413. */
  maxBodyBytes: number;
  drainTimeoutMs: number;
  accessLog: AccessLogConfig;
  scrapeIntervalMs: number;
  podNamespace: string;
  logLevel: LogLevel;
  /** klog's --v as given (-1: not given); mapped onto logLevel. */
  klogVerbosity: number;
  logToStderr: boolean;
  alsoLogToStderr: boolean;
  logFile: string;
  logDir: string;
  /** Application log destination, derived from the four klog fields above. */
  appLog: AppLogConfig;
  /** Flags given that are accepted for Kthena compatibility and have no effect here (logged at start). */
  noEffectFlags: string[];
  /** Enables POST /debug/fault/* on the debug port (tests, chaos drills). */
  faultInjection: boolean;
  /** Per-endpoint connection pool size in each worker. */
  upstreamConnections: number;
  /** Passive outlier detection (workers/outlier.ts): consecutive failures that eject (0 = off). */
  outlierConsecutive: number;
  /** First ejection, ms (the n-th lasts n times as long). */
  outlierBaseEjectionMs: number;
  /** Most endpoints of one server ejected at once, percent. */
  outlierMaxEjectionPercent: number;
  /** --upstream-timeout: bound on dial + response headers when trafficPolicy.timeout is unset, ms (0 = none). */
  upstreamTimeoutMs: number;
  /** --upstream-idle-timeout: longest gap between response bytes when trafficPolicy.timeout is unset, ms (0 = none). */
  upstreamIdleTimeoutMs: number;
  /**
   * The egress proxy of ExternalModelProvider calls (HTTPS_PROXY/https_proxy, NO_PROXY/no_proxy, as
   * Go's transport reads them for Kthena): '' = none. The URL may carry credentials (redacted in dumps).
   */
  providerProxy: { url: string; noProxy: string };
  /**
   * The client of the upstream leg to plain-HTTP pods: 'h1' (workers/upstream/, the default) or
   * 'undici' (the previous one, kept to compare in benchmarks and as a way back).
   */
  upstreamClient: 'h1' | 'undici';
  /**
   * --session-sticky-store: where ModelRoute.spec.sessionSticky bindings live. memory: this
   * router's shared-memory table; redis: Redis (REDIS_HOST) shared by every replica, the local
   * table as write-through fallback (workers/sticky/redis-store.ts).
   */
  sessionStickyStore: 'memory' | 'redis';
  /** --session-sticky-redis-timeout: longest wait of a sticky request for Redis before the local table decides, ms. */
  sessionStickyRedisTimeoutMs: number;
  webhookPort: number;
  webhookTlsCertFile: string;
  webhookTlsPrivateKeyFile: string;
  certSecretName: string;
  webhookServiceName: string;
  /** Kthena's float32 flag. */
  kubeApiQps: number;
  kubeApiBurst: number;
  /** Redis for kvcache-aware (REDIS_HOST/REDIS_PORT/REDIS_PASSWORD; Kthena's default redis-server:6379). */
  redis: { host: string; port: number; password: string };
  /**
   * Share per-pod in-flight counts with the other router replicas through that Redis
   * (src/shared-inflight/): on when REDIS_HOST is set, as Kthena's on-flight counter;
   * SHARED_INFLIGHT=false turns it off (e.g. Redis set for kvcache-aware only).
   */
  sharedInflight: boolean;
  /**
   * LMCache PD receiver ports of decode pods (LMCACHE_PD_INIT_PORTS / LMCACHE_PD_ALLOC_PORTS, one per
   * tensor-parallel rank; LMCache's examples use 7300 and 7400), sent in `disagg_spec`.
   */
  lmcachePorts: { init: number[]; alloc: number[] };
  /** Entries of the shared prefix-cache index (PREFIX_CACHE_INDEX_ENTRIES); fixed at start. */
  prefixIndexEntries: number;
  /** Global rate limits while their Redis cannot answer: refuse (429) instead of allowing. */
  rateLimitFailClosed: boolean;
  /**
   * --inference-pool-picker: who picks an InferencePool's endpoint. 'inprocess' (Kthena's way):
   * the route's scheduler profile, endpointPickerRef ignored; 'external': the pool's Endpoint
   * Picker over ext_proc gRPC (docs/gateway-api.md).
   */
  inferencePoolPicker: 'inprocess' | 'external';
  /**
   * --inference-pool-flow-control: InferencePool requests wait in priority bands while the pool is
   * saturated (GIE's opt-in flowControl feature). Off (default): GIE's default admission, where
   * only sheddable requests (negative priority) are refused, with 429, while saturated.
   */
  inferencePoolFlowControl: boolean;
  /** --endpoint-picker-timeout: bound on one Endpoint Picker answer, ms. */
  endpointPickerTimeoutMs: number;
  /** --endpoint-picker-tls: TLS (certificate not verified) to the Endpoint Picker, as its default --secure-serving. */
  endpointPickerTls: boolean;
  fairness: FairnessConfig;
  sessionBoost: SessionBoostConfig;
}

type FlagType = 'int' | 'float' | 'bool' | 'string' | 'bytes' | 'duration';

export interface FlagSpec {
  /** The config field the flag sets; absent: accepted, validated, and without effect (noEffectFlags). */
  key?: keyof RouterConfig;
  type: FlagType;
  min?: number;
  max?: number;
  /** Extra validation of the raw text (after the type check); returns an error message or null. */
  check?: (v: string) => string | null;
  /** Where the flag comes from: Kthena's own flags, klog's (Kthena registers them), or ours. */
  origin: 'kthena' | 'klog' | 'ours';
  help: string;
}

const KLOG_SEVERITIES = ['INFO', 'WARNING', 'ERROR', 'FATAL'];
const checkSeverity = (v: string): string | null =>
  KLOG_SEVERITIES.includes(v.toUpperCase()) || /^[0-3]$/.test(v) ? null : 'expected INFO, WARNING, ERROR, FATAL or 0-3';
const checkVmodule = (v: string): string | null =>
  v === '' || /^[^=,]+=\d+(,[^=,]+=\d+)*$/.test(v) ? null : 'expected a comma-separated list of pattern=N';
const checkBacktrace = (v: string): string | null => (v === '' || /^[^:]+:\d+$/.test(v) ? null : 'expected file.go:N');

/**
 * Every flag: Kthena's (docs/reference/kthena-behaviour.md §8.5) first, klog's, then ours. Defaults live in defaultConfig()
 * beside the field; `help` ends with the default so that --help and docs/configuration.md say it.
 */
export const FLAGS: Record<string, FlagSpec> = {
  port: { key: 'port', type: 'int', min: 1, max: 65535, origin: 'kthena', help: 'inference port / default Gateway listener port (default 8080)' },
  'metrics-port': { key: 'metricsPort', type: 'int', min: 0, max: 65535, origin: 'kthena', help: 'Prometheus /metrics port (default 9090; 0 disables)' },
  'debug-port': { key: 'debugPort', type: 'int', min: 0, max: 65535, origin: 'kthena', help: 'debug server port on 127.0.0.1 (default 15000; 0 disables)' },
  'tls-cert': { key: 'tlsCert', type: 'string', origin: 'kthena', help: 'TLS certificate file for the router port (with --tls-key)' },
  'tls-key': { key: 'tlsKey', type: 'string', origin: 'kthena', help: 'TLS private key file for the router port (with --tls-cert)' },
  'enable-gateway-api': { key: 'enableGatewayApi', type: 'bool', origin: 'kthena', help: 'route by Gateway API resources: Gateways (one listening port each listener port), HTTPRoutes, ModelRoute parentRefs (default false)' },
  'enable-gateway-api-inference-extension': { key: 'enableGatewayApiInferenceExtension', type: 'bool', origin: 'kthena', help: 'route HTTPRoute backends to InferencePools (needs --enable-gateway-api; default false)' },
  'enable-webhook': { key: 'enableWebhook', type: 'bool', origin: 'kthena', help: 'validating webhook (Kubernetes mode only; ignored in file mode; default true)' },
  'expose-metrics-on-router-port': { key: 'exposeMetricsOnRouterPort', type: 'bool', origin: 'kthena', help: 'also answer GET /metrics on the router port (default false)' },
  // Kthena's Kubernetes-mode flags: they take effect with Kubernetes mode and are ignored (logged
  // at start) in file mode.
  'webhook-port': { key: 'webhookPort', type: 'int', min: 1, max: 65535, origin: 'kthena', help: 'validating webhook port (Kubernetes mode; default 8443)' },
  'webhook-tls-cert-file': { key: 'webhookTlsCertFile', type: 'string', origin: 'kthena', help: 'webhook certificate (Kubernetes mode; default /etc/tls/tls.crt)' },
  'webhook-tls-private-key-file': { key: 'webhookTlsPrivateKeyFile', type: 'string', origin: 'kthena', help: 'webhook private key (Kubernetes mode; default /etc/tls/tls.key)' },
  'cert-secret-name': { key: 'certSecretName', type: 'string', origin: 'kthena', help: 'Secret holding webhook certificates (Kubernetes mode; default kthena-router-webhook-certs)' },
  'webhook-service-name': { key: 'webhookServiceName', type: 'string', origin: 'kthena', help: 'webhook Service name (Kubernetes mode; default kthena-router-webhook)' },
  'kube-api-qps': { key: 'kubeApiQps', type: 'float', min: 0, max: 1e6, origin: 'kthena', help: 'Kubernetes client QPS, a float (accepted; the Node client has no rate limiter; default 0)' },
  'kube-api-burst': { key: 'kubeApiBurst', type: 'int', min: 0, max: 1e6, origin: 'kthena', help: 'Kubernetes client burst (accepted; the Node client has no rate limiter; default 0)' },
  // klog's flags, which Kthena's binary registers (klog.InitFlags). -v is the shorthand of --v.
  v: { key: 'klogVerbosity', type: 'int', min: 0, max: 2 ** 31 - 1, origin: 'klog', help: 'log verbosity: 0-3 info, 4 debug, 5 and above trace (overrides LOG_LEVEL; -v N works too)' },
  logtostderr: { key: 'logToStderr', type: 'bool', origin: 'klog', help: 'log to stderr instead of --log_file/--log_dir (default true)' },
  alsologtostderr: { key: 'alsoLogToStderr', type: 'bool', origin: 'klog', help: 'with --logtostderr=false, log to stderr as well as to the file (default false)' },
  log_file: { key: 'logFile', type: 'string', origin: 'klog', help: 'with --logtostderr=false, append application logs (JSON lines) to this file' },
  log_dir: { key: 'logDir', type: 'string', origin: 'klog', help: 'with --logtostderr=false and no --log_file, append application logs to DIR/kthena-router.log' },
  log_file_max_size: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, origin: 'klog', help: 'no effect (log files are not rotated by the router)' },
  stderrthreshold: { type: 'string', check: checkSeverity, origin: 'klog', help: 'no effect (every application log line at or above the level goes to the log destination)' },
  vmodule: { type: 'string', check: checkVmodule, origin: 'klog', help: 'no effect (per-file verbosity is a Go notion)' },
  log_backtrace_at: { type: 'string', check: checkBacktrace, origin: 'klog', help: 'no effect (a Go source location)' },
  add_dir_header: { type: 'bool', origin: 'klog', help: 'no effect (log lines are JSON)' },
  skip_headers: { type: 'bool', origin: 'klog', help: 'no effect (log lines are JSON)' },
  skip_log_headers: { type: 'bool', origin: 'klog', help: 'no effect (log lines are JSON)' },
  one_output: { type: 'bool', origin: 'klog', help: 'no effect (one destination per line already)' },
  legacy_stderr_threshold_behavior: { type: 'bool', origin: 'klog', help: 'no effect' },
  // Ours.
  config: { key: 'configDir', type: 'string', origin: 'ours', help: 'directory of manifests to serve (file mode), watched for changes' },
  'router-config': { key: 'routerConfigFile', type: 'string', origin: 'ours', help: "Kthena routerConfiguration YAML (scheduler plugins), hot reloaded; default: Kthena's Helm default profile" },
  workers: { key: 'workers', type: 'int', min: 1, max: 256, origin: 'ours', help: 'worker threads (default: the container\'s CPU limit rounded up, else the number of cores)' },
  host: { key: 'host', type: 'string', origin: 'ours', help: 'address the router port binds (default 0.0.0.0)' },
  kubeconfig: { key: 'kubeconfig', type: 'string', origin: 'ours', help: 'Kubernetes mode: watch the API server of this kubeconfig (in a pod without --config: the service account)' },
  'max-body-bytes': { key: 'maxBodyBytes', type: 'bytes', min: 1024, max: 1 << 30, origin: 'ours', help: 'largest accepted request body (default 32Mi)' },
  'upstream-connections': { key: 'upstreamConnections', type: 'int', min: 1, max: 4096, origin: 'ours', help: 'keep-alive connections per endpoint per worker (default 128)' },
  'outlier-consecutive-failures': { key: 'outlierConsecutive', type: 'int', min: 0, max: 1000, origin: 'ours', help: 'consecutive failed attempts that eject an endpoint (default 5; 0 disables)' },
  'outlier-base-ejection': { key: 'outlierBaseEjectionMs', type: 'duration', min: 1000, max: 300_000, origin: 'ours', help: 'first ejection; the n-th lasts n times as long, at most 5m (default 10s)' },
  'outlier-max-ejection-percent': { key: 'outlierMaxEjectionPercent', type: 'int', min: 0, max: 100, origin: 'ours', help: "most of a server's endpoints ejected at once, percent (default 50)" },
  'upstream-timeout': { key: 'upstreamTimeoutMs', type: 'duration', min: 0, max: 86_400_000, origin: 'ours', help: 'dial + response headers bound when a ModelServer sets no trafficPolicy.timeout (default 5m; 0s: none)' },
  'upstream-idle-timeout': { key: 'upstreamIdleTimeoutMs', type: 'duration', min: 0, max: 86_400_000, origin: 'ours', help: 'longest gap between response bytes when a ModelServer sets no trafficPolicy.timeout (default 60s; 0s: none)' },
  'upstream-client': {
    key: 'upstreamClient', type: 'string', origin: 'ours', check: (v) => (v === 'h1' || v === 'undici' ? null : 'expected h1 or undici'),
    help: "advanced: client of the upstream leg to plain-HTTP pods, h1 (the router's own HTTP/1.1 client) or undici (default h1)",
  },
  'session-sticky-store': {
    key: 'sessionStickyStore', type: 'string', origin: 'ours', check: (v) => (v === 'memory' || v === 'redis' ? null : 'expected memory or redis'),
    help: 'where session-sticky bindings live: memory (this router only) or redis (REDIS_HOST, shared by every replica; this router\'s table while Redis is down) (default memory)',
  },
  'session-sticky-redis-timeout': { key: 'sessionStickyRedisTimeoutMs', type: 'duration', min: 1, max: 10_000, origin: 'ours', help: 'with --session-sticky-store redis: longest wait of a sticky request for Redis, then this router\'s own table decides (default 100ms)' },
  'rate-limit-fail-closed': { key: 'rateLimitFailClosed', type: 'bool', origin: 'ours', help: 'refuse (429) requests on routes with a global (Redis) rate limit while that Redis cannot answer, instead of allowing them (default false)' },
  'inference-pool-picker': {
    key: 'inferencePoolPicker', type: 'string', origin: 'ours', check: (v) => (v === 'inprocess' || v === 'external' ? null : 'expected inprocess or external'),
    help: "who picks an InferencePool's endpoint: inprocess (as Kthena: the route's scheduler, endpointPickerRef ignored) or external (the pool's Endpoint Picker over ext_proc gRPC) (default inprocess)",
  },
  'inference-pool-flow-control': { key: 'inferencePoolFlowControl', type: 'bool', origin: 'ours', help: 'InferencePool requests wait in InferenceObjective priority bands while the pool is saturated (the Inference Extension\'s opt-in flow control); off: only sheddable requests are refused (429) while saturated (default false)' },
  'endpoint-picker-timeout': { key: 'endpointPickerTimeoutMs', type: 'duration', min: 1, max: 600_000, origin: 'ours', help: "bound on an Endpoint Picker's answer; then the pool's failureMode applies (default 10s)" },
  'endpoint-picker-tls': { key: 'endpointPickerTls', type: 'bool', origin: 'ours', help: 'TLS to the Endpoint Picker without verifying its certificate (the reference picker serves a self-signed one); false for plaintext (default true)' },
};

/** pflag shorthands (klog's one-letter Go flag `v` gets `-v`). */
const SHORTHANDS: Record<string, string> = { v: 'v' };

/**
 * The default worker count: the cores this process may use. os.availableParallelism() sees every
 * core of the node, not the container's CPU limit, and Kthena's chart runs the router with a
 * 500m/512Mi limit: one worker per node core there would be throttled and could run out of memory.
 * So a CFS quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us) caps it, rounded up.
 */
export function defaultWorkers(read: (file: string) => string | null = readOrNull, cores = os.availableParallelism()): number {
  let limit = Infinity;
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    if (quota !== 'max' && Number(quota) > 0 && Number(period) > 0) limit = Math.ceil(Number(quota) / Number(period));
  } else {
    const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')?.trim());
    const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us')?.trim());
    if (quota > 0 && period > 0) limit = Math.ceil(quota / period);
  }
  return Math.max(1, Math.min(cores, limit));
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export function defaultConfig(): RouterConfig {
  return {
    command: 'serve',
    configDir: '',
    routerConfigFile: '',
    host: '0.0.0.0',
    port: 8080,
    metricsPort: 9090,
    debugPort: 15000,
    workers: defaultWorkers(),
    tlsCert: '',
    tlsKey: '',
    enableGatewayApi: false,
    enableGatewayApiInferenceExtension: false,
    enableWebhook: true,
    exposeMetricsOnRouterPort: false,
    kubeconfig: '',
    inCluster: false,
    maxBodyBytes: 32 * 1024 * 1024,
    drainTimeoutMs: 5 * 60 * 1000,
    accessLog: { enabled: true, format: 'text', output: 'stdout' },
    scrapeIntervalMs: 1000,
    podNamespace: 'default',
    logLevel: 'info',
    klogVerbosity: -1,
    logToStderr: true,
    alsoLogToStderr: false,
    logFile: '',
    logDir: '',
    appLog: { file: '', alsoStderr: false },
    noEffectFlags: [],
    faultInjection: false,
    upstreamConnections: 128,
    outlierConsecutive: 5,
    outlierBaseEjectionMs: 10_000,
    outlierMaxEjectionPercent: 50,
    upstreamTimeoutMs: 5 * 60 * 1000,
    upstreamIdleTimeoutMs: 60 * 1000,
    providerProxy: { url: '', noProxy: '' },
    upstreamClient: 'h1',
    sessionStickyStore: 'memory',
    sessionStickyRedisTimeoutMs: 100,
    webhookPort: 8443,
    webhookTlsCertFile: '/etc/tls/tls.crt',
    webhookTlsPrivateKeyFile: '/etc/tls/tls.key',
    certSecretName: 'kthena-router-webhook-certs',
    webhookServiceName: 'kthena-router-webhook',
    kubeApiQps: 0,
    kubeApiBurst: 0,
    redis: { host: 'redis-server', port: 6379, password: '' },
    sharedInflight: false,
    lmcachePorts: { init: [7300], alloc: [7400] },
    prefixIndexEntries: 262_144,
    rateLimitFailClosed: false,
    inferencePoolPicker: 'inprocess',
    inferencePoolFlowControl: false,
    endpointPickerTimeoutMs: 10_000,
    endpointPickerTls: true,
    // Kthena's defaults (pkg/kthena-router/datastore and the chart's values.yaml).
    fairness: {
      enabled: false, windowMs: 3_600_000, inputTokenWeight: 1, outputTokenWeight: 2, queueTimeoutMs: 60_000,
      maxConcurrent: 0, maxQps: 100, priorityRefreshRetries: 0, rebuildThreshold: 64, priorityTokenWeight: 1, priorityRequestNumWeight: 0,
    },
    sessionBoost: {
      enabled: false, header: 'X-Session-ID', maxSessions: 4096, inflightPerPod: 16, gracePeriodMs: 0, timeoutMs: 30_000, ttlMs: 60_000, pollIntervalMs: 100,
    },
  };
}

function invalid(msg: string): RouterError {
  return new RouterError('RTR_ERR_CONFIG_INVALID', msg);
}

/** Go's strconv.ParseBool, which pflag and Kthena's env parsing use. */
function parseBool(v: string, name: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw invalid(`${name}: expected true or false, got "${v}"`);
}

function parseBytes(v: string, name: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(v.trim());
  if (!m) throw invalid(`${name}: expected a byte size like 1048576, 512Ki or 32Mi, got "${v}"`);
  const mult: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * mult[m[2] ?? ''];
}

function parseNumber(v: string, name: string, integer: boolean, min: number, max: number): number {
  // Decimal only (no '', whitespace, hex or Infinity): what a chart value renders to.
  const re = integer ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
  const n = Number(v);
  if (!re.test(v) || !Number.isFinite(n) || n < min || n > max) {
    throw invalid(`${name}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got "${v}"`);
  }
  return n;
}

function setFlag(cfg: RouterConfig, name: string, spec: FlagSpec, value: string): void {
  const label = `--${name}`;
  let parsed: unknown;
  switch (spec.type) {
    case 'bool': parsed = parseBool(value, label); break;
    case 'string': parsed = value; break;
    case 'bytes': {
      const n = parseBytes(value, label);
      if (n < (spec.min ?? 0) || n > (spec.max ?? Infinity)) throw invalid(`${label}: expected a size in [${spec.min}, ${spec.max}] bytes, got "${value}"`);
      parsed = n;
      break;
    }
    case 'int':
    case 'float':
      parsed = parseNumber(value, label, spec.type === 'int', spec.min ?? -Infinity, spec.max ?? Infinity);
      break;
    case 'duration': {
      const ms = parseDurationMs(value);
      if (ms === null || ms < (spec.min ?? 0) || ms > (spec.max ?? Infinity)) throw invalid(`${label}: expected a duration like 500ms or 10s in [${spec.min}ms, ${spec.max}ms], got "${value}"`);
      parsed = ms;
      break;
    }
  }
  const problem = spec.check?.(value) ?? null;
  if (problem !== null) throw invalid(`${label}: ${problem}, got "${value}"`);
  if (spec.key !== undefined) (cfg as unknown as Record<string, unknown>)[spec.key] = parsed;
  else if (!cfg.noEffectFlags.includes(label)) cfg.noEffectFlags.push(label);
}

/** pflag's parsing of argv into cfg (see the file comment). */
function parseArgv(cfg: RouterConfig, argv: readonly string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw invalid(`unexpected argument "${argv[i + 1]}" (this router takes no positional arguments)`);
      return;
    }
    let name: string;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      name = arg.slice(2);
      const eq = name.indexOf('=');
      if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    } else if (arg.startsWith('-') && arg.length > 1) {
      // A shorthand: -v 4, -v=4, -v4.
      const short = arg[1]!;
      const long = SHORTHANDS[short];
      if (long === undefined) throw invalid(`unknown shorthand flag "${short}" in ${arg} (long flags take two dashes: -${arg})`);
      name = long;
      const rest = arg.slice(2);
      if (rest !== '') value = rest.startsWith('=') ? rest.slice(1) : rest;
    } else {
      const prev = argv[i - 1];
      const prevBool = prev !== undefined && /^--[^=]+$/.test(prev) && FLAGS[prev.slice(2)]?.type === 'bool';
      throw invalid(prevBool && /^(true|false)$/i.test(arg)
        ? `unexpected argument "${arg}": a boolean flag takes its value after "=" (${prev}=${arg})`
        : `unexpected argument "${arg}"`);
    }
    const spec = FLAGS[name];
    if (!spec) throw invalid(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (spec.type === 'bool') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw invalid(`--${name} needs a value`);
    }
    setFlag(cfg, name, spec, value);
  }
}

type Env = NodeJS.ProcessEnv;

/** One environment variable: how it is read into cfg, and what --help says about it. */
interface EnvSpec {
  name: string;
  help: string;
  set: (cfg: RouterConfig, v: string, name: string) => void;
}

function duration(v: string, name: string, min = -Infinity, max = Infinity, what = 'a duration like 500ms, 3s or 5m'): number {
  // parseDurationMs is Go's ParseDuration for manifests, where a negative duration is invalid.
  const neg = min < 0 && v.startsWith('-');
  const abs = parseDurationMs(neg ? v.slice(1) : v);
  const ms = abs === null ? null : neg ? -abs : abs;
  if (ms === null || ms < min || ms > max) throw invalid(`${name}: expected ${what}, got "${v}"`);
  return ms;
}
const int = (v: string, name: string, min: number, max = 2 ** 31 - 1): number => parseNumber(v, name, true, min, max);
const float = (v: string, name: string, min: number): number => parseNumber(v, name, false, min, Number.MAX_VALUE);

function portList(v: string, name: string): number[] {
  const ports = v.split(',').map((x) => Number(x.trim()));
  if (ports.length > 64 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw invalid(`${name}: expected comma-separated port numbers (one per tensor-parallel rank), got "${v}"`);
  return ports;
}

/**
 * Every environment variable read, in this order. An empty value is "unset", as Kthena's
 * `os.Getenv(x) != ""` checks treat it. Unlike Kthena, an invalid value is refused (exit 2) instead
 * of logged and replaced by the default.
 */
export const ENV: readonly EnvSpec[] = [
  { name: 'DRAIN_TIMEOUT', help: 'drain deadline after SIGTERM (default 5m)', set: (c, v, n) => { c.drainTimeoutMs = duration(v, n, 0); } },
  { name: 'METRICS_SCRAPE_INTERVAL', help: 'engine /metrics poll interval (default 1s, at least 50ms)', set: (c, v, n) => { c.scrapeIntervalMs = duration(v, n, 50, Infinity, 'a duration like 500ms, 3s or 5m of at least 50ms'); } },
  { name: 'POD_NAMESPACE', help: 'namespace of the bootstrap Gateway and the router ConfigMap (default "default")', set: (c, v) => { c.podNamespace = v; } },
  { name: 'ACCESS_LOG_ENABLED', help: 'one access-log line per /v1 request (default true)', set: (c, v, n) => { c.accessLog.enabled = parseBool(v, n); } },
  {
    name: 'ACCESS_LOG_FORMAT', help: 'text (Kthena\'s) or json', set: (c, v, n) => {
      const f = v.toLowerCase();
      if (f !== 'text' && f !== 'json') throw invalid(`${n}: expected text or json, got "${v}"`);
      c.accessLog.format = f;
    },
  },
  { name: 'ACCESS_LOG_OUTPUT', help: 'stdout (default), stderr or a file path (appended)', set: (c, v) => { c.accessLog.output = v; } },
  {
    name: 'LOG_LEVEL', help: 'application log level: trace, debug, info (default), warn, error, fatal, silent (--v overrides)', set: (c, v, n) => {
      const l = v.toLowerCase();
      if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(l)) throw invalid(`${n}: unknown level "${v}"`);
      c.logLevel = l as LogLevel;
    },
  },
  { name: 'REDIS_HOST', help: 'Redis of kvcache-aware (default redis-server); when set, also shares in-flight counts across replicas', set: (c, v) => { c.redis.host = v; c.sharedInflight = true; } },
  { name: 'REDIS_PORT', help: 'default 6379', set: (c, v, n) => { c.redis.port = parseNumber(v, n, true, 1, 65535); } },
  { name: 'REDIS_PASSWORD', help: 'Redis password (never logged)', set: (c, v) => { c.redis.password = v; } },
  { name: 'SHARED_INFLIGHT', help: 'share per-pod in-flight counts across replicas through Redis (default: true when REDIS_HOST is set)', set: (c, v, n) => { c.sharedInflight = parseBool(v, n); } },
  { name: 'LMCACHE_PD_INIT_PORTS', help: 'LMCache PD receiver init ports, one per rank (default 7300)', set: (c, v, n) => { c.lmcachePorts.init = portList(v, n); } },
  { name: 'LMCACHE_PD_ALLOC_PORTS', help: 'LMCache PD receiver alloc ports, one per rank (default 7400)', set: (c, v, n) => { c.lmcachePorts.alloc = portList(v, n); } },
  { name: 'PREFIX_CACHE_INDEX_ENTRIES', help: 'entries of the shared prefix-cache index (default 262144)', set: (c, v, n) => { c.prefixIndexEntries = int(v, n, 1024, 16_777_216); } },
  { name: 'KTHENA_ROUTER_FAULT_INJECTION', help: 'enable POST /debug/fault/* on the debug port (tests)', set: (c, v, n) => { c.faultInjection = parseBool(v, n); } },
  // Kthena's fairness scheduling (src/admission/): one queue per model for the whole router.
  { name: 'ENABLE_FAIRNESS_SCHEDULING', help: 'Kthena\'s fairness queue (docs/traffic-policy.md); exclusive with ENABLE_SESSION_BOOST', set: (c, v, n) => { c.fairness.enabled = parseBool(v, n); } },
  { name: 'FAIRNESS_WINDOW_SIZE', help: '1m..1h (default 1h)', set: (c, v, n) => { c.fairness.windowMs = duration(v, n, 60_000, 3_600_000, 'a duration from 1m to 1h'); } },
  { name: 'FAIRNESS_INPUT_TOKEN_WEIGHT', help: 'default 1.0', set: (c, v, n) => { c.fairness.inputTokenWeight = float(v, n, 0); } },
  { name: 'FAIRNESS_OUTPUT_TOKEN_WEIGHT', help: 'default 2.0', set: (c, v, n) => { c.fairness.outputTokenWeight = float(v, n, 0); } },
  { name: 'FAIRNESS_QUEUE_TIMEOUT', help: 'default 60s', set: (c, v, n) => { c.fairness.queueTimeoutMs = duration(v, n, 1); } },
  { name: 'FAIRNESS_MAX_CONCURRENT', help: 'default 0 (QPS mode)', set: (c, v, n) => { c.fairness.maxConcurrent = int(v, n, 0); } },
  { name: 'FAIRNESS_MAX_QPS', help: 'default 100', set: (c, v, n) => { c.fairness.maxQps = int(v, n, 1); } },
  { name: 'FAIRNESS_PRIORITY_REFRESH_RETRIES', help: 'default 0', set: (c, v, n) => { c.fairness.priorityRefreshRetries = int(v, n, 0); } },
  { name: 'FAIRNESS_REBUILD_THRESHOLD', help: 'default 64', set: (c, v, n) => { c.fairness.rebuildThreshold = int(v, n, 1); } },
  { name: 'FAIRNESS_PRIORITY_TOKEN_WEIGHT', help: 'default 1.0', set: (c, v, n) => { c.fairness.priorityTokenWeight = float(v, n, 0); } },
  { name: 'FAIRNESS_PRIORITY_REQUEST_NUM_WEIGHT', help: 'default 0.0', set: (c, v, n) => { c.fairness.priorityRequestNumWeight = float(v, n, 0); } },
  // Kthena's session boost: the chart sets ENABLE_SESSION_BOOST, some Kthena versions read SESSION_BOOST_ENABLED.
  { name: 'ENABLE_SESSION_BOOST', help: 'Kthena\'s session-boost queue (docs/traffic-policy.md); exclusive with ENABLE_FAIRNESS_SCHEDULING', set: (c, v, n) => { c.sessionBoost.enabled = parseBool(v, n); } },
  { name: 'SESSION_BOOST_ENABLED', help: 'the same as ENABLE_SESSION_BOOST', set: (c, v, n) => { c.sessionBoost.enabled ||= parseBool(v, n); } },
  {
    name: 'SESSION_BOOST_HEADER', help: 'default X-Session-ID', set: (c, v, n) => {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v)) throw invalid(`${n}: expected an HTTP header name, got "${v}"`);
      c.sessionBoost.header = v;
    },
  },
  { name: 'SESSION_BOOST_MAX_SESSIONS', help: 'default 4096', set: (c, v, n) => { c.sessionBoost.maxSessions = int(v, n, 1); } },
  { name: 'SESSION_BOOST_INFLIGHT_PER_POD', help: 'default 16 (0: the default)', set: (c, v, n) => { c.sessionBoost.inflightPerPod = int(v, n, 0) || 16; } },
  { name: 'SESSION_BOOST_GRACE_PERIOD', help: 'default 0s', set: (c, v, n) => { c.sessionBoost.gracePeriodMs = duration(v, n, 0); } },
  { name: 'SESSION_BOOST_TIMEOUT', help: 'default 30s; 0s or less disables the timeout', set: (c, v, n) => { c.sessionBoost.timeoutMs = duration(v, n); } },
  { name: 'SESSION_BOOST_TTL', help: 'default 60s', set: (c, v, n) => { c.sessionBoost.ttlMs = duration(v, n, 1); } },
  { name: 'SESSION_BOOST_POLL_INTERVAL', help: 'default 100ms', set: (c, v, n) => { c.sessionBoost.pollIntervalMs = duration(v, n, 1); } },
  // The egress proxy of ExternalModelProvider calls, read as Go's http.ProxyFromEnvironment reads it
  // (upper case first; a URL without a scheme is http://).
  { name: 'HTTPS_PROXY', help: 'proxy (http:// or https:// URL) for ExternalModelProvider calls', set: (c, v, n) => { c.providerProxy.url = proxyUrl(v, n); } },
  { name: 'https_proxy', help: 'the same as HTTPS_PROXY (which wins)', set: (c, v, n) => { if (c.providerProxy.url === '') c.providerProxy.url = proxyUrl(v, n); } },
  { name: 'NO_PROXY', help: 'hosts ExternalModelProvider calls reach without the proxy (comma-separated names, domains, IPs, *)', set: (c, v) => { c.providerProxy.noProxy = v; } },
  { name: 'no_proxy', help: 'the same as NO_PROXY (which wins)', set: (c, v) => { if (c.providerProxy.noProxy === '') c.providerProxy.noProxy = v; } },
];

function proxyUrl(v: string, name: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `http://${v}`;
  let u: URL;
  try { u = new URL(withScheme); } catch { throw invalid(`${name}: not a URL`); }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') throw invalid(`${name}: expected an http:// or https:// proxy URL`);
  return withScheme;
}

/**
 * Kthena features this router does not have yet. Switching one on is refused at start (exit 2)
 * rather than ignored: a user who turned fairness on expects fair queuing, and silently getting
 * none is worse than a clear refusal. Their settings are parsed and validated above all the same,
 * so whoever builds a feature deletes its row here and reads cfg.fairness / cfg.sessionBoost.
 */
export const UNBUILT_FEATURES: readonly { feature: string; switch: string; on: (cfg: RouterConfig) => boolean }[] = [];

function refuseUnbuiltFeatures(cfg: RouterConfig): void {
  // Kthena exits at start when both are on: they are two strategies of one queue.
  if (cfg.fairness.enabled && cfg.sessionBoost.enabled) {
    throw invalid('ENABLE_FAIRNESS_SCHEDULING and ENABLE_SESSION_BOOST are mutually exclusive (both order the same per-model queue): switch one off');
  }
  const on = UNBUILT_FEATURES.filter((f) => f.on(cfg));
  if (on.length === 0) return;
  throw invalid(on.map((f) => `${f.feature} is not implemented by this router yet (switched on by ${f.switch}): unset it or set it to false`).join('; ') + ' (see docs/compat.md)');
}

/** klog verbosity onto pino levels: klog's V(4) is Kubernetes' debug level, V(5) and up trace. */
export function levelForVerbosity(v: number): LogLevel {
  return v >= 5 ? 'trace' : v >= 4 ? 'debug' : 'info';
}

/** Parses argv (after the command) and the environment into a frozen config, or throws RTR_ERR_CONFIG_INVALID. */
export function loadConfig(command: RouterConfig['command'], argv: readonly string[], env: Env = process.env): Readonly<RouterConfig> {
  const cfg = defaultConfig();
  cfg.command = command;
  parseArgv(cfg, argv);
  for (const e of ENV) {
    const v = env[e.name];
    if (v !== undefined && v !== '') e.set(cfg, v, e.name);
  }

  if (cfg.klogVerbosity >= 0) cfg.logLevel = levelForVerbosity(cfg.klogVerbosity);
  // klog: files only with --logtostderr=false; --log_file wins over --log_dir.
  const file = cfg.logToStderr ? '' : cfg.logFile !== '' ? cfg.logFile : cfg.logDir !== '' ? `${cfg.logDir.replace(/\/+$/, '')}/kthena-router.log` : '';
  cfg.appLog = { file, alsoStderr: file !== '' && cfg.alsoLogToStderr };

  if (cfg.lmcachePorts.init.length !== cfg.lmcachePorts.alloc.length) throw invalid(`LMCACHE_PD_INIT_PORTS and LMCACHE_PD_ALLOC_PORTS must list the same number of ports (one per rank), got ${cfg.lmcachePorts.init.length} and ${cfg.lmcachePorts.alloc.length}`);
  if ((cfg.tlsCert === '') !== (cfg.tlsKey === '')) throw invalid('--tls-cert and --tls-key must be set together');
  if (cfg.enableGatewayApiInferenceExtension && !cfg.enableGatewayApi) throw invalid('--enable-gateway-api-inference-extension requires --enable-gateway-api');
  if (cfg.kubeconfig !== '' && cfg.configDir !== '') throw invalid('--config DIR (file mode) and --kubeconfig FILE (Kubernetes mode) exclude each other');
  cfg.inCluster = command === 'serve' && cfg.kubeconfig === '' && cfg.configDir === '' && (env.KUBERNETES_SERVICE_HOST ?? '') !== '';
  const kubernetes = cfg.kubeconfig !== '' || cfg.inCluster;
  if (command === 'serve' && !kubernetes && cfg.configDir === '') throw invalid('--config DIR is required (a directory of ModelRoute, ModelServer and Pod manifests), or --kubeconfig FILE for Kubernetes mode');
  const ports = [cfg.port, cfg.metricsPort, cfg.debugPort].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length) throw invalid(`--port, --metrics-port and --debug-port must differ (got ${cfg.port}, ${cfg.metricsPort}, ${cfg.debugPort})`);
  refuseUnbuiltFeatures(cfg);
  return deepFreeze(cfg);
}

export function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

/** The configuration as logged and dumped: secrets replaced by "***". */
export function redactedConfig(cfg: Readonly<RouterConfig>): object {
  const proxy = cfg.providerProxy.url;
  let url = proxy;
  if (proxy !== '') {
    const u = new URL(proxy);
    if (u.username !== '' || u.password !== '') { u.username = '***'; u.password = ''; url = u.toString(); }
  }
  return { ...cfg, redis: { ...cfg.redis, password: cfg.redis.password === '' ? '' : '***' }, providerProxy: { ...cfg.providerProxy, url } };
}
