#!/usr/bin/env node
// Writes docs/benchmarks.md from a bench:proxy results file (default: the newest full run in
// native-bench/results/), so the published numbers are always the measured ones.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RESULTS = join(ROOT, 'native-bench', 'results');
const file = process.argv[2] ?? join(RESULTS, readdirSync(RESULTS).filter((f) => /^proxy-.*\.json$/.test(f) && !f.includes('quick')).sort().pop() ?? '');
const r = JSON.parse(readFileSync(file, 'utf8'));

const cell = (c, conc, target) => r.results.find((x) => x.case === c && x.concurrency === conc && x.target === target)?.median;
const CASES = [...new Set(r.results.map((x) => x.case))];
const CONCS = [...new Set(r.results.map((x) => x.concurrency))].sort((a, b) => a - b);
const TARGETS = [...new Set(r.results.map((x) => x.target))];
const LABEL = {
  router: 'router (access log off)',
  'router-log': 'router (access log on, the default)',
  'router-undici': 'router, upstream leg on undici',
  'router-gw': 'router, Gateway path (HTTPRoute → InferencePool)',
  'router-base': 'router, baseline build',
  'bare-undici': 'bare uWS (2 threads) + undici Pool.dispatch',
  'bare-h1': 'bare uWS (2 threads) + the router\'s HTTP/1.1 client',
  nginx: 'nginx',
  direct: 'direct to the pods',
};
const x2 = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');
const f0 = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');

// Every proxy against nginx of the same run, at the loaded concurrencies.
const ratios = [];
for (const c of CASES) {
  for (const conc of CONCS.filter((k) => k > 1)) {
    const nginx = cell(c, conc, 'nginx');
    for (const t of TARGETS) {
      if (t === 'direct') continue;
      const m = cell(c, conc, t);
      if (!m) continue;
      ratios.push(`| ${c} | ${conc} | ${LABEL[t] ?? t} | ${f0(m.rps)} | ${nginx ? x2(m.rps, nginx.rps) : 'n/a'} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${f1(m.cpuUsPerReq)} | ${nginx ? x2(m.cpuUsPerReq, nginx.cpuUsPerReq) : 'n/a'} |`);
    }
  }
}

// Added latency at c=1: each proxy's p50/p99 over direct-to-pod.
const added = [];
if (CONCS.includes(1)) {
  for (const c of CASES) {
    const d = cell(c, 1, 'direct');
    if (!d) continue;
    for (const t of TARGETS) {
      if (t === 'direct') continue;
      const m = cell(c, 1, t);
      if (!m) continue;
      const us = (v) => `+${Math.round(v * 1000)}`;
      added.push(`| ${c} | ${LABEL[t] ?? t} | ${(m.p50 * 1000).toFixed(0)} | ${(m.p99 * 1000).toFixed(0)} | ${us(m.p50 - d.p50)} | ${us(m.p99 - d.p99)} | ${f1(m.cpuUsPerReq)} |`);
    }
    added.push(`| ${c} | direct to the pods | ${(d.p50 * 1000).toFixed(0)} | ${(d.p99 * 1000).toFixed(0)} | – | – | – |`);
  }
}

// Pairs measured side by side: the Gateway path against the ModelRoute path, access log on
// against off, and each upstream client against undici.
const PAIRS = [
  ['router-gw', 'router', 'Gateway path / ModelRoute path'],
  ['router-log', 'router', 'access log on / off'],
  ['router', 'router-undici', 'router: HTTP/1.1 client / undici'],
  ['bare-h1', 'bare-undici', 'bare uWS: HTTP/1.1 client / undici'],
];
const pairRows = [];
const pairCpu = [];
for (const [a, b, what] of PAIRS) {
  const cpu = [];
  for (const c of CASES) {
    for (const conc of CONCS) {
      const ma = cell(c, conc, a);
      const mb = cell(c, conc, b);
      if (!ma || !mb) continue;
      if (ma.cpuUsPerReq > 0 && mb.cpuUsPerReq > 0) cpu.push(ma.cpuUsPerReq / mb.cpuUsPerReq);
      pairRows.push(`| ${what} | ${c} | ${conc} | ${x2(ma.rps, mb.rps)} | ${x2(ma.p50, mb.p50)} | ${x2(ma.p99, mb.p99)} | ${f1(ma.cpuUsPerReq)} / ${f1(mb.cpuUsPerReq)} |`);
    }
  }
  if (cpu.length > 0) {
    cpu.sort((x, y) => x - y);
    pairCpu.push(`- ${what}: CPU per request ${cpu[Math.floor(cpu.length / 2)].toFixed(2)}x (median over ${cpu.length} cells, range ${cpu[0].toFixed(2)}x to ${cpu[cpu.length - 1].toFixed(2)}x).`);
  }
}

// The scheduler micro-benchmark (native-bench scheduler: native-bench/src/micro/scheduler.ts), newest full run.
const schedFile = readdirSync(RESULTS).filter((f) => /^scheduler-.*\.json$/.test(f)).sort().pop();
let schedSection = '';
if (schedFile !== undefined) {
  const sr = JSON.parse(readFileSync(join(RESULTS, schedFile), 'utf8'));
  const us = (ns) => (ns / 1000).toFixed(2);
  const rows = sr.results.map((x) => `| ${x.endpoints} | ${x.promptBytes >= 1024 ? `${x.promptBytes / 1024} KB` : `${x.promptBytes} B`} | ${us(x.perDecisionNs.p50)} | ${us(x.perDecisionNs.p99)} | ${us(x.perDecisionNs.p999)} | ${us(x.batchedNs.p50)} / ${us(x.batchedNs.p99)} | ${x.bytesPerDecision.toFixed(1)} | ${us(x.postHookNs.p50)} |`);
  const sm = sr.machine;
  schedSection = `
## One scheduling decision (scheduler micro-benchmark)

From \`native-bench/results/${schedFile}\` (${sm.cpu}, ${sm.cores} cores, Node ${sm.node}, router ${sm.router}, ${sr.date}).
Rerun: \`npm run build && npx --no-install native-bench scheduler\`
(about 2 minutes); method in [native-bench/scheduler/README.md](../native-bench/scheduler/README.md).

Default plugin set (filter least-request; scores least-request, gpu-usage, least-latency,
prefix-cache), top-5 pick, request parsing excluded; prompt hashing, the shared prefix-index lookup,
seqlock reads of every candidate and scrapes landing during the run included. Per-decision times
include the ~50 ns timer. The post-schedule hook (prefix insert) runs after the response and is
timed apart. Goal from the issue: p99 ≤ 5 µs at 64 endpoints with a 1 KB prompt. Published anchors:
SGLang's gateway ~1.2 µs for a token match, Dynamo's prefix index 10 µs p99, the GIE endpoint picker
0.14–0.2 ms per cycle.

| endpoints | prompt | p50 µs | p99 µs | p99.9 µs | batched p50 / p99 µs | bytes allocated / decision | post hook p50 µs |
|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`;
}

// Before/after in one run: --targets router,router-base --base-router DIR.
const baseRows = [];
for (const c of [...new Set(r.results.map((x) => x.case))]) {
  for (const conc of [...new Set(r.results.map((x) => x.concurrency))]) {
    const now = cell(c, conc, 'router');
    const base = cell(c, conc, 'router-base');
    if (!now || !base) continue;
    baseRows.push(`| ${c} | ${conc} | ${(now.rps / base.rps).toFixed(2)}x | ${(now.p50 / base.p50).toFixed(2)}x | ${(now.p99 / base.p99).toFixed(2)}x | ${(now.cpuUsPerReq / base.cpuUsPerReq).toFixed(2)}x |`);
  }
}
const baseSection = baseRows.length === 0 ? '' : `
### This build / baseline build (same run)

The \`router-base\` target is an older build of the router (\`--base-router DIR\`, a built checkout of
the baseline commit), measured interleaved with this build in the same run.

| case | concurrency | req/s | p50 latency | p99 latency | CPU per request |
|---|---:|---:|---:|---:|---:|
${baseRows.join('\n')}
`;

// Scheduler comparisons (native-bench compare), newest run per workload.
const cmpSections = [];
for (const w of ['long-prefix', 'low-sharing']) {
  const f = readdirSync(RESULTS).filter((x) => x.startsWith(`compare-${w}-`) && x.endsWith('.json')).sort().pop();
  if (f === undefined) continue;
  const c = JSON.parse(readFileSync(join(RESULTS, f), 'utf8'));
  const random = c.configs.find((x) => x.name === 'random');
  const f0 = (v) => (v === null || v === undefined ? '-' : v.toFixed(0));
  const rows = c.configs.map((x) => x.skipped
    ? `| ${x.name} | skipped: ${x.skipped} |||||||||||`
    : `| ${x.name} | ${x.requests_per_s.toFixed(2)} | ${(x.requests_per_s / random.requests_per_s).toFixed(2)}x | ${f0(x.output_tokens_per_s)} | ${f0(x.ttft_p50_ms)} | ${f0(x.ttft_p99_ms)} | ${(x.ttft_p50_ms / random.ttft_p50_ms).toFixed(2)}x | ${x.itl_p50_ms?.toFixed(1) ?? '-'} | ${x.itl_p99_ms?.toFixed(1) ?? '-'} | ${x.goodput_rps?.toFixed(2) ?? '-'} | ${x.cache_hit_rate === null ? '-' : `${(x.cache_hit_rate * 100).toFixed(0)}%`} | ${x.errors} |`);
  const st = c.setup;
  const cm = c.machine ?? {};
  const repeat = c.repeat ?? 1;
  const runsNote = repeat > 1
    ? `Medians of ${repeat} runs per configuration (seeds 1-${repeat}, the configurations interleaved so that a slow spell of the machine falls on all of them); the ratios to random are ratios of medians. Every run's figures are in the second table.`
    : 'One run per configuration, one seed: differences of 10-20 % between runs of the same configuration are common, so read large factors, not small ones.';
  const notes = [runsNote];
  if (c.load_avg) {
    // The comparison itself (router, simulated pods, load generator) keeps the load average near 1.
    const shared = Math.max(c.load_avg.start, c.load_avg.end) > 2;
    notes.push(shared
      ? `The machine was shared with other work: its 1-minute load average was ${c.load_avg.start} when the comparison started and ${c.load_avg.end} when it ended (2 cores).`
      : `1-minute load average ${c.load_avg.start} when the comparison started and ${c.load_avg.end} when it ended (2 cores; the comparison itself accounts for about 1).`);
  }
  if (c.configs.some((x) => x.errors > 0)) notes.push('Errors are 503s (the `least-request` filter left no pod: every engine queue held ≥ maxWaitingRequests).');
  if (c.configs.some((x) => x.name.startsWith('kvcache-aware'))) {
    notes.push(st.timeScale > 1
      ? "kvcache-aware's remote tokenize and Redis lookups take real (wall) time; at time scale k each wall ms of them leaves the engines idle for k simulated ms, which penalises it here (compare it with `--time-scale 1`)."
      : "kvcache-aware's remote tokenize and Redis lookups take real time before a request reaches an engine (the last column of the engines table).");
  }
  const spreadRows = repeat > 1 && c.per_run ? c.configs.map((x) => {
    const runs = c.per_run[x.name] ?? [];
    return `| ${x.name} | ${runs.map((r) => r.requests_per_s.toFixed(2)).join(', ')} | ${runs.map((r) => f0(r.ttft_p50_ms)).join(', ')} | ${runs.map((r) => (r.cache_hit_rate === null ? '-' : `${(r.cache_hit_rate * 100).toFixed(0)}%`)).join(', ')} |`;
  }) : [];
  const fleetRows = c.configs.filter((x) => x.fleet).map((x) => {
    const q = x.fleet;
    return `| ${x.name} | ${q.busy_share === null ? '-' : `${(q.busy_share * 100).toFixed(0)}%`} | ${q.waiting_mean.toFixed(0)} | ${q.running_mean.toFixed(0)} | ${q.spread_mean.toFixed(1)} | ${q.preemptions} | ${(q.prefill_tokens / 1e6).toFixed(2)}M | ${q.loop_delay_ms_p99.toFixed(0)} | ${x.overhead_p50_ms == null ? '-' : x.overhead_p50_ms.toFixed(0)} |`;
  });
  cmpSections.push(`
### ${w}${c.quick ? ' (--quick)' : ''}

From \`native-bench/results/${f}\` (${cm.cpu ?? '?'}, ${cm.cores ?? '?'} cores, Node ${cm.node ?? '?'}, commit ${cm.git_commit ?? '?'}${cm.git_dirty ? ' + local changes' : ''}). ${st.pods} simulated vLLM pods (engine model, KV capacity ${st.kvCacheTokens} tokens each, time scale ${st.timeScale}),
generated-shared-prefix: ${st.groups} groups x ${st.perGroup} prompts, system prompt ${st.systemLen} tokens, question ${st.questionLen}, output ${st.outputLen};
closed loop with ${st.concurrency} users. Times are simulated ms (from the engines' \`sim_t\` stamps plus the router's real overhead); goodput SLO TTFT ≤ 2 s and mean ITL ≤ 100 ms.
${notes.join('\n')}

| configuration | req/s | vs random | output tok/s | TTFT p50 ms | TTFT p99 ms | TTFT p50 vs random | ITL p50 ms | ITL p99 ms | goodput req/s | cache hit | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
${spreadRows.length > 0 ? `
| configuration | req/s, each run | TTFT p50 ms, each run | cache hit, each run |
|---|---|---|---|
${spreadRows.join('\n')}
` : ''}${fleetRows.length > 0 ? `
What the simulated engines did (medians): engine busy time (the drain at the end keeps it below 100 %), requests waiting in and running on the engines (all pods), the mean gap between the most and the least loaded pod, preemptions, prompt tokens computed (uncached prefill), the event-loop delay of the process that runs the load generator and the simulated pods, and the wall time a request spent outside the engines before its first token (the router adds ~15 ms; far more means that process was starved of CPU and TTFT measures the machine).

| configuration | engines busy | waiting | running | pod spread | preemptions | prefill tokens | loop delay p99 ms | outside engines p50 ms |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${fleetRows.join('\n')}
` : ''}
![TTFT CDF per configuration](compare-${w}-ttft.svg)
`);
}
const cmpSection = cmpSections.length === 0 ? '' : `
## Scheduler comparison (native-bench compare)

Rerun: \`npm run build && npx --no-install native-bench compare --workload long-prefix --quick --repeat 3 --configs default,random --json native-bench/results/compare-long-prefix-quick-<date>.json --svg docs/compare-long-prefix-ttft.svg\`
(and the same with \`--workload low-sharing\`; 10-15 minutes each here; without \`--configs\`, every configuration), then \`npx --no-install native-bench report\`
(details in [native-bench.md](native-bench.md#native-bench-compare)).
Each configuration runs on a fresh simulated fleet and a fresh router. The simulator's model and
coefficients are described in [benchmarks-simulator.md](benchmarks-simulator.md).
${cmpSections.join('')}`;

// Prefill/decode disaggregation (native-bench pd), newest run.
const pdFile = readdirSync(RESULTS).filter((x) => /^pd-.*\.json$/.test(x)).sort().pop();
let pdSection = '';
if (pdFile !== undefined) {
  const p = JSON.parse(readFileSync(join(RESULTS, pdFile), 'utf8'));
  const st = p.setup;
  const pm = p.machine ?? {};
  const f0 = (v) => (v === null || v === undefined ? '-' : v.toFixed(0));
  const serving = p.serving.map((x) => `| ${x.name} | ${x.requests_per_s.toFixed(2)} | ${x.goodput_rps?.toFixed(2) ?? '-'} | ${f0(x.output_tokens_per_s)} | ${f0(x.ttft_p50_ms)} | ${f0(x.ttft_p99_ms)} | ${x.itl_p50_ms?.toFixed(1) ?? '-'} | ${x.itl_p99_ms?.toFixed(1) ?? '-'} | ${f0(x.e2e_p50_ms)} | ${x.errors} |`);
  const direct = p.overhead[0]?.latency_ms;
  const one = p.overhead[1]?.latency_ms;
  const over = p.overhead.map((x, i) => {
    const d = x.latency_ms;
    const vsDirect = i > 0 && d && direct ? `${(d.p50 - direct.p50).toFixed(3)} ms` : '-';
    const vsOne = i > 1 && d && one ? `${(d.p50 - one.p50).toFixed(3)} ms` : '-';
    return `| ${x.name} | ${x.requests_per_s.toFixed(0)} | ${d?.p50.toFixed(3) ?? '-'} | ${d?.p99.toFixed(3) ?? '-'} | ${vsDirect} | ${vsOne} | ${x.errors} |`;
  });
  pdSection = `
## Prefill/decode disaggregation (native-bench pd)

Rerun: \`npm run build && npx --no-install native-bench pd\` (about a minute), then \`npx --no-install native-bench report\`.
From \`native-bench/results/${pdFile}\` (${pm.cpu ?? '?'}, ${pm.cores ?? '?'} cores, Node ${pm.node ?? '?'}, commit ${pm.git_commit ?? '?'}${pm.git_dirty ? ' + local changes' : ''}).

Serving: ${st.groups} groups of ${st.prefillPerGroup} prefill + ${st.decodePerGroup} decode simulated ${st.connector === 'sglang' ? 'SGLang' : 'vLLM'} pods (connector ${st.connector}), against the same ${st.pods} pods serving
whole requests, both through the router with its default scheduler. Engine model at time scale ${st.timeScale}; generated-shared-prefix ${st.prompts} prompts x ${st.perPrompt},
system ${st.systemLen} tokens, question ${st.questionLen}, output ${st.outputLen}; closed loop with ${st.concurrency} users; times in simulated ms; goodput SLO TTFT ≤ 2 s, mean ITL ≤ 100 ms.
The simulator's PD model (prefill pods compute, decode pods pay a KV transfer and never prefill) is described in [benchmarks-simulator.md](benchmarks-simulator.md); it is a model, not a GPU.

| fleet | req/s | goodput req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | e2e p50 ms | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${serving.join('\n')}

Router overhead of the second leg: engines that answer at once (fixed mode, one token), ${st.overheadRequests} requests per target, closed loop with ${st.overheadConcurrency} users, wall-clock ms
on the same two shared cores (the router, the engines and the load generator compete for them).

| target | req/s | p50 ms | p99 ms | added p50 vs direct | added p50 vs one leg | errors |
|---|---:|---:|---:|---:|---:|---:|
${over.join('\n')}
`;
}

const m = r.machine;
const doc = `# Benchmarks

Generated by \`npx --no-install native-bench report\` (\`native-bench/proxy/report.mjs\`) from the newest results in
\`native-bench/results/\`; do not edit its generated sections by hand (a section it does not generate, such as the Endpoint Picker round trip, is kept as it is). Proxy overhead from \`${file.slice(ROOT.length + 1)}\`.
Rerun: \`npm run build && npx --no-install native-bench proxy\` (about 25 minutes with every target; \`--runs 1\` about 10), then \`npx --no-install native-bench report\`.

Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.kernel}; Node ${m.node}, undici ${m.undici}, nginx ${m.nginx}; router ${m.router}. Date: ${r.date}.

## Router overhead (bench:proxy)

Every target runs in front of the same two uWebSockets.js mock engines on loopback: the router
(2 worker threads, whole pipeline: parse, match, schedule, metrics), with its access log off (like
nginx's) and on (its default), on its Gateway listener (HTTPRoute → InferencePool), the two bare
floors (uWebSockets.js worker threads forwarding with nothing else: undici \`Pool.dispatch\`, or the
router's own HTTP/1.1 client, workers/upstream/), Debian's nginx (2 workers, keep-alive upstreams)
and the engines directly. Targets are interleaved within each run; every process shares the same
cores, so compare the targets with each other (the ratios below come from one run), not with a
dedicated machine. CPU per request = utime+stime of the target's processes (/proc/<pid>/stat) ÷
completed requests. Closed loop (fixed concurrency): this is capacity, and its latencies hide
queueing delay; open-loop TTFT/ITL benchmarks come with native-bench's LLM load generator.

${r.config.note ? `> **About this run:** ${r.config.note}\n\n` : ''}${r.machine.loadAvgAtStart !== undefined ? `Load average (1 min) at the start and end of the run: ${r.machine.loadAvgAtStart.toFixed(1)} and ${r.machine.loadAvgAtEnd?.toFixed(1) ?? '?'}.\n\n` : ''}### Every target against nginx (medians of the runs)

| case | concurrency | target | req/s | req/s vs nginx | p50 ms | p99 ms | CPU µs/req | CPU vs nginx |
|---|---:|---|---:|---:|---:|---:|---:|---:|
${ratios.join('\n')}
${added.length === 0 ? '' : `
### Added latency at concurrency 1 (µs over direct-to-pod)

| case | target | p50 µs | p99 µs | added p50 µs | added p99 µs | CPU µs/req |
|---|---|---:|---:|---:|---:|---:|
${added.join('\n')}
`}${pairRows.length === 0 ? '' : `
### Side by side (same run)

| comparison | case | concurrency | req/s | p50 | p99 | CPU µs/req (first / second) |
|---|---|---:|---:|---:|---:|---:|
${pairRows.join('\n')}

${pairCpu.join('\n')}
`}${baseSection}
### All figures

${r.markdown.split('\n').filter((l) => !l.startsWith('# ')).join('\n')}
${schedSection}${cmpSection}${pdSection}`;
// Sections this script does not generate (written from other tools' runs, e.g. the Endpoint
// Picker round trip) are carried over from the current file, after the generated ones.
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const generated = new Set(doc.split('\n').filter((l) => l.startsWith('## ')));
let kept = '';
try {
  const old = readFileSync(DOC, 'utf8').split(/\n(?=## )/).slice(1);
  for (const section of old) if (!generated.has(section.split('\n')[0])) kept += `\n${section.trimEnd()}\n`;
} catch {
  // No current file: nothing to keep.
}
writeFileSync(DOC, doc + kept);
process.stdout.write(`wrote docs/benchmarks.md from ${file}\n`);
