/**
 * One informer per watched kind: @kubernetes/client-node's ListWatch (list, diff, watch from the
 * list's resourceVersion, relist when the server answers 410 Gone), with what it lacks added
 * around it:
 *  - bookmarks: every watch asks for `allowWatchBookmarks=true`; ListWatch records a BOOKMARK's
 *    resourceVersion, so a reconnect resumes from it instead of relisting;
 *  - backoff: a failed list or watch (unreachable server, HTTP error, dropped connection) restarts
 *    after an exponential delay with jitter (equal jitter: half fixed, half random), reset by the
 *    next successful list or event; a watch that ends at once without any event counts as a
 *    failure too, so a misbehaving server cannot make it spin;
 *  - paging: lists are read in pages of 500 (`limit`/`continue`);
 *  - trimming: objects are reduced to the fields consumers read before ListWatch caches them;
 *  - sync state: `synced` turns true once the first list has been applied;
 *  - idle timeout: a watch that delivers nothing (no event, no bookmark) for `idleTimeoutMs` is
 *    aborted and restarted as a failure (backoff). A hung API server or a half-open connection
 *    through a dead load balancer otherwise stalls the informer forever with no error; the API
 *    server sends a bookmark about once a minute to a watch that asked for them, so 3 minutes of
 *    silence means the stream is dead. Each watch also asks the server to end it after a random
 *    5-10 minutes (`timeoutSeconds`, as client-go's reflector does).
 */
import { ListWatch, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { KubeClient } from '../../kube/client.js';
import { kubeApiError } from '../../kube/client.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '../../kube/backoff.js';
import { collectionPath, type KindContext, type RawObject, type WatchedKind } from './kinds.js';

export interface InformerEvents {
  onEvent(type: 'add' | 'update' | 'delete', obj: RawObject): void;
  /** The first list has been applied (once). */
  onSynced(): void;
  /** A list or watch failed; the informer retries after `retryInMs`. */
  onError(err: Error & { statusCode?: number }, retryInMs: number): void;
  /** A full list is about to be read; `reason` is 'initial', 'expired' (410 Gone) or 'retry'. */
  onList?(reason: 'initial' | 'expired' | 'retry'): void;
}

const PAGE = 500;
/** A watch ending sooner than this with no event at all is treated as a failure (backoff). */
const MIN_HEALTHY_WATCH_MS = 1000;
/** Default idle timeout of a watch (no event, no bookmark). */
export const DEFAULT_WATCH_IDLE_MS = 180_000;

interface ListBody { metadata?: { resourceVersion?: string; continue?: string }; items?: RawObject[] }

export class Informer {
  readonly kind: WatchedKind;
  synced = false;
  /** Full lists read (the first one included). */
  lists = 0;
  /** Watches (re)started. */
  watches = 0;
  failures = 0;

  readonly #events: InformerEvents;
  readonly #backoff: BackoffOptions;
  readonly #idleMs: number;
  readonly #lw: ListWatch<KubernetesObject>;
  #stopped = true;
  #retryTimer: NodeJS.Timeout | null = null;
  #lastListFailed = false;
  #consecutive = 0;

  constructor(client: KubeClient, kind: WatchedKind, ctx: KindContext, events: InformerEvents, backoff: BackoffOptions = DEFAULT_BACKOFF, idleTimeoutMs: number = DEFAULT_WATCH_IDLE_MS) {
    if (!(Number.isFinite(idleTimeoutMs) && idleTimeoutMs > 0)) throw new TypeError(`Informer: idleTimeoutMs must be > 0, got ${idleTimeoutMs}`);
    this.kind = kind;
    this.#events = events;
    this.#backoff = backoff;
    this.#idleMs = idleTimeoutMs;
    const path = collectionPath(kind, ctx);
    const query = new URLSearchParams();
    if (kind.labelSelector !== undefined) query.set('labelSelector', kind.labelSelector);
    const fieldSelector = kind.fieldSelector?.(ctx);
    if (fieldSelector !== undefined) query.set('fieldSelector', fieldSelector);
    const normalise = (o: RawObject): RawObject => {
      // List items of built-in kinds carry no apiVersion/kind.
      const full = { ...o, apiVersion: o.apiVersion ?? kind.apiVersion, kind: o.kind ?? kind.kind };
      return kind.trim !== undefined ? kind.trim(full) : full;
    };

    const list = async (): Promise<{ metadata: { resourceVersion: string }; items: RawObject[] }> => {
      this.#events.onList?.(this.lists === 0 ? 'initial' : this.#lastListFailed ? 'retry' : 'expired');
      this.lists++;
      this.#lastListFailed = true;
      const items: RawObject[] = [];
      let cont = '';
      let rv = '';
      do {
        const q = new URLSearchParams(query);
        q.set('limit', String(PAGE));
        if (cont !== '') q.set('continue', cont);
        const r = await client.request('GET', `${path}?${q}`);
        if (r.status === 404 && kind.optional) return { metadata: { resourceVersion: '' }, items: [] };
        if (r.status !== 200) {
          throw kubeApiError(r.status, `list ${kind.kind}: ${r.status} ${(r.body as { message?: string } | null)?.message ?? ''}`.trim());
        }
        const body = r.body as ListBody;
        for (const it of body.items ?? []) items.push(normalise(it));
        rv = body.metadata?.resourceVersion ?? '';
        cont = body.metadata?.continue ?? '';
      } while (cont !== '');
      this.#consecutive = 0;
      this.#lastListFailed = false;
      return { metadata: { resourceVersion: rv }, items };
    };

    // ListWatch calls watch() only after a list was applied (or to resume from a known
    // resourceVersion), which is where the informer counts as synced.
    const watch = {
      watch: async (p: string, qp: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: unknown, raw?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> => {
        if (this.#stopped) return new AbortController();
        if (!this.synced) {
          this.synced = true;
          this.#events.onSynced();
        }
        this.watches++;
        const started = Date.now();
        let events = 0;
        let failure: { code: number; message: string } | null = null;
        let ended = false;
        let controller: AbortController | null = null;
        let idleTimer: NodeJS.Timeout | null = null;
        const finish = (err: unknown): void => {
          if (ended) return;
          ended = true;
          if (idleTimer !== null) clearTimeout(idleTimer);
          done(err);
        };
        const armIdle = (): void => {
          if (idleTimer !== null) clearTimeout(idleTimer);
          idleTimer = setTimeout(() => {
            if (ended || this.#stopped) return;
            finish(kubeApiError(0, `watch ${kind.kind}: no event or bookmark for ${Math.round(this.#idleMs / 1000)} s; restarting it`));
            controller?.abort();
          }, this.#idleMs);
          idleTimer.unref();
        };
        armIdle();
        // client-go's reflector: the server ends each watch after a random 5-10 minutes.
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        // ListWatch calls this from a done callback nobody awaits: a rejection here (credentials
        // that cannot be refreshed) would be unhandled, so it goes through done() instead.
        try {
          controller = await client.watch.watch(p, { ...qp, allowWatchBookmarks: true, timeoutSeconds }, (phase, obj, raw) => {
            if (ended) return;
            armIdle();
            events++;
            if (phase === 'ERROR') {
              const st = obj as { code?: number; message?: string } | null;
              // 410 makes ListWatch relist when the stream ends; any other error Status is a failure.
              if (st?.code !== 410) failure = { code: st?.code ?? 0, message: st?.message ?? 'watch error' };
              cb(phase, obj ?? {}, raw);
              return;
            }
            if (obj === null || typeof obj !== 'object') return;
            this.#consecutive = 0;
            const o = obj as RawObject;
            cb(phase, phase === 'BOOKMARK' ? o : normalise(o), raw);
          }, (err: unknown) => {
            if (err === null && failure !== null && !this.#stopped) {
              finish(kubeApiError(failure.code, `watch ${kind.kind}: ${failure.code} ${failure.message}`));
              return;
            }
            if (err === null && events === 0 && Date.now() - started < MIN_HEALTHY_WATCH_MS && !this.#stopped) {
              finish(kubeApiError(0, `watch ${kind.kind}: closed at once without events`));
              return;
            }
            finish(err);
          });
          if (ended) controller.abort();
          return controller;
        } catch (err) {
          finish(err);
          return new AbortController();
        }
      },
    } as unknown as Watch;

    this.#lw = new ListWatch<KubernetesObject>(path, watch, list as unknown as () => Promise<{ items: KubernetesObject[] }>, false, kind.labelSelector, fieldSelector);
    this.#lw.on('add', (o) => this.#events.onEvent('add', o as unknown as RawObject));
    this.#lw.on('update', (o) => this.#events.onEvent('update', o as unknown as RawObject));
    this.#lw.on('delete', (o) => this.#events.onEvent('delete', o as unknown as RawObject));
    this.#lw.on('error', (err) => this.#failed(err as Error & { statusCode?: number }));
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    await this.#lw.stop();
  }

  /** The cached objects (trimmed). */
  list(): readonly RawObject[] {
    return this.#lw.list() as unknown as RawObject[];
  }

  get(namespace: string, name: string): RawObject | undefined {
    return this.#lw.get(name, namespace) as unknown as RawObject | undefined;
  }

  #run(): void {
    this.#lw.start().catch((err: Error) => this.#failed(err));
  }

  #failed(err: Error & { statusCode?: number }): void {
    if (this.#stopped) return;
    this.failures++;
    this.#consecutive++;
    const delay = backoffDelay(this.#consecutive, this.#backoff);
    this.#events.onError(err, delay);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#stopped) this.#run();
    }, delay);
    this.#retryTimer.unref();
  }
}
