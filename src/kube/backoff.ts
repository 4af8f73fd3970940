/**
 * Retry delays for everything that talks to the Kubernetes API (informers, the Gateway bootstrap,
 * the webhook's start): exponential with equal jitter (half fixed, half random), so that replicas
 * restarted together do not retry in step.
 */

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** [0,1) source for the jitter (tests pass a fixed one). */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 200, maxMs: 30_000 });

export function backoffDelay(failures: number, o: BackoffOptions): number {
  const d = Math.min(o.maxMs, o.initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(d / 2 + (o.random ?? Math.random)() * d / 2);
}
