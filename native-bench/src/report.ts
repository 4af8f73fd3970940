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
  const proc = c.arrival === 'gamma' ? `gamma arrivals (CV ${c.burstiness_cv})` : 'Poisson arrivals';
  return `open loop, ${proc} at ${c.rate} req/s; ${bound}; at most ${c.max_inflight} in flight`;
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

/** Writes the JSON form of a result (no raw samples; per-request records with `requests`). */
export function writeJson(file: string, r: LoadResult, opts: { requests?: boolean } = {}): void {
  ensureDir(file);
  writeFileSync(file, JSON.stringify(resultToJson(r, opts), null, 2) + '\n');
}
