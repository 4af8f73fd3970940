/**
 * The messages between the control thread (src/control.ts) and each worker thread
 * (workers/worker.ts), over the worker's MessagePort. Everything here is structured-cloned, so an
 * error crosses as `{ code, message }` (match on `code`), never as a RouterError instance.
 */
import type { MessagePort } from 'node:worker_threads';
import type { RouterConfig } from '../config.js';
import type { SharedRegions } from './layout.js';
import type { ThreadMemory } from './memory.js';

export interface WorkerInit {
  index: number;
  cfg: Readonly<RouterConfig>;
  regions: SharedRegions;
  /** The worker's port to the control thread's admission queue (fairness / session boost), when enabled. */
  admission?: MessagePort;
}

export type ToWorker =
  | { type: 'collect'; id: number }
  | { type: 'drain'; deadlineMs: number }
  | { type: 'snapshot-buffer'; sab: SharedArrayBuffer; id: number }
  | { type: 'metrics-text'; id: number; text: string | null }
  /** The Gateway listener ports to serve besides the router port (the whole set, each time). */
  | { type: 'listeners'; id: number; ports: ListenPort[] }
  /** The router's own certificate files changed (and load): serve new connections with them. */
  | { type: 'reload-tls'; id: number }
  | { type: 'crash' }
  /** Fault injection: this thread's memory, after a full GC when `gc`. */
  | { type: 'memory'; id: number; gc: boolean };

export interface ListenPort {
  port: number;
  /** HTTPS: certificate and key files (PEM); null = plain HTTP. */
  tls: { cert: string; key: string } | null;
}

export type FromWorker =
  | { type: 'listening'; ok: boolean; error?: string }
  | { type: 'fatal'; code: string; message: string }
  | { type: 'metrics'; id: number; data: unknown[] }
  | { type: 'access'; lines: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; obj: object; msg: string }
  | { type: 'ack'; id: number }
  /** Result of a 'listeners' message: the ports this worker could not bind. */
  | { type: 'listeners-result'; id: number; failed: { port: number; error: string }[] }
  | { type: 'render-metrics'; id: number }
  | { type: 'memory'; id: number; usage: ThreadMemory };
