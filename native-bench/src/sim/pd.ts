/**
 * Prefill/decode disaggregation as the simulated engines speak it (reference §4.3):
 *
 * - vLLM NixlConnector / MooncakeConnector (pods with role 'prefill' or 'decode'; both accept
 *   either leg, as vLLM's `kv_both` does): a request carrying
 *   `kv_transfer_params: {do_remote_decode: true}` is prefilled and answered normally (the router
 *   sets max_tokens 1) with `kv_transfer_params: {do_remote_prefill: true, do_remote_decode: false,
 *   remote_block_ids, remote_engine_id, remote_request_id, remote_host, remote_port, tp_size}` at the
 *   top level of the body; a request carrying those (`do_remote_prefill: true`) skips its prefill
 *   and pays a KV transfer instead. A pod with role 'both' has no KV connector and ignores the
 *   field, like vLLM without `--kv-transfer-config`.
 * - SGLang (`--disaggregation-mode prefill|decode`): the prefill and decode legs carry the same
 *   `bootstrap_room` (the decode also `bootstrap_host`, the prefill pod's address); they are sent
 *   together, the decode waits until the prefill of that room on that host has finished (bounded by
 *   `bootstrapTimeoutMs`, then it fails), then receives the KV and decodes. Both legs must carry a
 *   room on a disaggregated SGLang pod (400 otherwise; the simulator's strictness, so a router that
 *   forgets the field is caught).
 *
 * Every simulated pod of the process shares one rendezvous table and one clock epoch, so a decode
 * pod can meet a prefill pod of another fleet started in the same process.
 */

import { randomUUID } from 'node:crypto';

import type { SimEngine, SimRole } from './types.js';

/** Wall-clock origin of every pod's virtual clock (performance.now() ms). */
export const SIM_EPOCH = performance.now();
/** Identifies this simulator process in kv_transfer_params (see `sim_received_at_ms`). */
export const SIM_PROCESS_ID = randomUUID();
/** vLLM's VLLM_NIXL_SIDE_CHANNEL_PORT default, reported as remote_port. */
export const NIXL_SIDE_CHANNEL_PORT = 5600;
/** SGLang's default --disaggregation-bootstrap-port. */
export const SGLANG_BOOTSTRAP_PORT = 8998;

export type PdLeg =
  | { kind: 'none' }
  | { kind: 'nixl-prefill' }
  | { kind: 'nixl-decode'; params: Record<string, unknown> }
  | { kind: 'bootstrap-prefill'; room: string }
  | { kind: 'bootstrap-decode'; room: string; host: string };

const NONE: PdLeg = Object.freeze({ kind: 'none' });

export class PdBadRequest extends Error {
  readonly status = 400;
}

function roomOf(v: unknown): string | null {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && /^\d+$/.test(v)) return v;
  return null;
}

/** Which PD leg a completion body is, for a pod of this engine and role. Throws PdBadRequest. */
export function classifyPd(engine: SimEngine, role: SimRole, body: Record<string, unknown>): PdLeg {
  if (role === 'both') return NONE;
  if (engine === 'vLLM') {
    const p = body.kv_transfer_params;
    if (p === null || typeof p !== 'object' || Array.isArray(p)) return NONE;
    const params = p as Record<string, unknown>;
    if (params.do_remote_decode === true) return { kind: 'nixl-prefill' };
    if (params.do_remote_prefill === true) return { kind: 'nixl-decode', params };
    return NONE;
  }
  const room = roomOf(body.bootstrap_room);
  if (room === null) {
    throw new PdBadRequest(`bootstrap_room (a non-negative integer) is required by a disaggregated SGLang ${role} server.`);
  }
  if (role === 'prefill') return { kind: 'bootstrap-prefill', room };
  const host = body.bootstrap_host;
  if (typeof host !== 'string' || host === '') {
    throw new PdBadRequest('bootstrap_host is required by a disaggregated SGLang decode server.');
  }
  return { kind: 'bootstrap-decode', room, host };
}

/** What the prefill pod answers, for the decode leg to carry. */
export function nixlTransferParams(opts: {
  engineId: string;
  host: string;
  requestId: string;
  blockIds: readonly number[];
  /** Wall ms since SIM_EPOCH at which the prefill pod received the request. */
  receivedAtMs: number;
}): Record<string, unknown> {
  return {
    do_remote_prefill: true,
    do_remote_decode: false,
    remote_block_ids: opts.blockIds,
    remote_engine_id: opts.engineId,
    remote_request_id: opts.requestId,
    remote_host: opts.host,
    remote_port: NIXL_SIDE_CHANNEL_PORT,
    tp_size: 1,
    // Simulator-only: lets the decode pod report simulated times from the start of the PD request.
    sim_process: SIM_PROCESS_ID,
    sim_received_at_ms: opts.receivedAtMs,
  };
}

/**
 * Wall ms since SIM_EPOCH at which the prefill leg of this decode leg was received, when it was
 * served by this process; null otherwise.
 */
export function prefillReceivedAt(params: Record<string, unknown>): number | null {
  const t = params.sim_received_at_ms;
  if (params.sim_process !== SIM_PROCESS_ID || typeof t !== 'number' || !Number.isFinite(t)) return null;
  return t;
}

export interface RoomDone {
  /** Wall ms since SIM_EPOCH at which the prefill finished. */
  doneAtMs: number;
  /** Wall ms since SIM_EPOCH at which the prefill pod received its leg. */
  receivedAtMs: number;
  promptTokens: number;
  pod: string;
}

/** Finished prefills are kept this long (wall ms) for a decode leg that arrives late. */
const ROOM_RETENTION_MS = 120_000;

/** The SGLang bootstrap rendezvous: prefill legs publish their room, decode legs wait for it. */
class BootstrapTable {
  readonly #done = new Map<string, RoomDone>();
  readonly #waiters = new Map<string, Set<(d: RoomDone) => void>>();

  /** Records that the prefill of `room` on `host` finished; wakes its decode leg. */
  publish(host: string, room: string, done: RoomDone): void {
    const key = `${host}#${room}`;
    const nowMs = performance.now() - SIM_EPOCH;
    for (const [k, d] of this.#done) {
      if (nowMs - d.doneAtMs > ROOM_RETENTION_MS) this.#done.delete(k);
      else break;
    }
    const waiters = this.#waiters.get(key);
    if (waiters && waiters.size > 0) {
      this.#waiters.delete(key);
      for (const w of waiters) w(done);
      return;
    }
    this.#done.delete(key);
    this.#done.set(key, done);
  }

  /** Calls `cb` once the prefill of `room` on `host` has finished (now, if it already has). Returns a cancel function. */
  wait(host: string, room: string, cb: (d: RoomDone) => void): () => void {
    const key = `${host}#${room}`;
    const done = this.#done.get(key);
    if (done) {
      this.#done.delete(key);
      cb(done);
      return () => undefined;
    }
    let set = this.#waiters.get(key);
    if (!set) {
      set = new Set();
      this.#waiters.set(key, set);
    }
    set.add(cb);
    return () => {
      const s = this.#waiters.get(key);
      if (!s) return;
      s.delete(cb);
      if (s.size === 0) this.#waiters.delete(key);
    };
  }
}

export const bootstrapTable = new BootstrapTable();
