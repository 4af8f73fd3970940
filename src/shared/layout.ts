/**
 * The one module that owns every SharedArrayBuffer offset. Both the control thread (src/) and the
 * workers (workers/) import it; nothing else computes an offset.
 *
 * Regions
 * -------
 * 1. Header (Int32Array over `headerSab`, kHeaderInts ints).
 * 2. Snapshot double buffer (`snapshotSab`, two halves of `halfBytes` each): protobuf-encoded IR.
 * 3. Endpoint slots (Int32Array over `endpointSab`, kEndpointStride ints per slot).
 *
 * Snapshot publish protocol (single writer: the control thread)
 * -------------------------------------------------------------
 * Writer, publishing generation g+1 (current is g):
 *   1. half h = (g + 1) & 1, the half readers are NOT reading for generation g;
 *   2. copy the encoded bytes into half h;
 *   3. store the byte length in header[kHdrSnapLen0 + h];
 *   4. Atomics.store(header, kHdrGeneration, g + 1)   <- the release: everything above happens-before
 *      any reader that observes g + 1 with Atomics.load.
 * Reader (a worker, once per request: one Atomics.load):
 *   1. g1 = Atomics.load(header, kHdrGeneration); if g1 === cached generation, done;
 *   2. read len = header[kHdrSnapLen0 + (g1 & 1)] and copy the bytes of half (g1 & 1);
 *   3. g2 = Atomics.load(header, kHdrGeneration); read the bytes *before* this second load.
 *      If g2 - g1 >= 2 the writer may have overwritten half (g1 & 1) while we copied: retry.
 *      (g2 === g1 + 1 wrote the other half, so our copy is intact.)
 * The writer never waits for readers; a reader never blocks (no Atomics.wait on a serving thread).
 * When an encoded snapshot outgrows a half, the control thread allocates a larger snapshotSab,
 * posts it to every worker and waits for their acknowledgement before publishing into it.
 *
 * Endpoint slots
 * --------------
 * One slot per pod, stable across snapshots for the pod's lifetime (keyed by namespace/name).
 * A freed slot is reused only after its in-flight count returned to 0, so that late decrements of
 * requests started against the old pod can never corrupt the counter of a new one.
 * Fields written by workers use Atomics.add/sub (exact across threads); fields written by the
 * control thread use Atomics.store and are read with Atomics.load.
 */

/** Header fields (Int32 indexes). */
export const kHdrGeneration = 0; // snapshot generation, 0 = nothing published yet
export const kHdrSnapLen0 = 1; // byte length of half 0
export const kHdrSnapLen1 = 2; // byte length of half 1
export const kHdrReady = 3; // 1 once the router is ready (first snapshot published)
export const kHdrDraining = 4; // 1 while draining after SIGTERM
export const kHdrSnapshotEpoch = 5; // bumps each time snapshotSab is replaced by a larger one
export const kHeaderInts = 16;

/** Endpoint slot fields (Int32 indexes relative to slot * kEndpointStride). */
export const kEpInflight = 0; // requests in flight to this endpoint, all workers (Atomics.add/sub)
export const kEpInflightPrefill = 1; // reserved for PD: in-flight prefill legs
export const kEpInflightDecode = 2; // reserved for PD: in-flight decode legs
export const kEpSeq = 3; // reserved: per-slot seqlock for scraper-written fields
export const kEpRequestsTotal = 4; // attempts sent to this endpoint since the slot was assigned
export const kEpFailuresTotal = 5; // attempts that failed (connect, reset, timeout, 5xx)
export const kEndpointStride = 16;

export const kDefaultMaxEndpoints = 16384;
export const kDefaultSnapshotHalfBytes = 4 * 1024 * 1024;

export interface SharedRegions {
  headerSab: SharedArrayBuffer;
  snapshotSab: SharedArrayBuffer;
  endpointSab: SharedArrayBuffer;
}

export function allocateRegions(maxEndpoints = kDefaultMaxEndpoints, halfBytes = kDefaultSnapshotHalfBytes): SharedRegions {
  return {
    headerSab: new SharedArrayBuffer(kHeaderInts * 4),
    snapshotSab: new SharedArrayBuffer(halfBytes * 2),
    endpointSab: new SharedArrayBuffer(maxEndpoints * kEndpointStride * 4),
  };
}

export function snapshotHalfBytes(snapshotSab: SharedArrayBuffer): number {
  return snapshotSab.byteLength >>> 1;
}

export function maxEndpoints(endpointSab: SharedArrayBuffer): number {
  return endpointSab.byteLength / (kEndpointStride * 4);
}

/** Int32 index of field `field` of endpoint slot `slot`. */
export function epIndex(slot: number, field: number): number {
  return slot * kEndpointStride + field;
}
