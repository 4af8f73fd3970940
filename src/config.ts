/**
 * Flags and environment, validated once and deep-frozen. Nothing else reads process.env or argv:
 * every setting reaches the workers through this object (workerData), so a worker and the control
 * thread can never disagree.
 */
import os from 'node:os';
import { RouterError } from './errors.js';
import { parseDurationMs } from './resources/validate.js';

export interface AccessLogConfig {
  enabled: boolean;
  format: 'text' | 'json';
  /** 'stdout' | 'stderr' | a file path (appended). */
  output: string;
}

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
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Enables POST /debug/fault/* on the debug port (tests, chaos drills). */
  faultInjection: boolean;
  /** Per-endpoint undici pool size in each worker. */
  upstreamConnections: number;
  webhookPort: number;
  webhookTlsCertFile: string;
  webhookTlsPrivateKeyFile: string;
  certSecretName: string;
  webhookServiceName: string;
  kubeApiQps: number;
  kubeApiBurst: number;
  /** Redis for kvcache-aware (REDIS_HOST/REDIS_PORT/REDIS_PASSWORD; Kthena's default redis-server:6379). */
  redis: { host: string; port: number; password: string };
  /**
   * LMCache PD receiver ports of decode pods (LMCACHE_PD_INIT_PORTS / LMCACHE_PD_ALLOC_PORTS, one per
   * tensor-parallel rank; LMCache's examples use 7300 and 7400), sent in `disagg_spec`.
   */
  lmcachePorts: { init: number[]; alloc: number[] };
  /** Entries of the shared prefix-cache index (PREFIX_CACHE_INDEX_ENTRIES); fixed at start. */
  prefixIndexEntries: number;
  /** Global rate limits while their Redis cannot answer: refuse (429) instead of allowing. */
  rateLimitFailClosed: boolean;
}

interface FlagSpec {
  key: keyof RouterConfig;
  type: 'int' | 'bool' | 'string' | 'bytes';
  min?: number;
  max?: number;
  help: string;
}

/** Kthena's flags first, then ours. */
export const FLAGS: Record<string, FlagSpec> = {
  port: { key: 'port', type: 'int', min: 1, max: 65535, help: 'inference port / default Gateway listener port (default 8080)' },
  'metrics-port': { key: 'metricsPort', type: 'int', min: 0, max: 65535, help: 'Prometheus /metrics port (default 9090; 0 disables)' },
  'debug-port': { key: 'debugPort', type: 'int', min: 0, max: 65535, help: 'debug server port on 127.0.0.1 (default 15000; 0 disables)' },
  'tls-cert': { key: 'tlsCert', type: 'string', help: 'TLS certificate file for the router port (with --tls-key)' },
  'tls-key': { key: 'tlsKey', type: 'string', help: 'TLS private key file for the router port (with --tls-cert)' },
  'enable-gateway-api': { key: 'enableGatewayApi', type: 'bool', help: 'route by Gateway API resources: Gateways (one listening port each listener port), HTTPRoutes, ModelRoute parentRefs' },
  'enable-gateway-api-inference-extension': { key: 'enableGatewayApiInferenceExtension', type: 'bool', help: 'route HTTPRoute backends to InferencePools (needs --enable-gateway-api)' },
  'enable-webhook': { key: 'enableWebhook', type: 'bool', help: 'validating webhook (Kubernetes mode only; ignored in file mode)' },
  'expose-metrics-on-router-port': { key: 'exposeMetricsOnRouterPort', type: 'bool', help: 'also answer GET /metrics on the router port' },
  config: { key: 'configDir', type: 'string', help: 'directory of manifests to serve (file mode), watched for changes' },
  'router-config': { key: 'routerConfigFile', type: 'string', help: "Kthena routerConfiguration YAML (scheduler plugins), hot reloaded; default: Kthena's Helm default profile" },
  workers: { key: 'workers', type: 'int', min: 1, max: 256, help: 'worker threads (default: number of cores)' },
  host: { key: 'host', type: 'string', help: 'address the router port binds (default 0.0.0.0)' },
  kubeconfig: { key: 'kubeconfig', type: 'string', help: 'Kubernetes mode: watch the API server of this kubeconfig (in a pod without --config: the service account)' },
  'max-body-bytes': { key: 'maxBodyBytes', type: 'bytes', min: 1024, max: 1 << 30, help: 'largest accepted request body (default 32Mi)' },
  // Kthena's Kubernetes-mode flags, accepted so that Kthena's Helm chart starts this image; they
  // take effect with Kubernetes mode and are ignored (logged at start) in file mode.
  'webhook-port': { key: 'webhookPort', type: 'int', min: 1, max: 65535, help: 'validating webhook port (Kubernetes mode; default 8443)' },
  'webhook-tls-cert-file': { key: 'webhookTlsCertFile', type: 'string', help: 'webhook certificate (Kubernetes mode)' },
  'webhook-tls-private-key-file': { key: 'webhookTlsPrivateKeyFile', type: 'string', help: 'webhook private key (Kubernetes mode)' },
  'cert-secret-name': { key: 'certSecretName', type: 'string', help: 'Secret holding webhook certificates (Kubernetes mode)' },
  'webhook-service-name': { key: 'webhookServiceName', type: 'string', help: 'webhook Service name (Kubernetes mode)' },
  'kube-api-qps': { key: 'kubeApiQps', type: 'int', min: 0, max: 100000, help: 'Kubernetes client QPS (Kubernetes mode; 0 = default)' },
  'kube-api-burst': { key: 'kubeApiBurst', type: 'int', min: 0, max: 100000, help: 'Kubernetes client burst (Kubernetes mode; 0 = default)' },
  'rate-limit-fail-closed': { key: 'rateLimitFailClosed', type: 'bool', help: 'refuse (429) requests on routes with a global (Redis) rate limit while that Redis cannot answer (default: allow them, logged and counted)' },
  'upstream-connections': { key: 'upstreamConnections', type: 'int', min: 1, max: 4096, help: 'keep-alive connections per endpoint per worker (default 128)' },
};

export function defaultConfig(): RouterConfig {
  return {
    command: 'serve',
    configDir: '',
    routerConfigFile: '',
    host: '0.0.0.0',
    port: 8080,
    metricsPort: 9090,
    debugPort: 15000,
    workers: Math.max(1, os.availableParallelism()),
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
    faultInjection: false,
    upstreamConnections: 128,
    webhookPort: 8443,
    webhookTlsCertFile: '/etc/tls/tls.crt',
    webhookTlsPrivateKeyFile: '/etc/tls/tls.key',
    certSecretName: 'kthena-router-webhook-certs',
    webhookServiceName: 'kthena-router-webhook',
    kubeApiQps: 0,
    kubeApiBurst: 0,
    redis: { host: 'redis-server', port: 6379, password: '' },
    lmcachePorts: { init: [7300], alloc: [7400] },
    rateLimitFailClosed: false,
    prefixIndexEntries: 262_144,
  };
}

function invalid(msg: string): RouterError {
  return new RouterError('RTR_ERR_CONFIG_INVALID', msg);
}

function parseBool(v: string, name: string): boolean {
  const s = v.toLowerCase();
  if (s === 'true' || s === '1' || s === 't') return true;
  if (s === 'false' || s === '0' || s === 'f') return false;
  throw invalid(`${name}: expected true or false, got "${v}"`);
}

function parseBytes(v: string, name: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(v.trim());
  if (!m) throw invalid(`${name}: expected a byte size like 1048576, 512Ki or 32Mi, got "${v}"`);
  const mult: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * mult[m[2] ?? ''];
}

function parseDurationEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const ms = parseDurationMs(v);
  if (ms === null || ms < min) throw invalid(`${name}: expected a duration like 500ms, 3s or 5m${min ? ` of at least ${min}ms` : ''}, got "${v}"`);
  return ms;
}

/** Parses argv (after the command) and the environment into a frozen config, or throws RTR_ERR_CONFIG_INVALID. */
export function loadConfig(command: RouterConfig['command'], argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Readonly<RouterConfig> {
  const cfg = defaultConfig();
  cfg.command = command;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw invalid(`unexpected argument "${arg}"`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    const spec = FLAGS[name];
    if (!spec) throw invalid(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (spec.type === 'bool' && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) value = 'true';
      else if (i + 1 < argv.length) value = argv[++i];
      else throw invalid(`--${name} needs a value`);
    }
    const target = cfg as unknown as Record<string, unknown>;
    switch (spec.type) {
      case 'bool': target[spec.key] = parseBool(value, `--${name}`); break;
      case 'string': target[spec.key] = value; break;
      case 'bytes':
      case 'int': {
        const n = spec.type === 'bytes' ? parseBytes(value, `--${name}`) : Number(value);
        if (!Number.isInteger(n) || (spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
          throw invalid(`--${name}: expected an integer in [${spec.min}, ${spec.max}], got "${value}"`);
        }
        target[spec.key] = n;
        break;
      }
    }
  }

  cfg.drainTimeoutMs = parseDurationEnv(env, 'DRAIN_TIMEOUT', cfg.drainTimeoutMs);
  cfg.scrapeIntervalMs = parseDurationEnv(env, 'METRICS_SCRAPE_INTERVAL', cfg.scrapeIntervalMs, 50);
  if (env.POD_NAMESPACE) cfg.podNamespace = env.POD_NAMESPACE;
  if (env.ACCESS_LOG_ENABLED !== undefined && env.ACCESS_LOG_ENABLED !== '') cfg.accessLog.enabled = parseBool(env.ACCESS_LOG_ENABLED, 'ACCESS_LOG_ENABLED');
  if (env.ACCESS_LOG_FORMAT) {
    const f = env.ACCESS_LOG_FORMAT.toLowerCase();
    if (f !== 'text' && f !== 'json') throw invalid(`ACCESS_LOG_FORMAT: expected text or json, got "${env.ACCESS_LOG_FORMAT}"`);
    cfg.accessLog.format = f;
  }
  if (env.ACCESS_LOG_OUTPUT) cfg.accessLog.output = env.ACCESS_LOG_OUTPUT;
  if (env.LOG_LEVEL) {
    const l = env.LOG_LEVEL.toLowerCase();
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(l)) throw invalid(`LOG_LEVEL: unknown level "${env.LOG_LEVEL}"`);
    cfg.logLevel = l as RouterConfig['logLevel'];
  }
  if (env.REDIS_HOST) cfg.redis.host = env.REDIS_HOST;
  if (env.REDIS_PORT) {
    const p = Number(env.REDIS_PORT);
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid(`REDIS_PORT: expected a port number, got "${env.REDIS_PORT}"`);
    cfg.redis.port = p;
  }
  if (env.REDIS_PASSWORD) cfg.redis.password = env.REDIS_PASSWORD;
  const portList = (name: 'LMCACHE_PD_INIT_PORTS' | 'LMCACHE_PD_ALLOC_PORTS'): number[] | null => {
    const v = env[name];
    if (!v) return null;
    const ports = v.split(',').map((x) => Number(x.trim()));
    if (ports.length > 64 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw invalid(`${name}: expected comma-separated port numbers (one per tensor-parallel rank), got "${v}"`);
    return ports;
  };
  cfg.lmcachePorts = { init: portList('LMCACHE_PD_INIT_PORTS') ?? cfg.lmcachePorts.init, alloc: portList('LMCACHE_PD_ALLOC_PORTS') ?? cfg.lmcachePorts.alloc };
  if (cfg.lmcachePorts.init.length !== cfg.lmcachePorts.alloc.length) throw invalid(`LMCACHE_PD_INIT_PORTS and LMCACHE_PD_ALLOC_PORTS must list the same number of ports (one per rank), got ${cfg.lmcachePorts.init.length} and ${cfg.lmcachePorts.alloc.length}`);
  if (env.PREFIX_CACHE_INDEX_ENTRIES) {
    const n = Number(env.PREFIX_CACHE_INDEX_ENTRIES);
    if (!Number.isInteger(n) || n < 1024 || n > 16_777_216) throw invalid(`PREFIX_CACHE_INDEX_ENTRIES: expected an integer in [1024, 16777216], got "${env.PREFIX_CACHE_INDEX_ENTRIES}"`);
    cfg.prefixIndexEntries = n;
  }
  if (env.KTHENA_ROUTER_FAULT_INJECTION) cfg.faultInjection = parseBool(env.KTHENA_ROUTER_FAULT_INJECTION, 'KTHENA_ROUTER_FAULT_INJECTION');

  if ((cfg.tlsCert === '') !== (cfg.tlsKey === '')) throw invalid('--tls-cert and --tls-key must be set together');
  if (cfg.enableGatewayApiInferenceExtension && !cfg.enableGatewayApi) throw invalid('--enable-gateway-api-inference-extension requires --enable-gateway-api');
  if (cfg.kubeconfig !== '' && cfg.configDir !== '') throw invalid('--config DIR (file mode) and --kubeconfig FILE (Kubernetes mode) exclude each other');
  cfg.inCluster = command === 'serve' && cfg.kubeconfig === '' && cfg.configDir === '' && (env.KUBERNETES_SERVICE_HOST ?? '') !== '';
  const kubernetes = cfg.kubeconfig !== '' || cfg.inCluster;
  if (command === 'serve' && !kubernetes && cfg.configDir === '') throw invalid('--config DIR is required (a directory of ModelRoute, ModelServer and Pod manifests), or --kubeconfig FILE for Kubernetes mode');
  const ports = [cfg.port, cfg.metricsPort, cfg.debugPort].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length) throw invalid(`--port, --metrics-port and --debug-port must differ (got ${cfg.port}, ${cfg.metricsPort}, ${cfg.debugPort})`);
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
  return { ...cfg, redis: { ...cfg.redis, password: cfg.redis.password === '' ? '' : '***' } };
}
