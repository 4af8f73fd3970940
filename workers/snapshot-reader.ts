/**
 * Worker side of the snapshot protocol (see src/shared/layout.ts for the write/read order).
 * `current()` costs one Atomics.load when nothing changed.
 */
import { decodeSnapshot } from '../src/shared/snapshot-codec.js';
import type { RoutingIR } from '../src/ir/types.js';
import { kHdrGeneration, kHdrSnapLen0, snapshotHalfBytes } from '../src/shared/layout.js';

export class SnapshotReader<T> {
  readonly #header: Int32Array;
  #sab: SharedArrayBuffer;
  #generation = 0;
  #value: T | null = null;
  readonly #compile: (ir: RoutingIR, generation: number) => T;
  readonly #onError: (err: unknown) => void;

  constructor(headerSab: SharedArrayBuffer, snapshotSab: SharedArrayBuffer, compile: (ir: RoutingIR, generation: number) => T, onError: (err: unknown) => void) {
    this.#header = new Int32Array(headerSab);
    this.#sab = snapshotSab;
    this.#compile = compile;
    this.#onError = onError;
  }

  get generation(): number { return this.#generation; }

  replaceBuffer(sab: SharedArrayBuffer): void { this.#sab = sab; }

  /** The compiled snapshot for the newest published generation (null before the first one). */
  current(): T | null {
    const g1 = Atomics.load(this.#header, kHdrGeneration);
    if (g1 === this.#generation) return this.#value;
    return this.#refresh(g1);
  }

  #refresh(g1: number): T | null {
    for (let attempt = 0; attempt < 8; attempt++) {
      const half = g1 & 1;
      const len = Atomics.load(this.#header, kHdrSnapLen0 + half);
      const halfBytes = snapshotHalfBytes(this.#sab);
      if (len > halfBytes) {
        // The control thread is moving to a larger buffer and our copy has not arrived yet:
        // keep serving the previous snapshot until it does.
        return this.#value;
      }
      // Copy out of shared memory first: decoding straight from the SAB could observe a
      // concurrent overwrite halfway through.
      const bytes = new Uint8Array(len);
      bytes.set(new Uint8Array(this.#sab, half * halfBytes, len));
      const g2 = Atomics.load(this.#header, kHdrGeneration);
      if (g2 - g1 >= 2) { g1 = g2; continue; }
      try {
        this.#value = this.#compile(decodeSnapshot(bytes), g1);
        this.#generation = g1;
      } catch (err) {
        // Keep the previous snapshot; remember the generation so we do not retry per request.
        this.#generation = g1;
        this.#onError(err);
      }
      return this.#value;
    }
    return this.#value;
  }
}
