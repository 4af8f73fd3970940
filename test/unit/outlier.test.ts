import { describe, expect, it } from 'vitest';
import { epIndex, kEndpointStride, kEpConsecFailures, kEpEjectedUntilSec, kEpEjections } from '../../src/shared/layout.js';
import { demoteBy, demoteEjected, demoteEjectedPairs, demotionClock, outlierFailure, outlierSuccess } from '../../workers/outlier.js';

const policy = { consecutive: 3, baseEjectionSec: 10, maxEjectionPercent: 50 };
const slots = (n: number) => new Int32Array(new SharedArrayBuffer(n * kEndpointStride * 4));
const eps = (n: number) => Array.from({ length: n }, (_, slot) => ({ slot }));
const now = () => Math.floor(Date.now() / 1000);

describe('passive outlier detection', () => {
  it('ejects on the n-th consecutive failure, once, for base x ejections seconds', () => {
    const ep = slots(2);
    expect(outlierFailure(ep, 1, policy)).toBe(false);
    expect(outlierFailure(ep, 1, policy)).toBe(false);
    expect(outlierFailure(ep, 1, policy)).toBe(true);
    expect(Atomics.load(ep, epIndex(1, kEpEjections))).toBe(1);
    expect(Atomics.load(ep, epIndex(1, kEpConsecFailures))).toBe(0);
    const until = Atomics.load(ep, epIndex(1, kEpEjectedUntilSec));
    expect(until - now()).toBeGreaterThanOrEqual(9);
    expect(until - now()).toBeLessThanOrEqual(10);
    for (let i = 0; i < 3; i++) outlierFailure(ep, 1, policy);
    expect(Atomics.load(ep, epIndex(1, kEpEjectedUntilSec)) - now()).toBeGreaterThanOrEqual(19);
  });

  it('a success resets the consecutive count', () => {
    const ep = slots(1);
    outlierFailure(ep, 0, policy);
    outlierFailure(ep, 0, policy);
    outlierSuccess(ep, 0);
    expect(outlierFailure(ep, 0, policy)).toBe(false);
    expect(Atomics.load(ep, epIndex(0, kEpEjections))).toBe(0);
  });

  it('moves ejected endpoints behind the healthy ones, keeping the order', () => {
    const ep = slots(4);
    Atomics.store(ep, epIndex(2, kEpEjectedUntilSec), now() + 60);
    const ranked = Int32Array.from([2, 0, 3, 1]);
    demoteEjected(ep, eps(4), ranked, 4, policy);
    expect([...ranked]).toEqual([0, 3, 1, 2]);
  });

  it('demotes nothing when more than the allowed share is ejected (panic mode), or when disabled', () => {
    const ep = slots(4);
    for (const s of [0, 1, 2]) Atomics.store(ep, epIndex(s, kEpEjectedUntilSec), now() + 60);
    const ranked = Int32Array.from([0, 3, 1, 2]);
    demoteEjected(ep, eps(4), ranked, 4, policy);
    expect([...ranked]).toEqual([0, 3, 1, 2]);
    const ep2 = slots(2);
    Atomics.store(ep2, epIndex(0, kEpEjectedUntilSec), now() + 60);
    const r2 = Int32Array.from([0, 1]);
    demoteEjected(ep2, eps(2), r2, 2, { ...policy, consecutive: 0 });
    expect([...r2]).toEqual([0, 1]);
  });

  it('prefill/decode: each role is capped by its own share; a pair with either pod ejected goes behind', () => {
    // Slots 0-3 decode, 4-7 prefill; decode slot 1 and prefill slot 6 ejected (25 % of each role).
    const ep = slots(8);
    Atomics.store(ep, epIndex(1, kEpEjectedUntilSec), now() + 60);
    Atomics.store(ep, epIndex(6, kEpEjectedUntilSec), now() + 60);
    const decode = eps(4);
    const prefill = eps(8).slice(4);
    const dClock = demotionClock(ep, decode, policy);
    const pClock = demotionClock(ep, prefill, policy);
    expect(dClock).toBeGreaterThan(0);
    expect(pClock).toBeGreaterThan(0);
    // Within a group's prefill ranking (indexes into the group's pods: slots 6, 7).
    const picks = Int32Array.from([0, 1]);
    demoteBy(ep, prefill.slice(2), picks, 2, pClock);
    expect([...picks]).toEqual([1, 0]);
    // Pairs (decode index, prefill pod): the healthy pair first, the others keep their order.
    const pairDecode = Int32Array.from([1, 0, 2]);
    const pairPrefill = [prefill[0], prefill[2], prefill[3]];
    demoteEjectedPairs(ep, decode, pairDecode, pairPrefill, 3, dClock, pClock);
    expect([...pairDecode]).toEqual([2, 1, 0]);
    expect(pairPrefill.map((e) => e.slot)).toEqual([7, 4, 6]);
    // 3 of 4 prefill pods ejected: over the 50 % share, no prefill pod is demoted (decode still is).
    Atomics.store(ep, epIndex(4, kEpEjectedUntilSec), now() + 60);
    Atomics.store(ep, epIndex(5, kEpEjectedUntilSec), now() + 60);
    expect(demotionClock(ep, prefill, policy)).toBe(0);
    const d2 = Int32Array.from([0, 1, 2]);
    const p2 = [prefill[2], prefill[0], prefill[3]];
    demoteEjectedPairs(ep, decode, d2, p2, 3, demotionClock(ep, decode, policy), 0);
    expect([...d2]).toEqual([0, 2, 1]);
    expect(p2.map((e) => e.slot)).toEqual([6, 7, 4]);
  });
});
