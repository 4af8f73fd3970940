/**
 * File-mode provider: a directory of YAML manifests (ModelRoute, ModelServer, v1 Pod; Gateway API,
 * Inference Extension and v1 Service/Namespace/Secret, see resources/validate/kinds/), watched.
 *
 * Semantics (what an operator editing the directory relies on):
 *  - Every `*.yaml` / `*.yml` directly in the directory is read (not recursive; hidden files, such
 *    as editor lock files and a ConfigMap volume's `..data` entries, are skipped; symlinks are
 *    followed, so a mounted ConfigMap works). Files are multi-document.
 *  - An object's identity is kind/namespace/name, whatever file holds it: moving it to another file
 *    or renaming the file keeps it (and its creationTimestamp, which orders routes).
 *  - An edit that makes an object invalid is rejected and the object's last valid version stays in
 *    use, with the problem reported. Removing the document or the file deletes the object, once the
 *    file has stayed unchanged (or deleted) for `removeGraceMs` (default 1 s): a writer that pauses
 *    mid-file (editors, config-management tools, a slow `kubectl` redirect) leaves a shorter but
 *    valid file for a moment, and that shorter version must not take routes down (issue 18: a
 *    300 ms pause cost 221 requests `404 route not found`). Additions and edits apply at once.
 *  - A file that cannot be read, or that has a YAML syntax error, deletes nothing: objects it held
 *    before and no longer (visibly) holds keep their last valid version, since a half-saved file
 *    must not take routes down.
 *  - The same identity in two places: the lexicographically first file (then the first document)
 *    wins; every other definition is reported and ignored.
 *
 * Change detection is level-triggered: fs.watch on the directory plus a stat poll (fs.watch misses
 * some editor rename-swaps and does not fire on every filesystem), both only mark the set dirty;
 * one debounced rebuild re-reads the whole directory. onChange fires only when the resulting set,
 * problems or file list differ from the last emitted ones. The watcher path uses async fs only and
 * never throws: a crashing rebuild is logged, counted in `crashes`, and retried on the next poll.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RouterError } from '../../errors.js';
import type { GatewayResource } from '../../resources/gateway.js';
import type { AnyResource, Problem, ResourceSet } from '../../resources/types.js';
import { gatewayIdentityOf, isGatewayManifest, parseGatewayObject, toFullResourceSet } from '../../resources/validate.js';
import { identityOf, parseManifestObject } from '../../resources/validate.js';
import type { Provider } from '../types.js';

export interface FileSnapshot {
  resources: ResourceSet;
  problems: Problem[];
  /** Absolute paths of the manifest files read, sorted. */
  files: string[];
}

export interface FileProviderLog {
  info: (o: object, msg: string) => void;
  warn: (o: object, msg: string) => void;
  error: (o: object, msg: string) => void;
}

export interface FileProviderOptions {
  /** Quiet period after the last change before a rebuild (ms). Default 100. */
  debounceMs?: number;
  /** Stat-poll interval (ms). Default 1000. */
  pollMs?: number;
  /**
   * How long a file must stay unchanged before objects that vanished from it are deleted (ms).
   * Default 1000 (with the debounce, inside the 2 s hot-reload promise).
   */
  removeGraceMs?: number;
  /** RFC 3339 clock for the creationTimestamp of new objects. */
  now?: () => string;
  onChange: (snapshot: FileSnapshot) => void;
  log?: FileProviderLog;
}

interface Held {
  resource: AnyResource | GatewayResource;
  file: string;
}

interface Doc {
  file: string;
  /** 1-based position in the file, for messages. */
  index: number;
  raw: unknown;
}

interface ParsedFile {
  text: string;
  docs: Doc[];
  problems: Problem[];
}

const MANIFEST_RE = /\.ya?ml$/i;

export class FileProvider implements Provider {
  /** Rebuilds (or onChange calls) that threw; each was logged and the watcher kept running. */
  crashes = 0;
  /** Rebuilds run, whether or not they emitted. */
  rebuilds = 0;

  readonly #dir: string;
  readonly #debounceMs: number;
  readonly #pollMs: number;
  readonly #removeGraceMs: number;
  readonly #now: () => string;
  readonly #onChange: (snapshot: FileSnapshot) => void;
  readonly #log: FileProviderLog | undefined;

  /** Last valid version of every object, by kind/namespace/name, with the file that holds it. */
  #held = new Map<string, Held>();
  #parsed = new Map<string, ParsedFile>();
  #lastEmitted: string | null = null;
  /** Directory signature (names + stat) as last seen by a rebuild; the poll compares against it. */
  #lastSignature = '';

  #watcher: FSWatcher | null = null;
  #watchWarned = false;
  #debounceTimer: NodeJS.Timeout | null = null;
  #firstDirtyAt = 0;
  #pollTimer: NodeJS.Timeout | null = null;
  #polling = false;
  #running: Promise<void> | null = null;
  #dirtyWhileRunning = false;
  #stopped = true;
  /** When each file's content (or existence) last changed, by path (Date.now()). */
  readonly #changedAt = new Map<string, number>();
  /** Re-runs the rebuild when the earliest pending removal's grace period is over. */
  #graceTimer: NodeJS.Timeout | null = null;

  constructor(dir: string, opts: FileProviderOptions) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('FileProvider: dir must be a non-empty string');
    if (typeof opts?.onChange !== 'function') throw new TypeError('FileProvider: opts.onChange must be a function');
    for (const k of ['debounceMs', 'pollMs', 'removeGraceMs'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new TypeError(`FileProvider: opts.${k} must be a non-negative number, got ${String(v)}`);
    }
    this.#dir = path.resolve(dir);
    this.#debounceMs = opts.debounceMs ?? 100;
    this.#pollMs = Math.max(10, opts.pollMs ?? 1000);
    this.#removeGraceMs = opts.removeGraceMs ?? 1000;
    this.#now = opts.now ?? (() => new Date().toISOString());
    this.#onChange = opts.onChange;
    this.#log = opts.log;
  }

  /**
   * Loads the directory once and emits, then watches. Rejects only when the directory itself
   * cannot be listed (a start-up configuration error); later failures never throw.
   */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    try {
      await readdir(this.#dir);
    } catch (err) {
      this.#stopped = true;
      throw new RouterError('RTR_ERR_CONFIG_INVALID', `manifest directory ${this.#dir}: ${(err as Error).message}`, { cause: err });
    }
    this.#startWatcher();
    await this.#runRebuild();
    this.#schedulePoll();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#debounceTimer !== null) clearTimeout(this.#debounceTimer);
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    this.#debounceTimer = null;
    this.#pollTimer = null;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#running !== null) await this.#running;
  }

  #startWatcher(): void {
    if (this.#watcher !== null || this.#stopped) return;
    try {
      const w = watch(this.#dir, { persistent: false }, () => this.#markDirty());
      w.on('error', (err) => {
        this.#log?.warn({ err, dir: this.#dir }, 'directory watch failed; relying on polling');
        w.close();
        if (this.#watcher === w) this.#watcher = null;
      });
      this.#watcher = w;
    } catch (err) {
      // Retried on every poll (e.g. after the inotify watch limit is raised); said once.
      if (!this.#watchWarned) this.#log?.warn({ err, dir: this.#dir }, 'cannot watch the directory; relying on polling');
      this.#watchWarned = true;
    }
  }

  /** Trailing debounce, capped so that a file rewritten continuously still gets picked up. */
  #markDirty(): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (this.#debounceTimer === null) this.#firstDirtyAt = now;
    else {
      if (now - this.#firstDirtyAt >= this.#debounceMs * 10) return;
      clearTimeout(this.#debounceTimer);
    }
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = null;
      void this.#runRebuild();
    }, this.#debounceMs);
    this.#debounceTimer.unref();
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#pollTimer = setTimeout(() => void this.#poll(), this.#pollMs);
    this.#pollTimer.unref();
  }

  async #poll(): Promise<void> {
    this.#pollTimer = null;
    if (this.#stopped || this.#polling) return;
    this.#polling = true;
    try {
      const { signature } = await this.#scan();
      this.#startWatcher();
      if (signature !== this.#lastSignature) this.#markDirty();
    } catch (err) {
      // The directory itself vanished or became unreadable: keep the last set and keep polling; a
      // watch on the old directory would never fire for a re-created one.
      this.#watcher?.close();
      this.#watcher = null;
      const sig = `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
      if (sig !== this.#lastSignature) this.#markDirty();
    } finally {
      this.#polling = false;
      this.#schedulePoll();
    }
  }

  async #runRebuild(): Promise<void> {
    if (this.#running !== null) {
      this.#dirtyWhileRunning = true;
      return this.#running;
    }
    const run = (async () => {
      try {
        await this.#rebuild();
      } catch (err) {
        this.crashes++;
        this.#lastSignature = ''; // the next poll retries
        this.#log?.error({ err, dir: this.#dir }, 'manifest rebuild crashed; keeping the last set');
      }
    })();
    this.#running = run;
    await run;
    this.#running = null;
    if (this.#dirtyWhileRunning && !this.#stopped) {
      this.#dirtyWhileRunning = false;
      this.#markDirty();
    }
  }

  /** Lists the manifest files (sorted, code-unit order) with a stat signature of the directory. */
  async #scan(): Promise<{ files: string[]; signature: string }> {
    const entries = await readdir(this.#dir);
    const names = entries.filter((n) => MANIFEST_RE.test(n) && !n.startsWith('.')).sort();
    const files: string[] = [];
    const parts: string[] = [];
    await Promise.all(names.map(async (n, i) => {
      const file = path.join(this.#dir, n);
      try {
        const st = await stat(file);
        if (!st.isFile()) return;
        files[i] = file;
        parts[i] = `${n}:${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
      } catch (err) {
        // Listed but not stat-able (dangling symlink, vanished): still a manifest file the rebuild
        // must report on.
        files[i] = file;
        parts[i] = `${n}:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
      }
    }));
    return { files: files.filter((f) => f !== undefined), signature: parts.filter((p) => p !== undefined).join('\n') };
  }

  async #rebuild(): Promise<void> {
    if (this.#stopped) return;
    this.rebuilds++;
    let scan: { files: string[]; signature: string };
    try {
      scan = await this.#scan();
    } catch (err) {
      // Unlistable directory: nothing can be known, so nothing is deleted.
      this.#lastSignature = `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
      this.#emit(this.#snapshotOf(this.#held, [fileProblem(this.#dir, `cannot read the manifest directory: ${(err as Error).message}`)], [...this.#parsed.keys()]));
      return;
    }
    this.#lastSignature = scan.signature;
    const now = this.#now();
    const wallNow = Date.now();
    // A file that disappeared changed now (once); forgotten after its removals went through.
    const listed = new Set(scan.files);
    for (const file of this.#parsed.keys()) if (!listed.has(file)) this.#changedAt.set(file, wallNow);
    const problems: Problem[] = [];
    const docs: Doc[] = [];
    /** Files whose previous objects survive even when not seen now. */
    const keepFrom = new Set<string>();
    const parsed = new Map<string, ParsedFile>();

    const texts = await Promise.all(scan.files.map(async (file) => {
      try {
        return { file, text: await readFile(file, 'utf8') };
      } catch (err) {
        return { file, error: err as Error };
      }
    }));
    for (const t of texts) {
      if (t.error !== undefined) {
        problems.push(fileProblem(t.file, `cannot read file: ${t.error.message}`));
        keepFrom.add(t.file);
        const prev = this.#parsed.get(t.file);
        if (prev !== undefined) parsed.set(t.file, prev);
        continue;
      }
      const cached = this.#parsed.get(t.file);
      // A plain (non-atomic) write truncates the file before writing it: read in between, it is
      // empty. Dropping its objects would 404 their traffic for a moment, so an empty file that
      // held objects keeps them until it has content again or is deleted.
      if (t.text.trim() === '' && cached !== undefined && cached.docs.length > 0) {
        problems.push({ ...fileProblem(t.file, 'the file is empty; its previous objects stay in use until it has content again or is deleted'), severity: 'warning' });
        keepFrom.add(t.file);
        parsed.set(t.file, cached);
        continue;
      }
      if (cached === undefined || cached.text !== t.text) this.#changedAt.set(t.file, wallNow);
      const pf = cached !== undefined && cached.text === t.text ? cached : parseFile(t.file, t.text);
      parsed.set(t.file, pf);
      problems.push(...pf.problems);
      if (pf.problems.length > 0) keepFrom.add(t.file);
      docs.push(...pf.docs);
    }

    const next = new Map<string, Held>();
    const owners = new Map<string, Doc>();
    for (const doc of docs) {
      const id = identityOf(doc.raw) ?? gatewayIdentityOf(doc.raw);
      if (id !== null) {
        const owner = owners.get(id.key);
        if (owner !== undefined) {
          const where = owner.file === doc.file ? `document ${owner.index} of this file` : `${owner.file} (document ${owner.index})`;
          problems.push({
            kind: id.kind, namespace: id.namespace, name: id.name, file: doc.file, field: 'metadata.name', severity: 'rejected',
            message: `${id.kind} ${id.namespace}/${id.name} is already defined in ${where}; this definition is ignored`,
          });
          continue;
        }
        owners.set(id.key, doc);
      }
      const previous = id !== null ? this.#held.get(id.key)?.resource : undefined;
      const r = isGatewayManifest(doc.raw)
        ? parseGatewayObject(doc.raw, { file: doc.file, now: () => now, previous: previous as GatewayResource | undefined })
        : parseManifestObject(doc.raw, { file: doc.file, now: () => now, previous: previous as AnyResource | undefined });
      problems.push(...r.problems);
      if (id === null) continue;
      if (r.resource !== undefined) next.set(id.key, { resource: r.resource, file: doc.file });
      else if (previous !== undefined) {
        next.set(id.key, { resource: previous, file: doc.file });
        problems.push({
          kind: id.kind, namespace: id.namespace, name: id.name, file: doc.file, field: '', severity: 'warning',
          message: `this version is rejected; the last valid version (generation ${previous.metadata.generation}) stays in use`,
        });
      }
    }
    let graceEnds = Infinity;
    for (const [key, held] of this.#held) {
      if (next.has(key)) continue;
      if (keepFrom.has(held.file)) { next.set(key, held); continue; }
      // Gone from its file: deleted only once the file has stayed unchanged for the grace period.
      const ends = (this.#changedAt.get(held.file) ?? 0) + this.#removeGraceMs;
      if (ends > wallNow) {
        next.set(key, held);
        graceEnds = Math.min(graceEnds, ends);
      }
    }
    for (const file of this.#changedAt.keys()) {
      if (!listed.has(file) && (this.#changedAt.get(file) ?? 0) + this.#removeGraceMs <= wallNow) this.#changedAt.delete(file);
    }
    if (graceEnds !== Infinity) this.#recheckAt(graceEnds - wallNow);

    this.#held = next;
    this.#parsed = parsed;
    this.#emit(this.#snapshotOf(next, problems, scan.files));
  }

  #recheckAt(ms: number): void {
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = null;
      void this.#runRebuild();
    }, Math.max(0, ms) + 5);
    this.#graceTimer.unref();
  }

  #snapshotOf(held: Map<string, Held>, problems: Problem[], files: string[]): FileSnapshot {
    return { resources: toFullResourceSet([...held.values()].map((h) => h.resource)), problems, files };
  }

  #emit(snap: FileSnapshot): void {
    if (this.#stopped) return;
    const json = JSON.stringify(snap);
    if (json === this.#lastEmitted) return;
    this.#lastEmitted = json;
    const r = snap.resources;
    this.#log?.info({
      dir: this.#dir, files: snap.files.length, modelRoutes: r.modelRoutes.length, modelServers: r.modelServers.length,
      pods: r.pods.length, problems: snap.problems.length,
    }, 'manifests loaded');
    try {
      this.#onChange(snap);
    } catch (err) {
      this.crashes++;
      this.#log?.error({ err }, 'manifest change handler threw');
    }
  }
}

function fileProblem(file: string, message: string): Problem {
  return { kind: '', namespace: '', name: '', file, field: '', message, severity: 'rejected' };
}

/**
 * Splits a file into documents. A document with a YAML error yields a problem and no object; the
 * others load. A `v1 List` (what `kubectl get -o yaml` prints) is expanded into its items.
 */
function parseFile(file: string, text: string): ParsedFile {
  const docs: Doc[] = [];
  const problems: Problem[] = [];
  let index = 0;
  for (const d of parseAllDocuments(text)) {
    index++;
    if (d.errors.length > 0) {
      // yaml's first message line already says "at line L, column C" (file-absolute).
      const first = d.errors[0]!.message.split('\n')[0]!.replace(/:$/, '');
      problems.push(fileProblem(file, `YAML syntax error in document ${index}: ${first}`));
      continue;
    }
    let raw: unknown;
    try {
      raw = d.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push(fileProblem(file, `YAML error in document ${index}: ${(err as Error).message.split('\n')[0]}`));
      continue;
    }
    if (raw === null || raw === undefined) continue;
    if (isList(raw)) {
      for (const item of raw.items) docs.push({ file, index, raw: item });
      continue;
    }
    docs.push({ file, index, raw });
  }
  return { text, docs, problems };
}

function isList(raw: unknown): raw is { items: unknown[] } {
  if (typeof raw !== 'object' || raw === null) return false;
  const o = raw as Record<string, unknown>;
  return o.apiVersion === 'v1' && o.kind === 'List' && Array.isArray(o.items);
}
