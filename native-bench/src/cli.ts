/**
 * The `native-bench` command line. `native-bench run` drives one workload against one target and
 * writes JSON, Markdown and SVG results; see USAGE. Commands are a table so that `compare` can be
 * added beside `run`.
 */

import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ArrivalKind } from './arrivals.js';
import { ProgressBar } from './progress.js';
import { renderMarkdown, writeJson, writeMarkdown } from './report.js';
import { runLoad } from './runner.js';
import type { Endpoint, LoadOptions } from './runner.js';
import { writeSvg } from './svg.js';
import { compareCommand } from './compare.js';
import { pdCommand } from './pd.js';
import type { Workload } from './workloads.js';
import { GSP_DEFAULTS, MULTI_TURN_DEFAULTS, RANDOM_DEFAULTS, generatedSharedPrefix, multiTurn, parseLoraMix, parseRange, randomLengths } from './workloads.js';

export const USAGE = `Usage: native-bench run [options]

Drive an OpenAI-compatible server (the router, or engines directly) with a streaming LLM workload
and measure TTFT, inter-token latency, end-to-end latency, throughput and goodput.

Target
  --url URL              base URL, e.g. http://127.0.0.1:8080 (repeatable, or comma-separated)
  --round-robin          spread requests over several --url in turn (a direct baseline without router)
  --model NAME           base model (default: the first model of GET <url>/v1/models)
  --endpoint chat|completions   /v1/chat/completions (default) or /v1/completions
  --header 'NAME: VALUE' extra request header (repeatable)

Arrivals (exactly one of --rate and --concurrency)
  --rate R               open loop: R requests per (simulated) second, sent on schedule whatever the
                         responses do; the generator's own schedule lag is reported
  --arrival poisson|gamma   inter-arrival distribution (default poisson)
  --burstiness CV        gamma only: coefficient of variation of the gaps (default 1 = Poisson-like;
                         2 is bursty). vLLM's/SGLang's --burstiness b is the gamma shape: CV = 1/sqrt(b)
  --concurrency N        closed loop: N users, each sending when its previous request ended
  --requests N           arrivals to make (default: the workload's size, e.g. groups x prompts)
  --duration S           stop making arrivals after S (simulated) seconds
  --max-inflight N       open loop: arrivals finding N requests in flight are rejected by the
                         generator and counted (default 1024)
  --request-timeout S    per-request deadline in (simulated) seconds (default 600)

Workload
  --workload NAME        generated-shared-prefix (default; alias gsp), random, multi-turn
  --gsp-num-groups N     shared system prompts (default ${GSP_DEFAULTS.numGroups})
  --gsp-prompts-per-group N   questions per system prompt (default ${GSP_DEFAULTS.promptsPerGroup})
  --gsp-system-prompt-len T   system prompt tokens (default ${GSP_DEFAULTS.systemPromptLen})
  --gsp-question-len T   question tokens (default ${GSP_DEFAULTS.questionLen})
  --gsp-output-len T     output tokens (default ${GSP_DEFAULTS.outputLen})
  --random-input-len T|MIN:MAX    prompt tokens (default ${RANDOM_DEFAULTS.inputLen.min})
  --random-output-len T|MIN:MAX   output tokens (default ${RANDOM_DEFAULTS.outputLen.min})
  --mt-sessions N        concurrent chat sessions (default ${MULTI_TURN_DEFAULTS.sessions})
  --mt-turns N           turns per session (default ${MULTI_TURN_DEFAULTS.turns})
  --mt-system-len T      system prompt shared by all sessions (default ${MULTI_TURN_DEFAULTS.systemLen})
  --mt-question-len T    tokens of each new question (default ${MULTI_TURN_DEFAULTS.questionLen})
  --mt-output-len T      output tokens per turn (default ${MULTI_TURN_DEFAULTS.outputLen})
  --lora NAME:SHARE,...  send a share of requests to adapter model names, e.g. a:0.3,b:0.2
                         (the rest go to --model; multi-turn picks per session)
  --seed N               seed of every random choice (default 1)
  --no-ignore-eos        do not send ignore_eos/min_tokens (for servers that reject them)

Time and SLO
  --time-scale K         engine time scale (default: the x-sim-time-scale response header, else 1)
  --slo-ttft-ms MS       goodput: time to first token bound
  --slo-itl-ms MS        goodput: bound on each request's mean inter-token latency

Output
  --json FILE            full results (config, machine, counts, distributions)
  --json-requests        include one record per request in --json
  --md FILE              Markdown summary
  --svg FILE             TTFT CDF chart
  --progress / --no-progress   progress bar on stderr (default: when stderr is a TTY)
  --quiet                print nothing on stdout
  -h, --help

Lengths are tokens of generated text (4 characters per token, exact under the simulator's
tokenizer). Streaming is always on, with stream_options.include_usage. Against the simulator
(x-sim-time-scale: k), rates, durations, timeouts, SLOs and reported latencies are in simulated
time: TTFT = sim_t of the first token + real router/network overhead, ITL = sim_t differences,
throughput = count / (wall duration x k); the factor k does not distort ratios.
`;

export class UsageError extends Error {
  readonly code = 'BENCH_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function numberOpt(values: Record<string, unknown>, name: string, o: { int?: boolean; min?: number; positive?: boolean } = {}): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(raw)}`);
  if (o.int && !Number.isInteger(v)) throw new UsageError(`--${name} must be an integer, got ${raw}`);
  if (o.positive && !(v > 0)) throw new UsageError(`--${name} must be positive, got ${raw}`);
  if (o.min !== undefined && v < o.min) throw new UsageError(`--${name} must be at least ${o.min}, got ${raw}`);
  return v;
}

const RUN_OPTIONS = {
  url: { type: 'string', multiple: true },
  'round-robin': { type: 'boolean' },
  model: { type: 'string' },
  endpoint: { type: 'string' },
  header: { type: 'string', multiple: true },
  rate: { type: 'string' },
  arrival: { type: 'string' },
  burstiness: { type: 'string' },
  concurrency: { type: 'string' },
  requests: { type: 'string' },
  duration: { type: 'string' },
  'max-inflight': { type: 'string' },
  'request-timeout': { type: 'string' },
  workload: { type: 'string' },
  'gsp-num-groups': { type: 'string' },
  'gsp-prompts-per-group': { type: 'string' },
  'gsp-system-prompt-len': { type: 'string' },
  'gsp-question-len': { type: 'string' },
  'gsp-output-len': { type: 'string' },
  'random-input-len': { type: 'string' },
  'random-output-len': { type: 'string' },
  'mt-sessions': { type: 'string' },
  'mt-turns': { type: 'string' },
  'mt-system-len': { type: 'string' },
  'mt-question-len': { type: 'string' },
  'mt-output-len': { type: 'string' },
  lora: { type: 'string' },
  seed: { type: 'string' },
  'no-ignore-eos': { type: 'boolean' },
  'time-scale': { type: 'string' },
  'slo-ttft-ms': { type: 'string' },
  'slo-itl-ms': { type: 'string' },
  json: { type: 'string' },
  'json-requests': { type: 'boolean' },
  md: { type: 'string' },
  svg: { type: 'string' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface RunCliOptions {
  load: Omit<LoadOptions, 'model'> & { model?: string };
  json?: string;
  jsonRequests: boolean;
  md?: string;
  svg?: string;
  progress: boolean;
  quiet: boolean;
  help: boolean;
}

function buildWorkload(v: Record<string, unknown>, seed: number): Workload {
  const name = String(v.workload ?? 'generated-shared-prefix');
  const n = (opt: string, min = 1): number | undefined => numberOpt(v, opt, { int: true, min });
  const only = (prefix: string): void => {
    for (const k of Object.keys(v)) {
      if (/^(gsp|random|mt)-/.test(k) && !k.startsWith(prefix) && v[k] !== undefined) {
        throw new UsageError(`--${k} does not apply to the ${name} workload`);
      }
    }
  };
  try {
    switch (name) {
      case 'generated-shared-prefix':
      case 'gsp':
        only('gsp-');
        return generatedSharedPrefix(
          {
            numGroups: n('gsp-num-groups') ?? GSP_DEFAULTS.numGroups,
            promptsPerGroup: n('gsp-prompts-per-group') ?? GSP_DEFAULTS.promptsPerGroup,
            systemPromptLen: n('gsp-system-prompt-len', 0) ?? GSP_DEFAULTS.systemPromptLen,
            questionLen: n('gsp-question-len', 0) ?? GSP_DEFAULTS.questionLen,
            outputLen: n('gsp-output-len') ?? GSP_DEFAULTS.outputLen,
          },
          seed,
        );
      case 'random':
        only('random-');
        return randomLengths(
          {
            inputLen: v['random-input-len'] !== undefined ? parseRange('--random-input-len', String(v['random-input-len'])) : RANDOM_DEFAULTS.inputLen,
            outputLen: v['random-output-len'] !== undefined ? parseRange('--random-output-len', String(v['random-output-len'])) : RANDOM_DEFAULTS.outputLen,
          },
          seed,
        );
      case 'multi-turn':
        only('mt-');
        return multiTurn(
          {
            sessions: n('mt-sessions') ?? MULTI_TURN_DEFAULTS.sessions,
            turns: n('mt-turns') ?? MULTI_TURN_DEFAULTS.turns,
            systemLen: n('mt-system-len', 0) ?? MULTI_TURN_DEFAULTS.systemLen,
            questionLen: n('mt-question-len') ?? MULTI_TURN_DEFAULTS.questionLen,
            outputLen: n('mt-output-len') ?? MULTI_TURN_DEFAULTS.outputLen,
          },
          seed,
        );
      default:
        throw new UsageError(`unknown --workload ${JSON.stringify(name)}: generated-shared-prefix, random or multi-turn`);
    }
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** Parses `native-bench run` arguments (no I/O). */
export function parseRunArgs(argv: string[]): RunCliOptions {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: RUN_OPTIONS, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values as Record<string, unknown>;
  const help = v.help === true;
  const urls = ((v.url as string[] | undefined) ?? []).flatMap((u) => u.split(',')).map((u) => u.trim()).filter((u) => u !== '');
  if (!help && urls.length === 0) throw new UsageError('--url is required');
  if (urls.length > 1 && v['round-robin'] !== true) throw new UsageError('several --url need --round-robin');
  const endpoint = String(v.endpoint ?? 'chat');
  if (endpoint !== 'chat' && endpoint !== 'completions') throw new UsageError(`--endpoint must be chat or completions, got ${endpoint}`);
  const headers: Record<string, string> = {};
  for (const h of (v.header as string[] | undefined) ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--header must be 'NAME: VALUE', got ${JSON.stringify(h)}`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const rate = numberOpt(v, 'rate', { positive: true });
  const concurrency = numberOpt(v, 'concurrency', { int: true, min: 1 });
  if (!help && (rate === undefined) === (concurrency === undefined)) throw new UsageError('give exactly one of --rate (open loop) and --concurrency (closed loop)');
  const arrival = String(v.arrival ?? 'poisson');
  if (arrival !== 'poisson' && arrival !== 'gamma') throw new UsageError(`--arrival must be poisson or gamma, got ${arrival}`);
  const burstiness = numberOpt(v, 'burstiness', { positive: true });
  if (burstiness !== undefined && arrival !== 'gamma') throw new UsageError('--burstiness needs --arrival gamma');
  if (concurrency !== undefined && (v.arrival !== undefined || v['max-inflight'] !== undefined)) {
    throw new UsageError('--arrival and --max-inflight apply to the open loop (--rate), not --concurrency');
  }
  const seed = numberOpt(v, 'seed', { int: true, min: 0 }) ?? 1;
  let lora;
  try {
    lora = v.lora !== undefined ? parseLoraMix(String(v.lora)) : [];
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const sloTtft = numberOpt(v, 'slo-ttft-ms', { positive: true });
  const sloItl = numberOpt(v, 'slo-itl-ms', { positive: true });
  const workload = help ? generatedSharedPrefix({}, seed) : buildWorkload(v, seed);
  const load: RunCliOptions['load'] = {
    urls,
    roundRobin: v['round-robin'] === true,
    model: v.model as string | undefined,
    endpoint: endpoint as Endpoint,
    headers,
    workload,
    rate,
    arrival: arrival as ArrivalKind,
    burstiness,
    concurrency,
    requests: numberOpt(v, 'requests', { int: true, min: 1 }),
    durationS: numberOpt(v, 'duration', { positive: true }),
    maxInflight: numberOpt(v, 'max-inflight', { int: true, min: 1 }),
    requestTimeoutS: numberOpt(v, 'request-timeout', { positive: true }),
    lora,
    seed,
    timeScale: numberOpt(v, 'time-scale', { positive: true }),
    slo: { ttftMs: sloTtft, itlMs: sloItl },
    ignoreEos: v['no-ignore-eos'] !== true,
  };
  if (!help && load.requests === undefined && load.durationS === undefined && workload.size === null) {
    throw new UsageError(`the ${workload.name} workload needs --requests or --duration`);
  }
  return {
    load,
    json: v.json as string | undefined,
    jsonRequests: v['json-requests'] === true,
    md: v.md as string | undefined,
    svg: v.svg as string | undefined,
    progress: v['no-progress'] === true ? false : v.progress === true || process.stderr.isTTY === true,
    quiet: v.quiet === true,
    help,
  };
}

/** The first model id of GET <url>/v1/models. */
export async function discoverModel(url: string, headers: Record<string, string> = {}): Promise<string> {
  const u = new URL(url);
  const base = u.pathname.replace(/\/+$/, '').replace(/\/(chat\/)?completions$/, '').replace(/\/v1$/, '');
  const target = `${u.origin}${base}/v1/models`;
  let body: unknown;
  try {
    const res = await fetch(target, { headers, signal: AbortSignal.timeout(10_000) });
    body = await res.json();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new UsageError(`--model not given and GET ${target} failed: ${String(why)}`);
  }
  const id = (body as { data?: Array<{ id?: unknown }> })?.data?.[0]?.id;
  if (typeof id !== 'string') throw new UsageError(`--model not given and GET ${target} listed no model`);
  return id;
}

async function runCommand(argv: string[]): Promise<number> {
  const cli = parseRunArgs(argv);
  if (cli.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const model = cli.load.model ?? (await discoverModel(cli.load.urls[0], cli.load.headers));
  const ac = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\nnative-bench: interrupted; finishing with the results so far (Ctrl-C again to quit)\n');
      ac.abort();
    } else process.exit(130);
  };
  process.on('SIGINT', onSigint);
  const bar = cli.progress ? new ProgressBar() : null;
  try {
    const result = await runLoad({ ...cli.load, model, keepRequests: cli.jsonRequests, signal: ac.signal, onProgress: bar ? (p) => bar.update(p) : undefined });
    bar?.done();
    if (cli.json) writeJson(cli.json, result, { requests: cli.jsonRequests });
    if (cli.md) writeMarkdown(cli.md, result);
    if (cli.svg) writeSvg(cli.svg, result);
    if (!cli.quiet) process.stdout.write(renderMarkdown(result));
    for (const f of [cli.json, cli.md, cli.svg]) if (f && !cli.quiet) process.stderr.write(`wrote ${f}\n`);
    if (result.interrupted) return 130;
    return result.counts.sent > 0 && result.counts.ok === 0 ? 1 : 0;
  } finally {
    bar?.done();
    process.off('SIGINT', onSigint);
  }
}

/** Runs one of the plain-Node scripts beside this package (they predate the TypeScript CLI). */
function script(rel: string): (argv: string[]) => Promise<number> {
  return (argv) => new Promise((resolve) => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const child = spawn(process.execPath, [path.join(root, 'native-bench', rel), ...argv], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  run: runCommand,
  compare: (argv) => compareCommand(argv),
  pd: (argv) => pdCommand(argv),
  epp: async (argv) => (await import('./epp.js')).eppCommand(argv),
  proxy: script('proxy/run.mjs'),
  report: script('proxy/report.mjs'),
};

export const MAIN_USAGE = `Usage: native-bench <command> [options]

Commands
  run        drive one workload against one target and measure it (native-bench run --help)
  compare    one workload through the router under each scheduler configuration, on a simulated
             fleet, plus a round-robin baseline (native-bench compare --help)
  pd         prefill/decode disaggregation against the same pods aggregated, and what the second
             leg costs the router (native-bench pd --help)
  proxy      router overhead against nginx and the engines directly (native-bench proxy --help)
  report     regenerate docs/benchmarks.md from the newest results in native-bench/results/
`;

/** Entry point of bin/native-bench.js; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(MAIN_USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const run = COMMANDS[cmd];
  if (run === undefined) {
    process.stderr.write(`native-bench: unknown command ${JSON.stringify(cmd)}\n\n${MAIN_USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'BENCH_USAGE') {
      process.stderr.write(`native-bench ${cmd}: ${(err as Error).message}\n(see native-bench ${cmd} --help)\n`);
      return 2;
    }
    process.stderr.write(`native-bench ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}
