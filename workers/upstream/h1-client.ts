/**
 * A purpose-built HTTP/1.1 client for the upstream leg to plain-HTTP pods (the hot path).
 *
 * Why not undici: measured on this machine (docs/benchmarks.md, issue 13), undici costs 20-25 µs
 * of CPU per proxied request, more than every router feature together. This client does only what
 * a pod leg needs:
 * - keep-alive pools per endpoint with a connection cap, one request per connection at a time
 *   (no pipelining), idle connections closed after `keepAliveTimeoutMs` (or the server's
 *   `Keep-Alive: timeout` hint minus a second, whichever is shorter);
 * - the request head and body in one `write` (one buffer, one send);
 * - responses read with `net`'s `onread` into one preallocated buffer per thread (no Buffer per
 *   read), framed by the strict parser in h1-parser.ts; body bytes of one read are handed over as
 *   one fresh Buffer (the handler may keep it);
 * - backpressure bridged to the caller as undici's DispatchController does: `pause()` stops reading
 *   the socket, `resume()` restarts it; nothing (not even the end) is delivered while paused;
 * - a request that a stale kept-alive connection lost before any response byte is sent again once,
 *   on a new connection (the server closed an idle connection as we wrote; it never read the
 *   request);
 * - connect and header timeouts, and `abort()` from the caller at any time.
 *
 * The handler interface is undici's (`onRequestStart`, `onResponseStart`, `onResponseData`,
 * `onResponseEnd`, `onResponseError`, with a controller), so one handler serves either client.
 * Request bodies are complete strings or Buffers (the router buffers every body it forwards);
 * TLS, HTTP/2, streaming request bodies, `Expect`, upgrades and pipelining are not supported: those
 * upstreams use undici (see docs/architecture.md, "Upstream clients").
 */

import type { ResponseHeaders } from './h1-parser.js';
import { H1Pool } from './h1-pool.js';

export type { ResponseHeaders } from './h1-parser.js';
export { H1Pool } from './h1-pool.js';

/** The subset of undici's DispatchController a pod leg uses (structurally compatible with it). */
export interface UpstreamController {
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: Error | null;
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}

/**
 * undici's DispatchHandler callbacks. Order: onRequestStart once, then either onResponseError, or
 * onResponseStart, onResponseData*, onResponseEnd (an error may end any of these).
 */
export interface UpstreamHandler {
  onRequestStart?(controller: UpstreamController, context: unknown): void;
  onResponseStart?(controller: UpstreamController, statusCode: number, headers: ResponseHeaders, statusMessage?: string): void;
  onResponseData?(controller: UpstreamController, chunk: Buffer): void;
  onResponseEnd?(controller: UpstreamController, trailers: ResponseHeaders): void;
  onResponseError?(controller: UpstreamController, err: Error): void;
}

export interface UpstreamRequest {
  /** Ignored by a pool (it has one origin); used by H1Agent to pick the pool. */
  origin?: string;
  path: string;
  method: string;
  /** Flat [name, value, ...]; framing headers (content-length, transfer-encoding, connection, ...) are refused. */
  headers?: string[] | null;
  body?: string | Buffer | Uint8Array | null;
}

export interface H1PoolOptions {
  /** Connections per endpoint (connecting + busy + idle). */
  connections?: number;
  /** Idle time before a kept-alive connection is closed (ms). */
  keepAliveTimeoutMs?: number;
  /** Dial timeout (ms; 0 = none). */
  connectTimeoutMs?: number;
  /** Request written to response head complete (ms; 0 = none: the router runs its own timer). */
  headersTimeoutMs?: number;
  /** Longest response head (status line + headers) or trailer section accepted. */
  maxHeaderBytes?: number;
}

export interface ResolvedPoolOptions {
  connections: number;
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  maxHeaderBytes: number;
}

export function resolvePoolOptions(o: H1PoolOptions = {}): ResolvedPoolOptions {
  const r: ResolvedPoolOptions = {
    connections: o.connections ?? 128,
    // Below uvicorn's (vLLM's server) 5 s keep-alive default, so we close first.
    keepAliveTimeoutMs: o.keepAliveTimeoutMs ?? 4_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    headersTimeoutMs: o.headersTimeoutMs ?? 0,
    maxHeaderBytes: o.maxHeaderBytes ?? 16 * 1024,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`H1Pool option ${k} must be a non-negative integer, got ${String(v)}`);
  }
  if (r.connections < 1) throw new TypeError('H1Pool option connections must be at least 1');
  if (r.maxHeaderBytes < 64) throw new TypeError('H1Pool option maxHeaderBytes must be at least 64');
  return r;
}

/** Pools by origin (`http://host:port`), like undici's Agent. */
export class H1Agent {
  readonly #pools = new Map<string, H1Pool>();
  readonly #opts: H1PoolOptions;

  constructor(opts: H1PoolOptions = {}) {
    resolvePoolOptions(opts);
    this.#opts = opts;
  }

  pool(origin: string): H1Pool {
    let p = this.#pools.get(origin);
    if (p === undefined) {
      p = new H1Pool(origin, this.#opts);
      this.#pools.set(origin, p);
    }
    return p;
  }

  dispatch(req: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (req.origin === undefined) throw new TypeError('H1Agent.dispatch needs an origin');
    return this.pool(req.origin).dispatch(req, handler);
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(all.map((p) => p.close()));
  }

  async destroy(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(all.map((p) => p.destroy()));
  }
}
