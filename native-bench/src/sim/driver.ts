/**
 * Paces an EngineModel (native-bench/src/sim/model.ts) against the wall clock. The model computes each step in
 * virtual time; the driver runs a step once the virtual clock has reached its start and hands its
 * outcome to the pod when the virtual clock reaches its end. Wall timers only decide when tokens
 * are delivered, never what the simulated times are: a late timer delays delivery, and if the
 * process falls behind, steps whose end is already past are computed and delivered back to back.
 */

import type { EngineModel, Seq, SeqInput, StepOutcome } from './model.js';
import { SIM_EPOCH } from './pd.js';

/** Virtual time of one pod: (wall ms since SIM_EPOCH) x timeScale. */
export class SimClock {
  readonly timeScale: number;

  constructor(timeScale = 1) {
    this.timeScale = timeScale;
  }

  /** Virtual ms now. */
  now(): number {
    return (performance.now() - SIM_EPOCH) * this.timeScale;
  }

  /** Virtual ms of a wall time given in ms since SIM_EPOCH. */
  fromWall(wallMs: number): number {
    return wallMs * this.timeScale;
  }

  /** Wall ms since SIM_EPOCH of virtual time `v`. */
  toWall(v: number): number {
    return v / this.timeScale;
  }

  /** Wall ms from now until virtual time `v` (<= 0 when it has passed). */
  wallDelay(v: number): number {
    return v / this.timeScale + SIM_EPOCH - performance.now();
  }
}

/** Steps computed back to back before yielding to I/O when the process is behind. */
const MAX_CATCH_UP = 256;

export class ModelDriver {
  readonly model: EngineModel;
  readonly clock: SimClock;
  readonly #deliver: (o: StepOutcome) => void;
  #stepTimer: NodeJS.Timeout | null = null;
  #stepEnd = NaN;
  #wakeTimer: NodeJS.Timeout | null = null;
  #wakeAt = Infinity;
  #immediate: NodeJS.Immediate | null = null;
  #pumping = false;
  #closed = false;

  constructor(model: EngineModel, clock: SimClock, deliver: (o: StepOutcome) => void) {
    this.model = model;
    this.clock = clock;
    this.#deliver = deliver;
  }

  /** Admits a request now (throws ModelReject) and schedules the engine. */
  submit(input: Omit<SeqInput, 'arrival'> & { arrival?: number }): Seq {
    const seq = this.model.submit({ ...input, arrival: input.arrival ?? this.clock.now() });
    this.pump();
    return seq;
  }

  abort(seq: Seq): void {
    this.model.abort(seq);
    this.pump();
  }

  /** SGLang rendezvous: the prefill of `seq`'s room finished at virtual `at`. */
  release(seq: Seq, at: number): void {
    this.model.release(seq, at);
    this.pump();
  }

  /** Virtual ms the engine is behind its clock while a step is due (0 when idle or on time). */
  lag(): number {
    const now = this.clock.now();
    if (this.#stepTimer !== null) return Math.max(0, now - this.#stepEnd);
    const next = this.model.nextStart();
    return next === null ? 0 : Math.max(0, now - next);
  }

  close(): void {
    this.#closed = true;
    if (this.#stepTimer) clearTimeout(this.#stepTimer);
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#stepTimer = this.#wakeTimer = this.#immediate = null;
  }

  /** Runs whatever is due; arms a timer for the next thing that is not. */
  pump(): void {
    if (this.#closed || this.#stepTimer !== null || this.#pumping) return;
    this.#pumping = true;
    try {
      for (let i = 0; i < MAX_CATCH_UP; i++) {
        const start = this.model.nextStart();
        if (start === null) {
          this.#clearWake();
          return;
        }
        const now = this.clock.now();
        if (start > now) {
          this.#setWake(start);
          return;
        }
        const o = this.model.step();
        if (o === null) continue;
        if (o.end <= now) {
          this.#deliver(o);
          if (this.#closed) return;
          continue;
        }
        this.#clearWake();
        this.#stepEnd = o.end;
        this.#stepTimer = setTimeout(() => this.#stepDone(o), Math.max(0, this.clock.wallDelay(o.end)));
        return;
      }
      this.#immediate ??= setImmediate(() => {
        this.#immediate = null;
        this.pump();
      });
    } finally {
      this.#pumping = false;
    }
  }

  #stepDone(o: StepOutcome): void {
    this.#stepTimer = null;
    if (this.#closed) return;
    this.#pumping = true;
    try {
      this.#deliver(o);
    } finally {
      this.#pumping = false;
    }
    this.pump();
  }

  #setWake(at: number): void {
    if (this.#wakeTimer !== null && this.#wakeAt === at) return;
    this.#clearWake();
    this.#wakeAt = at;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null;
      this.#wakeAt = Infinity;
      this.pump();
    }, Math.max(0, this.clock.wallDelay(at)));
  }

  #clearWake(): void {
    if (this.#wakeTimer !== null) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    this.#wakeAt = Infinity;
  }
}
