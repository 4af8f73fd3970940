/**
 * Kthena's `routerConfiguration` (volcano-sh/kthena:pkg/kthena-router/scheduler/plugins/conf/
 * conf.go), parsed and validated strictly: an unknown plugin name, an unknown argument or an
 * out-of-range value is an error, never a silent default. The caller keeps the previous
 * configuration live when the new one has errors. Plugin names and argument schemas come from the
 * plugin registry (workers/scheduler/registry.ts), the same definitions the workers build from.
 *
 * Accepted shapes: the YAML document itself (`scheduler:` with `pluginConfig` and `plugins`), the
 * same without the `scheduler:` wrapper (as in some of Kthena's fixtures; warned), or a whole
 * ConfigMap manifest whose `data.routerConfiguration` holds it (what Kthena's Helm chart mounts).
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { AuthIR, SchedulerIR } from '../ir/types.js';
import type { Problem } from '../resources/types.js';
import { parseAuth } from './auth.js';
import { ROUTER_DEFAULT_SCHEDULER } from './defaults.js';
import { defaultArgs, FILTER_PLUGIN_NAMES, PLUGINS, pluginNamed, resolveArgs, SCORE_PLUGIN_NAMES, type PluginArgs } from '../../workers/scheduler/registry.js';

const FILTER_PLUGINS = FILTER_PLUGIN_NAMES;
const SCORE_PLUGINS = SCORE_PLUGIN_NAMES;
const ALL_PLUGINS = PLUGINS.map((p) => p.name);

export interface RouterConfigResult {
  /** null when there are errors (problems with severity 'rejected'). */
  scheduler: SchedulerIR | null;
  /** JWT authentication (`auth:` with a jwksUri), null when off or when there are errors. */
  auth: AuthIR | null;
  problems: Problem[];
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function parseRouterConfig(text: string, file = ''): RouterConfigResult {
  const problems: Problem[] = [];
  const at = (field: string, message: string, severity: Problem['severity'] = 'rejected'): void => {
    problems.push({ kind: 'RouterConfiguration', namespace: '', name: 'routerConfiguration', file: file || undefined, field, message, severity });
  };
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: false });
  } catch (err) {
    const e = err as YAMLParseError;
    at('', `not valid YAML: ${e.message}`);
    return { scheduler: null, auth: null, problems };
  }
  if (doc === null || doc === undefined) doc = {};
  if (!isObj(doc)) {
    at('', 'the router configuration must be a YAML mapping');
    return { scheduler: null, auth: null, problems };
  }
  if (doc.kind === 'ConfigMap') {
    const data = isObj(doc.data) ? doc.data : {};
    const inner = data.routerConfiguration;
    if (typeof inner !== 'string') {
      at('data.routerConfiguration', 'a ConfigMap given as router configuration must carry the YAML in data.routerConfiguration');
      return { scheduler: null, auth: null, problems };
    }
    return parseRouterConfig(inner, file);
  }

  let sched: Obj;
  if (doc.scheduler !== undefined) {
    if (!isObj(doc.scheduler)) {
      at('scheduler', 'must be a mapping');
      return { scheduler: null, auth: null, problems };
    }
    sched = doc.scheduler;
    for (const k of Object.keys(doc)) {
      if (k === 'scheduler') continue;
      if (k !== 'auth') at(k, `unknown field "${k}" (known: scheduler, auth)`);
    }
  } else if (doc.pluginConfig !== undefined || doc.plugins !== undefined) {
    at('', 'pluginConfig/plugins at the top level: read as if under "scheduler:" (Kthena\'s documented format nests them)', 'warning');
    sched = doc;
  } else if (doc.auth !== undefined) {
    // Authentication alone: the scheduler keeps the default profile.
    for (const k of Object.keys(doc)) if (k !== 'auth') at(k, `unknown field "${k}" (known: scheduler, auth)`);
    const auth = parseAuth(doc.auth, at);
    const failed = problems.some((p) => p.severity === 'rejected');
    return { scheduler: failed ? null : ROUTER_DEFAULT_SCHEDULER, auth: failed ? null : auth, problems };
  } else if (Object.keys(doc).length === 0) {
    at('scheduler', 'the configuration is empty: no score plugin, so no request could be scheduled');
    return { scheduler: null, auth: null, problems };
  } else {
    for (const k of Object.keys(doc)) at(k, `unknown field "${k}" (known: scheduler, auth)`);
    return { scheduler: null, auth: null, problems };
  }

  for (const k of Object.keys(sched)) {
    if (k !== 'pluginConfig' && k !== 'plugins') at(`scheduler.${k}`, `unknown field "${k}" (known: pluginConfig, plugins)`);
  }

  // ---- pluginConfig ----------------------------------------------------------------------------
  /** Arguments given in pluginConfig, validated (a plugin not listed there runs with its defaults). */
  const configured = new Map<string, PluginArgs>();
  const pc = sched.pluginConfig;
  if (pc !== undefined && pc !== null) {
    if (!Array.isArray(pc)) at('scheduler.pluginConfig', 'must be a list of {name, args}');
    else {
      const seen = new Set<string>();
      pc.forEach((entry, i) => {
        const f = `scheduler.pluginConfig[${i}]`;
        if (!isObj(entry)) { at(f, 'must be a mapping {name, args}'); return; }
        for (const k of Object.keys(entry)) if (k !== 'name' && k !== 'args') at(`${f}.${k}`, `unknown field "${k}" (known: name, args)`);
        const name = entry.name;
        const def = typeof name === 'string' ? pluginNamed(name) : undefined;
        if (typeof name !== 'string' || def === undefined) { at(`${f}.name`, unknownPlugin(name)); return; }
        if (seen.has(name)) { at(`${f}.name`, `plugin "${name}" is configured twice`); return; }
        seen.add(name);
        const a = entry.args;
        if (a === undefined || a === null) return;
        if (!isObj(a)) { at(`${f}.args`, 'must be a mapping'); return; }
        const { args, problems: argProblems } = resolveArgs(def, a);
        for (const p of argProblems) at(p.arg === '' ? `${f}.args` : `${f}.args.${p.arg}`, p.message);
        if (argProblems.length === 0) configured.set(name, args);
      });
    }
  }

  // ---- plugins -----------------------------------------------------------------------------------
  const filters: string[] = [];
  const scores: { name: string; weight: number }[] = [];
  const plugins = sched.plugins;
  if (plugins !== undefined && plugins !== null && !isObj(plugins)) at('scheduler.plugins', 'must be a mapping with Filter and Score');
  const pl: Obj = isObj(plugins) ? plugins : {};
  for (const k of Object.keys(pl)) if (k !== 'Filter' && k !== 'Score') at(`scheduler.plugins.${k}`, `unknown field "${k}" (known: Filter, Score)`);

  const section = (kind: 'Filter' | 'Score'): { enabled: unknown[]; disabled: unknown[] } => {
    const s = pl[kind];
    if (s === undefined || s === null) return { enabled: [], disabled: [] };
    if (!isObj(s)) { at(`scheduler.plugins.${kind}`, 'must be a mapping with enabled and disabled'); return { enabled: [], disabled: [] }; }
    for (const k of Object.keys(s)) if (k !== 'enabled' && k !== 'disabled') at(`scheduler.plugins.${kind}.${k}`, `unknown field "${k}" (known: enabled, disabled)`);
    const list = (k: 'enabled' | 'disabled'): unknown[] => {
      const v = s[k];
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) { at(`scheduler.plugins.${kind}.${k}`, 'must be a list'); return []; }
      return v;
    };
    return { enabled: list('enabled'), disabled: list('disabled') };
  };

  const filter = section('Filter');
  filter.enabled.forEach((v, i) => {
    const f = `scheduler.plugins.Filter.enabled[${i}]`;
    const name = isObj(v) ? v.name : v;
    if (isObj(v) && v.weight !== undefined) at(`${f}.weight`, 'filters take no weight', 'warning');
    if (typeof name !== 'string' || !FILTER_PLUGINS.includes(name)) { at(f, unknownPlugin(name, FILTER_PLUGINS)); return; }
    if (filters.includes(name)) { at(f, `filter "${name}" is enabled twice`); return; }
    filters.push(name);
  });
  const score = section('Score');
  score.enabled.forEach((v, i) => {
    const f = `scheduler.plugins.Score.enabled[${i}]`;
    if (!isObj(v)) { at(f, 'must be a mapping {name, weight}'); return; }
    for (const k of Object.keys(v)) if (k !== 'name' && k !== 'weight') at(`${f}.${k}`, `unknown field "${k}" (known: name, weight)`);
    const name = v.name;
    if (typeof name !== 'string' || !SCORE_PLUGINS.includes(name)) { at(`${f}.name`, unknownPlugin(name, SCORE_PLUGINS)); return; }
    if (scores.some((s) => s.name === name)) { at(`${f}.name`, `score plugin "${name}" is enabled twice`); return; }
    let weight = v.weight;
    if (weight === undefined || weight === null) {
      at(`${f}.weight`, `no weight: "${name}" runs with weight 0 and contributes nothing to the total (as in Kthena)`, 'warning');
      weight = 0;
    }
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      at(`${f}.weight`, `must be an integer in [0, 1000000], got ${JSON.stringify(weight)}`);
      return;
    }
    scores.push({ name, weight });
  });
  for (const [kind, s, known] of [['Filter', filter, FILTER_PLUGINS], ['Score', score, SCORE_PLUGINS]] as const) {
    s.disabled.forEach((v, i) => {
      const name = isObj(v) ? v.name : v;
      const f = `scheduler.plugins.${kind}.disabled[${i}]`;
      if (typeof name !== 'string' || !known.includes(name)) at(f, unknownPlugin(name, known));
      else if ((kind === 'Filter' ? filters : scores.map((x) => x.name)).includes(name as never)) {
        at(f, `"${name}" is both enabled and disabled; it runs (as in Kthena, "disabled" has no effect)`, 'warning');
      }
    });
  }

  if (scores.length > 1 && scores.some((s) => s.name === 'random')) {
    at('scheduler.plugins.Score.enabled', '"random" is enabled with other score plugins: it is dropped, as Kthena does', 'warning');
    scores.splice(scores.findIndex((s) => s.name === 'random'), 1);
  }
  if (scores.length === 0 && !problems.some((p) => p.severity === 'rejected')) {
    at('scheduler.plugins.Score.enabled', 'no score plugin is enabled, so no request could ever be scheduled (Kthena answers every request with an error)');
  }

  const auth = parseAuth(doc.auth, at);
  if (problems.some((p) => p.severity === 'rejected')) return { scheduler: null, auth: null, problems };
  const args: Record<string, PluginArgs> = {};
  for (const name of [...filters, ...scores.map((s) => s.name)]) args[name] ??= configured.get(name) ?? defaultArgs(pluginNamed(name)!);
  return { scheduler: { filters, scores, args }, auth, problems };
}

function unknownPlugin(name: unknown, known: readonly string[] = ALL_PLUGINS): string {
  return `unknown plugin ${JSON.stringify(name)} (known: ${known.join(', ')})`;
}
