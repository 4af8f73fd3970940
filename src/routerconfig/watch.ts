/**
 * `--router-config FILE`, hot reloaded (Kthena needs a restart). The file is watched with fs.watch
 * plus a 1 s poll of its mtime/size (editors replace files, and some filesystems send no events),
 * debounced. A version with errors is reported and the last valid configuration stays live.
 */
import fs from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { AuthIR, SchedulerIR } from '../ir/types.js';
import type { Problem } from '../resources/types.js';
import { parseRouterConfig } from './parse.js';

export interface RouterConfigEvents {
  /** A new valid configuration (its warnings in `problems`). */
  onChange(scheduler: SchedulerIR, problems: Problem[], auth: AuthIR | null): void;
  /** A new version that was rejected; the previous configuration stays live. */
  onRejected(problems: Problem[]): void;
}

export class RouterConfigWatcher {
  readonly file: string;
  readonly #events: RouterConfigEvents;
  #watcher: fs.FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #lastText: string | null = null;
  #lastStat = '';
  #stopped = false;

  constructor(file: string, events: RouterConfigEvents) {
    this.file = path.resolve(file);
    this.#events = events;
  }

  /** Reads and validates the file once (startup: errors are fatal to the caller), then watches it. */
  async load(): Promise<{ scheduler: SchedulerIR | null; auth: AuthIR | null; problems: Problem[] }> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { scheduler: null, auth: null, problems: [this.#problem(`cannot read ${this.file}: ${e.code ?? e.message}`)] };
    }
    this.#lastText = text;
    this.#lastStat = await this.#statKey();
    return parseRouterConfig(text, this.file);
  }

  start(): void {
    try {
      // Watch the directory: a file replaced by rename (editors, ConfigMap symlink swaps) keeps firing.
      this.#watcher = fs.watch(path.dirname(this.file), () => this.#kick());
      this.#watcher.on('error', () => { /* the poll keeps working */ });
    } catch {
      // No inotify (or too many watches): the poll alone picks changes up.
    }
    this.#poll = setInterval(() => {
      void this.#statKey().then((k) => { if (k !== this.#lastStat) this.#kick(); });
    }, 1000);
    this.#poll.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
  }

  #kick(): void {
    if (this.#stopped || this.#debounce !== null) return;
    this.#debounce = setTimeout(() => { this.#debounce = null; void this.#reload(); }, 100);
  }

  async #statKey(): Promise<string> {
    try {
      const s = await stat(this.file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return 'missing';
    }
  }

  async #reload(): Promise<void> {
    this.#lastStat = await this.#statKey();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (this.#lastText === null) return;
      this.#lastText = null;
      this.#events.onRejected([this.#problem(`cannot read ${this.file}: ${e.code ?? e.message}; the previous configuration stays live`)]);
      return;
    }
    if (this.#stopped || text === this.#lastText) return;
    this.#lastText = text;
    const r = parseRouterConfig(text, this.file);
    if (r.scheduler === null) this.#events.onRejected(r.problems);
    else this.#events.onChange(r.scheduler, r.problems, r.auth);
  }

  #problem(message: string): Problem {
    return { kind: 'RouterConfiguration', namespace: '', name: 'routerConfiguration', file: this.file, field: '', message, severity: 'rejected' };
  }
}
