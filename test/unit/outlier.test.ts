import { describe, expect, it } from 'vitest';
import { epIndex, kEndpointStride, kEpConsecFailures, kEpEjectedUntilSec, kEpEjections } from '../../src/shared/layout.js';
import { demoteEjected, outlierFailure, outlierSuccess } from '../../workers/outlier.js';

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
});
