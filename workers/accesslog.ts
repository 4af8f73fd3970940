/**
 * Access-log lines in Kthena's two formats (volcano-sh/kthena:pkg/kthena-router/accesslog), built
 * from a finished RequestRecord, and the per-worker batcher that ships them to the control thread.
 *
 * Both formatters run once per /v1/* request on a serving thread, so they build the line by string
 * concatenation (V8 ropes, flattened once when the batch is posted) and allocate no arrays or
 * intermediate objects.
 */
import type { RequestRecord } from './record.js';

// Go prints time.RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00"): fractional seconds with the
// trailing zeros trimmed, and no fraction at all on a whole second. The date/time prefix changes
// once a second, so it is formatted once per second rather than once per line.
let cachedSecond = Number.NaN;
let cachedPrefix = '';

/** RFC3339Nano (UTC, `Z`) of an epoch-milliseconds time; fractional ms give up to µs precision. */
export function rfc3339Nano(epochMs: number): string {
  const totalUs = Math.round(epochMs * 1000);
  const second = Math.floor(totalUs / 1e6);
  const us = totalUs - second * 1e6;
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  if (us === 0) return cachedPrefix + 'Z';
  let frac = '' + us;
  while (frac.length < 6) frac = '0' + frac;
  let end = frac.length;
  while (frac.charCodeAt(end - 1) === 48 /* '0' */) end--;
  return cachedPrefix + '.' + frac.slice(0, end) + 'Z';
}

// Duration scratch: filled by computeDurations() so that neither formatter allocates a tuple.
let dTotal = 0;
let dRequest = 0;
let dUpstream = 0;
let dResponse = 0;

function ms(from: number, to: number): number {
  // Go's Duration.Milliseconds() truncates toward zero; clocks never make a phase negative here,
  // but a record finished in an unexpected order must not print "-1".
  const d = Math.trunc(to - from);
  return d > 0 ? d : 0;
}

/**
 * Kthena's phases (AccessLogContext.ToAccessLogEntry): request processing runs from arrival to the
 * first dispatch (the whole request when nothing was dispatched); upstream processing from dispatch
 * to response headers (to the end when headers never came); response processing from headers to
 * the end.
 */
function computeDurations(rec: RequestRecord): void {
  const t0 = rec.t0;
  const tEnd = rec.tEnd;
  dTotal = ms(t0, tEnd);
  if (rec.tDispatch === 0) {
    dRequest = dTotal;
    dUpstream = 0;
    dResponse = 0;
    return;
  }
  dRequest = ms(t0, rec.tDispatch);
  if (rec.tHeaders === 0) {
    dUpstream = ms(rec.tDispatch, tEnd);
    dResponse = 0;
  } else {
    dUpstream = ms(rec.tDispatch, rec.tHeaders);
    dResponse = ms(rec.tHeaders, tEnd);
  }
}

/**
 * Kthena prints fields raw. Fields a client controls (path, model, request id, error text quoting
 * an upstream or the client) are escaped so that a line shows exactly one request, safely:
 *  - control characters (C0, DEL, C1) as `\r`, `\n`, `\t` or `\xHH`, and U+2028/U+2029 as `\uHHHH`:
 *    no forged second line, no ANSI escape sequence driving the terminal of whoever tails the log;
 *  - the backslash itself as `\\`, so an escape is never ambiguous;
 *  - in the key=value part, `=` as `\x3d`: a model name `m request_id=forged` cannot add a field;
 *  - in the quoted request line, `"` as `\"`.
 * Plain values (nearly all) are returned as they are after one regex test.
 */
const kFieldUnsafe = /[\u0000-\u001f\u007f-\u009f\\=\u2028\u2029]/;
const kFieldUnsafeG = /[\u0000-\u001f\u007f-\u009f\\=\u2028\u2029]/g;
const kPathUnsafe = /[\u0000-\u001f\u007f-\u009f\\"\u2028\u2029]/;
const kPathUnsafeG = /[\u0000-\u001f\u007f-\u009f\\"\u2028\u2029]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '\r': return '\\r';
    case '\n': return '\\n';
    case '\t': return '\\t';
    case '\\': return '\\\\';
    case '"': return '\\"';
    default: {
      const code = c.charCodeAt(0);
      return code <= 0xff ? '\\x' + code.toString(16).padStart(2, '0') : '\\u' + code.toString(16).padStart(4, '0');
    }
  }
}

/** A client-controlled value in the key=value part. */
export function escapeField(s: string): string {
  return kFieldUnsafe.test(s) ? s.replace(kFieldUnsafeG, escapeChar) : s;
}

/** The path inside the quoted request line. */
function escapePath(s: string): string {
  return kPathUnsafe.test(s) ? s.replace(kPathUnsafeG, escapeChar) : s;
}

/**
 * `[<RFC3339Nano>] "<METHOD> <path> <proto>" <status>[ error=<type>:<msg>][ model_name=…]…
 * [ tokens=<in>/<out>] timings=<total>ms(<req>+<upstream>+<resp>)`, fields in Kthena's order,
 * omitted when empty (strings), 0 (upstream status and attempts) or unknown (tokens: shown when
 * either count is > 0, as Kthena, the other printed as 0).
 */
export function formatAccessLogText(rec: RequestRecord): string {
  let s = '[' + rfc3339Nano(rec.startEpochMs) + '] "' + rec.method + ' ' + escapePath(rec.path) + ' ' +
    rec.protocol + '" ' + rec.statusCode;
  if (rec.errorType !== '') s += ' error=' + rec.errorType + ':' + escapeField(rec.errorMessage);
  if (rec.modelName !== '') s += ' model_name=' + escapeField(rec.modelName);
  if (rec.modelRoute !== '') s += ' model_route=' + rec.modelRoute;
  if (rec.modelServer !== '') s += ' model_server=' + rec.modelServer;
  if (rec.selectedPod !== '') s += ' selected_pod=' + rec.selectedPod;
  if (rec.prefillPod !== '') s += ' prefill_pod=' + rec.prefillPod;
  if (rec.requestId !== '') s += ' request_id=' + escapeField(rec.requestId);
  if (rec.backendType !== '') s += ' backend_type=' + rec.backendType;
  if (rec.backendName !== '') s += ' backend_name=' + rec.backendName;
  if (rec.upstreamModel !== '') s += ' upstream_model=' + escapeField(rec.upstreamModel);
  if (rec.upstreamStatusCode > 0) s += ' upstream_status_code=' + rec.upstreamStatusCode;
  if (rec.upstreamAttempts > 0) s += ' upstream_attempts=' + rec.upstreamAttempts;
  if (rec.errorOrigin !== '') s += ' error_origin=' + rec.errorOrigin;
  if (rec.gateway !== '') s += ' gateway=' + rec.gateway;
  if (rec.httpRoute !== '') s += ' http_route=' + rec.httpRoute;
  if (rec.inferencePool !== '') s += ' inference_pool=' + rec.inferencePool;
  const inTok = rec.inputTokens;
  const outTok = rec.outputTokens;
  if (inTok > 0 || outTok > 0) s += ' tokens=' + (inTok > 0 ? inTok : 0) + '/' + (outTok > 0 ? outTok : 0);
  computeDurations(rec);
  return s + ' timings=' + dTotal + 'ms(' + dRequest + '+' + dUpstream + '+' + dResponse + ')';
}

// Go's encoding/json escapes <, > and & (HTML-safe) and U+2028/U+2029; JSON.stringify does not.
const kGoOnlyEscapes = /[<>&\u2028\u2029]/;
const kGoOnlyEscapesG = /[<>&\u2028\u2029]/g;
function goEscape(c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
}
// Nearly every field is plain ASCII with nothing to escape; one regex test then replaces a
// JSON.stringify call (a third off the cost of a JSON line).
const kNeedsEscape = /["\\\u0000-\u001f<>&\u2028\u2029\ud800-\udfff]/;
function jstr(s: string): string {
  if (!kNeedsEscape.test(s)) return '"' + s + '"';
  const j = JSON.stringify(s);
  return kGoOnlyEscapes.test(j) ? j.replace(kGoOnlyEscapesG, goEscape) : j;
}

/**
 * Kthena's AccessLogEntry as encoding/json writes it: struct field order, `omitempty` fields left
 * out when empty/0 (and tokens when unknown), `model_name` and the four durations always present.
 */
export function formatAccessLogJson(rec: RequestRecord): string {
  let s = '{"timestamp":"' + rfc3339Nano(rec.startEpochMs) + '","method":' + jstr(rec.method) +
    ',"path":' + jstr(rec.path) + ',"protocol":' + jstr(rec.protocol) + ',"status_code":' + rec.statusCode;
  if (rec.errorType !== '') {
    s += ',"error":{"type":' + jstr(rec.errorType) + ',"message":' + jstr(rec.errorMessage) + '}';
  }
  s += ',"model_name":' + jstr(rec.modelName);
  if (rec.modelRoute !== '') s += ',"model_route":' + jstr(rec.modelRoute);
  if (rec.modelServer !== '') s += ',"model_server":' + jstr(rec.modelServer);
  if (rec.selectedPod !== '') s += ',"selected_pod":' + jstr(rec.selectedPod);
  if (rec.prefillPod !== '') s += ',"prefill_pod":' + jstr(rec.prefillPod);
  if (rec.requestId !== '') s += ',"request_id":' + jstr(rec.requestId);
  if (rec.backendType !== '') s += ',"backend_type":' + jstr(rec.backendType);
  if (rec.backendName !== '') s += ',"backend_name":' + jstr(rec.backendName);
  if (rec.upstreamModel !== '') s += ',"upstream_model":' + jstr(rec.upstreamModel);
  if (rec.upstreamStatusCode > 0) s += ',"upstream_status_code":' + rec.upstreamStatusCode;
  if (rec.upstreamAttempts > 0) s += ',"upstream_attempts":' + rec.upstreamAttempts;
  if (rec.errorOrigin !== '') s += ',"error_origin":' + jstr(rec.errorOrigin);
  if (rec.gateway !== '') s += ',"gateway":' + jstr(rec.gateway);
  if (rec.httpRoute !== '') s += ',"http_route":' + jstr(rec.httpRoute);
  if (rec.inferencePool !== '') s += ',"inference_pool":' + jstr(rec.inferencePool);
  if (rec.inputTokens > 0) s += ',"input_tokens":' + rec.inputTokens;
  if (rec.outputTokens > 0) s += ',"output_tokens":' + rec.outputTokens;
  computeDurations(rec);
  return s + ',"duration_total":' + dTotal + ',"duration_request_processing":' + dRequest +
    ',"duration_upstream_processing":' + dUpstream + ',"duration_response_processing":' + dResponse + '}';
}

export interface AccessLogBufferOptions {
  /** Post the batch once it holds this many characters (≈ bytes for ASCII lines). Default 64 KiB. */
  maxBytes?: number;
  /** Post a non-empty batch at the latest this long after its first line. Default 50 ms. */
  flushMs?: number;
  /** Called when `post` throws (e.g. the port is closed); the batch is dropped. Default: a process warning. */
  onError?: (err: unknown) => void;
}

function defaultOnError(err: unknown): void {
  process.emitWarning(`access log batch dropped: ${err instanceof Error ? err.message : String(err)}`, 'AccessLogWarning');
}

/**
 * Batches newline-terminated lines and hands each batch to `post` (the worker passes
 * `lines => parentPort.postMessage({ type: 'access', lines })`), when the batch reaches `maxBytes`
 * or `flushMs` after its first line. One postMessage per batch instead of per request keeps the
 * structured-clone and cross-thread wake-up cost off the request path. The timer is unref'ed so a
 * pending batch never keeps a thread alive; call close() on shutdown to post the last lines.
 */
export class AccessLogBuffer {
  readonly #post: (lines: string) => void;
  readonly #maxBytes: number;
  readonly #flushMs: number;
  readonly #onError: (err: unknown) => void;
  #pending = '';
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.flush();
  };

  constructor(post: (lines: string) => void, opts: AccessLogBufferOptions = {}) {
    if (typeof post !== 'function') throw new TypeError('AccessLogBuffer: post must be a function');
    const maxBytes = opts.maxBytes ?? 64 * 1024;
    const flushMs = opts.flushMs ?? 50;
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new TypeError(`AccessLogBuffer: maxBytes must be a positive integer, got ${maxBytes}`);
    }
    if (!Number.isFinite(flushMs) || flushMs < 0) {
      throw new TypeError(`AccessLogBuffer: flushMs must be a non-negative number, got ${flushMs}`);
    }
    this.#post = post;
    this.#maxBytes = maxBytes;
    this.#flushMs = flushMs;
    this.#onError = opts.onError ?? defaultOnError;
  }

  /** Append one line (without its newline). Never blocks; after close() the line is posted at once. */
  push(line: string): void {
    this.#pending += line;
    this.#pending += '\n';
    if (this.#closed || this.#pending.length >= this.#maxBytes) {
      this.flush();
      return;
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#flushMs);
      this.#timer.unref();
    }
  }

  /** Post whatever is pending now. */
  flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#pending === '') return;
    const lines = this.#pending;
    this.#pending = '';
    try {
      this.#post(lines);
    } catch (err) {
      this.#onError(err);
    }
  }

  /** Post the last lines and stop batching. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
