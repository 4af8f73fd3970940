import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisBreaker } from '../../src/shared/redis-breaker.js';

function fakeClient(): Redis & { disconnected: boolean } {
  const c = { status: 'ready', disconnected: false, disconnect() { c.disconnected = true; c.status = 'end'; } };
  return c as unknown as Redis & { disconnected: boolean };
}

const never = (): Promise<never> => new Promise(() => undefined);

describe('RedisBreaker', () => {
  it('opens after consecutive failures and then refuses without calling Redis', async () => {
    const t = 0;
    const b = new RedisBreaker(fakeClient(), { failureThreshold: 2, openMs: 1000, timeoutMs: 50, now: () => t });
    let calls = 0;
    const failing = () => { calls++; return Promise.reject(new Error('boom')); };
    await expect(b.run(failing)).rejects.toThrow('boom');
    expect(b.state).toBe('closed');
    await expect(b.run(failing)).rejects.toThrow('boom');
    expect(b.state).toBe('open');
    await expect(b.run(failing)).rejects.toMatchObject({ code: 'RTR_REDIS_BREAKER_OPEN' });
    expect(calls).toBe(2);
    expect(b.opened).toBe(1);
    expect(b.rejected).toBe(1);
  });

  it('counts a call that never answers as a failure after timeoutMs', async () => {
    const b = new RedisBreaker(fakeClient(), { failureThreshold: 1, timeoutMs: 20 });
    const t0 = performance.now();
    await expect(b.run(never)).rejects.toMatchObject({ code: 'RTR_REDIS_TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(b.state).toBe('open');
  });

  it('lets exactly one probe through after openMs; its success closes the breaker', async () => {
    let t = 0;
    const b = new RedisBreaker(fakeClient(), { failureThreshold: 1, openMs: 100, timeoutMs: 1000, now: () => t });
    await expect(b.run(() => Promise.reject(new Error('down')))).rejects.toThrow('down');
    t = 150;
    expect(b.state).toBe('half-open');
    let release!: (v: string) => void;
    const probe = b.run(() => new Promise<string>((r) => { release = r; }));
    // While the probe is out, everything else still fails fast.
    await expect(b.run(() => Promise.resolve('other'))).rejects.toMatchObject({ code: 'RTR_REDIS_BREAKER_OPEN' });
    release('ok');
    await expect(probe).resolves.toBe('ok');
    expect(b.state).toBe('closed');
    await expect(b.run(() => Promise.resolve(7))).resolves.toBe(7);
  });

  it('a failed probe opens it again for another openMs', async () => {
    let t = 0;
    const b = new RedisBreaker(fakeClient(), { failureThreshold: 1, openMs: 100, now: () => t });
    await expect(b.run(() => Promise.reject(new Error('down')))).rejects.toThrow();
    t = 100;
    await expect(b.run(() => Promise.reject(new Error('still down')))).rejects.toThrow('still down');
    expect(b.opened).toBe(2);
    t = 150;
    await expect(b.run(() => Promise.resolve(1))).rejects.toMatchObject({ code: 'RTR_REDIS_BREAKER_OPEN' });
    t = 200;
    await expect(b.run(() => Promise.resolve(1))).resolves.toBe(1);
  });

  it('fails a call at once while the client is not connected, and close() disconnects for good', async () => {
    const c = fakeClient();
    const b = new RedisBreaker(c, { failureThreshold: 5 });
    (c as unknown as { status: string }).status = 'reconnecting';
    await expect(b.run(() => Promise.resolve(1))).rejects.toThrow('redis client is reconnecting');
    b.close();
    expect(c.disconnected).toBe(true);
    await expect(b.run(() => Promise.resolve(1))).rejects.toMatchObject({ code: 'RTR_REDIS_BREAKER_OPEN' });
  });

  it('rejects bad options with a precise TypeError', () => {
    expect(() => new RedisBreaker(fakeClient(), { failureThreshold: 0 })).toThrow(/failureThreshold must be an integer >= 1/);
    expect(() => new RedisBreaker(fakeClient(), { openMs: -1 })).toThrow(/openMs must be a number > 0/);
  });
});
