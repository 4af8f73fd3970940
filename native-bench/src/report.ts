/**
 * Reports from `LoadResult`s: the flat headline figures (`headline`, what `compare` tabulates per
 * configuration), a Markdown summary (`renderMarkdown` / `writeMarkdown`, one row per named run,
 * with the machine and the time-scale note in the header), and the JSON file (`writeJson`).
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { LoadResult } from './runner.js';
import { resultToJson } from './runner.js';
import type { Dist } from './stats.js';

export interface NamedResult {
  name: string;
  result: LoadResult;
}

/** The figures a comparison table needs, flat; latencies in simulated ms. */
export interface Headline {
  requests_per_s: number;
  output_tokens_per_s: number;
  ttft_p50_ms: number | null;
  ttft_p99_ms: number | null;
  itl_p50_ms: number | null;
  itl_p99_ms: number | null;
  /** Requests per second meeting the SLO; null when the run had no SLO. */
  goodput_rps: number | null;
  /** Failed requests (HTTP, transport, timeouts, broken streams); rejects are not included. */
  errors: number;
  rejected: number;
}

export function headline(r: LoadResult): Headline {
  return {
    requests_per_s: r.throughput.requests_per_s,
    output_tokens_per_s: r.throughput.output_tokens_per_s,
    ttft_p50_ms: r.latency.ttft_ms?.p50 ?? null,
    ttft_p99_ms: r.latency.ttft_ms?.p99 ?? null,
    itl_p50_ms: r.latency.itl_ms?.p50 ?? null,
    itl_p99_ms: r.latency.itl_ms?.p99 ?? null,
    goodput_rps: r.goodput?.rps ?? null,
    errors: r.counts.errors,
    rejected: r.counts.rejected,
  };
}

/** Milliseconds with a precision that suits their size. */
export function fmtMs(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function fmtRate(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
}

function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(1)}%`;
}

/** One line describing the workload of a run. */
export function describeWorkload(r: LoadResult): string {
  const { name, ...params } = r.config.workload;
  const p = Object.entries(params)
    .map(([k, v]) => `${k.replace(/^(gsp|mt|random)_/, '')}=${Array.isArray(v) ? v.join('..') : String(v)}`)
    .join(', ');
  const lora = r.config.lora.length > 0 ? `; LoRA mix ${r.config.lora.map((l) => `${l.model}:${l.share}`).join(', ')}` : '';
  return `${name} (${p})${lora}`;
}

/** One line describing the arrivals of a run. */
export function describeLoad(r: LoadResult): string {
  const c = r.config;
  const bound = [c.requests !== null ? `${c.requests} requests` : '', c.duration_s !== null ? `${c.duration_s} s` : ''].filter(Boolean).join(' or ');
  if (c.mode === 'closed') return `closed loop, ${c.concurrency} concurrent; ${bound}`;
  const proc = c.scheduled && c.rate === null ? 'arrivals at the trace timestamps' : c.rate === 'inf' ? 'every arrival at once' : c.arrival === 'gamma' ? `gamma arrivals (CV ${c.burstiness_cv})` : 'Poisson arrivals';
  const at = c.rate === null || c.rate === 'inf' ? '' : ` at ${c.rate} req/s`;
  const cap = c.max_concurrency !== null ? `at most ${c.max_concurrency} in flight, later arrivals queue` : `at most ${c.max_inflight} in flight`;
  return `open loop, ${proc}${at}; ${bound}; ${cap}${c.threads > 1 ? `; ${c.threads} generator threads` : ''}`;
}

/** The header note on time: what the numbers are measured in. */
export function describeTime(r: LoadResult): string {
  const ts = r.time_scale;
  if (ts.factor === 1 && ts.sim_timed === 0) return 'Times are wall-clock.';
  const src = ts.source === 'header' ? 'x-sim-time-scale header' : ts.source === 'option' ? '--time-scale' : 'default';
  return (
    `Time scale k=${ts.factor} (${src}): the engines ran ${ts.factor}x faster than the wall clock. Latencies, rates ` +
    `and goodput are in simulated time: TTFT = sim_t(first token) + real router/network overhead, ITL = sim_t ` +
    `differences, throughput over wall duration x k. Overhead and schedule lag are wall ms. ` +
    `${ts.sim_timed} requests timed from sim_t, ${ts.wall_timed} from the wall clock.`
  );
}

function distRow(name: string, d: Dist | null): string {
  if (d === null) return `| ${name} | 0 | - | - | - | - | - | - | - |`;
  return `| ${name} | ${d.count} | ${fmtMs(d.mean)} | ${fmtMs(d.p50)} | ${fmtMs(d.p90)} | ${fmtMs(d.p99)} | ${fmtMs(d.p999)} | ${fmtMs(d.max)} | ${fmtMs(d.min)} |`;
}

export interface MarkdownOptions {
  title?: string;
  /** Add the full distribution table of each run (default: true for a single run). */
  details?: boolean;
}

/**
 * A Markdown summary: header (machine, target, workload, load, time note), one table row per run,
 * then, with `details`, each run's distributions, errors and warnings.
 */
export function renderMarkdown(runs: NamedResult[] | LoadResult, opts: MarkdownOptions = {}): string {
  const list: NamedResult[] = Array.isArray(runs) ? runs : [{ name: 'run', result: runs }];
  if (list.length === 0) return `# ${opts.title ?? 'native-bench'}\n\n(no runs)\n`;
  const first = list[0].result;
  const m = first.machine;
  const git = m.git_commit === null ? 'not a git checkout' : `${m.git_commit.slice(0, 12)}${m.git_dirty ? ' (with uncommitted changes)' : ''}`;
  const out: string[] = [];
  out.push(`# ${opts.title ?? 'native-bench run'}`, '');
  out.push(`Generated by native-bench from measured results; do not edit by hand.`, '');
  out.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.mem_gib} GiB, ${m.kernel}; Node ${m.node}; commit ${git}. Started ${first.started_at}.`, '');
  const sameTarget = list.every((x) => x.result.config.urls.join(',') === first.config.urls.join(','));
  if (sameTarget) {
    out.push(`Target: ${first.config.urls.join(', ')}${first.config.round_robin ? ' (round-robin)' : ''}, model \`${first.config.model}\`, ${first.config.endpoint} endpoint, streaming.`, '');
  }
  const sameWorkload = list.every((x) => describeWorkload(x.result) === describeWorkload(first));
  const sameLoad = list.every((x) => describeLoad(x.result) === describeLoad(first));
  if (sameWorkload) out.push(`Workload: ${describeWorkload(first)}.`, '');
  if (sameLoad) out.push(`Load: ${describeLoad(first)}.`, '');
  out.push(describeTime(first), '');
  const slo = first.config.slo;
  if (slo.ttft_ms !== null || slo.itl_ms !== null) {
    const parts = [slo.ttft_ms !== null ? `TTFT <= ${slo.ttft_ms} ms` : '', slo.itl_ms !== null ? `mean ITL per request <= ${slo.itl_ms} ms` : ''].filter(Boolean);
    out.push(`Goodput SLO: ${parts.join(' and ')}.`, '');
  }
  out.push('Percentiles are exact (nearest rank over every sample).', '');
  const extra = [sameWorkload ? '' : 'workload', sameLoad ? '' : 'load', sameTarget ? '' : 'target'].filter(Boolean);
  out.push(
    `| run |${extra.map((e) => ` ${e} |`).join('')} req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | e2e p50 ms | e2e p99 ms | goodput req/s | ok | errors | rejected | cache hit |`,
    `|---|${extra.map(() => '---|').join('')}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  );
  for (const { name, result: r } of list) {
    const l = r.latency;
    const cells = [
      sameWorkload ? null : describeWorkload(r),
      sameLoad ? null : describeLoad(r),
      sameTarget ? null : r.config.urls.join(', '),
    ].filter((c): c is string => c !== null);
    out.push(
      `| ${name} |${cells.map((c) => ` ${c.replace(/\|/g, '\\|')} |`).join('')} ${fmtRate(r.throughput.requests_per_s)} | ${fmtRate(r.throughput.output_tokens_per_s)} | ${fmtMs(l.ttft_ms?.p50)} | ${fmtMs(l.ttft_ms?.p99)} | ${fmtMs(l.itl_ms?.p50)} | ${fmtMs(l.itl_ms?.p99)} | ${fmtMs(l.e2e_ms?.p50)} | ${fmtMs(l.e2e_ms?.p99)} | ${fmtRate(r.goodput?.rps)} | ${r.counts.ok} | ${r.counts.errors} | ${r.counts.rejected} | ${pct(r.tokens.cache_hit_rate)} |`,
    );
  }
  out.push('');
  const details = opts.details ?? list.length === 1;
  if (details) {
    for (const { name, result: r } of list) {
      out.push(`## ${list.length === 1 ? 'Distributions' : name}`, '');
      out.push('| metric | count | mean | p50 | p90 | p99 | p99.9 | max | min |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
      out.push(distRow('TTFT (ms)', r.latency.ttft_ms));
      out.push(distRow('ITL (ms)', r.latency.itl_ms));
      out.push(distRow('TPOT, mean ITL per request (ms)', r.latency.tpot_ms));
      out.push(distRow('e2e latency (ms)', r.latency.e2e_ms));
      out.push(distRow('router/network overhead (wall ms)', r.latency.overhead_wall_ms));
      if (r.config.mode === 'open') out.push(distRow('generator schedule lag (wall ms)', r.schedule_lag_wall_ms));
      if (r.queue_wait_ms !== null) out.push(distRow('wait for a --max-concurrency slot (ms)', r.queue_wait_ms));
      out.push('');
      const c = r.counts;
      out.push(
        `Requests: ${c.arrivals} arrivals, ${c.sent} sent, ${c.ok} ok, ${c.errors} failed, ${c.rejected} rejected by the generator${c.starved > 0 ? `, ${c.starved} arrivals starved` : ''}. ` +
          `Duration ${r.duration_s.toFixed(1)} s simulated (${r.wall.duration_s.toFixed(1)} s wall). Tokens: ${r.tokens.input} in, ${r.tokens.output} out, ${r.tokens.cached} cached.`,
        '',
      );
      const kinds = Object.keys(r.errors).sort();
      if (kinds.length > 0) {
        out.push('| error | count | first message |', '|---|---:|---|');
        for (const k of kinds) out.push(`| ${k} | ${r.errors[k]} | ${(r.error_samples[k] ?? '').replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 160)} |`);
        out.push('');
      }
      if (r.backends !== null) {
        out.push(`| backend (${r.backends.header}) | requests | ok |`, '|---|---:|---:|');
        for (const [b, c] of Object.entries(r.backends.counts).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) out.push(`| ${b} | ${c.requests} | ${c.ok} |`);
        out.push('');
      }
      if (r.targets.length > 1) {
        out.push('| target | sent | ok | errors |', '|---|---:|---:|---:|');
        for (const t of r.targets) out.push(`| ${t.url} | ${t.sent} | ${t.ok} | ${t.errors} |`);
        out.push('');
      }
      for (const w of r.warnings) out.push(`- Warning: ${w}`);
      if (r.warnings.length > 0) out.push('');
    }
  }
  return out.join('\n');
}

function ensureDir(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
}

/** Writes `renderMarkdown(runs, opts)` to `file` and returns the text. */
export function writeMarkdown(file: string, runs: NamedResult[] | LoadResult, opts: MarkdownOptions = {}): string {
  const text = renderMarkdown(runs, opts);
  ensureDir(file);
  writeFileSync(file, text);
  return text;
}

/** What vLLM's result file says that the run itself does not know. */
export interface VllmContext {
  /** vLLM's --backend (openai-chat, openai, vllm, sglang). */
  backend?: string;
  /** What counted tokens: a tokenizer.json path, or the 4-characters estimate. */
  tokenizer?: string;
  /** vLLM's --burstiness (gamma shape); 1 for Poisson. */
  burstiness?: number;
}

function mean(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += v;
  return a.length > 0 ? s / a.length : 0;
}

function std(a: Float64Array): number {
  if (a.length === 0) return 0;
  const m = mean(a);
  let s = 0;
  for (const v of a) s += (v - m) * (v - m);
  return Math.sqrt(s / a.length);
}

/**
 * The summary keys of vLLM's `vllm bench serve --save-result` file, from a result: `duration`,
 * `completed`, `request_throughput`, `mean_ttft_ms`, `median_ttft_ms`, `std_ttft_ms`, `p99_ttft_ms`
 * (likewise tpot, itl, e2el), ... (vLLM's `errors` and `generated_texts` lists are not written;
 * `input_lens`, `output_lens` and `ttfts` (seconds) only with per-request records). Units as vLLM's:
 * ms for latencies, per second for rates; against the simulator they are simulated time.
 */
export function vllmKeys(r: LoadResult, ctx: VllmContext = {}): Record<string, unknown> {
  const d = new Date(r.started_at);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const out: Record<string, unknown> = {
    date: `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}-${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}`,
    backend: ctx.backend ?? (r.config.endpoint === 'chat' ? 'openai-chat' : 'openai'),
    model_id: r.config.model,
    tokenizer_id: ctx.tokenizer ?? null,
    num_prompts: r.config.requests ?? r.counts.arrivals,
    request_rate: r.config.rate ?? 'inf',
    burstiness: ctx.burstiness ?? 1,
    max_concurrency: r.config.max_concurrency ?? (r.config.mode === 'closed' ? r.config.concurrency : null),
    duration: r.duration_s,
    completed: r.counts.ok,
    total_input_tokens: r.tokens.input,
    total_output_tokens: r.tokens.output,
    request_throughput: r.throughput.requests_per_s,
    request_goodput: r.goodput?.rps ?? null,
    output_throughput: r.throughput.output_tokens_per_s,
    total_token_throughput: r.throughput.total_tokens_per_s,
  };
  const metrics: Array<[string, Float64Array, Dist | null]> = [
    ['ttft', r.samples.ttft_ms, r.latency.ttft_ms],
    ['tpot', r.samples.tpot_ms, r.latency.tpot_ms],
    ['itl', r.samples.itl_ms, r.latency.itl_ms],
    ['e2el', r.samples.e2e_ms, r.latency.e2e_ms],
  ];
  for (const [name, samples, dist] of metrics) {
    out[`mean_${name}_ms`] = dist?.mean ?? 0;
    out[`median_${name}_ms`] = dist?.p50 ?? 0;
    out[`std_${name}_ms`] = std(samples);
    out[`p99_${name}_ms`] = dist?.p99 ?? 0;
  }
  if (r.requests !== undefined) {
    out.input_lens = r.requests.map((q) => q.prompt_tokens ?? q.input_tokens);
    out.output_lens = r.requests.map((q) => q.completion_tokens ?? 0);
    out.ttfts = r.requests.map((q) => (q.ttft_ms === null ? 0 : q.ttft_ms / 1000));
  }
  return out;
}

/**
 * The JSON file of a run: vLLM's summary keys (vllmKeys) and ours (resultToJson, versioned by
 * `schema`), side by side at the top level; no raw samples, per-request records with `requests`.
 */
export function runJson(r: LoadResult, opts: { requests?: boolean } & VllmContext = {}): Record<string, unknown> {
  const ours = resultToJson(r, opts);
  const v = vllmKeys(opts.requests === true ? r : { ...r, requests: undefined }, opts);
  return { ...v, ...ours };
}

/** Writes `runJson(r, opts)`. */
export function writeJson(file: string, r: LoadResult, opts: { requests?: boolean } & VllmContext = {}): void {
  ensureDir(file);
  writeFileSync(file, JSON.stringify(runJson(r, opts), null, 2) + '\n');
}

/** CSV columns: one row per run (a rate sweep writes one per rate). */
export const CSV_COLUMNS = [
  'name', 'request_rate', 'max_concurrency', 'completed', 'errors', 'rejected', 'duration_s', 'request_throughput', 'output_throughput',
  'total_token_throughput', 'request_goodput', 'ttft_p50_ms', 'ttft_p90_ms', 'ttft_p99_ms', 'tpot_p50_ms', 'tpot_p99_ms', 'itl_p50_ms',
  'itl_p99_ms', 'e2el_p50_ms', 'e2el_p99_ms', 'cache_hit_rate', 'schedule_lag_p99_wall_ms',
] as const;

function csvCell(v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function renderCsv(runs: NamedResult[]): string {
  const rows = [CSV_COLUMNS.join(',')];
  for (const { name, result: r } of runs) {
    const l = r.latency;
    const row: Record<(typeof CSV_COLUMNS)[number], unknown> = {
      name,
      request_rate: r.config.rate ?? '',
      max_concurrency: r.config.max_concurrency ?? (r.config.mode === 'closed' ? r.config.concurrency : ''),
      completed: r.counts.ok,
      errors: r.counts.errors,
      rejected: r.counts.rejected,
      duration_s: r.duration_s,
      request_throughput: r.throughput.requests_per_s,
      output_throughput: r.throughput.output_tokens_per_s,
      total_token_throughput: r.throughput.total_tokens_per_s,
      request_goodput: r.goodput?.rps,
      ttft_p50_ms: l.ttft_ms?.p50,
      ttft_p90_ms: l.ttft_ms?.p90,
      ttft_p99_ms: l.ttft_ms?.p99,
      tpot_p50_ms: l.tpot_ms?.p50,
      tpot_p99_ms: l.tpot_ms?.p99,
      itl_p50_ms: l.itl_ms?.p50,
      itl_p99_ms: l.itl_ms?.p99,
      e2el_p50_ms: l.e2e_ms?.p50,
      e2el_p99_ms: l.e2e_ms?.p99,
      cache_hit_rate: r.tokens.cache_hit_rate,
      schedule_lag_p99_wall_ms: r.schedule_lag_wall_ms?.p99,
    };
    rows.push(CSV_COLUMNS.map((c) => csvCell(row[c])).join(','));
  }
  return rows.join('\n') + '\n';
}

export function writeCsv(file: string, runs: NamedResult[]): void {
  ensureDir(file);
  writeFileSync(file, renderCsv(runs));
}
