/**
 * The progress bar on stderr: redrawn in place on a TTY, one plain line every few seconds
 * otherwise (when asked for with --progress).
 */

import type { ProgressSnapshot } from './runner.js';

const WIDTH = 28;

export function progressLine(p: ProgressSnapshot): string {
  const byCount = p.totalArrivals !== null ? p.arrivals / p.totalArrivals : 0;
  const byTime = p.windowMs !== null ? p.elapsedMs / p.windowMs : 0;
  const frac = p.sending ? Math.min(1, Math.max(byCount, byTime)) : 1;
  const filled = Math.round(frac * WIDTH);
  const bar = '#'.repeat(filled) + '.'.repeat(WIDTH - filled);
  const phase = p.sending ? `${(frac * 100).toFixed(0).padStart(3)}%` : 'drain';
  const parts = [
    `[${bar}] ${phase}`,
    `${(p.elapsedMs / 1000).toFixed(1)}s`,
    `sent ${p.sent}`,
    `done ${p.finished}`,
    `in flight ${p.inflight}`,
    `errors ${p.errors}`,
  ];
  if (p.rejected > 0) parts.push(`rejected ${p.rejected}`);
  return parts.join('  ');
}

export class ProgressBar {
  readonly #tty: boolean;
  readonly #out: NodeJS.WriteStream;
  #lastPlain = -Infinity;
  #lastSending = true;
  #drawn = false;

  constructor(out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  update(p: ProgressSnapshot): void {
    const line = progressLine(p);
    if (this.#tty) {
      const cols = this.#out.columns ?? 120;
      this.#out.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
      this.#drawn = true;
    } else if (p.elapsedMs - this.#lastPlain >= 5000 || p.sending !== this.#lastSending) {
      this.#lastPlain = p.elapsedMs;
      this.#lastSending = p.sending;
      this.#out.write(line + '\n');
    }
  }

  done(): void {
    if (this.#tty && this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }
}
