/**
 * What every upstream leg that answers the client shares (a pod's `Attempt`, an external
 * provider's `ProviderCall`): its life as the request's live try (fail, client gone, cancel, the
 * controller the upstream client hands over) and its two clocks, the wait for response headers and
 * then the idle bound between response bytes (Envoy's stream idle timeout). One timer at a time,
 * owned here; the subclass says what failing, releasing and a timeout mean for its leg.
 *
 * The idle bound is checked every idleMs / 2 against a chunk counter, so a chunk costs an increment
 * rather than a timer refresh; a gap is caught between 1 and 1.5 idle periods after the last byte.
 * A leg paused on the client's backpressure is not idle. A base class rather than a member object:
 * a try is made per request, and this adds no second allocation to it.
 */
import { performance } from 'node:perf_hooks';
import { Catalog, errorBody, formatMessage, RouterError } from '../../src/errors.js';
import { clientAborted, finish, internalError, upstreamDone } from './finish.js';
import type { ResponseWriter } from './response.js';
import type { LiveTry, RequestState } from './state.js';
import type { UpstreamController } from './upstream.js';

export abstract class UpstreamLeg implements LiveTry {
  readonly st: RequestState;
  /** Handed over by the upstream client when the leg starts (onRequestStart). */
  protected controller: UpstreamController | null = null;
  /** The leg ended (answered, failed, cancelled or abandoned). */
  protected done = false;
  /** The response writer of this leg, once headers arrived (its `paused` stops the idle clock). */
  writer: ResponseWriter | null = null;
  /** Response headers arrived: the header wait is over. */
  protected headersReceived = false;
  /** Longest gap between response bytes (0 = unbounded). */
  protected idleMs = 0;
  /** Response body chunks seen so far (the idle check compares it between two ticks). */
  protected chunks = 0;
  #timer: NodeJS.Timeout | null = null;
  #chunksAtCheck = -1;
  #quietSince = 0;

  constructor(st: RequestState) {
    this.st = st;
  }

  /** Gives back what the leg holds (its timer; an attempt also its endpoint slot). */
  abstract release(): void;
  /** The leg failed (no controller to abort yet, or the controller reported it). */
  protected abstract failed(err: Error): void;
  /** No response headers within `ms`. */
  protected abstract headersTimedOut(ms: number): void;
  /** No response byte for `ms` after the headers. */
  protected abstract idleTimedOut(ms: number): void;

  /** This leg still answers its request (a timer or callback for a finished leg does nothing). */
  protected live(): boolean {
    return !this.done && this.st.current === this && !this.st.finished;
  }

  // ---- LiveTry --------------------------------------------------------------------------------

  fail(err: Error): void {
    if (!this.live()) return;
    if (this.controller !== null) this.controller.abort(err);
    else this.failed(err);
  }

  clientGone(): void {
    if (this.done) return;
    if (this.controller !== null) { this.controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED')); return; }
    // Still queued in the upstream client: abandoned when it starts the leg (onRequestStart).
    this.done = true;
    this.release();
    if (this.st.current === this) this.st.current = null;
    upstreamDone(this.st);
    clientAborted(this.st);
  }

  cancel(err: Error): void {
    const wasDone = this.done;
    this.done = true;
    this.release();
    if (this.st.current === this) this.st.current = null;
    if (!wasDone) this.controller?.abort(err);
  }

  endWithError(errorJson: string): boolean {
    return this.writer !== null && this.writer.endWithError(errorJson);
  }

  /** The upstream client started the leg (undici's callback order): keep its controller. */
  onRequestStart(controller: UpstreamController): void {
    if (!this.live()) { controller.abort(new Error('upstream leg abandoned')); return; }
    this.controller = controller;
    if (this.st.aborted) controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED'));
  }

  onResponseError(_controller: UpstreamController | null, err: Error): void {
    if (!this.live()) return;
    try {
      this.failed(err);
    } catch (e) {
      internalError(this.st, e);
    }
  }

  /**
   * The response ended upstream: the leg gives back what it holds before the client's response
   * ends (see ResponseWriter.data), then the request finishes. Called inside the subclass's
   * boundary.
   */
  protected ended(): void {
    const st = this.st;
    this.release();
    upstreamDone(st);
    if (st.aborted) { clientAborted(st); return; }
    this.writer?.end();
    finish(st);
  }

  /**
   * The leg failed after bytes reached the client, so no other leg can answer: the record names
   * the mid-stream failure, a streamed (SSE) response ends with an error event, anything else is
   * closed so the client sees a truncated response rather than a short valid one. Logged by the
   * caller, which knows what it talked to.
   */
  protected failedMidstream(err: Error): void {
    const st = this.st;
    const rec = st.rec;
    rec.errorType = 'proxy';
    rec.errorCode = 'RTR_ERR_UPSTREAM_MIDSTREAM';
    rec.errorMessage = formatMessage(Catalog.RTR_ERR_UPSTREAM_MIDSTREAM, err.message);
    rec.errorOrigin = 'upstream';
    if (this.writer === null || !this.writer.endWithError(errorBody('RTR_ERR_UPSTREAM_MIDSTREAM', rec.errorMessage))) {
      st.aborted = true;
      st.res.close();
    }
    finish(st);
  }

  // ---- the clocks -----------------------------------------------------------------------------

  /** The leg was sent: headers must arrive within `headersMs` (0: unbounded); `idleMs` applies after. */
  protected startClock(headersMs: number, idleMs: number): void {
    this.idleMs = idleMs;
    if (headersMs > 0) this.#timer = setTimeout(this.#onHeadersTimer, headersMs, headersMs);
  }

  /**
   * Response headers arrived: the header wait ends, the idle watch starts and the request record
   * notes them. False when the leg was abandoned (a retry or the end of the request replaced it) or
   * the client went away meanwhile; the leg is then aborted.
   */
  protected headersArrived(controller: UpstreamController, statusCode: number): boolean {
    if (!this.live()) { controller.abort(new Error('upstream leg abandoned')); return false; }
    this.headersReceived = true;
    this.stopClock();
    if (this.idleMs > 0) {
      this.#chunksAtCheck = 0;
      this.#quietSince = performance.now();
      this.#timer = setTimeout(this.#checkIdle, this.idleMs / 2);
    }
    const st = this.st;
    st.rec.tHeaders = performance.now();
    st.rec.upstreamStatusCode = statusCode;
    if (st.aborted) { controller.abort(new RouterError('RTR_ERR_CLIENT_ABORTED')); return false; }
    return true;
  }

  protected stopClock(): void {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
  }

  readonly #onHeadersTimer = (ms: number): void => {
    this.#timer = null;
    if (this.headersReceived || !this.live()) return;
    this.headersTimedOut(ms);
  };

  readonly #checkIdle = (): void => {
    this.#timer = null;
    if (!this.live()) return;
    const quiet = this.chunks === this.#chunksAtCheck && !(this.writer?.paused ?? false);
    if (quiet && this.#quietSince > 0 && performance.now() - this.#quietSince >= this.idleMs) {
      this.idleTimedOut(this.idleMs);
      return;
    }
    if (!quiet) { this.#chunksAtCheck = this.chunks; this.#quietSince = performance.now(); }
    this.#timer = setTimeout(this.#checkIdle, this.idleMs / 2);
  };
}
