/**
 * Leader election on a coordination.k8s.io/v1 Lease, client-go's algorithm, so that of several
 * router replicas exactly one writes statuses (and the others take over when it goes away):
 *  - every `retryPeriodMs` a candidate reads the Lease; absent, it creates it (a 409 means another
 *    replica won the race);
 *  - a Lease held by someone else is taken over only when it has not changed for
 *    `leaseDurationMs` of *local* time since this replica last saw it change (client-go's
 *    observedTime, immune to clock skew between replicas), or when its holder released it;
 *  - the holder renews with an update carrying the Lease's resourceVersion (optimistic
 *    concurrency: two replicas can never both succeed);
 *  - a holder that could not renew for `renewDeadlineMs` stops leading at once, before anyone
 *    may take over (renewDeadline < leaseDuration);
 *  - stop() releases a held Lease (empty holder), so a successor takes over without waiting.
 */
import { objectPath, type KubeClient } from '../kube/client.js';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  log?: { info: (o: object, msg: string) => void; warn: (o: object, msg: string) => void };
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  isLeader = false;
  readonly identity: string;
  readonly #o: Required<Omit<LeaderElectionOptions, 'log'>> & Pick<LeaderElectionOptions, 'log'>;
  #timer: NodeJS.Timeout | null = null;
  #stopped = true;
  #running: Promise<void> | null = null;
  /** Last Lease record seen (its resourceVersion) and the local time it was first seen. */
  #observedRv = '';
  #observedAt = 0;
  #lastRenew = 0;
  /** The last failure logged, so that an outage is logged once, not every retry period. */
  #lastError = '';

  constructor(o: LeaderElectionOptions) {
    const leaseDurationMs = o.leaseDurationMs ?? 15_000;
    const renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    const retryPeriodMs = o.retryPeriodMs ?? 2_000;
    if (!(renewDeadlineMs < leaseDurationMs)) throw new TypeError('LeaderElector: renewDeadlineMs must be less than leaseDurationMs');
    if (!(retryPeriodMs < renewDeadlineMs)) throw new TypeError('LeaderElector: retryPeriodMs must be less than renewDeadlineMs');
    this.#o = { ...o, leaseDurationMs, renewDeadlineMs, retryPeriodMs };
    this.identity = o.identity;
  }

  get #path(): string {
    return objectPath('coordination.k8s.io/v1', 'leases', this.#o.namespace, this.#o.name);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#running !== null) await this.#running;
    if (this.isLeader) {
      await this.#release().catch(() => undefined);
      this.#setLeader(false);
    }
  }

  #tick(): void {
    if (this.#stopped) return;
    this.#running = this.#tryAcquireOrRenew()
      .then(() => { this.#lastError = ''; })
      .catch((err: Error) => {
        if (err.message !== this.#lastError) this.#o.log?.warn({ lease: this.#o.name, err: err.message }, 'leader election: Lease request failed; retrying');
        this.#lastError = err.message;
      })
      .then(() => {
        this.#running = null;
        if (this.isLeader && Date.now() - this.#lastRenew > this.#o.renewDeadlineMs) {
          this.#o.log?.warn({ lease: this.#o.name, identity: this.identity }, 'leader election: could not renew the Lease in time; stepping down');
          this.#setLeader(false);
        }
        if (this.#stopped) return;
        this.#timer = setTimeout(() => this.#tick(), this.#o.retryPeriodMs);
        this.#timer.unref();
      });
  }

  #record(prev: LeaseSpec | undefined, now: Date): LeaseSpec {
    const held = prev?.holderIdentity === this.identity;
    return {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000)),
      acquireTime: held && prev?.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: held ? prev?.leaseTransitions ?? 0 : (prev?.leaseTransitions ?? -1) + 1,
    };
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const c = this.#o.client;
    const now = new Date();
    const got = await c.request('GET', this.#path);
    if (got.status === 404) {
      const lease: Lease = {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
        metadata: { name: this.#o.name, namespace: this.#o.namespace }, spec: this.#record(undefined, now),
      };
      const r = await c.request('POST', objectPath('coordination.k8s.io/v1', 'leases', this.#o.namespace, '').replace(/\/$/, ''), lease);
      if (r.status === 201 || r.status === 200) this.#renewed();
      return;
    }
    if (got.status !== 200) throw new Error(`GET Lease ${this.#o.namespace}/${this.#o.name}: ${got.status}`);
    const lease = got.body as Lease;
    const spec = lease.spec ?? {};
    const rv = lease.metadata.resourceVersion ?? '';
    if (rv !== this.#observedRv) {
      this.#observedRv = rv;
      this.#observedAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.identity) {
      if (this.isLeader) {
        this.#o.log?.warn({ lease: this.#o.name, holder }, 'leader election: the Lease was taken over; stepping down');
        this.#setLeader(false);
      }
      const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.#o.leaseDurationMs / 1000)) * 1000;
      if (holder !== '' && Date.now() - this.#observedAt < durationMs) return;
    }
    const next: Lease = { ...lease, spec: this.#record(spec, now) };
    const r = await c.request('PUT', this.#path, next);
    if (r.status === 200) this.#renewed();
    // 409: someone else wrote the Lease first; the next round reads it again.
  }

  #renewed(): void {
    this.#lastRenew = Date.now();
    if (!this.isLeader) {
      this.#o.log?.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity }, 'leader election: became the leader; writing statuses');
      this.#setLeader(true);
    }
  }

  async #release(): Promise<void> {
    const got = await this.#o.client.request('GET', this.#path);
    if (got.status !== 200) return;
    const lease = got.body as Lease;
    if (lease.spec?.holderIdentity !== this.identity) return;
    await this.#o.client.request('PUT', this.#path, {
      ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() },
    });
  }

  #setLeader(v: boolean): void {
    if (this.isLeader === v) return;
    this.isLeader = v;
    if (v) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }
}
