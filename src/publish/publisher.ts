/**
 * Writes encoded snapshots into the double buffer and assigns stable endpoint slots.
 * The protocol (write order, read order) is documented in src/shared/layout.ts.
 */
import { isDeepStrictEqual } from 'node:util';
import type { RoutingIR } from '../ir/types.js';
import { encodeSnapshot } from '../shared/snapshot-codec.js';
import { RateLimitSlotAllocator } from './ratelimit-slots.js';
import {
  epIndex, kEpGen, kEpInflight, kEpInflightDecode, kEpInflightPrefill, kEpLoraActiveBits, kEpModelBits, kEndpointStride,
  kMaxModelIds,
  kHdrGeneration, kHdrSnapLen0, kHdrSnapshotEpoch, maxEndpoints, snapshotHalfBytes,
  type SharedRegions,
} from '../shared/layout.js';

/**
 * Stable slot per endpoint key. A freed slot goes to quarantine and is reused only once every
 * worker has finished the requests it started against the old pod (in-flight back to 0).
 */
export class SlotAllocator {
  readonly #ep: Int32Array;
  readonly #capacity: number;
  readonly #byKey = new Map<string, number>();
  readonly #quarantine: number[] = [];
  readonly #free: number[] = [];
  #next = 0;

  constructor(endpointSab: SharedArrayBuffer) {
    this.#ep = new Int32Array(endpointSab);
    this.#capacity = maxEndpoints(endpointSab);
  }

  get size(): number { return this.#byKey.size; }

  slotOf(key: string): number | undefined { return this.#byKey.get(key); }

  /**
   * Assigns slots for exactly `keys`, releasing the others. Returns null, changing nothing, when
   * there are not enough reusable slots (the live snapshot keeps its slots intact).
   */
  assign(keys: readonly string[]): Map<string, number> | null {
    const wanted = new Set(keys);
    let needed = 0;
    for (const key of wanted) if (!this.#byKey.has(key)) needed++;
    let available = this.#free.length + (this.#capacity - this.#next);
    for (const slot of this.#quarantine) if (this.#idle(slot)) available++;
    for (const [key, slot] of this.#byKey) if (!wanted.has(key) && this.#idle(slot)) available++;
    if (needed > available) return null;
    for (const [key, slot] of this.#byKey) {
      if (!wanted.has(key)) {
        this.#byKey.delete(key);
        this.#quarantine.push(slot);
      }
    }
    this.#drainQuarantine();
    for (const key of wanted) {
      if (this.#byKey.has(key)) continue;
      let slot = this.#free.pop();
      if (slot === undefined) slot = this.#next++;
      this.#reset(slot);
      this.#byKey.set(key, slot);
    }
    return new Map(this.#byKey);
  }

  #idle(slot: number): boolean {
    return Atomics.load(this.#ep, epIndex(slot, kEpInflight)) <= 0
      && Atomics.load(this.#ep, epIndex(slot, kEpInflightPrefill)) <= 0
      && Atomics.load(this.#ep, epIndex(slot, kEpInflightDecode)) <= 0;
  }

  #drainQuarantine(): void {
    for (let i = this.#quarantine.length - 1; i >= 0; i--) {
      const slot = this.#quarantine[i];
      if (this.#idle(slot)) {
        this.#quarantine.splice(i, 1);
        this.#free.push(slot);
      }
    }
  }

  /** Zeroes every field but the generation, which moves on: prefix-index entries of the old pod die. */
  #reset(slot: number): void {
    const base = slot * kEndpointStride;
    for (let i = 0; i < kEndpointStride; i++) if (i !== kEpGen) Atomics.store(this.#ep, base + i, 0);
    Atomics.add(this.#ep, base + kEpGen, 1);
  }

  genOf(slot: number): number { return Atomics.load(this.#ep, epIndex(slot, kEpGen)); }
}

/**
 * Stable ids for model and adapter names (the bit numbers of the endpoint model bit sets). A name
 * keeps its id while any route serves it. When a name goes away its bit is cleared in every slot
 * before the id can be reused, so a pod never appears to serve a model it never listed.
 */
export class ModelIdAllocator {
  readonly #ep: Int32Array;
  readonly #slots: number;
  readonly #byName = new Map<string, number>();
  readonly #free: number[] = [];
  #next = 0;

  constructor(endpointSab: SharedArrayBuffer) {
    this.#ep = new Int32Array(endpointSab);
    this.#slots = maxEndpoints(endpointSab);
  }

  /** Current name -> id map (the scraper reads it when it writes bit sets). */
  get ids(): ReadonlyMap<string, number> { return this.#byName; }

  /** Ids parallel to `names`; -1 for names beyond kMaxModelIds (reported by the caller). */
  assign(names: readonly string[]): number[] {
    const wanted = new Set(names);
    for (const [name, id] of this.#byName) {
      if (wanted.has(name)) continue;
      this.#byName.delete(name);
      this.#clearBit(id);
      this.#free.push(id);
    }
    return names.map((name) => {
      let id = this.#byName.get(name);
      if (id !== undefined) return id;
      id = this.#free.pop() ?? (this.#next < kMaxModelIds ? this.#next++ : -1);
      if (id >= 0) this.#byName.set(name, id);
      return id;
    });
  }

  #clearBit(id: number): void {
    const word = id >>> 5;
    const mask = ~(1 << (id & 31));
    for (let slot = 0; slot < this.#slots; slot++) {
      Atomics.and(this.#ep, epIndex(slot, kEpModelBits + word), mask);
      Atomics.and(this.#ep, epIndex(slot, kEpLoraActiveBits + word), mask);
    }
  }
}


export type PublishResult = 'published' | 'unchanged' | 'too-large';

export class Publisher {
  #regions: SharedRegions;
  #header: Int32Array;
  #last: RoutingIR | null = null;
  readonly slots: SlotAllocator;
  readonly modelIds: ModelIdAllocator;
  readonly rateLimitSlots: RateLimitSlotAllocator;

  constructor(regions: SharedRegions) {
    this.#regions = regions;
    this.#header = new Int32Array(regions.headerSab);
    this.slots = new SlotAllocator(regions.endpointSab);
    this.modelIds = new ModelIdAllocator(regions.endpointSab);
    this.rateLimitSlots = new RateLimitSlotAllocator(regions.rateLimitSab);
  }

  get generation(): number { return Atomics.load(this.#header, kHdrGeneration); }
  get current(): RoutingIR | null { return this.#last; }
  get regions(): SharedRegions { return this.#regions; }

  /** Assigns endpoint and rate-limit bucket slots (returns a new IR with slots filled in) or null when out of slots. */
  withSlots(ir: RoutingIR): RoutingIR | null {
    // Gateway endpoints are podIP:port (keys "ns/pod:port"), ModelServer endpoints pods ("ns/pod"):
    // the key sets never collide, and one allocation covers both.
    const slots = this.slots.assign([...ir.endpoints.map((e) => e.key), ...ir.gateway.endpoints.map((e) => e.key)]);
    if (slots === null) return null;
    const routes = this.rateLimitSlots.assign(ir.routes);
    if (routes === null) return null;
    return {
      ...ir,
      routes,
      endpoints: ir.endpoints.map((e) => { const slot = slots.get(e.key)!; return { ...e, slot, gen: this.slots.genOf(slot) }; }),
      modelIds: this.modelIds.assign(ir.modelNames),
      gateway: {
        ...ir.gateway,
        endpoints: ir.gateway.endpoints.map((e) => { const slot = slots.get(e.key)!; return { ...e, slot, gen: this.slots.genOf(slot) }; }),
      },
    };
  }

  /** Bytes needed for `ir`, or the encoded bytes themselves. */
  encode(ir: RoutingIR): Uint8Array { return encodeSnapshot(ir); }

  /** Replaces the snapshot buffer (caller has delivered it to every worker first). */
  replaceSnapshotBuffer(sab: SharedArrayBuffer): void {
    this.#regions = { ...this.#regions, snapshotSab: sab };
    Atomics.add(this.#header, kHdrSnapshotEpoch, 1);
  }

  fits(bytes: Uint8Array): boolean { return bytes.byteLength <= snapshotHalfBytes(this.#regions.snapshotSab); }

  /** Publishes `ir` (slots already assigned). An IR deep-equal to the last one publishes nothing. */
  publish(ir: RoutingIR, bytes = encodeSnapshot(ir)): PublishResult {
    if (this.#last !== null && isDeepStrictEqual(this.#last, ir)) return 'unchanged';
    if (!this.fits(bytes)) return 'too-large';
    const g = Atomics.load(this.#header, kHdrGeneration);
    const half = (g + 1) & 1;
    const halfBytes = snapshotHalfBytes(this.#regions.snapshotSab);
    new Uint8Array(this.#regions.snapshotSab, half * halfBytes, bytes.byteLength).set(bytes);
    Atomics.store(this.#header, kHdrSnapLen0 + half, bytes.byteLength);
    Atomics.store(this.#header, kHdrGeneration, g + 1);
    this.#last = ir;
    return 'published';
  }
}
