/**
 * A renderer for the subset of Helm's template language that deploy/chart/kthena-router uses,
 * so that the chart can be rendered and checked where Helm cannot be installed. It implements
 * Go text/template's semantics for what it accepts and throws on anything else, so the chart
 * cannot drift outside what the tests render:
 *
 *  - actions `{{ }}` with `{{-` / `-}}` whitespace trimming, comments `{{/* … *\/}}`;
 *  - `with` / `else` / `end` (dot rebound to the value when it is truthy);
 *  - `if` / `else if` / `else` / `end` (Go truthiness: false, 0, nil, "" and empty list/map are
 *    false), `range` over a list (dot rebound to the element, `$` the root), `define` + `include`;
 *  - pipelines `a | f b` (the value is passed as the last argument) and parentheses;
 *  - fields `.Values.x.y`, `$.Values…`, `.Release.{Name,Namespace,Service}`, `.Chart.{Name,Version,AppVersion}`,
 *    `.Files.Get "path"`; a missing field is nil and prints as "" (Helm removes "<no value>");
 *  - functions toYaml, nindent, indent, quote, default, required, int, eq, ne, and, or, not.
 *
 * Values are read as Helm reads them: YAML through JSON, so every number is a float64 and prints
 * with Go's %v (`8080`, but `1e+06`); toYaml sorts keys and drops the final newline as Helm's does.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';

type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'if'; branches: { cond: Pipe; body: Node[] }[]; otherwise: Node[] }
  | { t: 'range'; pipe: Pipe; body: Node[] }
  | { t: 'with'; pipe: Pipe; body: Node[]; otherwise: Node[] };

type Arg =
  | { t: 'field'; root: '.' | '$'; path: string[] }
  | { t: 'str'; v: string }
  | { t: 'num'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'ident'; name: string }
  | { t: 'sub'; pipe: Pipe };
type Cmd = Arg[];
type Pipe = Cmd[];

interface Token { kind: 'text' | 'action'; s: string; trimLeft: boolean; trimRight: boolean }

function lex(src: string, file: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) { out.push({ kind: 'text', s: src.slice(i), trimLeft: false, trimRight: false }); break; }
    if (open > i) out.push({ kind: 'text', s: src.slice(i, open), trimLeft: false, trimRight: false });
    const close = src.indexOf('}}', open + 2);
    if (close < 0) throw new Error(`${file}: unclosed action`);
    let inner = src.slice(open + 2, close);
    const trimLeft = inner.startsWith('- ') || inner === '-';
    const trimRight = inner.endsWith(' -');
    if (trimLeft) inner = inner.slice(1);
    if (trimRight) inner = inner.slice(0, -1);
    out.push({ kind: 'action', s: inner.trim(), trimLeft, trimRight });
    i = close + 2;
  }
  // Apply trim markers to the neighbouring text, as text/template does.
  for (let k = 0; k < out.length; k++) {
    const tok = out[k]!;
    if (tok.kind !== 'action') continue;
    const prev = out[k - 1];
    const next = out[k + 1];
    if (tok.trimLeft && prev?.kind === 'text') prev.s = prev.s.replace(/[ \t\r\n]+$/, '');
    if (tok.trimRight && next?.kind === 'text') next.s = next.s.replace(/^[ \t\r\n]+/, '');
  }
  return out.filter((t) => !(t.kind === 'action' && t.s.startsWith('/*')));
}

function tokenizeArgs(s: string, file: string): string[] {
  const toks: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n') { i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      if (j >= s.length) throw new Error(`${file}: unterminated string in {{ ${s} }}`);
      toks.push(s.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if (c === '(' || c === ')' || c === '|') { toks.push(c); i++; continue; }
    let j = i;
    while (j < s.length && !' \t\n()|"'.includes(s[j]!)) j++;
    toks.push(s.slice(i, j));
    i = j;
  }
  return toks;
}

function parsePipe(toks: string[], pos: { i: number }, file: string, closing: boolean): Pipe {
  const pipe: Pipe = [];
  let cmd: Cmd = [];
  while (pos.i < toks.length) {
    const t = toks[pos.i++]!;
    if (t === ')') {
      if (!closing) throw new Error(`${file}: unexpected )`);
      break;
    }
    if (t === '|') { pipe.push(cmd); cmd = []; continue; }
    if (t === '(') { cmd.push({ t: 'sub', pipe: parsePipe(toks, pos, file, true) }); continue; }
    if (t.startsWith('"')) { cmd.push({ t: 'str', v: JSON.parse(t) as string }); continue; }
    if (/^-?\d+(\.\d+)?$/.test(t)) { cmd.push({ t: 'num', v: Number(t) }); continue; }
    if (t === 'true' || t === 'false') { cmd.push({ t: 'bool', v: t === 'true' }); continue; }
    if (t === '.' || t.startsWith('.')) { cmd.push({ t: 'field', root: '.', path: t === '.' ? [] : t.slice(1).split('.') }); continue; }
    if (t === '$' || t.startsWith('$.')) { cmd.push({ t: 'field', root: '$', path: t === '$' ? [] : t.slice(2).split('.') }); continue; }
    if (/^[a-zA-Z]+$/.test(t)) { cmd.push({ t: 'ident', name: t }); continue; }
    throw new Error(`${file}: unsupported token ${JSON.stringify(t)} (outside the chart's template subset)`);
  }
  pipe.push(cmd);
  if (pipe.some((c) => c.length === 0)) throw new Error(`${file}: empty command in pipeline`);
  return pipe;
}

function pipeOf(s: string, file: string): Pipe {
  return parsePipe(tokenizeArgs(s, file), { i: 0 }, file, false);
}


function parse(tokens: Token[], file: string, defines: Map<string, Node[]>): Node[] {
  let k = 0;
  const block = (ends: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (k < tokens.length) {
      const tok = tokens[k++]!;
      if (tok.kind === 'text') { nodes.push({ t: 'text', s: tok.s }); continue; }
      const s = tok.s;
      const word = s.split(/\s+/)[0]!;
      if (word === 'end' || word === 'else') {
        if (!ends.includes(word)) throw new Error(`${file}: unexpected {{ ${s} }}`);
        return { nodes, end: s };
      }
      if (word === 'if') {
        const branches: { cond: Pipe; body: Node[] }[] = [];
        let cond = pipeOf(s.slice(2), file);
        let otherwise: Node[] = [];
        for (;;) {
          const r = block(['end', 'else']);
          branches.push({ cond, body: r.nodes });
          if (r.end === 'end') break;
          if (r.end.startsWith('else if ')) { cond = pipeOf(r.end.slice('else if '.length), file); continue; }
          if (r.end !== 'else') throw new Error(`${file}: unsupported {{ ${r.end} }}`);
          const e = block(['end']);
          otherwise = e.nodes;
          break;
        }
        nodes.push({ t: 'if', branches, otherwise });
        continue;
      }
      if (word === 'range') {
        if (/\$\w+\s*(,|:=)/.test(s)) throw new Error(`${file}: range with variables is outside the chart's template subset`);
        const pipe = pipeOf(s.slice(5), file);
        const r = block(['end']);
        nodes.push({ t: 'range', pipe, body: r.nodes });
        continue;
      }
      if (word === 'with') {
        if (s.includes(':=')) throw new Error(`${file}: with and variables is outside the chart's template subset`);
        const pipe = pipeOf(s.slice(4), file);
        const r = block(['end', 'else']);
        const otherwise = r.end === 'else' ? block(['end']).nodes : [];
        if (r.end !== 'end' && r.end !== 'else') throw new Error(`${file}: unsupported {{ ${r.end} }}`);
        nodes.push({ t: 'with', pipe, body: r.nodes, otherwise });
        continue;
      }
      if (word === 'define') {
        const name = JSON.parse(s.slice(6).trim()) as string;
        const r = block(['end']);
        defines.set(name, r.nodes);
        continue;
      }
      if (['template', 'block', 'break', 'continue'].includes(word) || s.includes(':=')) {
        throw new Error(`${file}: {{ ${s} }} is outside the chart's template subset`);
      }
      nodes.push({ t: 'action', pipe: pipeOf(s, file) });
    }
    if (ends.length > 0) throw new Error(`${file}: missing {{ end }}`);
    return { nodes, end: '' };
  };
  return block([]).nodes;
}

export interface ChartContext {
  Values: unknown;
  Release: { Name: string; Namespace: string; Service: string };
  Chart: { Name: string; Version: string; AppVersion: string };
  chartDir: string;
}

function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** Go's %v of a float64 (strconv 'g', shortest digits, exponent form below 1e-4 or from 1e+06 on). */
export function goFloat(n: number): string {
  if (n === 0) return '0';
  const [m, e] = n.toExponential().split('e') as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(n);
}

/** fmt.Sprint of a value as text/template prints it. */
function goPrint(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return goFloat(v);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(goPrint).join(' ')}]`;
  const o = v as Record<string, unknown>;
  return `map[${Object.keys(o).sort().map((k) => `${k}:${goPrint(o[k])}`).join(' ')}]`;
}

function goQuote(s: string): string {
  return JSON.stringify(s);
}

function toYaml(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  return stringify(v, { sortMapEntries: true, indentSeq: false, lineWidth: 0 }).replace(/\n$/, '');
}

function indentLines(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.split('\n').join(`\n${pad}`);
}

export class ChartRenderer {
  readonly #defines = new Map<string, Node[]>();
  readonly #templates: { name: string; nodes: Node[] }[] = [];
  readonly #ctx: ChartContext;

  constructor(ctx: ChartContext) {
    this.#ctx = ctx;
    const dir = path.join(ctx.chartDir, 'templates');
    for (const f of readdirSync(dir).sort()) {
      const src = readFileSync(path.join(dir, f), 'utf8');
      const nodes = parse(lex(src, f), f, this.#defines);
      if (!f.startsWith('_') && /\.ya?ml$/.test(f)) this.#templates.push({ name: f, nodes });
    }
  }

  /** Every template rendered, as Helm would before parsing: file name -> text. */
  renderTexts(): Map<string, string> {
    const out = new Map<string, string>();
    for (const t of this.#templates) out.set(t.name, this.#exec(t.nodes, this.#ctx, t.name).replaceAll('<no value>', ''));
    return out;
  }

  /** The rendered objects, in template-file order (empty documents dropped, as Helm does). */
  renderObjects(): { source: string; object: Record<string, unknown> }[] {
    const objs: { source: string; object: Record<string, unknown> }[] = [];
    for (const [name, text] of this.renderTexts()) {
      for (const doc of parseAllDocuments(text)) {
        if (doc.errors.length > 0) throw new Error(`${name}: rendered YAML does not parse: ${doc.errors[0]!.message}\n${text}`);
        const v: unknown = doc.toJS();
        if (v === null || v === undefined) continue;
        objs.push({ source: name, object: v as Record<string, unknown> });
      }
    }
    return objs;
  }

  #exec(nodes: Node[], dot: unknown, file: string): string {
    let out = '';
    for (const n of nodes) {
      switch (n.t) {
        case 'text': out += n.s; break;
        case 'action': out += goPrint(this.#pipe(n.pipe, dot, file)); break;
        case 'if': {
          const b = n.branches.find((br) => truthy(this.#pipe(br.cond, dot, file)));
          out += this.#exec(b !== undefined ? b.body : n.otherwise, dot, file);
          break;
        }
        case 'with': {
          const v = this.#pipe(n.pipe, dot, file);
          out += truthy(v) ? this.#exec(n.body, v, file) : this.#exec(n.otherwise, dot, file);
          break;
        }
        case 'range': {
          const list = this.#pipe(n.pipe, dot, file);
          if (list === null || list === undefined) break;
          if (!Array.isArray(list)) throw new Error(`${file}: range over a non-list is outside the chart's template subset`);
          for (const item of list) out += this.#exec(n.body, item, file);
          break;
        }
      }
    }
    return out;
  }

  #pipe(pipe: Pipe, dot: unknown, file: string): unknown {
    let prev: unknown;
    pipe.forEach((cmd, i) => {
      const extra = i === 0 ? [] : [prev];
      prev = this.#cmd(cmd, dot, file, extra);
    });
    return prev;
  }

  #arg(a: Arg, dot: unknown, file: string): unknown {
    switch (a.t) {
      case 'str': case 'num': case 'bool': return a.v;
      case 'sub': return this.#pipe(a.pipe, dot, file);
      case 'ident': return this.#call(a.name, [], dot, file);
      case 'field': {
        let v: unknown = a.root === '$' ? this.#ctx : dot;
        for (const p of a.path) {
          if (v === null || v === undefined || typeof v !== 'object') return undefined;
          v = (v as Record<string, unknown>)[p];
        }
        return v;
      }
    }
  }

  #cmd(cmd: Cmd, dot: unknown, file: string, piped: unknown[]): unknown {
    const head = cmd[0]!;
    if (head.t === 'field' && head.path.join('.') === 'Files.Get') {
      const rel = [...cmd.slice(1).map((a) => this.#arg(a, dot, file)), ...piped][0];
      const p = path.join(this.#ctx.chartDir, String(rel));
      if (!existsSync(p)) return '';
      return readFileSync(p, 'utf8');
    }
    if (head.t !== 'ident') {
      if (cmd.length > 1 || piped.length > 0) throw new Error(`${file}: a value cannot take arguments`);
      return this.#arg(head, dot, file);
    }
    const args = [...cmd.slice(1).map((a) => this.#arg(a, dot, file)), ...piped];
    return this.#call(head.name, args, dot, file);
  }

  #call(name: string, args: unknown[], _dot: unknown, file: string): unknown {
    const want = (n: number): void => {
      if (args.length !== n) throw new Error(`${file}: ${name} takes ${n} arguments, got ${args.length}`);
    };
    switch (name) {
      case 'include': {
        want(2);
        const body = this.#defines.get(String(args[0]));
        if (body === undefined) throw new Error(`${file}: no template ${JSON.stringify(args[0])} defined`);
        return this.#exec(body, args[1], file);
      }
      case 'toYaml': want(1); return toYaml(args[0]);
      case 'nindent': want(2); return `\n${indentLines(Number(args[0]), goPrint(args[1]))}`;
      case 'indent': want(2); return indentLines(Number(args[0]), goPrint(args[1]));
      case 'quote': return args.filter((a) => a !== null && a !== undefined).map((a) => goQuote(goPrint(a))).join(' ');
      case 'default': want(2); return truthy(args[1]) ? args[1] : args[0];
      case 'required':
        want(2);
        if (args[1] === null || args[1] === undefined || args[1] === '') throw new Error(`execution error: ${String(args[0])}`);
        return args[1];
      case 'int': {
        // Sprig's int: numbers truncate, numeric strings parse, anything else is 0.
        want(1);
        const n = typeof args[0] === 'number' ? args[0] : typeof args[0] === 'string' ? Number.parseInt(args[0], 10) : 0;
        return Number.isFinite(n) ? Math.trunc(n) : 0;
      }
      case 'eq': want(2); return args[0] === args[1];
      case 'ne': want(2); return args[0] !== args[1];
      case 'not': want(1); return !truthy(args[0]);
      case 'and': {
        for (const a of args) if (!truthy(a)) return a;
        return args[args.length - 1];
      }
      case 'or': {
        for (const a of args) if (truthy(a)) return a;
        return args[args.length - 1];
      }
      default:
        throw new Error(`${file}: function ${name} is outside the chart's template subset`);
    }
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Helm's values coalescing: user values over the chart's defaults, maps merged deeply, a null deletes. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = mergeValues(base[k], v);
  }
  return out;
}

/** `helm template <release> <chartDir> --namespace <ns> -f overrides` (`service` stands in for Helm's fixed .Release.Service). */
export function renderChart(chartDir: string, opts: { release?: string; namespace?: string; values?: unknown; service?: string } = {}): ChartRenderer {
  const chart = parseYaml(readFileSync(path.join(chartDir, 'Chart.yaml'), 'utf8')) as { name: string; version: string; appVersion: string };
  // Helm reads values through JSON: numbers become float64, which JavaScript numbers already are.
  const defaults = JSON.parse(JSON.stringify(parseYaml(readFileSync(path.join(chartDir, 'values.yaml'), 'utf8')))) as unknown;
  return new ChartRenderer({
    Values: mergeValues(defaults, opts.values ?? {}),
    Release: { Name: opts.release ?? 'kthena-router', Namespace: opts.namespace ?? 'kthena-system', Service: opts.service ?? 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: String(chart.appVersion) },
    chartDir,
  });
}
