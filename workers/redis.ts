/**
 * The worker thread's one Redis connection, behind its circuit breaker (src/shared/redis-breaker.ts),
 * shared by every Redis user on the thread and created on first use. The worker disconnects it on
 * shutdown: a live ioredis socket (or its reconnect timer) keeps the thread's event loop alive, so
 * a worker that had used Redis never exited — a crashed worker was never restarted and SIGTERM never
 * ended the process.
 */
import { Redis } from 'ioredis';

import { RedisBreaker } from '../src/shared/redis-breaker.js';
import type { MetricJSON } from '../src/shared/metric-json.js';

export const REDIS_BREAKER_OPEN = 'kthena_router_redis_breaker_open';
export const REDIS_BREAKER_OPENED_TOTAL = 'kthena_router_redis_breaker_opened_total';
export const REDIS_BREAKER_REJECTED_TOTAL = 'kthena_router_redis_breaker_rejected_total';

let shared: RedisBreaker | null = null;

export function workerRedis(r: { host: string; port: number; password: string }): RedisBreaker {
  if (shared === null) {
    const client = new Redis({
      host: r.host, port: r.port, password: r.password || undefined,
      // The offline queue holds commands while the first connection is made; the breaker bounds
      // every call and fails fast while the client is reconnecting.
      maxRetriesPerRequest: 1, enableOfflineQueue: true, retryStrategy: (n) => Math.min(5000, 100 * n),
    });
    // Connection errors surface per call through the breaker (and the users' error counters).
    client.on('error', () => undefined);
    shared = new RedisBreaker(client);
  }
  return shared;
}

/** Disconnects the shared client, if one was made; its breaker refuses every later call. */
export function closeWorkerRedis(): void {
  shared?.close();
}

/** Breaker families, prom-client getMetricsAsJSON() shape (summed over workers). */
export function redisBreakerMetricsJSON(): MetricJSON[] {
  if (shared === null) return [];
  const s = shared;
  return [
    {
      name: REDIS_BREAKER_OPEN, help: 'Worker threads whose Redis circuit breaker is open or half-open (Redis calls fail fast)',
      type: 'gauge', values: [{ value: s.state === 'closed' ? 0 : 1, labels: {} }], aggregator: 'sum',
    },
    {
      name: REDIS_BREAKER_OPENED_TOTAL, help: 'Times a Redis circuit breaker opened after consecutive failures or a failed probe',
      type: 'counter', values: [{ value: s.opened, labels: {} }], aggregator: 'sum',
    },
    {
      name: REDIS_BREAKER_REJECTED_TOTAL, help: 'Redis calls refused without a round trip because the circuit breaker was open',
      type: 'counter', values: [{ value: s.rejected, labels: {} }], aggregator: 'sum',
    },
  ];
}
