/**
 * A dependency-free SVG line chart for benchmark results: any number of series (one per run or
 * per scheduler policy), linear or log x axis, gridlines, tick labels and a legend. The usual chart
 * is a CDF of TTFT (`ttftCdfChart`), with one line per run.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { NamedResult } from './report.js';
import type { LoadResult } from './runner.js';

export interface Series {
  name: string;
  /** [x, y] points, drawn in order. */
  points: Array<[number, number]>;
  color?: string;
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  xScale?: 'linear' | 'log';
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Format of y tick labels (default: plain numbers). */
  yFormat?: 'number' | 'percent';
  width?: number;
  height?: number;
  /** A line of small print under the title (e.g. the time-scale note). */
  subtitle?: string;
}

/** Tableau 10: distinguishable, colour-blind friendly enough for ten series. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** The empirical CDF of `samples` as at most `maxPoints` points (x = value, y = fraction <= x). */
export function cdfPoints(samples: ArrayLike<number>, maxPoints = 500): Array<[number, number]> {
  const s = Float64Array.from(Array.prototype.filter.call(samples, (v: number) => Number.isFinite(v)) as number[]).sort();
  const n = s.length;
  if (n === 0) return [];
  const m = Math.min(n, Math.max(2, maxPoints));
  const out: Array<[number, number]> = [];
  let last = -1;
  for (let j = 0; j < m; j++) {
    const i = m === 1 ? n - 1 : Math.round((j * (n - 1)) / (m - 1));
    if (i === last) continue;
    last = i;
    out.push([s[i], (i + 1) / n]);
  }
  return out;
}

export function cdfSeries(name: string, samples: ArrayLike<number>, maxPoints?: number): Series {
  return { name, points: cdfPoints(samples, maxPoints) };
}

/** A CDF chart of one latency sample set per run (default TTFT), log x axis. */
export function latencyCdfChart(
  runs: NamedResult[] | LoadResult,
  metric: 'ttft_ms' | 'itl_ms' | 'e2e_ms' | 'tpot_ms' = 'ttft_ms',
  opts: { title?: string; xScale?: 'linear' | 'log' } = {},
): Chart {
  const list: NamedResult[] = Array.isArray(runs) ? runs : [{ name: 'run', result: runs }];
  const label = { ttft_ms: 'time to first token', itl_ms: 'inter-token latency', e2e_ms: 'end-to-end latency', tpot_ms: 'mean ITL per request' }[metric];
  const k = list[0]?.result.time_scale.factor ?? 1;
  return {
    title: opts.title ?? `CDF of ${label}`,
    subtitle: k !== 1 || (list[0]?.result.time_scale.sim_timed ?? 0) > 0 ? `simulated ms (engine time scale k=${k}; router overhead at wall value)` : 'wall-clock ms',
    xLabel: `${label} (ms)`,
    yLabel: 'fraction of requests',
    yFormat: 'percent',
    xScale: opts.xScale ?? 'log',
    yMin: 0,
    yMax: 1,
    series: list.map(({ name, result }) => cdfSeries(name, result.samples[metric])),
  };
}

export function ttftCdfChart(runs: NamedResult[] | LoadResult, opts: { title?: string; xScale?: 'linear' | 'log' } = {}): Chart {
  return latencyCdfChart(runs, 'ttft_ms', opts);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" linear ticks (steps of 1, 2 or 5 x 10^n) covering [lo, hi]. */
export function linearTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((st) => st >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Decade ticks (with 2 and 5 in between when the range is short) covering [lo, hi], lo > 0. */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mult = b - a <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = a; e <= b; e++) for (const f of mult) {
    const v = f * 10 ** e;
    if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
  }
  return out.length > 0 ? out : [lo, hi];
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 1) return String(+v.toPrecision(4));
  return String(+v.toPrecision(2));
}

export function renderSvg(c: Chart): string {
  const W = c.width ?? 900;
  const H = c.height ?? 520;
  const legendW = 200;
  const m = { l: 70, r: legendW + 20, t: c.subtitle ? 58 : 44, b: 56 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const log = c.xScale === 'log';

  let xLo = Infinity;
  let xHi = -Infinity;
  let yLo = 0;
  let yHi = -Infinity;
  for (const s of c.series) for (const [x, y] of s.points) {
    if (Number.isFinite(x) && (!log || x > 0)) {
      if (x < xLo) xLo = x;
      if (x > xHi) xHi = x;
    }
    if (Number.isFinite(y)) {
      if (y < yLo) yLo = y;
      if (y > yHi) yHi = y;
    }
  }
  let x0 = c.xMin ?? (Number.isFinite(xLo) ? xLo : log ? 1 : 0);
  let x1 = c.xMax ?? (Number.isFinite(xHi) ? xHi : x0 + 1);
  const y0 = c.yMin ?? yLo;
  let y1 = c.yMax ?? (Number.isFinite(yHi) ? yHi : 1);
  if (log) {
    // Widen to quarter decades so the lines do not touch the frame.
    x0 = Math.max(x0, 1e-6);
    if (c.xMin === undefined) x0 = 10 ** (Math.floor(Math.log10(x0) * 4) / 4);
    x1 = Math.max(x1, x0 * 1.01);
    if (c.xMax === undefined) x1 = 10 ** (Math.ceil(Math.log10(x1) * 4) / 4);
  } else if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;

  const sx = (x: number): number =>
    m.l + (log ? (Math.log10(Math.max(x, x0)) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) : (x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const f = (v: number): string => v.toFixed(1);

  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(`<text x="${m.l}" y="24" font-size="16" font-weight="600">${esc(c.title)}</text>`);
  if (c.subtitle) o.push(`<text x="${m.l}" y="42" fill="#555">${esc(c.subtitle)}</text>`);

  const xt = log ? logTicks(x0, x1) : linearTicks(x0, x1);
  const yt = linearTicks(y0, y1, 5);
  o.push('<g stroke="#e5e5e5" stroke-width="1">');
  for (const t of xt) o.push(`<line x1="${f(sx(t))}" y1="${m.t}" x2="${f(sx(t))}" y2="${m.t + ph}"/>`);
  for (const t of yt) o.push(`<line x1="${m.l}" y1="${f(sy(t))}" x2="${m.l + pw}" y2="${f(sy(t))}"/>`);
  o.push('</g>');
  o.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  o.push('<g fill="#333">');
  for (const t of xt) o.push(`<text x="${f(sx(t))}" y="${m.t + ph + 16}" text-anchor="middle">${esc(fmtTick(t))}</text>`);
  for (const t of yt) {
    const label = c.yFormat === 'percent' ? `${+(t * 100).toPrecision(3)}%` : fmtTick(t);
    o.push(`<text x="${m.l - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${esc(label)}</text>`);
  }
  o.push('</g>');
  o.push(`<text x="${f(m.l + pw / 2)}" y="${H - 14}" text-anchor="middle" fill="#333">${esc(c.xLabel)}${log ? ' (log scale)' : ''}</text>`);
  o.push(`<text transform="translate(18 ${f(m.t + ph / 2)}) rotate(-90)" text-anchor="middle" fill="#333">${esc(c.yLabel)}</text>`);

  o.push(`<clipPath id="plot"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  o.push('<g clip-path="url(#plot)" fill="none" stroke-width="2" stroke-linejoin="round">');
  c.series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || x > 0));
    if (pts.length === 0) return;
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const d = pts.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${f(sx(x))} ${f(sy(y))}`).join(' ');
    o.push(`<path d="${d}" stroke="${color}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${esc(s.name)}</title></path>`);
  });
  o.push('</g>');

  const lx = W - legendW;
  o.push('<g>');
  c.series.forEach((s, i) => {
    const y = m.t + 8 + i * 20;
    const color = s.color ?? PALETTE[i % PALETTE.length];
    o.push(`<line x1="${lx}" y1="${y}" x2="${lx + 24}" y2="${y}" stroke="${color}" stroke-width="3"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    o.push(`<text x="${lx + 30}" y="${y + 4}" fill="#222">${esc(s.name.length > 24 ? s.name.slice(0, 23) + '…' : s.name)}</text>`);
  });
  o.push('</g>');
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/**
 * Writes a chart to `file`. Given results instead of a chart, writes their TTFT CDF (one line per
 * run). Returns the SVG text.
 */
export function writeSvg(file: string, chart: Chart | NamedResult[] | LoadResult): string {
  const c: Chart = Array.isArray(chart) || 'schema' in chart ? ttftCdfChart(chart) : chart;
  const text = renderSvg(c);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return text;
}
