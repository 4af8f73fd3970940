/**
 * src/config.ts: Kthena's command line (pflag + klog) and environment, parsed and validated once.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ENV, FLAGS, UNBUILT_FEATURES, defaultWorkers, levelForVerbosity, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';

const FILE = ['--config', '/m'];
const load = (argv: string[], env: Record<string, string> = {}) => loadConfig('serve', [...FILE, ...argv], env);
const error = (argv: string[], env: Record<string, string> = {}): string => {
  try {
    load(argv, env);
  } catch (err) {
    expect((err as { code: string }).code).toBe('RTR_ERR_CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
};

describe('flags parse as pflag parses them', () => {
  it('--name=value and --name value give the same result for every non-boolean flag type', () => {
    expect(load(['--port=8081', '--webhook-service-name=svc', '--max-body-bytes=1Mi', '--kube-api-qps=2.5'])).toMatchObject({ port: 8081, webhookServiceName: 'svc', maxBodyBytes: 1 << 20, kubeApiQps: 2.5 });
    expect(load(['--port', '8081', '--webhook-service-name', 'svc', '--max-body-bytes', '1Mi', '--kube-api-qps', '2.5'])).toMatchObject({ port: 8081, webhookServiceName: 'svc', maxBodyBytes: 1 << 20, kubeApiQps: 2.5 });
  });

  it('booleans: --flag, --flag=true|false in strconv.ParseBool spellings', () => {
    expect(load(['--enable-webhook=false', '--expose-metrics-on-router-port']).enableWebhook).toBe(false);
    expect(load(['--expose-metrics-on-router-port']).exposeMetricsOnRouterPort).toBe(true);
    for (const [v, want] of [['1', true], ['t', true], ['TRUE', true], ['True', true], ['0', false], ['F', false], ['False', false]] as const) {
      expect(load([`--enable-webhook=${v}`]).enableWebhook, v).toBe(want);
    }
    expect(error(['--enable-webhook=yes'])).toMatch(/--enable-webhook: expected true or false, got "yes"/);
  });

  it('a boolean never takes the next argument: "--flag false" is refused with the spelling that works', () => {
    expect(error(['--enable-webhook', 'false'])).toMatch(/a boolean flag takes its value after "=" \(--enable-webhook=false\)/);
    expect(error(['stray'])).toMatch(/unexpected argument "stray"/);
    expect(error(['--', 'stray'])).toMatch(/no positional arguments/);
    expect(load(['--port=8081', '--']).port).toBe(8081);
  });

  it('--kube-api-qps is a float, --kube-api-burst an integer; numbers are decimal', () => {
    expect(load(['--kube-api-qps=0.5', '--kube-api-burst=10'])).toMatchObject({ kubeApiQps: 0.5, kubeApiBurst: 10 });
    expect(load(['--kube-api-qps=1e2']).kubeApiQps).toBe(100);
    expect(error(['--kube-api-burst=2.5'])).toMatch(/--kube-api-burst: expected an integer/);
    expect(error(['--kube-api-qps=-1'])).toMatch(/--kube-api-qps: expected a number in \[0, 1000000\]/);
    expect(error(['--port=0x50'])).toMatch(/--port: expected an integer/);
    expect(error(['--port='])).toMatch(/--port: expected an integer/);
  });

  it('unknown flags, single-dash long flags and missing values are refused', () => {
    expect(error(['--bogus=1'])).toMatch(/unknown flag --bogus/);
    expect(error(['-port=8080'])).toMatch(/unknown shorthand flag "p" in -port=8080 \(long flags take two dashes: --port=8080\)/);
    expect(error(['--port'])).toMatch(/--port needs a value/);
  });
});

describe('klog flags', () => {
  it('--v, -v N, -v=N and -vN set the verbosity, mapped onto the log level (and over LOG_LEVEL)', () => {
    for (const argv of [['--v=4'], ['--v', '4'], ['-v', '4'], ['-v=4'], ['-v4']]) {
      expect(load(argv, { LOG_LEVEL: 'warn' }), argv.join(' ')).toMatchObject({ klogVerbosity: 4, logLevel: 'debug' });
    }
    expect(load([], { LOG_LEVEL: 'warn' })).toMatchObject({ klogVerbosity: -1, logLevel: 'warn' });
    expect([0, 2, 3, 4, 5, 10].map(levelForVerbosity)).toEqual(['info', 'info', 'info', 'debug', 'trace', 'trace']);
    expect(error(['--v=high'])).toMatch(/--v: expected an integer/);
  });

  it('the Go-only ones are accepted, validated, and listed as having no effect', () => {
    const cfg = load(['--vmodule=router*=4,store=2', '--stderrthreshold=WARNING', '--add_dir_header', '--skip_headers=true', '--one_output=false',
      '--log_file_max_size=1800', '--log_backtrace_at=router.go:12', '--legacy_stderr_threshold_behavior=false', '--skip_log_headers']);
    expect(cfg.noEffectFlags).toEqual(['--vmodule', '--stderrthreshold', '--add_dir_header', '--skip_headers', '--one_output', '--log_file_max_size',
      '--log_backtrace_at', '--legacy_stderr_threshold_behavior', '--skip_log_headers']);
    expect(error(['--vmodule=router'])).toMatch(/--vmodule: expected a comma-separated list of pattern=N/);
    expect(error(['--stderrthreshold=LOUD'])).toMatch(/--stderrthreshold: expected INFO, WARNING, ERROR, FATAL/);
  });

  it('--log_file/--log_dir take effect only with --logtostderr=false, as in klog', () => {
    expect(load(['--log_file=/var/log/r.log']).appLog).toEqual({ file: '', alsoStderr: false });
    expect(load(['--logtostderr=false', '--log_file=/var/log/r.log', '--log_dir=/x']).appLog).toEqual({ file: '/var/log/r.log', alsoStderr: false });
    expect(load(['--logtostderr=false', '--log_dir=/var/log/', '--alsologtostderr']).appLog).toEqual({ file: '/var/log/kthena-router.log', alsoStderr: true });
  });

  it('the application logger writes JSON lines to --log_file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'klog-file-'));
    try {
      const file = path.join(dir, 'sub', 'router.log');
      const log = createLogger('debug', load(['--logtostderr=false', `--log_file=${file}`, '--v=4']).appLog);
      log.debug({ n: 1 }, 'to the file');
      // The destination opens the file asynchronously (after creating its directory).
      let text = '';
      for (let i = 0; i < 100 && text === ''; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      }
      const line = JSON.parse(text.trim());
      expect(line).toMatchObject({ msg: 'to the file', n: 1, component: 'kthena-router', level: 20 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('environment', () => {
  it('the chart\'s variables with its default values are accepted', () => {
    const cfg = load([], {
      POD_NAMESPACE: 'kthena-system', REDIS_HOST: 'redis', REDIS_PORT: '6380', REDIS_PASSWORD: 'p', ACCESS_LOG_ENABLED: 'true', ACCESS_LOG_FORMAT: 'text',
      ACCESS_LOG_OUTPUT: 'stdout', DRAIN_TIMEOUT: '5m', ENABLE_FAIRNESS_SCHEDULING: 'false', FAIRNESS_WINDOW_SIZE: '1h', FAIRNESS_INPUT_TOKEN_WEIGHT: '1',
      FAIRNESS_OUTPUT_TOKEN_WEIGHT: '2', ENABLE_SESSION_BOOST: 'false', SESSION_BOOST_HEADER: 'X-Session-ID', SESSION_BOOST_MAX_SESSIONS: '4096',
      SESSION_BOOST_INFLIGHT_PER_POD: '16', SESSION_BOOST_GRACE_PERIOD: '0s', SESSION_BOOST_TIMEOUT: '30s',
    });
    expect(cfg).toMatchObject({ podNamespace: 'kthena-system', redis: { host: 'redis', port: 6380, password: 'p' }, drainTimeoutMs: 300_000 });
    expect(cfg.fairness).toMatchObject({ enabled: false, windowMs: 3_600_000, inputTokenWeight: 1, outputTokenWeight: 2 });
    expect(cfg.sessionBoost).toMatchObject({ enabled: false, header: 'X-Session-ID', maxSessions: 4096, inflightPerPod: 16, gracePeriodMs: 0, timeoutMs: 30_000 });
    // An empty value is unset, as Kthena's os.Getenv(x) != "" checks treat it.
    expect(load([], { REDIS_PORT: '', ENABLE_FAIRNESS_SCHEDULING: '' }).redis.port).toBe(6379);
  });

  it.each([
    [{ FAIRNESS_WINDOW_SIZE: '2h' }, /FAIRNESS_WINDOW_SIZE: expected a duration from 1m to 1h/],
    [{ FAIRNESS_INPUT_TOKEN_WEIGHT: '-1' }, /FAIRNESS_INPUT_TOKEN_WEIGHT: expected a number/],
    [{ FAIRNESS_MAX_QPS: '0' }, /FAIRNESS_MAX_QPS: expected an integer in \[1,/],
    [{ SESSION_BOOST_HEADER: 'bad header' }, /SESSION_BOOST_HEADER: expected an HTTP header name/],
    [{ SESSION_BOOST_GRACE_PERIOD: 'soon' }, /SESSION_BOOST_GRACE_PERIOD: expected a duration/],
    [{ REDIS_PORT: '70000' }, /REDIS_PORT: expected an integer in \[1, 65535\]/],
    [{ ENABLE_SESSION_BOOST: 'on' }, /ENABLE_SESSION_BOOST: expected true or false/],
  ])('an invalid value is refused, not replaced by the default: %j', (env, message) => {
    expect(error([], env)).toMatch(message);
  });

  it('fairness and session boost are each accepted, and refused together (mutually exclusive, as Kthena)', () => {
    expect(load([], { ENABLE_FAIRNESS_SCHEDULING: 'true', FAIRNESS_MAX_CONCURRENT: '4' }).fairness).toMatchObject({ enabled: true, maxConcurrent: 4 });
    expect(load([], { ENABLE_SESSION_BOOST: '1' }).sessionBoost.enabled).toBe(true);
    expect(load([], { SESSION_BOOST_ENABLED: 'true' }).sessionBoost.enabled).toBe(true);
    expect(error([], { ENABLE_FAIRNESS_SCHEDULING: 'true', ENABLE_SESSION_BOOST: 'true' })).toMatch(/^invalid configuration: ENABLE_FAIRNESS_SCHEDULING and ENABLE_SESSION_BOOST are mutually exclusive/);
    expect(UNBUILT_FEATURES).toHaveLength(0);
  });

  it('SESSION_BOOST_TIMEOUT 0s or negative disables the timeout, as in Kthena', () => {
    expect(load([], { SESSION_BOOST_TIMEOUT: '0s' }).sessionBoost.timeoutMs).toBe(0);
    expect(load([], { SESSION_BOOST_TIMEOUT: '-1s' }).sessionBoost.timeoutMs).toBe(-1000);
  });
});

describe('default worker count', () => {
  const files = (m: Record<string, string>) => (f: string): string | null => m[f] ?? null;
  it('is the CFS quota rounded up (cgroup v2, then v1), never more than the cores, at least 1', () => {
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' }), 64)).toBe(1);
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu.max': '250000 100000\n' }), 64)).toBe(3);
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu.max': '800000 100000\n' }), 4)).toBe(4);
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }), 8)).toBe(8);
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '150000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }), 16)).toBe(2);
    expect(defaultWorkers(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }), 16)).toBe(16);
    expect(defaultWorkers(files({}), 6)).toBe(6);
  });
});

describe('documentation of flags and variables', () => {
  const doc = readFileSync(path.join(import.meta.dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');
  it('every flag and every environment variable is in docs/configuration.md', () => {
    const missingFlags = Object.keys(FLAGS).filter((f) => !doc.includes(`\`--${f}`));
    const missingEnv = ENV.map((e) => e.name).filter((n) => !doc.includes(`\`${n}\``));
    expect({ missingFlags, missingEnv }).toEqual({ missingFlags: [], missingEnv: [] });
  });
});
