/**
 * The control thread's admission service: one fairness or session-boost queue per model for the
 * whole router, fed by every worker over its MessagePort. Waiting requests stay on their worker;
 * this service only decides the order and when each may go, so the order, the usage window and the
 * concurrency limit hold across all workers (Kthena keeps them per process, which is the same thing
 * for a Go router and exactly what per-worker queues would break here).
 *
 * Gates (when the head of a model's queue may go):
 * - fairness, FAIRNESS_MAX_CONCURRENT > 0: fewer than that many admitted and unreleased requests
 *   of the model;
 * - fairness, FAIRNESS_MAX_CONCURRENT = 0: at most FAIRNESS_MAX_QPS admissions per second per model,
 *   paced (Kthena ticks every 1/QPS s and hands out one request per tick; pacing admits a request
 *   that finds the pace free at once instead of waiting for the next tick, same rate);
 * - session boost: admitted < SESSION_BOOST_INFLIGHT_PER_POD x pods serving the model (x 1 when no
 *   pod lists it), and at least one of those pods reports an empty engine queue (or none is known),
 *   and SESSION_BOOST_GRACE_PERIOD has passed since the model's last release.
 */
import type { MessagePort } from 'node:worker_threads';
import {
  kAdmAdmit, kAdmCancel, kAdmEnqueue, kAdmReject, kAdmRelease, kRejectClosed, kRejectTimeout,
  type AdmissionSettings, type FromAdmission, type ToAdmission,
} from '../shared/admission.js';
import type { MetricJSON, MetricValueJSON } from '../shared/metric-json.js';
import { FairnessQueue, SessionBoostQueue, type ModelQueue, type Waiting } from './queue.js';
import { SessionTracker, TokenTracker } from './usage.js';

/**
 * What session boost's second admission level reads: pods serving the model, whether one is idle,
 * and the other router replicas' in-flight requests on them (shared in-flight counts; 0 without).
 */
export interface BackendView {
  (model: string): { pods: number; anyIdle: boolean; remote: number };
}

interface Admitted {
  model: string;
  user: string;
  session: string;
}

interface ModelState {
  queue: ModelQueue;
  inflight: number;
  /** Fairness QPS pacing: earliest time of the next admission. */
  nextSlot: number;
  /** Session boost: no admission before this time (grace period after a release). */
  holdUntil: number;
  timer: NodeJS.Timeout | null;
  timerAt: number;
  // metrics
  dequeued: number;
  cancelled: number;
  waits: Histogram;
}

const kQueueBounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

class Histogram {
  readonly buckets = new Float64Array(kQueueBounds.length);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < kQueueBounds.length; i++) if (seconds <= kQueueBounds[i]!) { this.buckets[i]!++; break; }
  }
}

const kWorkerBits = 64;

export class AdmissionService {
  readonly #s: AdmissionSettings;
  readonly #backend: BackendView;
  readonly #now: () => number;
  readonly #models = new Map<string, ModelState>();
  readonly #ports = new Map<number, MessagePort>();
  /** Admitted requests not yet released, by key. */
  readonly #admitted = new Map<number, Admitted>();
  /** Where each waiting request is queued, by key. */
  readonly #waiting = new Map<number, { state: ModelState; w: Waiting; timer: NodeJS.Timeout | null }>();
  readonly #tracker: TokenTracker | null;
  readonly #sessions: SessionTracker | null;
  readonly #sweeper: NodeJS.Timeout;
  #seq = 0;
  #closed = false;

  constructor(settings: AdmissionSettings, backend: BackendView, now: () => number = Date.now) {
    this.#s = settings;
    this.#backend = backend;
    this.#now = now;
    if (settings.mode === 'fairness') {
      const f = settings.fairness;
      this.#tracker = new TokenTracker(f.windowMs, { input: f.inputTokenWeight, output: f.outputTokenWeight });
      this.#sessions = null;
    } else {
      this.#tracker = null;
      this.#sessions = new SessionTracker(settings.sessionBoost.maxSessions);
    }
    this.#sweeper = setInterval(() => this.#tracker?.sweep(this.#now()), 60_000);
    this.#sweeper.unref();
  }

  get mode(): AdmissionSettings['mode'] {
    return this.#s.mode;
  }

  /** Serves one worker's port. A worker index keeps its keys apart from the other workers'. */
  attach(worker: number, port: MessagePort): void {
    if (worker < 0 || worker >= kWorkerBits) throw new RangeError(`worker index ${worker} out of range`);
    this.#ports.set(worker, port);
    port.on('message', (m: ToAdmission) => this.handle(worker, m));
  }

  /**
   * A worker exited: its waiting requests are gone with it, and its admitted ones no longer hold
   * a place (their uWS responses died with the thread).
   */
  detach(worker: number): void {
    this.#ports.get(worker)?.close();
    this.#ports.delete(worker);
    for (const [key, x] of this.#waiting) if (key % kWorkerBits === worker) this.#drop(key, x.state, true);
    const touched = new Set<ModelState>();
    for (const [key, a] of this.#admitted) {
      if (key % kWorkerBits !== worker) continue;
      this.#admitted.delete(key);
      const st = this.#models.get(a.model);
      if (st !== undefined) { st.inflight--; touched.add(st); }
    }
    for (const st of touched) this.#pump(st);
  }

  handle(worker: number, m: ToAdmission): void {
    switch (m[0]) {
      case kAdmEnqueue: this.#enqueue(m[1] * kWorkerBits + worker, m[2], m[3], m[4]); break;
      case kAdmCancel: {
        const key = m[1] * kWorkerBits + worker;
        const x = this.#waiting.get(key);
        if (x !== undefined) this.#drop(key, x.state, true);
        break;
      }
      case kAdmRelease: this.#release(m[1] * kWorkerBits + worker, m[2], m[3], m[4] === 1); break;
    }
  }

  /** Engine metrics or the set of pods changed: session boost's backend gate may have opened. */
  backendChanged(): void {
    if (this.#s.mode !== 'session-boost') return;
    for (const st of this.#models.values()) if (st.queue.size > 0) this.#pump(st);
  }

  /**
   * Models no longer served by any route: their waiting requests are refused (Kthena closes the
   * queue and cancels what waits in it).
   */
  retainModels(served: ReadonlySet<string>): void {
    for (const [model, st] of this.#models) {
      if (served.has(model)) continue;
      for (const w of [...st.queue.all()]) {
        st.queue.remove(w.key);
        this.#forgetWaiting(w.key);
        this.#send(w.key, [kAdmReject, Math.floor(w.key / kWorkerBits), kRejectClosed]);
      }
      if (st.inflight === 0) { this.#clearTimer(st); this.#models.delete(model); }
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const st of this.#models.values()) this.#clearTimer(st);
    for (const [key, x] of this.#waiting) {
      if (x.timer !== null) clearTimeout(x.timer);
      this.#send(key, [kAdmReject, Math.floor(key / kWorkerBits), kRejectClosed]);
    }
    this.#waiting.clear();
  }

  #state(model: string): ModelState {
    let st = this.#models.get(model);
    if (st === undefined) {
      const queue: ModelQueue = this.#s.mode === 'fairness'
        ? new FairnessQueue(this.#tracker!, {
          tokenWeight: this.#s.fairness.priorityTokenWeight,
          requestNumWeight: this.#s.fairness.priorityRequestNumWeight,
          refreshRetries: this.#s.fairness.priorityRefreshRetries,
        })
        : new SessionBoostQueue(this.#sessions!);
      st = { queue, inflight: 0, nextSlot: 0, holdUntil: 0, timer: null, timerAt: 0, dequeued: 0, cancelled: 0, waits: new Histogram() };
      this.#models.set(model, st);
    }
    return st;
  }

  #enqueue(key: number, model: string, user: string, session: string): void {
    if (this.#closed) { this.#send(key, [kAdmReject, Math.floor(key / kWorkerBits), kRejectClosed]); return; }
    const st = this.#state(model);
    const now = this.#now();
    const rank = st.queue instanceof FairnessQueue ? st.queue.priorityOf(user, model, now) : (st.queue as SessionBoostQueue).rankOf(session);
    const w: Waiting = { key, model, user, session, seq: this.#seq++, enqueuedAt: now, rank };
    st.queue.push(w);
    const timeoutMs = this.#s.mode === 'fairness' ? this.#s.fairness.queueTimeoutMs : this.#s.sessionBoost.timeoutMs;
    const timer = timeoutMs > 0 ? setTimeout(() => this.#timeout(key), timeoutMs) : null;
    timer?.unref();
    this.#waiting.set(key, { state: st, w, timer });
    this.#pump(st);
  }

  #timeout(key: number): void {
    const x = this.#waiting.get(key);
    if (x === undefined) return;
    x.state.queue.remove(key);
    this.#waiting.delete(key);
    x.state.cancelled++;
    this.#send(key, [kAdmReject, Math.floor(key / kWorkerBits), kRejectTimeout]);
  }

  #drop(key: number, st: ModelState, cancelled: boolean): void {
    st.queue.remove(key);
    this.#forgetWaiting(key);
    if (cancelled) st.cancelled++;
    this.#pump(st);
  }

  #forgetWaiting(key: number): void {
    const x = this.#waiting.get(key);
    if (x?.timer != null) clearTimeout(x.timer);
    this.#waiting.delete(key);
  }

  #release(key: number, promptTokens: number, completionTokens: number, scheduled: boolean): void {
    const a = this.#admitted.get(key);
    if (a === undefined) return;
    this.#admitted.delete(key);
    const now = this.#now();
    const st = this.#models.get(a.model);
    if (this.#tracker !== null && a.user !== '' && (promptTokens > 0 || completionTokens > 0)) {
      this.#tracker.record(a.user, a.model, promptTokens, completionTokens, now);
    }
    if (this.#sessions !== null && scheduled) this.#sessions.completed(a.session, now);
    if (st === undefined) return;
    st.inflight--;
    if (this.#s.mode === 'session-boost' && this.#s.sessionBoost.gracePeriodMs > 0) {
      st.holdUntil = now + this.#s.sessionBoost.gracePeriodMs;
    }
    this.#pump(st);
  }

  /** Admits as many requests of the model as its gate allows, then arms a timer for the next chance. */
  #pump(st: ModelState): void {
    if (this.#closed) return;
    for (;;) {
      if (st.queue.size === 0) { this.#clearTimer(st); return; }
      const now = this.#now();
      const wait = this.#gate(st, now);
      if (wait > 0) { this.#arm(st, now + wait); return; }
      if (wait < 0) { this.#clearTimer(st); return; }
      const head = st.queue.peek(now);
      if (head === null) return;
      st.queue.shift();
      this.#forgetWaiting(head.key);
      st.inflight++;
      st.dequeued++;
      st.waits.observe((now - head.enqueuedAt) / 1000);
      if (this.#s.mode === 'fairness' && this.#s.fairness.maxConcurrent === 0) {
        st.nextSlot = Math.max(now, st.nextSlot) + 1000 / this.#s.fairness.maxQps;
      }
      this.#admitted.set(head.key, { model: head.model, user: head.user, session: head.session });
      this.#send(head.key, [kAdmAdmit, Math.floor(head.key / kWorkerBits)]);
    }
  }

  /** 0: the head may go now; >0: ms until it may; <0: not until an event (release, metrics). */
  #gate(st: ModelState, now: number): number {
    if (this.#s.mode === 'fairness') {
      const f = this.#s.fairness;
      if (f.maxConcurrent > 0) return st.inflight < f.maxConcurrent ? 0 : -1;
      return st.nextSlot <= now ? 0 : st.nextSlot - now;
    }
    const b = this.#s.sessionBoost;
    if (st.holdUntil > now) return st.holdUntil - now;
    const head = st.queue.peek(now)!;
    const view = this.#backend(head.model);
    // The limit is the cluster's: the other replicas' requests on these pods count as this one's.
    if (st.inflight + view.remote >= b.inflightPerPod * Math.max(1, view.pods)) return -1;
    if (view.pods > 0 && !view.anyIdle) return -1;
    return 0;
  }

  #arm(st: ModelState, at: number): void {
    if (st.timer !== null && st.timerAt <= at) return;
    this.#clearTimer(st);
    st.timerAt = at;
    st.timer = setTimeout(() => { st.timer = null; this.#pump(st); }, Math.max(0, at - this.#now()));
    st.timer.unref();
  }

  #clearTimer(st: ModelState): void {
    if (st.timer !== null) { clearTimeout(st.timer); st.timer = null; }
  }

  #send(key: number, m: FromAdmission): void {
    this.#ports.get(key % kWorkerBits)?.postMessage(m);
  }

  /** Kthena's queue families in prom-client's JSON shape, merged into /metrics with the workers' answers. */
  metricsJSON(): MetricJSON[] {
    const fair = this.#s.mode === 'fairness';
    const p = fair ? 'kthena_router_fairness_queue_' : 'kthena_router_session_boost_queue_';
    const labels = (model: string): Record<string, string> => (fair ? { model, user_id: '_all' } : { model });
    const size: MetricValueJSON[] = [];
    const inflight: MetricValueJSON[] = [];
    const dequeued: MetricValueJSON[] = [];
    const cancelled: MetricValueJSON[] = [];
    const refresh: MetricValueJSON[] = [];
    const rebuild: MetricValueJSON[] = [];
    const dur: MetricValueJSON[] = [];
    for (const [model, st] of this.#models) {
      size.push({ value: st.queue.size, labels: labels(model) });
      inflight.push({ value: st.inflight, labels: { model } });
      dequeued.push({ value: st.dequeued, labels: labels(model) });
      cancelled.push({ value: st.cancelled, labels: labels(model) });
      if (st.queue instanceof FairnessQueue) {
        refresh.push({ value: st.queue.refreshes, labels: { model } });
        rebuild.push({ value: 0, labels: { model } });
      }
      let acc = 0;
      for (let i = 0; i < kQueueBounds.length; i++) {
        acc += st.waits.buckets[i]!;
        dur.push({ value: acc, labels: { le: kQueueBounds[i]!, ...labels(model) }, metricName: p + 'duration_seconds_bucket' });
      }
      dur.push({ value: st.waits.count, labels: { le: '+Inf', ...labels(model) }, metricName: p + 'duration_seconds_bucket' });
      dur.push({ value: st.waits.sum, labels: labels(model), metricName: p + 'duration_seconds_sum' });
      dur.push({ value: st.waits.count, labels: labels(model), metricName: p + 'duration_seconds_count' });
    }
    const fam = (name: string, help: string, type: MetricJSON['type'], values: MetricValueJSON[]): MetricJSON => ({ name: p + name, help, type, values, aggregator: 'sum' });
    const out = [
      fam('size', 'Current number of requests waiting in the queue', 'gauge', size),
      fam('duration_seconds', 'Time requests spent waiting in the queue', 'histogram', dur),
      fam('cancelled_total', 'Requests that left the queue without being admitted (timeout or client disconnect)', 'counter', cancelled),
      fam('dequeue_total', 'Requests admitted from the queue', 'counter', dequeued),
      fam('inflight', 'Admitted requests of the model still being served', 'gauge', inflight),
    ];
    if (fair) {
      out.push(fam('priority_refresh_total', 'Dequeues whose head priority was recomputed (FAIRNESS_PRIORITY_REFRESH_RETRIES > 0)', 'counter', refresh));
      out.push(fam('heap_rebuild_total', 'Heap rebuilds (always 0: per-user queues never need one)', 'counter', rebuild));
    }
    return out;
  }
}
