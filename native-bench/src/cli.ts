/**
 * The `native-bench` command line. `native-bench run` drives one workload against one target and
 * writes JSON (vLLM's result keys and ours), CSV, Markdown and SVG results; see USAGE. Option
 * names and meanings follow `vllm bench serve` (and SGLang's bench_serving for --gsp-*), so a
 * command line written for them runs here.
 */

import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ProgressBar } from './progress.js';
import { renderMarkdown, writeCsv, writeJson, writeMarkdown, type NamedResult } from './report.js';
import { runLoad } from './runner.js';
import type { Endpoint, LoadOptions, LoadResult } from './runner.js';
import { ttftCdfChart, writeSvg } from './svg.js';
import { compareCommand } from './compare.js';
import { pdCommand } from './pd.js';
import { ceilingCommand } from './ceiling.js';
import { DatasetWorkload, ESTIMATE_COUNTER, loadJsonl, loadShareGpt, loadTokenizer, type TokenCounter } from './datasets.js';
import { runThreaded, type WorkloadSpec } from './threads.js';
import type { Workload } from './workloads.js';
import { GSP_DEFAULTS, MULTI_TURN_DEFAULTS, RANDOM_DEFAULTS, generatedSharedPrefix, multiTurn, parseLoraMix, parseRange, randomLengths } from './workloads.js';

export const USAGE = `Usage: native-bench run [options]

Drive an OpenAI-compatible server (the router, or engines directly) with a streaming LLM workload
and measure TTFT, inter-token latency, end-to-end latency, throughput and goodput. Options follow
vllm bench serve (and SGLang's bench_serving for --gsp-*).

Target
  --url URL              base URL, e.g. http://127.0.0.1:8080 (repeatable, or comma-separated);
                         also --base-url URL, or --host H --port P
  --round-robin          spread requests over several --url in turn (a direct baseline without router)
  --model NAME           base model (default: the first model of GET <url>/v1/models)
  --endpoint PATH        request path (default /v1/chat/completions); chat and completions are
                         short for /v1/chat/completions and /v1/completions
  --backend B            request body: openai-chat (messages) or openai|vllm|sglang (prompt text);
                         default from the path (.../chat/completions: openai-chat)
  --header 'NAME: VALUE' extra request header (repeatable)

Dataset
  --dataset-name NAME    generated-shared-prefix (default; alias gsp), random, sharegpt, jsonl,
                         multi-turn (also --workload NAME)
  --dataset-path FILE    sharegpt: a ShareGPT JSON file; jsonl: one request per line (prompt,
                         messages or input_length [+ hash_ids]; output_tokens; timestamp ms)
  --tokenizer FILE       a Hugging Face tokenizer.json to count tokens with (default: the
                         4-characters-per-token estimate); read locally, nothing is downloaded
  --num-prompts N        requests to send (also --requests; default: the dataset's size)
  --sharegpt-output-len T    fixed output tokens instead of the reference answer's length
  --output-len T         jsonl: output tokens of lines that give none (default 128)
  --trace-block-tokens T jsonl hash_ids: tokens per block (default 512, Mooncake's)
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
  --seed N               seed of every random choice (default 1)
  --ignore-eos / --no-ignore-eos  ask for exactly the output length (ignore_eos + min_tokens;
                         default on)

Arrivals
  --request-rate R       open loop: R requests per (simulated) second, sent on schedule whatever
                         the responses do (also --rate); inf sends every request at once; a list
                         (1,5,10,inf) is a rate sweep, one run per rate. Default: inf, or the
                         dataset's timestamps (trace replay) when it has them
  --burstiness B         gamma shape of the gaps, as vLLM's: 1 = Poisson (default), < 1 burstier
  --max-concurrency N    at most N requests in flight; later arrivals wait in order (vLLM's)
  --concurrency N        closed loop instead: N users, each sending when its previous request ended
  --duration S           stop making arrivals after S (simulated) seconds
  --max-inflight N       without --max-concurrency: arrivals finding N in flight are rejected and
                         counted (default 1024)
  --request-timeout S    per-request deadline in (simulated) seconds (default 600)
  --warmup N             send N requests first (closed loop, not measured)
  --threads N            generator threads (default 1): the schedule is computed once and dealt
                         round-robin; results are merged from every sample

Time and SLO
  --time-scale K         engine time scale (default: the x-sim-time-scale response header, else 1)
  --slo-ttft-ms MS       goodput: time to first token bound
  --slo-itl-ms MS        goodput: bound on each request's mean inter-token latency

Output
  --json FILE            results: vLLM's keys and ours (schema native-bench/run/v2); a sweep
                         writes FILE with -rate<R> before the extension, per rate
  --save-result          vLLM's: write the JSON into --result-dir (default .) as --result-filename
                         (default native-bench-<rate>qps-<date>.json)
  --json-requests        include one record per request (and vLLM's input_lens, output_lens, ttfts)
  --csv FILE             one row per run
  --md FILE              Markdown summary
  --svg FILE             TTFT CDF chart (one line per rate in a sweep)
  --progress / --no-progress   progress bar on stderr (default: when stderr is a TTY)
  --quiet                print nothing on stdout
  -h, --help

Lengths are tokens of generated text (4 characters per token, exact under the simulator's
tokenizer) or of the dataset as counted by --tokenizer. Streaming is always on, with
stream_options.include_usage. Against the simulator (x-sim-time-scale: k), rates, durations,
timeouts, SLOs and reported latencies are in simulated time: TTFT = sim_t of the first token + real
router/network overhead, ITL = sim_t differences, throughput = count / (wall duration x k).
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
  'base-url': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'round-robin': { type: 'boolean' },
  model: { type: 'string' },
  endpoint: { type: 'string' },
  backend: { type: 'string' },
  header: { type: 'string', multiple: true },
  'request-rate': { type: 'string' },
  rate: { type: 'string' },
  arrival: { type: 'string' },
  burstiness: { type: 'string' },
  'max-concurrency': { type: 'string' },
  concurrency: { type: 'string' },
  'num-prompts': { type: 'string' },
  requests: { type: 'string' },
  duration: { type: 'string' },
  'max-inflight': { type: 'string' },
  'request-timeout': { type: 'string' },
  warmup: { type: 'string' },
  threads: { type: 'string' },
  'dataset-name': { type: 'string' },
  workload: { type: 'string' },
  'dataset-path': { type: 'string' },
  tokenizer: { type: 'string' },
  'sharegpt-output-len': { type: 'string' },
  'output-len': { type: 'string' },
  'trace-block-tokens': { type: 'string' },
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
  'ignore-eos': { type: 'boolean' },
  'no-ignore-eos': { type: 'boolean' },
  'time-scale': { type: 'string' },
  'slo-ttft-ms': { type: 'string' },
  'slo-itl-ms': { type: 'string' },
  json: { type: 'string' },
  'save-result': { type: 'boolean' },
  'result-dir': { type: 'string' },
  'result-filename': { type: 'string' },
  'json-requests': { type: 'boolean' },
  csv: { type: 'string' },
  md: { type: 'string' },
  svg: { type: 'string' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface RunCliOptions {
  load: Omit<LoadOptions, 'model'> & { model?: string };
  /** The workload as data (threads rebuild it); null for multi-turn. */
  workloadSpec: WorkloadSpec | null;
  /** A rate sweep: one run per rate (Infinity for inf); null for a single run. */
  rates: number[] | null;
  /** vLLM's --backend as recorded. */
  backend: string;
  /** vLLM's --burstiness (gamma shape). */
  burstiness: number;
  tokenizer: string;
  threads: number;
  warmup: number;
  json?: string;
  jsonRequests: boolean;
  csv?: string;
  md?: string;
  svg?: string;
  progress: boolean;
  quiet: boolean;
  help: boolean;
}

const DATASETS = ['generated-shared-prefix', 'gsp', 'random', 'sharegpt', 'jsonl', 'multi-turn'];

function buildWorkload(v: Record<string, unknown>, seed: number, counter: TokenCounter): { workload: Workload; spec: WorkloadSpec | null } {
  const name = String(v['dataset-name'] ?? v.workload ?? 'generated-shared-prefix');
  const n = (opt: string, min = 1): number | undefined => numberOpt(v, opt, { int: true, min });
  const owners: Record<string, string[]> = {
    'gsp-': ['generated-shared-prefix', 'gsp'], 'random-': ['random'], 'mt-': ['multi-turn'],
    'sharegpt-': ['sharegpt'], 'output-len': ['jsonl'], 'trace-': ['jsonl'], 'dataset-path': ['sharegpt', 'jsonl'],
  };
  for (const [prefix, allowed] of Object.entries(owners)) {
    for (const k of Object.keys(v)) {
      if (k.startsWith(prefix) && v[k] !== undefined && !allowed.includes(name)) throw new UsageError(`--${k} does not apply to the ${name} dataset`);
    }
  }
  const file = v['dataset-path'] as string | undefined;
  if ((name === 'sharegpt' || name === 'jsonl') && file === undefined) throw new UsageError(`--dataset-name ${name} needs --dataset-path FILE`);
  try {
    switch (name) {
      case 'generated-shared-prefix':
      case 'gsp': {
        const params = {
          numGroups: n('gsp-num-groups') ?? GSP_DEFAULTS.numGroups,
          promptsPerGroup: n('gsp-prompts-per-group') ?? GSP_DEFAULTS.promptsPerGroup,
          systemPromptLen: n('gsp-system-prompt-len', 0) ?? GSP_DEFAULTS.systemPromptLen,
          questionLen: n('gsp-question-len', 0) ?? GSP_DEFAULTS.questionLen,
          outputLen: n('gsp-output-len') ?? GSP_DEFAULTS.outputLen,
        };
        return { workload: generatedSharedPrefix(params, seed), spec: { kind: 'generated-shared-prefix', params, seed } };
      }
      case 'random': {
        const params = {
          inputLen: v['random-input-len'] !== undefined ? parseRange('--random-input-len', String(v['random-input-len'])) : RANDOM_DEFAULTS.inputLen,
          outputLen: v['random-output-len'] !== undefined ? parseRange('--random-output-len', String(v['random-output-len'])) : RANDOM_DEFAULTS.outputLen,
        };
        return { workload: randomLengths(params, seed), spec: { kind: 'random', params, seed } };
      }
      case 'multi-turn':
        return {
          workload: multiTurn({
            sessions: n('mt-sessions') ?? MULTI_TURN_DEFAULTS.sessions,
            turns: n('mt-turns') ?? MULTI_TURN_DEFAULTS.turns,
            systemLen: n('mt-system-len', 0) ?? MULTI_TURN_DEFAULTS.systemLen,
            questionLen: n('mt-question-len') ?? MULTI_TURN_DEFAULTS.questionLen,
            outputLen: n('mt-output-len') ?? MULTI_TURN_DEFAULTS.outputLen,
          }, seed),
          spec: null,
        };
      case 'sharegpt': {
        const outputLen = n('sharegpt-output-len');
        const numPrompts = n('num-prompts') ?? n('requests') ?? 1000;
        const items = loadShareGpt(file!, { numPrompts, outputLen, seed, counter });
        const params = { dataset_path: file, tokenizer: counter.id, sharegpt_output_len: outputLen ?? null };
        return { workload: new DatasetWorkload('sharegpt', items, params), spec: { kind: 'dataset', name: 'sharegpt', items, params } };
      }
      case 'jsonl': {
        const items = loadJsonl(file!, { outputLen: n('output-len') ?? 128, blockTokens: n('trace-block-tokens') ?? 512, seed, counter });
        const params = { dataset_path: file, tokenizer: counter.id, trace: items[0].timestampMs !== undefined };
        return { workload: new DatasetWorkload('jsonl', items, params), spec: { kind: 'dataset', name: 'jsonl', items, params } };
      }
      default:
        throw new UsageError(`unknown --dataset-name ${JSON.stringify(name)}: ${DATASETS.join(', ')}`);
    }
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** "5", "inf" or "1,5,10,inf" -> rates (Infinity for inf). */
export function parseRates(s: string, name = '--request-rate'): number[] {
  const out = s.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => {
    if (x === 'inf' || x === 'Infinity') return Infinity;
    const r = Number(x);
    if (!Number.isFinite(r) || !(r > 0)) throw new UsageError(`${name} takes positive numbers or inf, got ${JSON.stringify(x)}`);
    return r;
  });
  if (out.length === 0) throw new UsageError(`${name} is empty`);
  return out;
}

/** vLLM's --endpoint (a path) and --backend: the path and the request body kind. */
function endpointOf(v: Record<string, unknown>): { endpoint: Endpoint; path: string; backend: string } {
  const backend = v.backend as string | undefined;
  const bodies: Record<string, Endpoint> = { 'openai-chat': 'chat', openai: 'completions', vllm: 'completions', sglang: 'completions' };
  if (backend !== undefined && !(backend in bodies)) throw new UsageError(`--backend must be one of ${Object.keys(bodies).join(', ')}, got ${backend}`);
  // As in vLLM, the backend picks the default path: chat for openai-chat, completions otherwise.
  const raw = String(v.endpoint ?? (backend !== undefined && bodies[backend] === 'completions' ? '/v1/completions' : '/v1/chat/completions'));
  const p = raw === 'chat' ? '/v1/chat/completions' : raw === 'completions' ? '/v1/completions' : raw;
  if (!p.startsWith('/')) throw new UsageError(`--endpoint must be a path such as /v1/chat/completions (or chat|completions), got ${JSON.stringify(raw)}`);
  let endpoint: Endpoint;
  if (backend !== undefined) endpoint = bodies[backend];
  else if (/\/chat\/completions$/.test(p)) endpoint = 'chat';
  else if (/\/completions$/.test(p)) endpoint = 'completions';
  else throw new UsageError(`--endpoint ${p}: give --backend openai-chat (messages) or openai (prompt) for a path that does not end in /completions`);
  return { endpoint, path: p, backend: backend ?? (endpoint === 'chat' ? 'openai-chat' : 'openai') };
}

/** Parses `native-bench run` arguments (reads --dataset-path; the --tokenizer is applied by runCommand). */
export function parseRunArgs(argv: string[], counter: TokenCounter = ESTIMATE_COUNTER): RunCliOptions {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: RUN_OPTIONS, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values as Record<string, unknown>;
  const help = v.help === true;
  const alias = (a: string, b: string): void => {
    if (v[a] !== undefined && v[b] !== undefined) throw new UsageError(`--${a} and --${b} are the same option: give one`);
    if (v[a] === undefined) v[a] = v[b];
    delete v[b];
  };
  alias('request-rate', 'rate');
  alias('num-prompts', 'requests');
  alias('dataset-name', 'workload');
  if (v.arrival !== undefined) throw new UsageError('--arrival was removed: --burstiness B is the gamma shape, as in vLLM (1 = Poisson)');
  let urls = ((v.url as string[] | undefined) ?? []).flatMap((u) => u.split(',')).map((u) => u.trim()).filter((u) => u !== '');
  if (v['base-url'] !== undefined) urls.push(String(v['base-url']));
  if (v.host !== undefined || v.port !== undefined) urls.push(`http://${String(v.host ?? '127.0.0.1')}:${String(v.port ?? '8000')}`);
  urls = [...new Set(urls)];
  if (!help && urls.length === 0) throw new UsageError('--url is required (or --base-url, or --host and --port)');
  if (urls.length > 1 && v['round-robin'] !== true) throw new UsageError('several --url need --round-robin');
  const { endpoint, path: reqPath, backend } = endpointOf(v);
  const headers: Record<string, string> = {};
  for (const h of (v.header as string[] | undefined) ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--header must be 'NAME: VALUE', got ${JSON.stringify(h)}`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const concurrency = numberOpt(v, 'concurrency', { int: true, min: 1 });
  const maxConcurrency = numberOpt(v, 'max-concurrency', { int: true, min: 1 });
  const rates = v['request-rate'] !== undefined ? parseRates(String(v['request-rate'])) : null;
  if (concurrency !== undefined && (rates !== null || maxConcurrency !== undefined || v['max-inflight'] !== undefined || v.burstiness !== undefined)) {
    throw new UsageError('--concurrency is the closed loop: --request-rate, --burstiness, --max-concurrency and --max-inflight apply to the open loop');
  }
  const burstiness = numberOpt(v, 'burstiness', { positive: true }) ?? 1;
  const seed = numberOpt(v, 'seed', { int: true, min: 0 }) ?? 1;
  let lora;
  try {
    lora = v.lora !== undefined ? parseLoraMix(String(v.lora)) : [];
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const sloTtft = numberOpt(v, 'slo-ttft-ms', { positive: true });
  const sloItl = numberOpt(v, 'slo-itl-ms', { positive: true });
  const threads = numberOpt(v, 'threads', { int: true, min: 1 }) ?? 1;
  const warmup = numberOpt(v, 'warmup', { int: true, min: 0 }) ?? 0;
  const built = help ? { workload: generatedSharedPrefix({}, seed), spec: null } : buildWorkload(v, seed, counter);
  const workload = built.workload;
  const trace = workload instanceof DatasetWorkload ? workload.timestampsMs : null;
  if (threads > 1 && built.spec === null && !help) throw new UsageError(`--threads: the ${workload.name} workload cannot be sharded (its turns depend on earlier answers)`);
  const requests = numberOpt(v, 'num-prompts', { int: true, min: 1 });
  const load: RunCliOptions['load'] = {
    urls,
    roundRobin: v['round-robin'] === true,
    model: v.model as string | undefined,
    endpoint,
    path: reqPath,
    headers,
    workload,
    // Open loop at the first rate (a sweep replaces it per run); no rate: the trace's timestamps,
    // else vLLM's default, inf.
    ...(concurrency !== undefined ? { concurrency } : rates !== null ? { rate: rates[0] } : trace !== null ? { schedule: trace } : { rate: Infinity }),
    arrival: burstiness === 1 ? 'poisson' : 'gamma',
    burstiness: 1 / Math.sqrt(burstiness),
    maxConcurrency,
    requests: workload.name === 'sharegpt' ? undefined : requests,
    durationS: numberOpt(v, 'duration', { positive: true }),
    maxInflight: numberOpt(v, 'max-inflight', { int: true, min: 1 }),
    requestTimeoutS: numberOpt(v, 'request-timeout', { positive: true }),
    lora,
    seed,
    timeScale: numberOpt(v, 'time-scale', { positive: true }),
    slo: { ttftMs: sloTtft, itlMs: sloItl },
    ignoreEos: v['no-ignore-eos'] !== true,
  };
  if (v['ignore-eos'] === true && v['no-ignore-eos'] === true) throw new UsageError('--ignore-eos and --no-ignore-eos contradict each other');
  if (!help && load.requests === undefined && load.durationS === undefined && workload.size === null) {
    throw new UsageError(`the ${workload.name} dataset needs --num-prompts or --duration`);
  }
  let json = v.json as string | undefined;
  if (v['save-result'] === true) {
    if (json !== undefined) throw new UsageError('--save-result and --json both name the result file: give one');
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const r = rates === null ? (concurrency !== undefined ? 'closed' : 'inf') : rates.length > 1 ? 'sweep' : String(rates[0] === Infinity ? 'inf' : rates[0]);
    json = path.join(String(v['result-dir'] ?? '.'), String(v['result-filename'] ?? `native-bench-${r}qps-${stamp}.json`));
  } else if (v['result-dir'] !== undefined || v['result-filename'] !== undefined) {
    throw new UsageError('--result-dir and --result-filename go with --save-result');
  }
  return {
    load,
    workloadSpec: built.spec,
    rates: rates !== null && rates.length > 1 ? rates : null,
    backend,
    burstiness,
    tokenizer: counter.id,
    threads,
    warmup,
    json,
    jsonRequests: v['json-requests'] === true,
    csv: v.csv as string | undefined,
    md: v.md as string | undefined,
    svg: v.svg as string | undefined,
    progress: v['no-progress'] === true ? false : v.progress === true || process.stderr.isTTY === true,
    quiet: v.quiet === true,
    help,
  };
}

/** The file of one rate of a sweep: x.json -> x-rate5.json. */
export function sweepFile(file: string, rate: number): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}-rate${rate === Infinity ? 'inf' : rate}${ext}`;
}

function rateName(rate: number | undefined): string {
  return rate === undefined ? 'run' : rate === Infinity ? 'rate inf' : `rate ${rate}`;
}

async function runCommand(argv: string[]): Promise<number> {
  const tokIdx = argv.findIndex((a) => a === '--tokenizer' || a.startsWith('--tokenizer='));
  const tokFile = tokIdx < 0 ? undefined : argv[tokIdx].includes('=') ? argv[tokIdx].slice(argv[tokIdx].indexOf('=') + 1) : argv[tokIdx + 1];
  const counter = tokFile !== undefined && !argv.includes('--help') && !argv.includes('-h') ? await loadTokenizer(tokFile) : ESTIMATE_COUNTER;
  const cli = parseRunArgs(argv, counter);
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
  const say = (s: string): void => {
    if (!cli.quiet) process.stderr.write(s);
  };
  try {
    if (cli.warmup > 0) {
      const w = await runLoad({ ...cli.load, model, workload: generatedSharedPrefix({ numGroups: 1, promptsPerGroup: cli.warmup, systemPromptLen: 16, questionLen: 16, outputLen: 4 }, cli.load.seed! + 1), rate: undefined, schedule: undefined, maxConcurrency: undefined, concurrency: Math.min(cli.warmup, 8), requests: cli.warmup, durationS: undefined, signal: ac.signal });
      say(`warm-up: ${w.counts.ok}/${w.counts.sent} requests ok (not measured)\n`);
    }
    const rates: Array<number | undefined> = cli.rates ?? [cli.load.rate];
    const runs: NamedResult[] = [];
    for (const rate of rates) {
      if (ac.signal.aborted) break;
      const load: LoadOptions = { ...cli.load, model, ...(rate !== undefined ? { rate } : {}), keepRequests: cli.jsonRequests, signal: ac.signal };
      const bar = cli.progress && cli.threads === 1 ? new ProgressBar() : null;
      let result: LoadResult;
      try {
        result = cli.threads > 1
          ? await runThreaded(load, cli.workloadSpec!, cli.threads)
          : await runLoad({ ...load, onProgress: bar ? (p) => bar.update(p) : undefined });
      } finally {
        bar?.done();
      }
      runs.push({ name: rateName(cli.rates !== null ? rate : undefined), result });
      const extras = { requests: cli.jsonRequests, backend: cli.backend, tokenizer: cli.tokenizer, burstiness: cli.burstiness };
      if (cli.json) {
        const file = cli.rates !== null ? sweepFile(cli.json, rate!) : cli.json;
        writeJson(file, result, extras);
        say(`wrote ${file}\n`);
      }
      if (cli.rates !== null) say(`${rateName(rate)}: ${result.throughput.requests_per_s.toFixed(2)} req/s, TTFT p50 ${result.latency.ttft_ms?.p50.toFixed(1) ?? '-'} ms\n`);
    }
    if (cli.csv) writeCsv(cli.csv, runs);
    if (cli.md) writeMarkdown(cli.md, runs.length === 1 ? runs[0].result : runs, { title: cli.rates !== null ? 'native-bench rate sweep' : undefined });
    if (cli.svg) writeSvg(cli.svg, runs.length === 1 ? runs[0].result : ttftCdfChart(runs));
    if (!cli.quiet) process.stdout.write(renderMarkdown(runs.length === 1 ? runs[0].result : runs, { title: cli.rates !== null ? 'native-bench rate sweep' : undefined }));
    for (const f of [cli.csv, cli.md, cli.svg]) if (f) say(`wrote ${f}\n`);
    if (runs.some((x) => x.result.interrupted) || ac.signal.aborted) return 130;
    return runs.every((x) => x.result.counts.sent > 0 && x.result.counts.ok === 0) ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
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

/** Runs one of the plain-Node scripts beside this package (proxy/: they predate the TypeScript CLI). */
function script(rel: string): (argv: string[]) => Promise<number> {
  return (argv) => new Promise((resolve) => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const child = spawn(process.execPath, [path.join(root, 'native-bench', rel), ...argv], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/**
 * Runs a compiled module of this package (path relative to this file) in a child node with V8
 * flags (the micro-benchmarks force GCs and size the young generation); the child's exit code.
 */
function withFlags(rel: string, flags: string[]): (argv: string[]) => Promise<number> {
  return (argv) => new Promise((resolve) => {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), rel);
    const child = spawn(process.execPath, [...flags, file, ...argv], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  run: runCommand,
  compare: (argv) => compareCommand(argv),
  pd: (argv) => pdCommand(argv),
  policy: async (argv) => (await import('./policy.js')).policyCommand(argv),
  ceiling: (argv) => ceilingCommand(argv),
  epp: async (argv) => (await import('./epp.js')).eppCommand(argv),
  soak: async (argv) => (await import('./soak.js')).soakCommand(argv),
  proxy: script('proxy/run.mjs'),
  report: script('proxy/report.mjs'),
  scheduler: withFlags('micro/scheduler.js', ['--expose-gc', '--max-semi-space-size=64']),
  scrape: withFlags('scrape/parse-bench.js', ['--expose-gc']),
  regex: async (argv) => (await import('./micro/regex.js')).regexMicroMain(argv),
  ratelimit: async (argv) => (await import('./ratelimit-bench.js')).ratelimitBenchMain(argv),
  'ratelimit-micro': async (argv) => (await import('./micro/ratelimit.js')).ratelimitMicroMain(argv),
};

export const MAIN_USAGE = `Usage: native-bench <command> [options]

Commands
  run        drive one workload against one target and measure it (native-bench run --help)
  compare    one workload through the router under each scheduler configuration, on a simulated
             fleet, plus a round-robin baseline (native-bench compare --help)
  pd         prefill/decode disaggregation against the same pods aggregated, and what the second
             leg costs the router (native-bench pd --help)
  policy     traffic policies on a simulated fleet: fairness, multi-turn sessions (sticky,
             session boost), two replicas with and without shared in-flight counts
             (native-bench policy --help)
  ceiling    the load generator alone, 1 thread vs N, against a trivial local server
  proxy      router overhead against nginx and the engines directly (native-bench proxy --help)
  report     regenerate docs/benchmarks.md from the newest results in native-bench/results/
  soak       the router for N minutes under load with faults injected (native-bench soak --help)
  scheduler  one scheduling decision, per endpoint count and prompt size (micro-benchmark)
  scrape     Prometheus parsing of vLLM /metrics pages; --http: the scraper against 1,000 pods
  regex      one route-regex match, re2js against V8's RegExp
  ratelimit  the router's req/s without a token rate limit, with a local and with a global one
  ratelimit-micro  the local rate limit's admission check and output charge, ns per request
`;

/** The CLI entry's exit hook: stops the routers and servers a command started (children.ts). */
export { reapChildrenOnExit } from './children.js';

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
    const code = (err as { code?: unknown }).code;
    // node:util parseArgs's own refusals (an unknown option, a missing value) are usage errors too.
    if (code === 'BENCH_USAGE' || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'))) {
      process.stderr.write(`native-bench ${cmd}: ${(err as Error).message}\n(see native-bench ${cmd} --help)\n`);
      return 2;
    }
    process.stderr.write(`native-bench ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}
