/**
 * The upstream leg behind one small interface, so that more than one HTTP client can serve it
 * (undici today; a purpose-built HTTP/1.1 client for plain-HTTP pods beside it). A client takes a
 * request for one endpoint and drives a handler with undici's DispatchHandler callback order:
 * onRequestStart, then onResponseStart, onResponseData*, onResponseEnd, or onResponseError at any
 * point; nothing after the last of these. The controller pauses and resumes the response body
 * (backpressure) and aborts the exchange.
 */
import { Pool, type Dispatcher } from 'undici';
import type { RouterConfig } from '../../src/config.js';

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

export interface Upstream {
  /** Never throws: a request that cannot be sent ends in handler.onResponseError. */
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void;
}

/** undici Pool per origin (keep-alive), raw dispatch. */
export class UndiciUpstream implements Upstream {
  readonly #pools: Map<string, Pool>;
  readonly #connections: number;

  constructor(pools: Map<string, Pool>, cfg: Readonly<Pick<RouterConfig, 'upstreamConnections'>>) {
    this.#pools = pools;
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
    try {
      this.#pool(req.origin).dispatch({
        origin: req.origin,
        path: req.path,
        method: req.method as Dispatcher.HttpMethod,
        headers: req.headers,
        body: req.body,
      }, handler as unknown as Dispatcher.DispatchHandler);
    } catch (err) {
      handler.onResponseError(null, err as Error);
    }
  }
}
