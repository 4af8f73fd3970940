/**
 * `kthena-router sim`: starts simulated engine pods on consecutive loopback addresses (or from a
 * fleet file such as examples/demo-fleet.json) and prints where they listen, so a router, curl or
 * a benchmark can be pointed at them by hand.
 *
 * Fleet file: `{"pods": [SimPodSpec, ...]}` or a bare array, optionally with fleet-wide
 * `"timeScale"`, `"reportTiming"` and `"podDefaults"` (any SimPodSpec fields, e.g. a `model`)
 * applied to every pod that does not set them itself.
 */

import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { parseArgs } from 'node:util';

import { startSimulatedPods, validateSimPodSpec } from './engine.js';
import { MODEL_DEFAULTS } from './model.js';
import type { SimEngine, SimFleet, SimModelSpec, SimPodSpec, SimRole } from './types.js';

export const SIM_USAGE = `Usage: kthena-router sim [options]

Starts simulated vLLM/SGLang engine pods on loopback addresses until interrupted.

  --pods N            number of pods (default 3)
  --base-ip IP        address of the first pod; the next ones count up (default 127.0.0.11)
  --port P            port every pod listens on (default 8000)
  --model NAME        base model served (default deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B)
  --lora A,B          LoRA adapters listed by /v1/models and accepted as a model
  --engine E          vLLM or SGLang (default vLLM); selects /metrics names
  --name-prefix P     pod names are P-0, P-1, ... (default sim-pod)
  --ttft-ms MS        fixed mode: time to first token (default 20)
  --itl-ms MS         fixed mode: time between tokens (default 5)
  --output-tokens N   tokens per completion (default 16; model mode: when a request sets no max_tokens)
  --role R            prefill, decode or both (default both): PD protocol of the engine
  --prefill-pods N    the first N pods are prefill pods, the others decode pods
  --bootstrap-timeout-ms MS  SGLang decode leg's wait for its prefill (default 30000)
  --kv-events-redis URL      publish KV blocks to Redis as Kthena's runtime sidecar does
  --namespace NS      namespace in the KV-event owner field (default default)
  --time-scale X      simulated ms per wall ms, >= 1 (default 1); also applies to --fleet pods
  --report-timing     report simulated times (sim_t, sim_timing, x-sim-time-scale); also applies to --fleet pods

Engine model (any of these turns it on; defaults resemble a 7B model on one 80 GB GPU):
  --mode M            fixed (default: constant delays) or model (continuous batching, prefix cache)
  --kv-cache-tokens N KV capacity in tokens (model default ${MODEL_DEFAULTS.kvCacheTokens})
  --step-ms MS        a: fixed cost per engine step (default ${MODEL_DEFAULTS.stepMs})
  --prefill-ms-per-token MS  b: per uncached prompt token (default ${MODEL_DEFAULTS.prefillMsPerToken})
  --decode-ms-per-seq MS     c: per decoding sequence (default ${MODEL_DEFAULTS.decodeMsPerSeq})
  --decode-ms-per-kcontext-token MS  d: per 1000 context tokens of decoding sequences (default 0)
  --max-num-seqs N    (default ${MODEL_DEFAULTS.maxNumSeqs})
  --max-num-batched-tokens N (default ${MODEL_DEFAULTS.maxNumBatchedTokens})
  --block-size N      tokens per KV block (default ${MODEL_DEFAULTS.blockSize})
  --max-model-len N   (default ${MODEL_DEFAULTS.maxModelLen})
  --max-loras N       adapters per batch and resident (default ${MODEL_DEFAULTS.maxLoras})
  --lora-load-ms MS   cost of loading an adapter that is not resident (default ${MODEL_DEFAULTS.loraLoadMs})
  --kv-transfer-ms-per-ktoken MS  PD decode: KV transfer per 1000 prompt tokens (default ${MODEL_DEFAULTS.kvTransferMsPerKToken})
  --no-prefix-caching, --no-chunked-prefill

  --fleet FILE        JSON fleet file ({"pods":[...]}, as examples/demo-fleet.json; optional
                      "timeScale", "reportTiming", "podDefaults"); other pod options are ignored
  --json              print the fleet as JSON instead of a table
  -h, --help          this text
`;

export interface SimCommandIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Close the fleet and exit on SIGINT/SIGTERM. Default true; tests turn it off. */
  handleSignals?: boolean;
}

function nextIp(base: string, offset: number): string {
  const parts = base.split('.').map(Number);
  let n = ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3] + offset;
  if (n > 0xffffffff) throw new TypeError(`--base-ip ${base} + ${offset} overflows IPv4`);
  const out = [];
  for (let i = 0; i < 4; i++) {
    out.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return out.join('.');
}

function intOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (name !== 'ttft-ms' && name !== 'itl-ms' && !Number.isInteger(n))) {
    throw new TypeError(`--${name} must be a number >= ${min}, got "${v}"`);
  }
  return n;
}

function numberOption(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new TypeError(`--${name} must be a number >= ${min}, got "${v}"`);
  return n;
}

const FLEET_KEYS: ReadonlySet<string> = new Set(['pods', 'timeScale', 'reportTiming', 'podDefaults']);

/** Reads a fleet file: `{"pods": [SimPodSpec, ...], timeScale?, reportTiming?, podDefaults?}` or a bare array of specs. */
export async function loadFleetFile(file: string): Promise<SimPodSpec[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    // A TypeError, like every other bad-argument failure, so the CLI reports it as a usage error.
    throw new TypeError(`cannot read fleet file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const pods = Array.isArray(parsed) ? parsed : (parsed as { pods?: unknown } | null)?.pods;
  if (!Array.isArray(pods) || pods.length === 0) {
    throw new TypeError(`fleet file ${file} must hold {"pods": [...]} with at least one pod`);
  }
  let defaults: Record<string, unknown> = {};
  if (!Array.isArray(parsed)) {
    const f = parsed as Record<string, unknown>;
    for (const k of Object.keys(f)) if (!FLEET_KEYS.has(k)) throw new TypeError(`fleet file ${file}: unknown field "${k}"`);
    if (f.podDefaults !== undefined) {
      if (f.podDefaults === null || typeof f.podDefaults !== 'object' || Array.isArray(f.podDefaults)) {
        throw new TypeError(`fleet file ${file}: podDefaults must be an object`);
      }
      defaults = { ...(f.podDefaults as Record<string, unknown>) };
    }
    if (f.timeScale !== undefined) defaults.timeScale ??= f.timeScale;
    if (f.reportTiming !== undefined) defaults.reportTiming ??= f.reportTiming;
  }
  return pods.map((p, i) => {
    const spec = p !== null && typeof p === 'object' && !Array.isArray(p) ? { ...defaults, ...(p as object) } : p;
    return validateSimPodSpec(spec, `${file}: pods[${i}]`);
  });
}

const MODEL_FLAGS = {
  'step-ms': 'stepMs',
  'prefill-ms-per-token': 'prefillMsPerToken',
  'decode-ms-per-seq': 'decodeMsPerSeq',
  'decode-ms-per-kcontext-token': 'decodeMsPerKContextToken',
  'lora-load-ms': 'loraLoadMs',
  'kv-transfer-ms-per-ktoken': 'kvTransferMsPerKToken',
} as const;
const MODEL_INT_FLAGS = {
  'max-num-seqs': 'maxNumSeqs',
  'max-num-batched-tokens': 'maxNumBatchedTokens',
  'block-size': 'blockSize',
  'max-model-len': 'maxModelLen',
} as const;

/** Turns command-line arguments into pod specs (reading --fleet when given). */
export async function simSpecsFromArgs(argv: string[]): Promise<{ specs: SimPodSpec[]; json: boolean; help: boolean }> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      pods: { type: 'string' },
      'base-ip': { type: 'string' },
      port: { type: 'string' },
      model: { type: 'string' },
      lora: { type: 'string' },
      engine: { type: 'string' },
      'name-prefix': { type: 'string' },
      'ttft-ms': { type: 'string' },
      'itl-ms': { type: 'string' },
      'output-tokens': { type: 'string' },
      role: { type: 'string' },
      'prefill-pods': { type: 'string' },
      'bootstrap-timeout-ms': { type: 'string' },
      'kv-events-redis': { type: 'string' },
      namespace: { type: 'string' },
      'time-scale': { type: 'string' },
      'report-timing': { type: 'boolean', default: false },
      mode: { type: 'string' },
      'kv-cache-tokens': { type: 'string' },
      ...Object.fromEntries(Object.keys(MODEL_FLAGS).map((k) => [k, { type: 'string' as const }])),
      ...Object.fromEntries(Object.keys(MODEL_INT_FLAGS).map((k) => [k, { type: 'string' as const }])),
      'max-loras': { type: 'string' },
      'no-prefix-caching': { type: 'boolean', default: false },
      'no-chunked-prefill': { type: 'boolean', default: false },
      fleet: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const json = values.json === true;
  if (values.help) return { specs: [], json, help: true };
  const str = (k: string): string | undefined => (values as Record<string, string | boolean | undefined>)[k] as string | undefined;
  const timeScale = numberOption('time-scale', values['time-scale'], 1);
  const reportTiming = values['report-timing'] === true ? true : undefined;
  if (values.fleet !== undefined) {
    const specs = await loadFleetFile(values.fleet);
    for (const s of specs) {
      if (timeScale !== undefined) s.timeScale = timeScale;
      if (reportTiming !== undefined) s.reportTiming = reportTiming;
    }
    return { specs, json, help: false };
  }

  const count = intOption('pods', values.pods, 1) ?? 3;
  const baseIp = values['base-ip'] ?? '127.0.0.11';
  if (!isIPv4(baseIp)) throw new TypeError(`--base-ip must be an IPv4 address, got "${baseIp}"`);
  const port = intOption('port', values.port, 0) ?? 8000;
  if (port > 65535) throw new TypeError(`--port must be <= 65535, got ${port}`);
  const engine = values.engine ?? 'vLLM';
  if (engine !== 'vLLM' && engine !== 'SGLang') throw new TypeError(`--engine must be vLLM or SGLang, got "${engine}"`);
  const model = values.model ?? 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B';
  const lora = (values.lora ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const prefix = values['name-prefix'] ?? 'sim-pod';
  const ttftMs = intOption('ttft-ms', values['ttft-ms'], 0);
  const itlMs = intOption('itl-ms', values['itl-ms'], 0);
  const outputTokens = intOption('output-tokens', values['output-tokens'], 1);
  const role = values.role;
  if (role !== undefined && role !== 'prefill' && role !== 'decode' && role !== 'both') {
    throw new TypeError(`--role must be prefill, decode or both, got "${role}"`);
  }
  const prefillPods = intOption('prefill-pods', values['prefill-pods'], 0);
  if (prefillPods !== undefined && role !== undefined) throw new TypeError('--prefill-pods and --role cannot be combined');
  if (prefillPods !== undefined && prefillPods > count) throw new TypeError(`--prefill-pods (${prefillPods}) exceeds --pods (${count})`);
  const bootstrapTimeoutMs = numberOption('bootstrap-timeout-ms', values['bootstrap-timeout-ms'], 0);
  const kvCacheTokens = intOption('kv-cache-tokens', values['kv-cache-tokens'], 1);
  const redis = values['kv-events-redis'];
  const namespace = values.namespace ?? 'default';

  const modelSpec: SimModelSpec = {};
  for (const [flag, field] of Object.entries(MODEL_FLAGS)) {
    const v = numberOption(flag, str(flag), 0);
    if (v !== undefined) modelSpec[field] = v;
  }
  for (const [flag, field] of Object.entries(MODEL_INT_FLAGS)) {
    const v = intOption(flag, str(flag), 1);
    if (v !== undefined) modelSpec[field] = v;
  }
  const maxLoras = intOption('max-loras', values['max-loras'], 0);
  if (maxLoras !== undefined) modelSpec.maxLoras = maxLoras;
  if (values['no-prefix-caching']) modelSpec.prefixCaching = false;
  if (values['no-chunked-prefill']) modelSpec.chunkedPrefill = false;
  const mode = values.mode;
  if (mode !== undefined && mode !== 'fixed' && mode !== 'model') throw new TypeError(`--mode must be fixed or model, got "${mode}"`);
  const modelFlags = Object.keys(modelSpec).length > 0;
  if (mode === 'fixed' && modelFlags) throw new TypeError('engine model options need --mode model');
  const useModel = mode === 'model' || modelFlags;

  const specs: SimPodSpec[] = [];
  for (let i = 0; i < count; i++) {
    const spec: SimPodSpec = { name: `${prefix}-${i}`, ip: nextIp(baseIp, i), port, models: [model, ...lora], engine: engine as SimEngine };
    if (ttftMs !== undefined) spec.ttftMs = ttftMs;
    if (itlMs !== undefined) spec.itlMs = itlMs;
    if (outputTokens !== undefined) spec.outputTokens = outputTokens;
    if (role !== undefined) spec.role = role as SimRole;
    if (prefillPods !== undefined) spec.role = i < prefillPods ? 'prefill' : 'decode';
    if (bootstrapTimeoutMs !== undefined) spec.bootstrapTimeoutMs = bootstrapTimeoutMs;
    if (kvCacheTokens !== undefined) spec.kvCacheTokens = kvCacheTokens;
    if (timeScale !== undefined) spec.timeScale = timeScale;
    if (reportTiming !== undefined) spec.reportTiming = reportTiming;
    if (useModel) spec.model = { ...modelSpec };
    if (redis !== undefined) spec.kvEvents = { redisUrl: redis, namespace };
    specs.push(validateSimPodSpec(spec, `pod ${i}`));
  }
  return { specs, json, help: false };
}

export function describeFleet(fleet: SimFleet): string {
  const rows = fleet.pods.map((p) => [p.name, `${p.ip}:${p.port}`, p.engine, p.mode, p.role, String(p.timeScale), p.models.join(', ')]);
  const head = ['POD', 'ADDRESS', 'ENGINE', 'MODE', 'ROLE', 'SCALE', 'MODELS (base first)'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [fmt(head), ...rows.map(fmt)].join('\n') + '\n';
}

/**
 * Runs `kthena-router sim ARGV`: starts the fleet, prints it, and (unless `io.handleSignals` is
 * false) closes it and exits on SIGINT/SIGTERM. Resolves with the running fleet, or null after
 * printing help. Bad arguments reject with a TypeError whose message is meant for the user.
 */
export async function runSimCommand(
  argv: string[],
  io: SimCommandIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<SimFleet | null> {
  const { specs, json, help } = await simSpecsFromArgs(argv);
  if (help) {
    io.stdout.write(SIM_USAGE);
    return null;
  }
  const fleet = await startSimulatedPods(specs);
  if (json) {
    const out = fleet.pods.map((p) => ({
      name: p.name,
      ip: p.ip,
      port: p.port,
      engine: p.engine,
      mode: p.mode,
      role: p.role,
      timeScale: p.timeScale,
      models: p.models,
    }));
    io.stdout.write(JSON.stringify({ pods: out }, null, 2) + '\n');
  } else {
    io.stdout.write(describeFleet(fleet));
    const first = fleet.pods[0];
    io.stdout.write(
      `\ntry: curl -s ${first.url}/v1/chat/completions -H 'content-type: application/json' ` +
        `-d '{"model":"${first.models[0]}","messages":[{"role":"user","content":"hi"}]}'\n`,
    );
  }
  if (io.handleSignals !== false) {
    const stop = (signal: NodeJS.Signals) => {
      io.stderr.write(`sim: ${signal}, closing ${fleet.pods.length} pods\n`);
      fleet.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  return fleet;
}
