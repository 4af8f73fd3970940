/**
 * Token-bucket math of the local rate limits (workers/ratelimit/bucket.ts), the control thread's
 * bucket slots (src/publish/ratelimit-slots.ts) and the per-route compilation
 * (workers/ratelimit/limiter.ts). Clocks are passed explicitly: no sleeps, no timing.
 */
import { describe, expect, it } from 'vitest';
import { availableAt, chargeAt, refundAt, SharedBuckets, takeAt, type BucketSpec } from '../../workers/ratelimit/bucket.js';
import { compileRateLimit, kAllowed, kInputExceeded, kOutputExceeded, RateLimiter } from '../../workers/ratelimit/limiter.js';
import { expireSeconds, parseAddress } from '../../workers/ratelimit/redis.js';
import { RateLimitSlotAllocator } from '../../src/publish/ratelimit-slots.js';
import { allocateRateLimitRegion, kRlGen, kRlQuarantineMs, kRlTat, rlIndex } from '../../src/shared/layout.js';
import type { RateLimitIR, RouteIR } from '../../src/ir/types.js';

const perMinute = (capacity: number, slot = 0, gen = 1): BucketSpec => ({ slot, gen, capacity, msPerToken: 60_000 / capacity });

describe('token bucket math (GCRA form of a continuous token bucket)', () => {
  it('starts full, admits up to its capacity, then refuses', () => {
    const b = perMinute(30);
    let tat = 0;
    const now = 1000;
    expect(availableAt(tat, now, b.capacity, b.msPerToken)).toBe(30);
    tat = takeAt(tat, now, 20, b.capacity, b.msPerToken);
    expect(availableAt(tat, now, b.capacity, b.msPerToken)).toBeCloseTo(10, 9);
    tat = takeAt(tat, now, 10, b.capacity, b.msPerToken);
    expect(Number.isNaN(tat)).toBe(false);
    expect(takeAt(tat, now, 1, b.capacity, b.msPerToken)).toBeNaN();
  });

  it('refills continuously, not in windows: half a unit later half the capacity is back', () => {
    const b = perMinute(60);
    const tat = takeAt(0, 0, 60, b.capacity, b.msPerToken);
    expect(availableAt(tat, 0, b.capacity, b.msPerToken)).toBeCloseTo(0, 9);
    expect(availableAt(tat, 1000, b.capacity, b.msPerToken)).toBeCloseTo(1, 9);
    expect(availableAt(tat, 30_000, b.capacity, b.msPerToken)).toBeCloseTo(30, 9);
    // Never above capacity, however long it waits.
    expect(availableAt(tat, 10 * 60_000, b.capacity, b.msPerToken)).toBe(60);
  });

  it('refuses a request larger than the whole bucket even when full (Kthena AllowN)', () => {
    const b = perMinute(30);
    expect(takeAt(0, 5000, 31, b.capacity, b.msPerToken)).toBeNaN();
  });

  it('takes exactly the capacity from a full bucket in single tokens despite float rounding', () => {
    const b: BucketSpec = { slot: 0, gen: 1, capacity: 997, msPerToken: (2_592_000 * 1000) / 997 };
    let tat = 0;
    let ok = 0;
    for (let i = 0; i < 2000; i++) {
      const next = takeAt(tat, 123.456, 1, b.capacity, b.msPerToken);
      if (Number.isNaN(next)) continue;
      tat = next;
      ok++;
    }
    expect(ok).toBe(997);
  });

  it('charges output tokens into debt and stays below one token until the debt is refilled', () => {
    const b = perMinute(100);
    let tat = takeAt(0, 0, 90, b.capacity, b.msPerToken); // 10 left
    tat = chargeAt(tat, 0, 500, b.msPerToken); // 490 of debt
    expect(availableAt(tat, 0, b.capacity, b.msPerToken)).toBeCloseTo(-490, 6);
    // 4.9 minutes later the debt is repaid; the bucket holds one token 0.6 s after that.
    expect(availableAt(tat, 4.9 * 60_000, b.capacity, b.msPerToken)).toBeCloseTo(0, 6);
    expect(availableAt(tat, 4.91 * 60_000, b.capacity, b.msPerToken)).toBeGreaterThanOrEqual(1);
  });

  it('a refund gives tokens back but never beyond a full bucket', () => {
    const b = perMinute(10);
    let tat = takeAt(0, 0, 4, b.capacity, b.msPerToken);
    tat = refundAt(tat, 0, 4, b.msPerToken);
    expect(availableAt(tat, 0, b.capacity, b.msPerToken)).toBe(10);
    tat = refundAt(tat, 0, 4, b.msPerToken);
    expect(availableAt(tat, 0, b.capacity, b.msPerToken)).toBe(10);
  });
});

describe('shared buckets', () => {
  it('one region, two views (two threads\' worth): a take through one is seen through the other', () => {
    const sab = allocateRateLimitRegion(4);
    const a = new SharedBuckets(sab);
    const b = new SharedBuckets(sab);
    const spec = perMinute(10, 2);
    expect(a.take(spec, 7, 100)).toBe(true);
    expect(b.available(spec, 100)).toBeCloseTo(3, 9);
    expect(b.take(spec, 4, 100)).toBe(false);
    expect(b.take(spec, 3, 100)).toBe(true);
    expect(a.available(spec, 100)).toBeCloseTo(0, 9);
    // Another slot is another budget.
    expect(a.available(perMinute(10, 3), 100)).toBe(10);
  });

  it('the clock is ms since the region epoch (a fresh region is full, now is close to zero)', () => {
    const sab = allocateRateLimitRegion(1);
    const b = new SharedBuckets(sab);
    expect(b.now()).toBeGreaterThanOrEqual(-5);
    expect(b.now()).toBeLessThan(60_000);
    expect(b.available(perMinute(5))).toBe(5);
  });

  it('a new limit on the same slot keeps the bucket\'s state: an update does not refill a half-used bucket', () => {
    const sab = allocateRateLimitRegion(1);
    const b = new SharedBuckets(sab);
    expect(b.take(perMinute(100), 50, 0)).toBe(true);
    // Same unit, capacity 200: still half used (time to full is what the slot stores).
    expect(b.available(perMinute(200), 0)).toBeCloseTo(100, 6);
  });

  it('an output charge is skipped when the slot was given to another bucket since the snapshot', () => {
    const sab = allocateRateLimitRegion(1);
    const w = new BigInt64Array(sab);
    Atomics.store(w, rlIndex(0, kRlGen), 2n);
    const b = new SharedBuckets(sab);
    b.charge(perMinute(10, 0, 1), 5, 0); // stale generation
    expect(b.available(perMinute(10, 0, 2), 0)).toBe(10);
    b.charge(perMinute(10, 0, 2), 5, 0);
    expect(b.available(perMinute(10, 0, 2), 0)).toBeCloseTo(5, 9);
  });
});

function route(key: string, rateLimit: RateLimitIR | null, modelName = 'm', loraAdapters: string[] = []): RouteIR {
  const [namespace, name] = key.split('/');
  return { key, namespace, name, modelName, loraAdapters, hasParentRefs: false, rules: [], rateLimit };
}

const local = (input: number, output: number, unitSeconds = 60): RateLimitIR => ({
  inputTokensPerUnit: input, outputTokensPerUnit: output, unitSeconds, redisAddress: '', buckets: [],
});

describe('bucket slots (control thread)', () => {
  it('gives one slot per (route, model, direction) with a limit, LoRA adapters included, none to global limits', () => {
    const alloc = new RateLimitSlotAllocator(allocateRateLimitRegion(16));
    const out = alloc.assign([
      route('ns/a', local(10, 20), 'base', ['lora-1']),
      route('ns/b', local(10, 0), '', ['lora-only']),
      route('ns/c', { ...local(10, 20), redisAddress: 'redis:6379' }),
      route('ns/d', null),
    ])!;
    expect(out[0].rateLimit!.buckets.map((b) => `${b.model}/${b.direction}`)).toEqual(['base/input', 'base/output', 'lora-1/input', 'lora-1/output']);
    expect(out[1].rateLimit!.buckets.map((b) => `${b.model}/${b.direction}`)).toEqual(['lora-only/input']);
    expect(out[2].rateLimit!.buckets).toEqual([]);
    expect(out[3].rateLimit).toBeNull();
    const slots = [...out[0].rateLimit!.buckets, ...out[1].rateLimit!.buckets].map((b) => b.slot);
    expect(new Set(slots).size).toBe(5);
    expect(alloc.size).toBe(5);
  });

  it('keeps slots and levels across a route update, frees a removed limit, and reuses a slot only after quarantine, full', () => {
    let now = 1_000_000;
    const sab = allocateRateLimitRegion(2);
    const w = new BigInt64Array(sab);
    const alloc = new RateLimitSlotAllocator(sab, () => now);
    const first = alloc.assign([route('ns/a', local(10, 20))])!;
    const [inB, outB] = first[0].rateLimit!.buckets;
    Atomics.store(w, rlIndex(inB.slot, kRlTat), 123n); // "half used"
    const updated = alloc.assign([route('ns/a', local(50, 20))])!;
    expect(updated[0].rateLimit!.buckets).toEqual(first[0].rateLimit!.buckets);
    expect(Atomics.load(w, rlIndex(inB.slot, kRlTat))).toBe(123n);

    // Output limit removed: its bucket goes away (Kthena kept it, #1505/#1704).
    const noOutput = alloc.assign([route('ns/a', local(50, 0))])!;
    expect(noOutput[0].rateLimit!.buckets.map((b) => b.direction)).toEqual(['input']);
    // Both slots taken (one live, one in quarantine): a new bucket does not fit yet.
    expect(alloc.assign([route('ns/a', local(50, 0)), route('ns/b', local(5, 0))])).toBeNull();
    now += kRlQuarantineMs;
    Atomics.store(w, rlIndex(outB.slot, kRlTat), 999n);
    const reused = alloc.assign([route('ns/a', local(50, 0)), route('ns/b', local(5, 0))])!;
    const b = reused[1].rateLimit!.buckets[0];
    expect(b.slot).toBe(outB.slot);
    expect(b.gen).toBe(outB.gen + 1);
    expect(Atomics.load(w, rlIndex(b.slot, kRlTat))).toBe(0n);
  });
});

describe('compiled route limits and the stage verdicts', () => {
  it('compiles one limit per model the route serves; a direction without a limit has no bucket', () => {
    const ir = { ...local(30, 0), buckets: [{ model: 'lora-a', direction: 'input' as const, slot: 3, gen: 1 }] };
    const c = compileRateLimit(ir, ['lora-a', 'lora-b']);
    expect(c.get('lora-a')!.input).toEqual({ slot: 3, gen: 1, capacity: 30, msPerToken: 2000 });
    expect(c.get('lora-a')!.output).toBeNull();
    expect(c.has('lora-b')).toBe(false);
    const g = compileRateLimit({ ...local(10, 5000), redisAddress: 'redis:6379' }, ['m']).get('m')!;
    expect(g.global).toMatchObject({ inKey: 'kthena:ratelimit:m:input', outKey: 'kthena:ratelimit:m:output', inCapacity: 10, outCapacity: 5000, expire: 600 });
  });

  it('input first; the output pre-check refuses at < 1 token and gives the input tokens back', () => {
    const sab = allocateRateLimitRegion(4);
    const limiter = new RateLimiter({ rateLimitSab: sab, failClosed: false, log: () => {} });
    const month = 2_592_000;
    const lim = compileRateLimit(
      { ...local(100, 10, month), buckets: [{ model: 'm', direction: 'input', slot: 0, gen: 0 }, { model: 'm', direction: 'output', slot: 1, gen: 0 }] },
      ['m'],
    ).get('m')!;
    expect(limiter.admit(lim, 60)).toBe(kAllowed);
    expect(limiter.admit(lim, 60)).toBe(kInputExceeded);
    limiter.recordOutput(lim, 10);
    expect(limiter.admit(lim, 40)).toBe(kOutputExceeded);
    // The refused request's 40 input tokens were given back.
    expect(limiter.buckets.available(lim.input!)).toBeCloseTo(40, 3);
    limiter.exceeded('m', kInputExceeded, '/v1/chat/completions');
    limiter.exceeded('m', kOutputExceeded, '/v1/chat/completions');
    limiter.exceeded('m', kOutputExceeded, '/v1/chat/completions');
    const fam = limiter.metricsJSON().find((f) => f.name === 'kthena_router_rate_limit_exceeded_total')!;
    expect(fam.values).toEqual([
      { value: 1, labels: { model: 'm', limit_type: 'input_tokens', path: '/v1/chat/completions' } },
      { value: 2, labels: { model: 'm', limit_type: 'output_tokens', path: '/v1/chat/completions' } },
    ]);
  });
});

describe('global limit helpers', () => {
  it('expires keys after three units, clamped to [10 minutes, 90 days] as Kthena', () => {
    expect(expireSeconds(1)).toBe(600);
    expect(expireSeconds(3600)).toBe(10_800);
    expect(expireSeconds(2_592_000)).toBe(7_776_000);
  });

  it('parses host:port, [v6]:port and a bare host (port 6379), and refuses anything else', () => {
    expect(parseAddress('redis-server.kthena-system.svc.cluster.local:6379')).toEqual({ host: 'redis-server.kthena-system.svc.cluster.local', port: 6379 });
    expect(parseAddress('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
    expect(parseAddress('redis')).toEqual({ host: 'redis', port: 6379 });
    expect(parseAddress('redis://x:1')).toBeNull();
    expect(parseAddress('h:70000')).toBeNull();
  });
});
