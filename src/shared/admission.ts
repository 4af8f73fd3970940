/**
 * The admission protocol between worker threads and the control thread's AdmissionService (Kthena's
 * fairness scheduling and session boost, one queue per router). Each worker has its own
 * MessagePort; messages are small arrays (structured clone of arrays of primitives is the cheapest
 * postMessage payload).
 *
 * A waiting request stays on its worker (its uWS response cannot move); only its place in the
 * queue lives on the control thread. Order of events for one request id:
 *   worker: ENQUEUE -> (control: ADMIT | REJECT) -> worker: RELEASE (after ADMIT, exactly once)
 *   worker: CANCEL at any time before ADMIT arrives (client gone); a CANCEL that crosses an ADMIT
 *   is answered by the worker with RELEASE, so in-flight counts never leak.
 */

import type { FairnessConfig } from '../config.js';

export const kAdmEnqueue = 0;
export const kAdmCancel = 1;
export const kAdmRelease = 2;

export const kAdmAdmit = 0;
export const kAdmReject = 1;

/** Why a request left the queue without being admitted. */
export const kRejectTimeout = 0;
export const kRejectClosed = 1;

export type ToAdmission =
  /** [kAdmEnqueue, id, model, user, session] */
  | [typeof kAdmEnqueue, number, string, string, string]
  /** [kAdmCancel, id] */
  | [typeof kAdmCancel, number]
  /** [kAdmRelease, id, promptTokens, completionTokens, scheduled (1: load balancing chose a pod)] */
  | [typeof kAdmRelease, number, number, number, number];

export type FromAdmission =
  | [typeof kAdmAdmit, number]
  | [typeof kAdmReject, number, typeof kRejectTimeout | typeof kRejectClosed];

/** The validated FAIRNESS_* settings (src/config.ts) without the switch itself. */
export type FairnessSettings = Omit<FairnessConfig, 'enabled'>;

export interface SessionBoostSettings {
  /** Lower-case header name carrying the session id. */
  header: string;
  maxSessions: number;
  inflightPerPod: number;
  gracePeriodMs: number;
  /** <= 0: requests wait without bound. */
  timeoutMs: number;
}

export type AdmissionSettings =
  | { mode: 'fairness'; fairness: FairnessSettings }
  | { mode: 'session-boost'; sessionBoost: SessionBoostSettings };
