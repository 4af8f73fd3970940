/**
 * Kubernetes-mode provider: one informer per entry of WATCHED_KINDS, feeding the same validation
 * the file provider uses (src/resources/validate.ts), so both emit identical ResourceSets for the
 * same objects.
 *
 * Semantics:
 *  - Level triggered: every informer event marks the provider dirty; one coalesced rebuild (after
 *    `debounceMs`) assembles the snapshot. onChange fires only when it differs from the last one.
 *  - Nothing is emitted before every informer has synced once, so the first snapshot is complete
 *    (a router that never reached its API server never becomes ready; see `synced`).
 *  - An object version that fails validation is reported as a problem and its last valid version
 *    stays in use, exactly as in file mode; a deletion removes it.
 *  - After the first sync a broken connection changes nothing: the informers retry with backoff
 *    and the last snapshot keeps routing.
 */
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { GatewayResource } from '../../resources/gateway.js';
import type { AnyResource, Problem } from '../../resources/types.js';
import { gatewayIdentityOf, isGatewayManifest, parseGatewayObject, toFullResourceSet } from '../../resources/validate.js';
import { parseManifestObject, resourceIdentity, stableJson } from '../../resources/validate.js';
import type { Provider, ProviderLog, ProviderSnapshot } from '../types.js';
import type { KubeClient } from '../../kube/client.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from '../../kube/backoff.js';
import { Informer } from './informer.js';
import { kindId, ROUTER_CONFIGMAP_KEY, WATCHED_KINDS, type KindContext, type RawObject, type WatchedKind } from './kinds.js';

export interface KubeSnapshot extends ProviderSnapshot {
  /** The `routerConfiguration` key of ConfigMap kthena-router-config; null when absent. */
  routerConfig: string | null;
  /** Objects of every `raw` kind and of the status-carrying kinds, by kind, sorted by namespace/name. */
  raw: Readonly<Record<string, readonly RawObject[]>>;
}

export interface KubeProviderOptions {
  client: KubeClient;
  context: KindContext;
  onChange(snapshot: KubeSnapshot): void;
  log?: ProviderLog;
  /** Metrics registry for the watch metrics (kthena_router_kube_*). */
  registry?: Registry;
  debounceMs?: number;
  backoff?: BackoffOptions;
  /** A watch silent (no event, no bookmark) this long is restarted, ms. Default 180 000. */
  watchIdleMs?: number;
  /** Watched kinds (default: WATCHED_KINDS filtered by `enabled`). */
  kinds?: readonly WatchedKind[];
}

type Resource = AnyResource | GatewayResource;

interface Held {
  resource: Resource | undefined;
  problems: Problem[];
  /** The informer's rank (WatchedKind.rank): one object held by several informers of a kind. */
  rank: number;
}

export class KubeProvider implements Provider {
  readonly informers: Informer[];
  /** Rebuilds or onChange calls that threw; each was logged and the provider kept running. */
  crashes = 0;

  readonly #opts: KubeProviderOptions;
  readonly #log: ProviderLog | undefined;
  readonly #debounceMs: number;
  /** Validated resources (and their problems) by kind/namespace/name. */
  readonly #held = new Map<string, Held>();
  #timer: NodeJS.Timeout | null = null;
  #lastEmitted: string | null = null;
  readonly #absent = new Set<string>();
  #stopped = true;
  readonly #syncedGauge: Gauge<'kind'> | null = null;
  readonly #restarts: Counter<'kind' | 'reason'> | null = null;

  constructor(opts: KubeProviderOptions) {
    if (typeof opts?.onChange !== 'function') throw new TypeError('KubeProvider: opts.onChange must be a function');
    this.#opts = opts;
    this.#log = opts.log;
    this.#debounceMs = opts.debounceMs ?? 20;
    const kinds = (opts.kinds ?? WATCHED_KINDS).filter((k) => k.enabled(opts.context));
    if (opts.registry !== undefined) {
      this.#syncedGauge = new Gauge({
        name: 'kthena_router_kube_informer_synced',
        help: 'Kubernetes mode: 1 once the informer of this kind has listed its objects, else 0',
        labelNames: ['kind'] as const,
        registers: [opts.registry],
        collect: () => { for (const i of this.informers) this.#syncedGauge!.set({ kind: kindId(i.kind) }, i.synced ? 1 : 0); },
      });
      this.#restarts = new Counter({
        name: 'kthena_router_kube_watch_restarts_total',
        help: 'Kubernetes mode: informer restarts by kind and reason (error: failed list/watch or dropped connection, retried with backoff; expired: 410 Gone, relisted)',
        labelNames: ['kind', 'reason'] as const,
        registers: [opts.registry],
      });
    }
    this.informers = kinds.map((k) => new Informer(opts.client, k, opts.context, {
      onEvent: (type, obj) => this.#onEvent(k, type, obj),
      onSynced: () => {
        this.#log?.info({ kind: kindId(k) }, 'informer synced');
        this.#markDirty();
      },
      onError: (err, retryInMs) => {
        this.#restarts?.inc({ kind: kindId(k), reason: 'error' });
        // An optional kind whose CRD is not installed answers 404 forever: said once.
        if (k.optional && err.statusCode === 404) {
          if (this.#absent.has(k.kind)) return;
          this.#absent.add(k.kind);
          this.#log?.info({ kind: k.kind, apiVersion: k.apiVersion }, 'optional kind not served by the API server (CRD not installed?); rechecking with backoff');
          return;
        }
        this.#log?.warn({ kind: kindId(k), statusCode: err.statusCode, retryInMs, err: err.message }, 'Kubernetes list/watch failed; retrying');
      },
      onList: (reason) => {
        if (reason === 'expired') {
          this.#restarts?.inc({ kind: kindId(k), reason: 'expired' });
          this.#log?.info({ kind: kindId(k) }, 'resourceVersion expired (410 Gone); relisting');
        }
      },
    }, opts.backoff ?? DEFAULT_BACKOFF, opts.watchIdleMs));
  }

  /** True once every informer has synced at least once (it stays true through later reconnects). */
  get synced(): boolean {
    return this.informers.every((i) => i.synced);
  }

  syncState(): { kind: string; synced: boolean; lists: number; watches: number; failures: number }[] {
    return this.informers.map((i) => ({ kind: kindId(i.kind), synced: i.synced, lists: i.lists, watches: i.watches, failures: i.failures }));
  }

  /** The cached (trimmed) object, for the status writer (by kind, or by informer id). */
  get(kind: string, namespace: string, name: string): RawObject | undefined {
    return this.informers.find((i) => kindId(i.kind) === kind)?.get(namespace, name);
  }

  /** Starts every informer and returns at once: an unreachable API server is retried, never fatal. */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    for (const i of this.informers) i.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  #onEvent(k: WatchedKind, type: 'add' | 'update' | 'delete', obj: RawObject): void {
    if (k.role === 'resource') {
      // Keyed by informer too: several Secret informers (one per purpose) may see the same object.
      const id = `${kindId(k)}|${gatewayIdentityOf(obj)?.key ?? resourceIdentity(k.kind, obj.metadata.namespace || 'default', obj.metadata.name)}`;
      if (type === 'delete') this.#held.delete(id);
      else {
        const prev = this.#held.get(id);
        const next = this.#validate(k, obj, prev?.resource);
        // Kubelets rewrite pod status often (probe times, fields the router drops): a pod whose
        // kept fields are unchanged keeps its previous version and triggers no rebuild.
        if (k.kind === 'Pod' && prev?.resource !== undefined && next.resource !== undefined && next.problems.length === 0 && prev.problems.length === 0 &&
          stableJson({ ...next.resource, metadata: { ...next.resource.metadata, resourceVersion: '' } }) ===
          stableJson({ ...prev.resource, metadata: { ...prev.resource.metadata, resourceVersion: '' } })) return;
        this.#held.set(id, next);
      }
    }
    this.#markDirty();
  }

  #validate(k: WatchedKind, obj: RawObject, previous: Resource | undefined): Held {
    const generation = typeof obj.metadata.generation === 'number' ? obj.metadata.generation : undefined;
    const now = (): string => new Date().toISOString();
    // The same validation as file mode, Kthena kinds and Gateway API / Inference Extension kinds.
    // (File mode also warns that a valid Gateway API object is not served yet; here that would be
    // one warning per Service and Namespace of the cluster, so kubernetes.md says it once instead.)
    const r = isGatewayManifest(obj)
      ? parseGatewayObject(obj, { file: '', now, previous: previous as GatewayResource | undefined, generation })
      : parseManifestObject(obj, { file: '', now, previous: previous as AnyResource | undefined, generation });
    // Problems name the object; there is no file in Kubernetes mode.
    const problems = r.problems.map(({ file: _file, ...p }) => p);
    const rank = k.rank ?? 0;
    if (r.resource !== undefined) return { resource: r.resource, problems, rank };
    if (previous !== undefined) {
      problems.push({
        kind: k.kind, namespace: previous.metadata.namespace, name: previous.metadata.name, field: '', severity: 'warning',
        message: `this version is rejected; the last valid version (generation ${previous.metadata.generation}) stays in use`,
      });
    }
    return { resource: previous, problems, rank };
  }

  #markDirty(): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#rebuild();
    }, this.#debounceMs);
    this.#timer.unref();
  }

  #rebuild(): void {
    if (this.#stopped || !this.synced) return;
    let snap: KubeSnapshot;
    try {
      snap = this.#snapshot();
    } catch (err) {
      this.crashes++;
      this.#log?.error({ err }, 'Kubernetes snapshot rebuild crashed; keeping the last one');
      return;
    }
    const json = JSON.stringify(snap);
    if (json === this.#lastEmitted) return;
    this.#lastEmitted = json;
    const r = snap.resources;
    this.#log?.info({ modelRoutes: r.modelRoutes.length, modelServers: r.modelServers.length, pods: r.pods.length, problems: snap.problems.length }, 'Kubernetes resources loaded');
    try {
      this.#opts.onChange(snap);
    } catch (err) {
      this.crashes++;
      this.#log?.error({ err }, 'Kubernetes change handler threw');
    }
  }

  #snapshot(): KubeSnapshot {
    const byIdentity = new Map<string, Held & { resource: Resource }>();
    const problems: Problem[] = [];
    const seenProblems = new Set<string>();
    for (const h of this.#held.values()) {
      for (const p of h.problems) {
        const key = JSON.stringify(p);
        if (!seenProblems.has(key)) { seenProblems.add(key); problems.push(p); }
      }
      if (h.resource === undefined) continue;
      const id = `${h.resource.kind}/${h.resource.metadata.namespace}/${h.resource.metadata.name}`;
      const other = byIdentity.get(id);
      if (other === undefined || h.rank < other.rank) byIdentity.set(id, h as Held & { resource: Resource });
    }
    const resources = [...byIdentity.values()].map((h) => h.resource);
    let routerConfig: string | null = null;
    const raw: Record<string, RawObject[]> = {};
    for (const inf of this.informers) {
      const k = inf.kind;
      if (k.role === 'routerConfig') {
        const cm = inf.list()[0];
        const text = cm?.data?.[ROUTER_CONFIGMAP_KEY];
        routerConfig = typeof text === 'string' ? text : null;
      } else if (k.role === 'raw' || k.writesStatus || k.keepRaw) {
        raw[kindId(k)] = [...inf.list()].sort(byKey);
      }
    }
    problems.sort((a, b) => cmp(a.kind, b.kind) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name) || cmp(a.field, b.field));
    return { resources: toFullResourceSet(resources), problems, routerConfig, raw };
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byKey(a: RawObject, b: RawObject): number {
  return cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? '') || cmp(a.metadata.name, b.metadata.name);
}
