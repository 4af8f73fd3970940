/**
 * The upstream leg behind one small interface, so that more than one HTTP client can serve it:
 * the router's own HTTP/1.1 client for plain-HTTP pods (the default), undici for the rest and
 * when --upstream-client undici asks for it. A client takes a
 * request for one endpoint and drives a handler with undici's DispatchHandler callback order:
 * onRequestStart, then onResponseStart, onResponseData*, onResponseEnd, or onResponseError at any
 * point; nothing after the last of these. The controller pauses and resumes the response body
 * (backpressure) and aborts the exchange.
 */
import { Pool, type Dispatcher } from 'undici';
import type { RouterConfig } from '../../src/config.js';
import { H1Pool, type H1PoolOptions, type UpstreamHandler as H1Handler } from '../upstream/h1-client.js';

export interface UpstreamController {
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}

export type UpstreamHeaders = Record<string, string | string[] | undefined>;

export interface UpstreamHandler {
  onRequestStart(controller: UpstreamController): void;
  /** `headers`: lower-case names; a repeated header is an array. */
  onResponseStart(controller: UpstreamController, statusCode: number, headers: UpstreamHeaders): void;
  onResponseData(controller: UpstreamController, chunk: Buffer): void;
  onResponseEnd(controller: UpstreamController): void;
  onResponseError(controller: UpstreamController | null, err: Error): void;
}

export interface UpstreamRequest {
  /** http://ip:port of the endpoint. */
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  /** Flat [name, value, ...], hop-by-hop headers already removed. */
  headers: string[];
  body: string | Buffer | null;
}

/**
 * One request on an undici dispatcher (a pod's Pool, a provider's Agent), with a synchronous throw
 * (a bad header, a closed dispatcher) delivered as the handler's onResponseError, so callers never
 * throw. Fields rather than an UpstreamRequest, so a caller builds no object of its own.
 */
export function dispatchOn(
  d: Dispatcher, origin: string, path: string, method: string, headers: string[], body: string | Buffer | null, handler: UpstreamHandler,
): void {
  try {
    d.dispatch({ origin, path, method: method as Dispatcher.HttpMethod, headers, body }, handler as unknown as Dispatcher.DispatchHandler);
  } catch (err) {
    handler.onResponseError(null, err as Error);
  }
}

export interface Upstream {
  /** Never throws: a request that cannot be sent ends in handler.onResponseError. */
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void;
  /** Closes the pools of origins that are not in `live` (their requests in flight finish first). */
  sweep(live: ReadonlySet<string>): void;
  /** Ends every pool now (worker shutdown); requests in flight fail. */
  destroy(): Promise<void>;
}

/** The client the configuration asks for (--upstream-client). */
export function createUpstream(cfg: Readonly<Pick<RouterConfig, 'upstreamConnections' | 'upstreamClient'>>): Upstream {
  return cfg.upstreamClient === 'undici' ? new UndiciUpstream(cfg) : new H1Upstream(cfg);
}

interface Closable {
  close(): Promise<void>;
  destroy(): Promise<void>;
}

function sweepPools(pools: Map<string, Closable>, live: ReadonlySet<string>): void {
  for (const [origin, pool] of pools) {
    if (!live.has(origin)) { pools.delete(origin); void pool.close().catch(() => undefined); }
  }
}

async function destroyPools(pools: Map<string, Closable>): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.allSettled(all.map((p) => p.destroy()));
}

/** undici Pool per origin (keep-alive), raw dispatch. */
export class UndiciUpstream implements Upstream {
  readonly #pools = new Map<string, Pool>();
  readonly #connections: number;

  constructor(cfg: Readonly<Pick<RouterConfig, 'upstreamConnections'>>) {
    this.#connections = cfg.upstreamConnections;
  }

  #pool(origin: string): Pool {
    let p = this.#pools.get(origin);
    if (p === undefined) {
      p = new Pool(origin, {
        connections: this.#connections,
        pipelining: 1,
        // Our own timer bounds dial + headers (trafficPolicy.timeout); a long non-streaming
        // generation may legitimately take minutes before its headers.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 60_000,
        connect: { timeout: 10_000 },
      });
      this.#pools.set(origin, p);
    }
    return p;
  }

  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    dispatchOn(this.#pool(req.origin), req.origin, req.path, req.method, req.headers, req.body, handler);
  }

  sweep(live: ReadonlySet<string>): void {
    sweepPools(this.#pools, live);
  }

  destroy(): Promise<void> {
    return destroyPools(this.#pools);
  }
}

/**
 * The router's own HTTP/1.1 client (workers/upstream/) for every plain-HTTP origin, which is every
 * pod and Gateway backend endpoint the router compiles. undici serves the rest: an origin that is
 * not http:// and a CONNECT request; framing headers never reach here (forward.ts drops them).
 */
export class H1Upstream implements Upstream {
  readonly #pools = new Map<string, H1Pool>();
  readonly #opts: H1PoolOptions;
  readonly #fallback: UndiciUpstream;

  constructor(cfg: Readonly<Pick<RouterConfig, 'upstreamConnections'>>) {
    // Timeouts: the attempt's own timer bounds dial + headers (trafficPolicy.timeout); the dial
    // alone gets undici's 10 s. Idle connections close after 4 s (or the pod's Keep-Alive hint),
    // before uvicorn's 5 s; a request lost to a pod closing one anyway is sent again.
    this.#opts = { connections: cfg.upstreamConnections, connectTimeoutMs: 10_000, headersTimeoutMs: 0 };
    this.#fallback = new UndiciUpstream(cfg);
  }

  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    if (!req.origin.startsWith('http://') || req.method === 'CONNECT') { this.#fallback.dispatch(req, handler); return; }
    let pool = this.#pools.get(req.origin);
    try {
      if (pool === undefined) {
        pool = new H1Pool(req.origin, this.#opts);
        this.#pools.set(req.origin, pool);
      }
      pool.dispatch(req, handler as H1Handler);
    } catch (err) {
      handler.onResponseError(null, err as Error);
    }
  }

  sweep(live: ReadonlySet<string>): void {
    sweepPools(this.#pools, live);
    this.#fallback.sweep(live);
  }

  async destroy(): Promise<void> {
    await Promise.all([destroyPools(this.#pools), this.#fallback.destroy()]);
  }
}
