/**
 * What a scheduler plugin is: the contract between the framework (framework.ts), the registry
 * (registry.ts) and each plugin file (plugins/<name>.ts). A plugin file imports this module and
 * nothing of the framework; the framework imports the registry and nothing of any plugin, so there
 * is no import circle. Modelled on the Gateway API Inference Extension's plugin registry
 * (kubernetes-sigs/gateway-api-inference-extension: plugins registered by type name, each with
 * its own factory and parameters), with Kthena's plugin names and arguments
 * (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/).
 *
 * One definition serves both threads: the control thread validates `routerConfiguration`'s
 * pluginConfig against `args` (src/routerconfig/parse.ts), the snapshot carries the resulting
 * arguments as one sub-document keyed by plugin name, and the worker builds the plugin from them.
 */
import { EndpointView } from './endpoint-view.js';
import type { SchedulerMetrics } from './metrics.js';
import type { PrefixHasher } from './prefix-hash.js';
import type { PrefixIndex } from './prefix-index.js';
import type { ScheduleRequest } from './types.js';

// ---- arguments ----------------------------------------------------------------------------------

/**
 * One argument of a plugin, under its name in `routerConfiguration` (Kthena's YAML spelling).
 * `int`: an integer in [min, max]; `unit`: a number in [0, 1].
 */
export type ArgSpec =
  | { readonly type: 'int'; readonly min: number; readonly max: number; readonly default: number }
  | { readonly type: 'unit'; readonly default: number };

/** A plugin's validated arguments, every default filled in: argument name -> value. */
export type PluginArgs = Readonly<Record<string, number>>;

/** A problem with one argument; `arg` is '' for the arguments as a whole. */
export interface ArgProblem { arg: string; message: string }

// ---- the plugins themselves ---------------------------------------------------------------------

/** ScorePlugin.score() results. */
export const kNoScores = 0;
export const kScoredAll = 1;
export const kScoredSome = 2;
export type ScoreResult = typeof kNoScores | typeof kScoredAll | typeof kScoredSome;

/**
 * A filter plugin. `filter` keeps the candidates that pass by compacting ctx.cand[0..ctx.m-1] in
 * place (order preserved) and returns how many remain. It must not allocate, must not keep
 * references to ctx beyond the call, and reads endpoint data only through ctx.view (or with
 * single-word Atomics.load of ctx.ep).
 */
export interface FilterPlugin {
  /** Kthena's registered name; the failure message and the metric label use it. */
  readonly name: string;
  /** True when the plugin reads scraped fields (the view then does the seqlock reads). */
  readonly consumesMetrics: boolean;
  filter(ctx: DecisionContext): number;
}

/**
 * A score plugin. `score` computes an integer score in 0..100 for candidate positions k < ctx.m
 * (the candidate is endpoint ctx.cand[k]) and adds score * w to total[k] (w: its configured
 * weight). It returns what it did: kNoScores (no scores at all this decision, Kthena's nil map;
 * total untouched), kScoredAll (every candidate scored) or kScoredSome (only `partial` plugins:
 * it set ctx.scored[k] = 1 for each candidate it scored; the others are not made eligible by it).
 * It may use ctx.tmp as scratch. It must not allocate and must not keep references to ctx or
 * total beyond the call. Adding in place instead of returning scores saves a pass per plugin.
 */
export interface ScorePlugin {
  readonly name: string;
  readonly consumesMetrics: boolean;
  /** May return kScoredSome (the framework then clears ctx.scored before the scores run). */
  readonly partial: boolean;
  /**
   * The contribution depends only on the candidates' scraped fields (view records, not in-flight)
   * and the plugin's configuration. The framework then reuses it while the candidate list and the
   * view version are unchanged (scrapes land once per interval; decisions run far more often).
   * A pure plugin is never partial.
   */
  readonly pure: boolean;
  score(ctx: DecisionContext, total: Float64Array, w: number): ScoreResult;
  /**
   * Set by a plugin that hashes the prompt into ctx.hashCount / the hasher: the bound of entries
   * per pod in the shared prefix index. The framework then lets the caller record the chosen pod
   * as holding the prompt's prefixes (Kthena's PostSchedule: takePrefixHashes, postSchedule).
   */
  readonly prefixIndexBound?: number;
  /**
   * Set by a plugin whose scores are computed before the decision, off the synchronous pick (a
   * network round trip), and passed to schedule() as `extra`: the caller must run that step.
   */
  readonly scoresFromExtra?: boolean;
}

/** What plugins share with the scheduler that built them (one set per worker). */
export interface PluginDeps {
  readonly hasher: PrefixHasher;
  readonly index: PrefixIndex;
  readonly metrics: SchedulerMetrics;
}

/**
 * A registered plugin: its name, its arguments, and a factory per role it can play (Kthena's
 * least-request is both a filter and a score plugin). Factories get arguments the schema has
 * already accepted, so they only build.
 */
export interface PluginDefinition {
  /** Kthena's registered name (routerConfiguration, metric labels, failure messages). */
  readonly name: string;
  /** Argument schema with defaults, in documentation order. Empty: the plugin takes none. */
  readonly args: Readonly<Record<string, ArgSpec>>;
  /** Checks across arguments or against worker limits, beyond each argument's range. */
  readonly check?: (args: PluginArgs) => ArgProblem[];
  readonly filter?: (args: PluginArgs) => FilterPlugin;
  readonly score?: (args: PluginArgs, deps: PluginDeps) => ScorePlugin;
}

/** Identity for typing a plugin file's export (`export const plugin = definePlugin({...})`). */
export function definePlugin<const D extends PluginDefinition>(d: D): D {
  return d;
}

/** Every argument's default. */
export function defaultArgs(def: PluginDefinition): PluginArgs {
  const out: Record<string, number> = {};
  for (const [k, spec] of Object.entries(def.args)) out[k] = spec.default;
  return Object.freeze(out);
}

/**
 * Validates `raw` (the `args` mapping of a pluginConfig entry; keys as written) against the
 * plugin's schema and merges it over the defaults. Unknown arguments and out-of-range values are
 * problems, never silently defaulted.
 */
export function resolveArgs(def: PluginDefinition, raw: Readonly<Record<string, unknown>>): { args: PluginArgs; problems: ArgProblem[] } {
  const args: Record<string, number> = { ...defaultArgs(def) };
  const problems: ArgProblem[] = [];
  const known = Object.keys(def.args);
  for (const [k, v] of Object.entries(raw)) {
    const spec = def.args[k];
    if (spec === undefined) {
      problems.push({ arg: k, message: `unknown argument "${k}" for plugin "${def.name}"${known.length ? ` (known: ${known.join(', ')})` : ' (it takes none)'}` });
      continue;
    }
    const message = argError(spec, v);
    if (message !== null) problems.push({ arg: k, message });
    else args[k] = v as number;
  }
  if (problems.length === 0 && def.check !== undefined) problems.push(...def.check(args));
  return { args: Object.freeze(args), problems };
}

function argError(spec: ArgSpec, v: unknown): string | null {
  if (spec.type === 'unit') {
    return typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1 ? `must be a number in [0, 1], got ${JSON.stringify(v)}` : null;
  }
  return typeof v !== 'number' || !Number.isInteger(v) || v < spec.min || v > spec.max
    ? `must be an integer in [${spec.min}, ${spec.max}], got ${JSON.stringify(v)}`
    : null;
}

// ---- the per-decision state ---------------------------------------------------------------------

/**
 * The decisions' random stream: mulberry32 over an Int32Array(1) state, 30 bits per draw. The
 * result is always a small integer (a V8 Smi), so a call never allocates, even when it is not
 * inlined; a stored `() => number` such as Math.random returns a heap-allocated double on every
 * call that is not inlined (measured: ~80 bytes per decision in the pick alone).
 */
export function nextRandom30(state: Int32Array): number {
  const a = (state[0] + 0x6d2b79f5) | 0;
  state[0] = a;
  let t = Math.imul(a ^ (a >>> 15), a | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 2;
}

/** 2^-30: nextRandom30() * kRandomScale is uniform in [0, 1). */
export const kRandomScale = 1 / 1073741824;

/** The per-decision state plugins read. One instance per Scheduler, reused by every decision. */
export class DecisionContext {
  readonly view = new EndpointView();
  req: ScheduleRequest = { model: '', modelId: -1, prompt: '', body: {}, engine: 'vLLM' };
  /** kvcache-aware scores by endpoint index (NaN = no entry), or null. */
  extra: Float64Array | null = null;
  /** Surviving candidates: endpoint indexes cand[0..m-1]. */
  cand = new Int32Array(0);
  m = 0;
  /** Slot / generation of candidate k (compacted for the prefix index). */
  candSlot = new Int32Array(0);
  candGen = new Int32Array(0);
  /** Per candidate k: 1 = scored by a partial plugin this decision. */
  scored = new Uint8Array(0);
  /** Per-candidate scratch for plugins. */
  tmp = new Float64Array(0);
  /** Prefix hashes the prefix-cache plugin left in the hasher this decision (0 = none). */
  hashCount = 0;
  /** State of the decisions' random stream (nextRandom30). */
  readonly rng = new Int32Array(1);

  constructor(readonly ep: Int32Array) {
    this.ensure(this.view.capacity);
  }

  ensure(n: number): void {
    this.view.ensure(n);
    const cap = this.view.capacity;
    if (this.cand.length < cap) {
      this.cand = new Int32Array(cap);
      this.candSlot = new Int32Array(cap);
      this.candGen = new Int32Array(cap);
      this.scored = new Uint8Array(cap);
      this.tmp = new Float64Array(cap);
    }
  }
}
