/**
 * Watches the router's own TLS certificate and key (--tls-cert/--tls-key) and reports a change of
 * either, so that a renewed certificate (cert-manager rewriting a mounted Secret, an operator
 * replacing the files) is served without a restart. Polls stat() (size, mtime, ctime, inode; stat
 * follows symlinks, so a Secret volume's `..data` swap counts) rather than fs.watch, which misses
 * rename-swaps and does not work on every filesystem.
 */
import { stat } from 'node:fs/promises';

export class FileChangeWatcher {
  readonly #files: readonly string[];
  readonly #intervalMs: number;
  readonly #onChange: () => void;
  #last = '';
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(files: readonly string[], intervalMs: number, onChange: () => void) {
    if (!(Number.isFinite(intervalMs) && intervalMs > 0)) throw new TypeError(`FileChangeWatcher: intervalMs must be > 0, got ${intervalMs}`);
    this.#files = files;
    this.#intervalMs = intervalMs;
    this.#onChange = onChange;
  }

  async start(): Promise<void> {
    this.#last = await this.#signature();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#signature().then((sig) => {
        if (this.#stopped) return;
        if (sig !== this.#last) {
          this.#last = sig;
          this.#onChange();
        }
        this.#schedule();
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #signature(): Promise<string> {
    const parts = await Promise.all(this.#files.map(async (f) => {
      try {
        const s = await stat(f);
        return `${s.size}:${s.mtimeMs}:${s.ctimeMs}:${s.ino}`;
      } catch (err) {
        return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
      }
    }));
    return parts.join('|');
  }
}
