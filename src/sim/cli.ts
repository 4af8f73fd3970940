/**
 * `kthena-router sim`: starts simulated engine pods on consecutive loopback addresses (or from a
 * fleet file such as examples/demo-fleet.json) and prints where they listen, so a router, curl or
 * a benchmark can be pointed at them by hand.
 */

import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { parseArgs } from 'node:util';

import { startSimulatedPods, validateSimPodSpec } from './engine.js';
import type { SimEngine, SimFleet, SimPodSpec } from './types.js';

export const SIM_USAGE = `Usage: kthena-router sim [options]

Starts simulated vLLM/SGLang engine pods on loopback addresses until interrupted.

  --pods N            number of pods (default 3)
  --base-ip IP        address of the first pod; the next ones count up (default 127.0.0.11)
  --port P            port every pod listens on (default 8000)
  --model NAME        base model served (default deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B)
  --lora A,B          LoRA adapters listed by /v1/models and accepted as a model
  --engine E          vLLM or SGLang (default vLLM); selects /metrics names
  --name-prefix P     pod names are P-0, P-1, ... (default sim-pod)
  --ttft-ms MS        time to first token (default 20)
  --itl-ms MS         time between tokens (default 5)
  --output-tokens N   tokens per completion (default 16)
  --fleet FILE        JSON fleet file ({"pods":[...]}, as examples/demo-fleet.json); other pod options are ignored
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

/** Reads a fleet file: `{"pods": [SimPodSpec, ...]}` or a bare array of specs. */
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
  return pods.map((p, i) => validateSimPodSpec(p, `${file}: pods[${i}]`));
}

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
      fleet: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const json = values.json === true;
  if (values.help) return { specs: [], json, help: true };
  if (values.fleet !== undefined) return { specs: await loadFleetFile(values.fleet), json, help: false };

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

  const specs: SimPodSpec[] = [];
  for (let i = 0; i < count; i++) {
    const spec: SimPodSpec = { name: `${prefix}-${i}`, ip: nextIp(baseIp, i), port, models: [model, ...lora], engine: engine as SimEngine };
    if (ttftMs !== undefined) spec.ttftMs = ttftMs;
    if (itlMs !== undefined) spec.itlMs = itlMs;
    if (outputTokens !== undefined) spec.outputTokens = outputTokens;
    specs.push(validateSimPodSpec(spec, `pod ${i}`));
  }
  return { specs, json, help: false };
}

export function describeFleet(fleet: SimFleet): string {
  const rows = fleet.pods.map((p) => [p.name, `${p.ip}:${p.port}`, p.engine, p.models.join(', ')]);
  const head = ['POD', 'ADDRESS', 'ENGINE', 'MODELS (base first)'];
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
    const out = fleet.pods.map((p) => ({ name: p.name, ip: p.ip, port: p.port, engine: p.engine, models: p.models }));
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
