/**
 * native-bench's load generator as a library (what `native-bench run` and `compare` are built on).
 *
 *   const r = await runLoad({ urls: ['http://127.0.0.1:8080'], model: 'm', rate: 10,
 *                             workload: generatedSharedPrefix({ numGroups: 8 }, 1), slo: { ttftMs: 2000 } });
 *   headline(r);                       // { requests_per_s, ttft_p50_ms, ... } for a comparison row
 *   writeMarkdown('out.md', [{ name: 'random', result: r }]);
 *   writeSvg('ttft.svg', [{ name: 'random', result: r }]);   // TTFT CDF, one line per run
 *
 * Times are simulated milliseconds when the target is the engine simulator (see runner.ts and
 * timing.ts); wall milliseconds against real servers.
 */

export { runLoad, resultToJson, endpointTarget, RESULT_SCHEMA } from './runner.js';
export type { LoadOptions, LoadResult, RequestRecord, RunConfig, RunSamples, ProgressSnapshot, Endpoint } from './runner.js';

export {
  generatedSharedPrefix,
  randomLengths,
  multiTurn,
  SharedPrefixWorkload,
  RandomWorkload,
  MultiTurnWorkload,
  sharedPrefixSystemPrompt,
  sharedPrefixOrder,
  parseLoraMix,
  parseRange,
  pickModel,
  GSP_DEFAULTS,
  RANDOM_DEFAULTS,
  MULTI_TURN_DEFAULTS,
  WAIT,
} from './workloads.js';
export type { Workload, RequestSpec, ChatMessage, Outcome, SharedPrefixParams, RandomParams, MultiTurnParams, LoraShare, LenRange } from './workloads.js';

export { arrivalProcess, arrivalTimes } from './arrivals.js';
export type { ArrivalKind, ArrivalOptions, ArrivalProcess } from './arrivals.js';

export { summarize, percentile, goodput, meetsSlo, Samples } from './stats.js';
export type { Dist, Slo, SloSample, Goodput } from './stats.js';

export { StreamClock } from './timing.js';
export { TIME_SCALE_HEADER } from './client.js';

export { runThreaded, mergeResults, fullSchedule, shardTasks, ShardWorkload, workloadFromSpec } from './threads.js';
export type { WorkloadSpec, ThreadTask } from './threads.js';
export { DatasetWorkload, loadShareGpt, sampleShareGpt, loadJsonl, parseJsonl, loadTokenizer, ESTIMATE_COUNTER, DatasetError } from './datasets.js';
export type { DatasetItem, TokenCounter } from './datasets.js';

export { headline, renderMarkdown, writeMarkdown, writeJson, runJson, vllmKeys, renderCsv, writeCsv, CSV_COLUMNS, fmtMs, fmtRate, describeWorkload, describeLoad, describeTime } from './report.js';
export type { NamedResult, Headline, MarkdownOptions } from './report.js';

export { renderSvg, writeSvg, cdfPoints, cdfSeries, latencyCdfChart, ttftCdfChart, PALETTE } from './svg.js';
export type { Chart, Series } from './svg.js';

export { randomWords, indexWord, indexedText, generatedTokens, CHARS_PER_TOKEN } from './text.js';
export { Rng, streamSeed, hashUnit } from './rng.js';
export { machineInfo } from './machine.js';
export type { MachineInfo } from './machine.js';
export { main, parseRunArgs, parseRates, sweepFile, discoverModel, USAGE, UsageError } from './cli.js';
