/**
 * The worker side of the router-wide admission queue (fairness scheduling or session boost; the
 * queue itself lives on the control thread, src/admission/service.ts). A request asks for a place
 * and is called back once: admitted, or refused (timeout, queue closed). Nothing here blocks: the
 * request simply does not continue until its callback runs.
 */
import type { MessagePort } from 'node:worker_threads';
import {
  kAdmAdmit, kAdmCancel, kAdmEnqueue, kAdmRelease, kRejectTimeout,
  type FromAdmission, type ToAdmission,
} from '../src/shared/admission.js';

/** The outcome handed to a waiting request. */
export const enum AdmitResult { Admitted, TimedOut, Closed }

export interface AdmissionTicket {
  /** The client went away while waiting (or the request ended otherwise): give the place up. */
  cancel(): void;
  /**
   * The admitted request finished: free its place and report its usage (fairness) and whether load
   * balancing chose a pod (session boost marks the session completed only then). Idempotent.
   */
  release(promptTokens: number, completionTokens: number, scheduled: boolean): void;
}

const enum TicketState { Waiting, Admitted, Done }

class Ticket implements AdmissionTicket {
  state = TicketState.Waiting;
  constructor(readonly client: AdmissionClient, readonly id: number, readonly cb: (r: AdmitResult) => void) {}

  cancel(): void {
    if (this.state === TicketState.Waiting) {
      this.state = TicketState.Done;
      this.client.forget(this.id);
      this.client.post([kAdmCancel, this.id]);
    } else if (this.state === TicketState.Admitted) {
      this.release(0, 0, false);
    }
  }

  release(promptTokens: number, completionTokens: number, scheduled: boolean): void {
    if (this.state !== TicketState.Admitted) return;
    this.state = TicketState.Done;
    this.client.post([kAdmRelease, this.id, promptTokens, completionTokens, scheduled ? 1 : 0]);
  }
}

export class AdmissionClient {
  readonly #port: MessagePort;
  readonly #waiting = new Map<number, Ticket>();
  /** Lower-case header that carries the session id (session boost), '' for fairness. */
  readonly sessionHeader: string;
  #next = 1;

  constructor(port: MessagePort, sessionHeader: string) {
    this.#port = port;
    this.sessionHeader = sessionHeader;
    port.on('message', (m: FromAdmission) => this.#onMessage(m));
    // Waiting requests keep the thread alive through their sockets, not through this port.
    port.unref();
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  enqueue(model: string, user: string, session: string, cb: (r: AdmitResult) => void): AdmissionTicket {
    const id = this.#next++;
    const t = new Ticket(this, id, cb);
    this.#waiting.set(id, t);
    this.post([kAdmEnqueue, id, model, user, session]);
    return t;
  }

  post(m: ToAdmission): void {
    this.#port.postMessage(m);
  }

  forget(id: number): void {
    this.#waiting.delete(id);
  }

  close(): void {
    this.#port.close();
  }

  #onMessage(m: FromAdmission): void {
    const t = this.#waiting.get(m[1]);
    if (t === undefined) {
      // A cancel crossed this admission: hand the place straight back.
      if (m[0] === kAdmAdmit) this.post([kAdmRelease, m[1], 0, 0, 0]);
      return;
    }
    this.#waiting.delete(m[1]);
    if (m[0] === kAdmAdmit) {
      t.state = TicketState.Admitted;
      t.cb(AdmitResult.Admitted);
    } else {
      t.state = TicketState.Done;
      t.cb(m[2] === kRejectTimeout ? AdmitResult.TimedOut : AdmitResult.Closed);
    }
  }
}
