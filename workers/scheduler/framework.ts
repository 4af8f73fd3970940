/**
 * The worker-side scheduler: filters -> scores -> pick, Kthena's framework
 * (volcano-sh/kthena:pkg/kthena-router/scheduler/scheduler_impl.go) without its per-request maps,
 * sort and timers. It knows plugins only through the registry (registry.ts) and the contract in
 * plugin-api.ts; no plugin is imported here.
 *
 * One decision:
 *  1. read every candidate's shared-memory fields once into the EndpointView (seqlock reads,
 *     skipped for slots whose seqlock did not move since the last decision);
 *  2. run the filters in configured order over an index list compacted in place; a filter that
 *     empties it fails the decision with its name (`pods have all been filtered out by "<name>"`);
 *  3. run the score plugins: total[k] += score * weight; only candidates that received a score
 *     from at least one plugin are eligible (a plugin giving no scores, e.g. prefix-cache on an
 *     empty prompt, or kvcache-aware for pods without an entry, makes none eligible; weight 0
 *     still makes them eligible, as in Kthena). Totals are sums of integers, so the order of
 *     addition does not change them: the "pure" plugins (gpu-usage, least-latency: they read only
 *     scraped fields) run first and their summed contribution is reused by the next decisions
 *     while the candidate list and every candidate's scraped fields are unchanged (scrapes land
 *     once per interval, decisions far more often); the others follow in configured order;
 *  4. pick the best N (N = out.length; Kthena's TopN is 5) in one pass with insertion into a
 *     preallocated array of N. Ties are broken uniformly at random: each eligible candidate's key
 *     is total + u, u uniform in [0, 1), and totals are integers, so u only orders equal totals.
 *     A candidate whose integer total is below the current N-th key cannot enter the list and
 *     draws no random number (the outcome distribution is the same as drawing for everyone).
 *
 * Nothing is allocated per decision: scratch typed arrays live on the Scheduler and grow only when
 * a server has more endpoints than any before. Plugin durations are timed on 1 decision in
 * `sampleEvery` only, for the plugins that ran in it (a pure plugin whose contribution was reused
 * did not run: its series counts only the sampled decisions that recomputed it). The clock
 * readings of a sampled decision allocate a few numbers. The one per-request allocation is
 * takePrefixHashes()'s copy, which must outlive the decision (the post hook runs after the
 * response succeeded).
 */
import type { SchedulerIR } from '../../src/ir/types.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';
import { SchedulerMetrics } from './metrics.js';
import {
  DecisionContext, kRandomScale, kScoredAll, kScoredSome, nextRandom30, resolveArgs, type FilterPlugin, type PluginArgs, type PluginDeps, type ScorePlugin,
} from './plugin-api.js';
import { PrefixHasher } from './prefix-hash.js';
import { PrefixIndex } from './prefix-index.js';
import { PLUGIN_IDENTITIES, pluginIdentity, pluginNamed } from './registry.js';
import type { ScheduleRequest, SchedEndpoint } from './types.js';

/** The prefix hashes of one request, kept for the post-schedule hook. */
export class PrefixHashes {
  constructor(
    readonly lo: Int32Array,
    readonly hi: Int32Array,
    readonly count: number,
  ) {}
}

/** A compiled scheduler profile: the plugins of one SchedulerIR, built once per snapshot. */
export class Profile {
  constructor(
    readonly ir: SchedulerIR,
    readonly filters: readonly FilterPlugin[],
    readonly scores: readonly ScorePlugin[],
    /** Metric identities (registry.ts) of filters[f] and scores[j]. */
    readonly filterIds: Int32Array,
    readonly scoreIds: Int32Array,
    /** weights[j] of scores[j]: integers >= 0. */
    readonly weights: Float64Array,
    /**
     * A score plugin takes its scores from `extra` (ScorePlugin.scoresFromExtra: kvcache-aware): the
     * pipeline awaits KvCacheAwareScorer.score before schedule() and passes its out array.
     */
    readonly hasKvcacheAware: boolean,
    /** schedule() hashes the prompt; takePrefixHashes()/postSchedule() matter. */
    readonly hasPrefixCache: boolean,
    /** Some plugin reads scraped fields (else the view skips the seqlock reads). */
    readonly needsMetrics: boolean,
    /** Some score plugin may score only some candidates (ctx.scored is cleared per decision). */
    readonly hasPartial: boolean,
    /** Indexes into scores of the pure plugins, and of the others, each in configured order. */
    readonly pureIdx: Int32Array,
    readonly restIdx: Int32Array,
    /** ScorePlugin.prefixIndexBound of the prefix-hashing plugin: bound of entries per pod in the shared index. */
    readonly maxHashCacheSize: number,
  ) {}
}

export interface SchedulerDeps {
  /** Int32Array over the endpoint slots region. */
  ep: Int32Array;
  prefixSab: SharedArrayBuffer;
  /**
   * Uniform in [0, 1), Math.random by default; called once, to seed the scheduler's own
   * allocation-free random stream (tie-break keys, the random plugin). A seeded function makes
   * decisions reproducible.
   */
  random?: () => number;
  /** Plugin timing: 1 decision in N is timed (default 64; 1 = every decision). */
  sampleEvery?: number;
}

export class Scheduler {
  /** Name of the filter that emptied the candidate list in the last schedule() that returned 0. */
  filteredBy = '';

  readonly #ep: Int32Array;
  readonly #sampleEvery: number;
  #countdown = 1;
  readonly #ctx: DecisionContext;
  readonly #metrics = new SchedulerMetrics(PLUGIN_IDENTITIES);
  readonly #hasher = new PrefixHasher();
  readonly #index: PrefixIndex;
  readonly #deps: PluginDeps;
  // Per-candidate totals (by candidate position k).
  #total = new Float64Array(0);
  // The pure plugins' summed contribution, and what it was computed for (see ScorePlugin.pure).
  #pureTotal = new Float64Array(0);
  /** Stands for #pureTotal in profiles without pure plugins (never written). */
  #zeros = new Float64Array(0);
  #pureCand = new Int32Array(0);
  #pureM = -1;
  #pureVersion = -1;
  #pureProfile: Profile | null = null;
  #pureAll = false;
  // Top-N keys, best first.
  #keys = new Float64Array(8);

  constructor(deps: SchedulerDeps) {
    if (!(deps.ep instanceof Int32Array)) throw new TypeError('Scheduler: deps.ep must be an Int32Array over the endpoint region');
    if (!(deps.prefixSab instanceof SharedArrayBuffer)) throw new TypeError('Scheduler: deps.prefixSab must be a SharedArrayBuffer');
    const sampleEvery = deps.sampleEvery ?? 64;
    if (!Number.isInteger(sampleEvery) || sampleEvery < 1) throw new TypeError(`Scheduler: sampleEvery must be an integer >= 1, got ${sampleEvery}`);
    const random = deps.random ?? Math.random;
    if (typeof random !== 'function') throw new TypeError('Scheduler: deps.random must be a function returning [0, 1)');
    this.#ep = deps.ep;
    this.#sampleEvery = sampleEvery;
    this.#index = new PrefixIndex(deps.prefixSab, deps.ep);
    this.#ctx = new DecisionContext(deps.ep);
    this.#ctx.rng[0] = Math.floor(random() * 4294967296) | 0;
    this.#deps = { hasher: this.#hasher, index: this.#index, metrics: this.#metrics };
    this.#grow(this.#ctx.view.capacity);
  }

  /**
   * Once per snapshot generation. modelNames/modelIds are the IR's (labels of per-model evictions).
   * Plugin arguments were validated by the control thread against the same definitions; they are
   * checked again here (once per snapshot, not per decision) so that a snapshot from a mismatched
   * build fails its compile instead of scheduling with nonsense.
   */
  compile(ir: SchedulerIR, modelNames: readonly string[], modelIds: readonly number[]): Profile {
    const filters = ir.filters.map((name) => {
      const def = pluginNamed(name);
      if (def?.filter === undefined) throw new TypeError(`unknown scheduler filter plugin ${JSON.stringify(name)}`);
      return def.filter(checkedArgs(ir, name));
    });
    const scores = ir.scores.map((s) => {
      const def = pluginNamed(s.name);
      if (def?.score === undefined) throw new TypeError(`unknown scheduler score plugin ${JSON.stringify(s.name)}`);
      return def.score(checkedArgs(ir, s.name), this.#deps);
    });
    const weights = new Float64Array(ir.scores.length);
    ir.scores.forEach((s, j) => {
      if (!Number.isInteger(s.weight) || s.weight < 0) throw new TypeError(`scheduler plugin ${s.name}: weight must be an integer >= 0, got ${s.weight}`);
      weights[j] = s.weight;
    });
    const needsMetrics = filters.some((f) => f.consumesMetrics) || scores.some((s) => s.consumesMetrics);
    const pureIdx: number[] = [];
    const restIdx: number[] = [];
    scores.forEach((s, j) => {
      // Reuse is keyed on the view version, which tracks scraped fields only when some plugin consumes them.
      if (s.pure && (s.partial || !s.consumesMetrics)) throw new TypeError(`scheduler plugin ${s.name}: a pure score plugin must consume metrics and cannot be partial`);
      (s.pure ? pureIdx : restIdx).push(j);
    });
    const prefix = scores.find((s) => s.prefixIndexBound !== undefined);
    this.#metrics.modelIds(modelNames, modelIds, this.#index.evictionsByModelId);
    return new Profile(
      ir,
      filters,
      scores,
      Int32Array.from(filters, (f) => pluginIdentity(f.name, 'filter')),
      Int32Array.from(scores, (s) => pluginIdentity(s.name, 'score')),
      weights,
      scores.some((s) => s.scoresFromExtra === true),
      prefix !== undefined,
      needsMetrics,
      scores.some((s) => s.partial),
      Int32Array.from(pureIdx),
      Int32Array.from(restIdx),
      prefix?.prefixIndexBound ?? 0,
    );
  }

  /**
   * Writes up to out.length endpoint indexes (into `endpoints`), best first, and returns the count (>= 1).
   * 0: every candidate was filtered out; this.filteredBy holds the plugin name.
   * -1: no score plugin produced any score (Kthena: zero candidates).
   */
  schedule(p: Profile, endpoints: readonly SchedEndpoint[], req: ScheduleRequest, out: Int32Array, extra: Float64Array | null): number {
    const ctx = this.#ctx;
    const n = endpoints.length;
    if (n > ctx.view.capacity) this.#grow(n);
    ctx.view.load(this.#ep, endpoints, p.needsMetrics);
    ctx.req = req;
    ctx.extra = extra;
    ctx.hashCount = 0;
    const cand = ctx.cand;
    for (let i = 0; i < n; i++) cand[i] = i;
    ctx.m = n;

    // Sampled decisions read the clock once per plugin boundary (each reading allocates a number).
    let sampled = false;
    let t = 0;
    if (--this.#countdown <= 0) {
      this.#countdown = this.#sampleEvery;
      sampled = true;
      t = performance.now();
    }

    const filters = p.filters;
    for (let f = 0; f < filters.length; f++) {
      const plugin = filters[f];
      const kept = plugin.filter(ctx);
      if (sampled) t = this.#timed(req.model, p.filterIds[f], t);
      ctx.m = kept;
      if (kept === 0) {
        this.filteredBy = plugin.name;
        return 0;
      }
    }

    const m = ctx.m;
    const total = this.#total;
    if (p.hasPartial) ctx.scored.fill(0, 0, m);
    // Eligibility: every candidate once a plugin scored them all, else those marked in ctx.scored.
    let all = false;
    let some = false;
    const scores = p.scores;
    const weights = p.weights;
    // Pure plugins first (totals are integer sums: the order of addition does not matter), their
    // contribution reused while valid. They are timed when a sampled decision runs them.
    const pureIdx = p.pureIdx;
    if (pureIdx.length > 0) {
      const pureTotal = this.#pureTotal;
      if (!this.#pureValid(p, m)) {
        pureTotal.fill(0, 0, m);
        let pureAll = false;
        for (let j = 0; j < pureIdx.length; j++) {
          const s = pureIdx[j];
          const plugin = scores[s];
          if (plugin.score(ctx, pureTotal, weights[s]) === kScoredAll) pureAll = true;
          if (sampled) t = this.#timed(req.model, p.scoreIds[s], t);
        }
        this.#pureRemember(p, m, pureAll);
      }
      all = this.#pureAll;
    }
    // The other plugins add into `total`; the pick adds the two.
    total.fill(0, 0, m);
    const restIdx = p.restIdx;
    for (let j = 0; j < restIdx.length; j++) {
      const s = restIdx[j];
      const plugin = scores[s];
      const result = plugin.score(ctx, total, weights[s]);
      if (sampled) t = this.#timed(req.model, p.scoreIds[s], t);
      if (result === kScoredAll) all = true;
      else if (result === kScoredSome) some = true;
    }
    if (!all && !some) return -1;
    return this.#pick(m, out, all, pureIdx.length > 0 ? this.#pureTotal : this.#zeros);
  }

  /**
   * Top out.length eligible candidates (all, or those marked in ctx.scored) by (total + pure,
   * random key), best first, into out.
   */
  #pick(m: number, out: Int32Array, all: boolean, pure: Float64Array): number {
    const limit = out.length;
    if (limit === 0) throw new RangeError('Scheduler.schedule: out must have room for at least one endpoint index');
    if (this.#keys.length < limit) this.#keys = new Float64Array(limit);
    const keys = this.#keys;
    const total = this.#total;
    const scored = this.#ctx.scored;
    const cand = this.#ctx.cand;
    const rng = this.#ctx.rng;
    let count = 0;
    // Once the list is full: the N-th key, and its integer part (a candidate whose integer total
    // is below it can never enter, whatever its random key).
    let floorKey = -Infinity;
    let lastKey = -Infinity;
    for (let k = 0; k < m; k++) {
      if (!all && scored[k] === 0) continue;
      const t = total[k] + pure[k];
      if (t < floorKey) continue;
      const key = t + nextRandom30(rng) * kRandomScale;
      let j: number;
      if (count < limit) {
        j = count++;
      } else {
        if (key <= lastKey) continue;
        j = limit - 1;
      }
      while (j > 0 && keys[j - 1] < key) {
        keys[j] = keys[j - 1];
        out[j] = out[j - 1];
        j--;
      }
      keys[j] = key;
      out[j] = cand[k];
      if (count === limit) {
        lastKey = keys[limit - 1];
        floorKey = Math.floor(lastKey);
      }
    }
    return count === 0 ? -1 : count;
  }

  /** Copy of the prefix hashes the last schedule() computed, or null (prefix-cache off, empty prompt, or filtered out first). */
  takePrefixHashes(): PrefixHashes | null {
    const count = this.#ctx.hashCount;
    if (count === 0) return null;
    return new PrefixHashes(this.#hasher.lo.slice(0, count), this.#hasher.hi.slice(0, count), count);
  }

  /** Kthena's PostSchedule: the endpoint that served the request now holds the prompt's prefix. */
  postSchedule(p: Profile, hashes: PrefixHashes | null, ep: SchedEndpoint, modelId: number): void {
    if (!p.hasPrefixCache || hashes === null || hashes.count === 0) return;
    this.#index.insert(hashes.lo, hashes.hi, hashes.count, ep.slot, ep.gen, modelId, p.maxHashCacheSize);
  }

  /** This worker's scheduler metric families, prom-client getMetricsAsJSON() shape. */
  metricsJSON(): MetricJSON[] {
    return this.#metrics.toJSON(this.#index.evictionsByModelId);
  }

  /** Whether #pureTotal was computed for this profile, view version and candidate list. */
  #pureValid(p: Profile, m: number): boolean {
    if (p !== this.#pureProfile || m !== this.#pureM || this.#ctx.view.version !== this.#pureVersion) return false;
    const cand = this.#ctx.cand;
    const was = this.#pureCand;
    for (let k = 0; k < m; k++) if (cand[k] !== was[k]) return false;
    return true;
  }

  #pureRemember(p: Profile, m: number, all: boolean): void {
    const cand = this.#ctx.cand;
    const was = this.#pureCand;
    for (let k = 0; k < m; k++) was[k] = cand[k];
    this.#pureM = m;
    this.#pureVersion = this.#ctx.view.version;
    this.#pureProfile = p;
    this.#pureAll = all;
  }

  /** Records the plugin that ran since `since` (performance.now() ms); returns the new reading. */
  #timed(model: string, identity: number, since: number): number {
    const now = performance.now();
    this.#metrics.pluginDuration(model, identity, (now - since) / 1000);
    return now;
  }

  #grow(n: number): void {
    this.#ctx.ensure(n);
    const cap = this.#ctx.view.capacity;
    if (this.#total.length < cap) {
      this.#total = new Float64Array(cap);
      this.#pureTotal = new Float64Array(cap);
      this.#zeros = new Float64Array(cap);
      this.#pureCand = new Int32Array(cap);
      this.#pureProfile = null;
    }
  }
}

/** The snapshot's arguments for `name`, checked against its definition (see compile()). */
function checkedArgs(ir: SchedulerIR, name: string): PluginArgs {
  const def = pluginNamed(name)!;
  const { args, problems } = resolveArgs(def, ir.args[name] ?? {});
  if (problems.length > 0) throw new TypeError(`scheduler plugin ${name}: ${problems.map((p) => (p.arg ? `${p.arg}: ` : '') + p.message).join('; ')}`);
  return args;
}
