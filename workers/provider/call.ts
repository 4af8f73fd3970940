/**
 * The call to an external provider: one undici dispatch per request, through one of two agents per
 * worker (certificates verified, or not for `insecureSkipVerify`), with the same handler protocol
 * and response writer as a pod's try (workers/request/attempt.ts, response.ts). As Kthena: no
 * retry, redirects are not followed (undici's dispatch never follows them; a 3xx is passed through
 * like any other status), every upstream status is passed through as the provider wrote it, and a
 * failure before the response headers answers 502 (504 for a timeout). Unlike Kthena, connecting
 * is bounded by 10 s and the response headers by --upstream-timeout, and a stream that goes quiet
 * for --upstream-idle-timeout is ended (Kthena waits forever).
 */
import { performance } from 'node:perf_hooks';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import type { RouterConfig } from '../../src/config.js';
import { RouterError } from '../../src/errors.js';
import { upstreamStarted } from '../request/attempt.js';
import { clientAborted, internalError, respondError, upstreamDone } from '../request/finish.js';
import { ResponseWriter } from '../request/response.js';
import { UpstreamLeg } from '../request/leg.js';
import type { RequestState } from '../request/state.js';
import { dispatchOn, type UpstreamController, type UpstreamHandler, type UpstreamHeaders } from '../request/upstream.js';
import type { CompiledProvider } from './compile.js';

/** Connecting (TCP and TLS) to a provider; Go's transport that Kthena uses allows 30 s + 10 s. */
const kConnectTimeoutMs = 10_000;

let secure: Dispatcher | null = null;
let insecure: Dispatcher | null = null;

/**
 * The dispatcher for a provider call, made once per worker: a plain Agent, or with HTTPS_PROXY an
 * agent that tunnels through the proxy (CONNECT) except for NO_PROXY hosts; the provider's TLS is
 * end to end either way and verified unless insecureSkipVerify.
 */
function agentFor(cfg: Readonly<RouterConfig>, insecureSkipVerify: boolean): Dispatcher {
  const existing = insecureSkipVerify ? insecure : secure;
  if (existing !== null) return existing;
  // Neither the chain nor the host name is checked with insecureSkipVerify (Go's InsecureSkipVerify).
  const tls = insecureSkipVerify ? { timeout: kConnectTimeoutMs, rejectUnauthorized: false } : { timeout: kConnectTimeoutMs };
  const proxy = cfg.providerProxy;
  const made: Dispatcher = proxy.url === ''
    ? new Agent({ connect: tls, headersTimeout: 0, bodyTimeout: 0 })
    : new EnvHttpProxyAgent({
      // Explicit values, so that the process environment is read once, by src/config.ts.
      httpProxy: proxy.url, httpsProxy: proxy.url, noProxy: proxy.noProxy,
      connect: tls, requestTls: tls, proxyTls: { timeout: kConnectTimeoutMs },
      headersTimeout: 0, bodyTimeout: 0,
    });
  if (insecureSkipVerify) insecure = made;
  else secure = made;
  return made;
}

/** Worker shutdown: the agents' kept-alive sockets would hold the thread. */
export async function closeProviderAgents(): Promise<void> {
  const all = [secure, insecure].filter((a): a is Dispatcher => a !== null);
  secure = null;
  insecure = null;
  await Promise.allSettled(all.map((a) => a.destroy()));
}

const kTimeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', 'ETIMEDOUT']);

export interface ProviderLeg {
  provider: CompiledProvider;
  path: string;
  headers: string[];
  body: Buffer | string;
}

/** The request's one call to its provider: the live try of the request while it runs. */
export class ProviderCall extends UpstreamLeg implements UpstreamHandler {
  readonly #p: CompiledProvider;

  constructor(st: RequestState, p: CompiledProvider) {
    super(st);
    this.#p = p;
  }


  send(leg: ProviderLeg): void {
    const st = this.st;
    const cfg = st.l.ctx.cfg;
    st.current = this;
    // After a failover the pods' tries count too.
    st.attempt++;
    st.rec.upstreamAttempts = st.attempt;
    upstreamStarted(st, performance.now());
    this.startClock(cfg.upstreamTimeoutMs, cfg.upstreamIdleTimeoutMs);
    dispatchOn(agentFor(cfg, this.#p.insecureSkipVerify), this.#p.origin, leg.path, st.method, leg.headers, leg.body, this);
  }

  // ---- LegClock -------------------------------------------------------------------------------

  protected headersTimedOut(ms: number): void {
    this.fail(new RouterError('RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', `${ms}ms`));
  }

  protected idleTimedOut(ms: number): void {
    this.fail(new RouterError('RTR_ERR_UPSTREAM_IDLE_TIMEOUT', `${ms}ms`));
  }

  // ---- releasing and failing (UpstreamLeg) ----------------------------------------------------

  release(): void {
    this.stopClock();
  }

  protected failed(err: Error): void {
    const st = this.st;
    const rec = st.rec;
    this.done = true;
    this.release();
    if (st.current === this) st.current = null;
    upstreamDone(st);
    if (st.aborted) { clientAborted(st); return; }
    const code = (err as { code?: string }).code ?? '';
    if (st.responded) {
      st.l.ctx.log('warn', { requestId: rec.requestId, provider: this.#p.key, err: err.message }, 'external provider failed mid-response');
      this.failedMidstream(err);
      return;
    }
    this.writer?.discard();
    // The cause goes to the log (it names no credential: undici's messages carry the host at most).
    st.l.ctx.log('warn', { requestId: rec.requestId, provider: this.#p.key, err: err.message, code }, 'external provider request failed');
    respondError(st, kTimeoutCodes.has(code) ? 'RTR_ERR_PROVIDER_TIMEOUT' : 'RTR_ERR_PROVIDER_TRANSPORT', this.#p.key);
  }

  // ---- UpstreamHandler (undici's callback order) ----------------------------------------------

  onResponseStart(controller: UpstreamController, statusCode: number, headers: UpstreamHeaders): void {
    const st = this.st;
    try {
      if (!this.headersArrived(controller, statusCode)) return;
      const rec = st.rec;
      rec.statusCode = statusCode;
      if (statusCode < 200 || statusCode >= 300) {
        // Passed through verbatim, 5xx and 3xx included (Kthena: upstream_response, origin upstream).
        rec.errorType = 'upstream_response';
        rec.errorOrigin = 'upstream';
        rec.errorMessage = `provider ${this.#p.key} returned HTTP ${statusCode}`;
      }
      const shape = st.rec.path === '/v1/responses' ? this.#p.responsesUsage : this.#p.usage;
      this.writer = new ResponseWriter(st, controller, statusCode, headers, shape);
    } catch (err) {
      internalError(st, err);
    }
  }

  onResponseData(_controller: UpstreamController, chunk: Buffer): void {
    if (!this.live() || this.st.aborted || this.writer === null) return;
    this.chunks++;
    try {
      this.writer.data(chunk);
    } catch (err) {
      internalError(this.st, err);
    }
  }

  onResponseEnd(): void {
    const st = this.st;
    if (!this.live()) return;
    this.done = true;
    try {
      this.ended();
    } catch (err) {
      internalError(st, err);
    }
  }
}
