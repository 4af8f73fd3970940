/**
 * Writes the statuses computed by src/translator/status.ts to the status subresource, only:
 *  - on the elected replica (`isLeader()`; see leader.ts);
 *  - when they differ from what the object holds (every field we set, conditions included, with
 *    `lastTransitionTime` ignored in the comparison); `lastTransitionTime` is then kept from the
 *    object's condition of the same type when its status did not change, else stamped now, as
 *    metav1.Condition requires, wherever a `conditions` list sits (Gateway listeners, route
 *    parents);
 *  - as a JSON merge patch of `status` carrying the cached metadata.resourceVersion, so a write
 *    based on a stale read fails with 409 Conflict: the object is then read again and the patch
 *    reapplied (up to 5 attempts).
 * A status shared with other controllers (HTTPRoute and InferencePool `parents`) names a `merge`
 * that combines our entries with theirs (mergeRouteParents in src/translator/status.ts), so theirs
 * survive our writes.
 * Writes run one at a time; a newer desired set arriving meanwhile is reconciled right after.
 * A failed write (other than a conflict) is logged, counted, and retried after `retryMs`.
 */
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import { objectPath, type KubeClient } from '../kube/client.js';
import { stableJson } from '../resources/validate.js';
import type { DesiredStatus } from '../translator/status.js';

export interface CurrentObject {
  metadata: { resourceVersion?: string; [k: string]: unknown };
  status?: unknown;
}

export interface StatusWriterOptions {
  client: KubeClient;
  /** The object as the informer cache holds it (undefined when it is gone). */
  current(kind: string, namespace: string, name: string): CurrentObject | undefined;
  isLeader(): boolean;
  log?: { info: (o: object, msg: string) => void; warn: (o: object, msg: string) => void; debug?: (o: object, msg: string) => void };
  registry?: Registry;
  now?: () => string;
  retryMs?: number;
}

type Json = Record<string, unknown>;

const MAX_ATTEMPTS = 5;

function key(d: { kind: string; namespace: string; name: string }): string {
  return `${d.kind}/${d.namespace}/${d.name}`;
}

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The identity of a list element across versions: a condition's type, a listener's name, a parent's ref. */
function elementKey(v: unknown, i: number): string {
  if (!isObj(v)) return `#${i}`;
  if (typeof v.type === 'string') return `type:${v.type}`;
  if (typeof v.name === 'string') return `name:${v.name}`;
  if (v.parentRef !== undefined) return `parent:${stableJson(v.parentRef)}:${String(v.controllerName ?? '')}`;
  return `#${i}`;
}

/** `want` with every condition's lastTransitionTime kept from `prev` (same type, same status) or set to `now`. */
export function stampTransitions(want: unknown, prev: unknown, now: string, inConditions = false): unknown {
  if (Array.isArray(want)) {
    const before = new Map<string, unknown>();
    if (Array.isArray(prev)) prev.forEach((p, i) => before.set(elementKey(p, i), p));
    return want.map((w, i) => {
      const p = before.get(elementKey(w, i));
      if (inConditions && isObj(w)) {
        const old = isObj(p) && p.status === w.status && typeof p.lastTransitionTime === 'string' ? p.lastTransitionTime : now;
        return { ...w, lastTransitionTime: old };
      }
      return stampTransitions(w, p, now);
    });
  }
  if (!isObj(want)) return want;
  const out: Json = {};
  for (const [k, v] of Object.entries(want)) out[k] = stampTransitions(v, isObj(prev) ? prev[k] : undefined, now, k === 'conditions');
  return out;
}

/** Equality of two statuses ignoring every lastTransitionTime. */
function sameIgnoringTimes(a: unknown, b: unknown): boolean {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (!isObj(v)) return v;
    const o: Json = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'lastTransitionTime') o[k] = strip(x);
    return o;
  };
  return stableJson(strip(a)) === stableJson(strip(b));
}

export class StatusWriter {
  /** Successful status writes (tests and the metric read it). */
  writes = 0;
  conflicts = 0;
  errors = 0;

  readonly #o: StatusWriterOptions;
  readonly #now: () => string;
  #desired: DesiredStatus[] = [];
  #running: Promise<void> | null = null;
  #again = false;
  #retry: NodeJS.Timeout | null = null;
  #stopped = false;
  /** After a write: the resourceVersion it was based on, until the cache moves past it. */
  readonly #inFlight = new Map<string, { baseRv: string; json: string }>();
  readonly #metric: Counter<'kind' | 'result'> | null = null;

  constructor(o: StatusWriterOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
    if (o.registry !== undefined) {
      this.#metric = new Counter({
        name: 'kthena_router_status_writes_total',
        help: 'Kubernetes mode: status subresource writes by kind and result (written, conflict: retried after a 409, error)',
        labelNames: ['kind', 'result'] as const,
        registers: [o.registry],
      });
    }
  }

  /** The latest desired statuses (the whole set); reconciled now when leading. */
  update(desired: DesiredStatus[]): void {
    this.#desired = desired;
    this.kick();
  }

  /** Reconcile the current desired set (called on becoming leader, and after each update). */
  kick(): void {
    if (this.#stopped || !this.#o.isLeader()) return;
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = this.#reconcile().finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.kick();
      }
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    if (this.#running !== null) await this.#running;
  }

  /** Resolves when no write is running or queued (tests). */
  async idle(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  async #reconcile(): Promise<void> {
    let failed = false;
    for (const d of this.#desired) {
      if (this.#stopped || !this.#o.isLeader()) return;
      try {
        await this.#writeOne(d);
      } catch (err) {
        failed = true;
        this.errors++;
        this.#metric?.inc({ kind: d.kind, result: 'error' });
        this.#o.log?.warn({ kind: d.kind, namespace: d.namespace, name: d.name, err: (err as Error).message }, 'status write failed; retrying');
      }
    }
    if (failed && this.#retry === null && !this.#stopped) {
      this.#retry = setTimeout(() => { this.#retry = null; this.kick(); }, this.#o.retryMs ?? 2000);
      this.#retry.unref();
    }
  }

  /** The status the object should hold (ours merged into its current one), or null when it already does. */
  #target(d: DesiredStatus, cur: CurrentObject): Json | null {
    const have = isObj(cur.status) ? cur.status : {};
    const merged = d.merge !== undefined ? d.merge(have, d.status) : { ...have, ...d.status };
    return sameIgnoringTimes(merged, have) ? null : merged;
  }

  async #writeOne(d: DesiredStatus): Promise<void> {
    const k = key(d);
    const wantJson = stableJson(d.status);
    let cur = this.#o.current(d.kind, d.namespace, d.name);
    if (cur === undefined) return;
    let target = this.#target(d, cur);
    if (target === null) {
      this.#inFlight.delete(k);
      return;
    }
    // Our own write the informer has not delivered yet: the cache still shows its base version.
    const pending = this.#inFlight.get(k);
    if (pending !== undefined && pending.json === wantJson && pending.baseRv === (cur.metadata.resourceVersion ?? '')) return;

    const path = objectPath(d.apiVersion, d.plural, d.namespace, d.name, 'status');
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const stamped = stampTransitions(target, cur.status, this.#now()) as Json;
      // Only the keys we own go in the patch (a merge patch replaces lists wholesale; shared
      // lists were merged above).
      const status: Json = {};
      for (const key of Object.keys(d.status)) status[key] = stamped[key];
      const baseRv = cur.metadata.resourceVersion ?? '';
      const r = await this.#o.client.request('PATCH', path, { metadata: { resourceVersion: baseRv }, status }, 'application/merge-patch+json');
      if (r.status === 200) {
        this.writes++;
        this.#metric?.inc({ kind: d.kind, result: 'written' });
        this.#inFlight.set(k, { baseRv, json: wantJson });
        this.#o.log?.debug?.({ kind: d.kind, namespace: d.namespace, name: d.name }, 'status written');
        return;
      }
      if (r.status === 404) return;
      if (r.status !== 409) throw new Error(`PATCH ${path}: ${r.status} ${(r.body as { message?: string } | null)?.message ?? ''}`);
      this.conflicts++;
      this.#metric?.inc({ kind: d.kind, result: 'conflict' });
      // Someone changed the object since our read: read it again and reapply.
      const fresh = await this.#o.client.request('GET', objectPath(d.apiVersion, d.plural, d.namespace, d.name));
      if (fresh.status === 404) return;
      if (fresh.status !== 200) throw new Error(`GET ${path}: ${fresh.status}`);
      cur = fresh.body as CurrentObject;
      target = this.#target(d, cur);
      if (target === null) return;
    }
    throw new Error(`PATCH ${path}: still conflicting after ${MAX_ATTEMPTS} attempts`);
  }
}
