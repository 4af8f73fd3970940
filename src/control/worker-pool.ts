/**
 * The worker threads as the control thread sees them: spawning, restarting a thread that died,
 * and every exchange over their MessagePorts (src/shared/messages.ts): metric collection, acks,
 * listener ports, snapshot buffer growth, TLS reloads, drain. The control plane decides what to
 * tell the workers; this module delivers it to every live worker and to every later one.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { RouterConfig } from '../config.js';
import { RouterError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MetricsHub } from '../admin/metrics.js';
import { clearGateRow, type SharedRegions } from '../shared/layout.js';
import type { MetricJSON } from '../shared/metric-json.js';
import type { FromWorker, ListenPort, ToWorker, WorkerInit } from '../shared/messages.js';
import type { ThreadMemory } from '../shared/memory.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const workerFile = path.join(here, '..', '..', 'workers', 'worker.js');

interface WorkerSlot {
  index: number;
  worker: Worker | null;
  /** threadId of the current worker: the metrics hub's id, never reused. */
  id: number;
  listening: boolean;
  restarts: number;
  /** The metrics a worker posted on its way out (graceful drain or a caught crash). */
  finalMetrics: MetricJSON[] | null;
}

export interface WorkerPoolEvents {
  /** A worker could not listen on the router port, or could not start at all (`fatal`). */
  onStartFailure(address: string, fatal: { code: string; message: string } | null): void;
  /** Access-log lines a worker flushed. */
  onAccess(lines: string): void;
  /** A worker's bind result for the Gateway listener ports. */
  onListenersResult(failed: { port: number; error: string }[]): void;
  /** A worker exited and will not be restarted (drain, failed start); called after each such exit. */
  onRetired(): void;
}

export interface WorkerPoolOptions {
  cfg: Readonly<RouterConfig>;
  /** The shared regions as they are now (the snapshot buffer is replaced when it grows). */
  regions: () => SharedRegions;
  hub: MetricsHub;
  log: Logger;
  events: WorkerPoolEvents;
  /** The router-wide admission queue (fairness / session boost), when enabled: one port per worker. */
  admission: () => { attach(index: number, port: MessagePort): void; detach(index: number): void; metricsJSON(): MetricJSON[] } | null;
}

export class WorkerPool {
  readonly #o: WorkerPoolOptions;
  readonly #workers: WorkerSlot[] = [];
  #messageId = 1;
  readonly #pendingCollect = new Map<number, Map<number, (data: MetricJSON[]) => void>>();
  readonly #pendingAcks = new Map<number, { remaining: Set<number>; resolve: () => void }>();
  readonly #pendingMemory = new Map<number, (usage: ThreadMemory) => void>();
  /** Gateway listener ports every worker serves besides --port, as last set. */
  #listenPorts: ListenPort[] = [];
  /** Set on drain or a failed start: a worker that exits is not replaced. */
  #retiring = false;

  constructor(o: WorkerPoolOptions) {
    this.#o = o;
  }

  /** Starts `n` workers; resolves once each is listening or has failed (see onStartFailure). */
  async start(n: number): Promise<void> {
    await Promise.all(Array.from({ length: n }, (_, i) => this.#spawn(i)));
    this.#o.hub.setRunningWorkers(this.running);
  }

  get running(): number {
    return this.#workers.filter((w) => w.worker !== null).length;
  }

  /** No worker is restarted from now on. */
  retire(): void {
    this.#retiring = true;
  }

  /** One promise per live worker; the hub shows a worker that does not answer in time with its last answer. */
  collect(): Map<number, Promise<MetricJSON[]>> {
    const id = this.#messageId++;
    const waiting = new Map<number, (data: MetricJSON[]) => void>();
    const answers = new Map<number, Promise<MetricJSON[]>>();
    // The admission queue's families, as if from one more worker that never retires (id -1).
    const admission = this.#o.admission();
    if (admission !== null) answers.set(-1, Promise.resolve(admission.metricsJSON()));
    for (const w of this.#workers) {
      if (w.worker === null) continue;
      answers.set(w.id, new Promise<MetricJSON[]>((resolve) => waiting.set(w.index, resolve)));
      w.worker.postMessage({ type: 'collect', id } satisfies ToWorker);
    }
    this.#pendingCollect.set(id, waiting);
    setTimeout(() => this.#pendingCollect.delete(id), 5000).unref();
    return answers;
  }

  /** The Gateway listener ports (the whole set), to every listening worker now and to later ones. */
  setListenPorts(ports: ListenPort[]): void {
    this.#listenPorts = ports;
    for (const w of this.#workers) if (w.worker !== null && w.listening) this.#sendListeners(w);
  }

  /** Every live worker holds `sab` once this resolves (a generation may then point into it). */
  async replaceSnapshotBuffer(sab: SharedArrayBuffer): Promise<void> {
    const live = this.#workers.filter((w) => w.worker !== null);
    if (live.length === 0) return;
    const id = this.#messageId++;
    await new Promise<void>((resolve) => {
      this.#pendingAcks.set(id, { remaining: new Set(live.map((w) => w.index)), resolve });
      for (const w of live) w.worker!.postMessage({ type: 'snapshot-buffer', sab, id } satisfies ToWorker);
    });
  }

  /** Has the workers re-listen with the router's new certificate, one at a time (the others keep serving). */
  async reloadTls(): Promise<void> {
    for (const w of this.#workers) {
      if (w.worker === null || this.#retiring) continue;
      const id = this.#messageId++;
      const worker = w.worker;
      await new Promise<void>((resolve) => {
        this.#pendingAcks.set(id, { remaining: new Set([w.index]), resolve });
        worker.postMessage({ type: 'reload-tls', id } satisfies ToWorker);
      });
    }
  }

  /** Fault injection: worker `index` throws on its event loop. */
  crash(index: number): boolean {
    const w = this.#workers[index]?.worker;
    if (!w) return false;
    w.postMessage({ type: 'crash' } satisfies ToWorker);
    return true;
  }

  /** Fault injection: every live worker's memory (after a full GC when `gc`); one that does not answer within 5 s is left out. */
  async memory(gc: boolean): Promise<ThreadMemory[]> {
    const asked = this.#workers.filter((w) => w.worker !== null).map((w) => {
      const id = this.#messageId++;
      return new Promise<ThreadMemory | null>((resolve) => {
        const t = setTimeout(() => { this.#pendingMemory.delete(id); resolve(null); }, 5000);
        t.unref();
        this.#pendingMemory.set(id, (usage) => { clearTimeout(t); resolve(usage); });
        w.worker!.postMessage({ type: 'memory', id, gc } satisfies ToWorker);
      });
    });
    return (await Promise.all(asked)).filter((u): u is ThreadMemory => u !== null);
  }

  /** Every worker stops accepting and finishes its requests up to the deadline (epoch ms). */
  drain(deadlineMs: number): void {
    this.#retiring = true;
    for (const w of this.#workers) w.worker?.postMessage({ type: 'drain', deadlineMs } satisfies ToWorker);
  }

  #sendListeners(w: WorkerSlot): void {
    w.worker!.postMessage({ type: 'listeners', id: this.#messageId++, ports: this.#listenPorts } satisfies ToWorker);
  }

  #onCollected(id: number, index: number, data: MetricJSON[]): void {
    const waiting = this.#pendingCollect.get(id);
    const resolve = waiting?.get(index);
    if (resolve === undefined) return;
    waiting!.delete(index);
    if (waiting!.size === 0) this.#pendingCollect.delete(id);
    resolve(data);
  }

  #spawn(index: number): Promise<void> {
    const { cfg, hub, log, events } = this.#o;
    const init: WorkerInit = { index, cfg, regions: this.#o.regions() };
    const admission = this.#o.admission();
    let transfer: MessagePort[] | undefined;
    if (admission !== null) {
      // One port per worker incarnation; a restarted worker gets a fresh one (detach() closed the old).
      const ch = new MessageChannel();
      admission.attach(index, ch.port1);
      init.admission = ch.port2;
      transfer = [ch.port2];
    }
    const worker = new Worker(workerFile, { workerData: init, transferList: transfer, name: `kthena-router-worker-${index}` });
    const slot: WorkerSlot = this.#workers[index] ?? { index, worker: null, id: 0, listening: false, restarts: 0, finalMetrics: null };
    slot.worker = worker;
    slot.id = worker.threadId;
    slot.listening = false;
    slot.finalMetrics = null;
    this.#workers[index] = slot;
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => { if (!settled) { settled = true; resolve(); } };
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'listening':
            if (m.ok) {
              slot.listening = true;
              if (this.#listenPorts.length > 0) this.#sendListeners(slot);
            } else {
              this.#retiring = true;
              events.onStartFailure(m.error ?? `${cfg.host}:${cfg.port}`, null);
              log.error({ worker: index, address: m.error }, new RouterError('RTR_ERR_LISTEN', m.error).message);
            }
            settle();
            break;
          case 'fatal':
            this.#retiring = true;
            events.onStartFailure(m.message, { code: m.code, message: m.message });
            log.fatal({ worker: index, code: m.code }, m.message);
            settle();
            break;
          case 'access':
            events.onAccess(m.lines);
            break;
          case 'log':
            log[m.level](m.obj, m.msg);
            break;
          case 'metrics':
            if (m.id === 0) slot.finalMetrics = m.data as MetricJSON[];
            else this.#onCollected(m.id, index, m.data as MetricJSON[]);
            break;
          case 'ack': {
            const p = this.#pendingAcks.get(m.id);
            if (p) { p.remaining.delete(index); if (p.remaining.size === 0) { this.#pendingAcks.delete(m.id); p.resolve(); } }
            break;
          }
          case 'memory': {
            const resolve = this.#pendingMemory.get(m.id);
            this.#pendingMemory.delete(m.id);
            resolve?.(m.usage);
            break;
          }
          case 'listeners-result':
            events.onListenersResult(m.failed);
            break;
          case 'render-metrics':
            hub.render().then(
              (r) => worker.postMessage({ type: 'metrics-text', id: m.id, text: r.body } satisfies ToWorker),
              () => worker.postMessage({ type: 'metrics-text', id: m.id, text: null } satisfies ToWorker),
            );
            break;
        }
      });
      worker.on('error', (err) => {
        log.error({ worker: index, err: err.stack }, 'worker error');
      });
      worker.on('exit', (code) => {
        settle();
        this.#o.admission()?.detach(index);
        // Its waiting InferencePool requests are gone: they must not hold the others' order.
        clearGateRow(new Int32Array(this.#o.regions().gateSab), index);
        slot.worker = null;
        if (slot.finalMetrics !== null) hub.retire(slot.finalMetrics, slot.id);
        else hub.retireWorker(slot.id);
        slot.finalMetrics = null;
        hub.setRunningWorkers(this.running);
        for (const [id, p] of this.#pendingAcks) { if (p.remaining.delete(index) && p.remaining.size === 0) { this.#pendingAcks.delete(id); p.resolve(); } }
        if (this.#retiring || !slot.listening) {
          events.onRetired();
          return;
        }
        slot.restarts++;
        hub.workerRestarted();
        const delay = Math.min(5000, 100 * 2 ** Math.min(slot.restarts - 1, 6));
        log.error({ worker: index, exitCode: code, restartInMs: delay }, 'worker exited unexpectedly; restarting it');
        setTimeout(() => {
          if (this.#retiring) return;
          void this.#spawn(index).then(() => {
            hub.setRunningWorkers(this.running);
            log.info({ worker: index }, 'worker restarted');
          });
        }, delay);
      });
    });
  }
}
