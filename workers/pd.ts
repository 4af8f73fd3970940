/**
 * Prefill/decode disaggregation (docs/reference/kthena-behaviour.md §4): the body of each leg, the
 * KV-transfer fields every connector adds, and the prefill leg itself (an undici handler that
 * collects a bounded response). The pipeline (workers/pipeline.ts) pairs the pods, runs the legs
 * in the connector's order and streams the decode leg back through its normal upstream handler.
 *
 * Bodies are edited as text (workers/jsonedit.ts), never re-serialized: the client's numbers and
 * key order reach both engines unchanged.
 */
import { getRandomValues } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { applySplices, scanTopLevel, type MemberSpan, type Splice } from './jsonedit.js';
import type { CompiledPd } from './compile.js';

export type Connector = CompiledPd['connector'];

/** Largest prefill response kept (nixl/mooncake read `kv_transfer_params` from it). */
export const kMaxPrefillBodyBytes = 1024 * 1024;

/** Members the router owns on a leg, per connector; a client's own values are replaced. */
function connectorMembers(c: Connector): readonly string[] {
  switch (c) {
    case 'nixl': case 'mooncake': case 'lmcache': return ['kv_transfer_params'];
    case 'sglang': return ['bootstrap_room', 'bootstrap_host'];
    default: return [];
  }
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/** `text` without the top-level member at `sp`, and the comma that separated it from a neighbour. */
function withoutMember(text: string, sp: MemberSpan): string {
  let j = sp.keyStart - 1;
  while (j >= 0 && isWs(text.charCodeAt(j))) j--;
  if (text.charCodeAt(j) === 44 /* , */) return text.slice(0, j) + text.slice(sp.valueEnd);
  // The object's first member: take the comma after it, if any.
  let i = sp.valueEnd;
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return text.slice(0, sp.keyStart) + text.slice(text.charCodeAt(i) === 44 ? i + 1 : sp.valueEnd);
}

/**
 * Removes top-level members and sets others (`set` values are JSON texts, replaced in place when
 * present, else added before the closing brace). `text` must be a JSON object JSON.parse accepted.
 * Removals rescan once each: they happen once per request on a few members, never per chunk.
 */
export function editMembers(text: string, remove: readonly string[], set: ReadonlyArray<readonly [string, string]>): string {
  let out = text;
  for (const k of remove) {
    const sp = scanTopLevel(out, [k]).members.get(k);
    if (sp !== undefined) out = withoutMember(out, sp);
  }
  if (set.length === 0) return out;
  const scan = scanTopLevel(out, set.map(([k]) => k));
  const splices: Splice[] = [];
  let added = '';
  for (const [k, v] of set) {
    const sp = scan.members.get(k);
    if (sp !== undefined) splices.push({ start: sp.valueStart, end: sp.valueEnd, text: v });
    else added += (added === '' ? '' : ',') + JSON.stringify(k) + ':' + v;
  }
  if (added !== '') splices.push({ start: scan.close, end: scan.close, text: (scan.count > 0 ? ',' : '') + added });
  return applySplices(out, splices);
}

/**
 * Kthena's preparePrefillBody (docs/reference/kthena-behaviour.md §4.2): no `stream`/`stream_options`, `max_tokens: 1`, and
 * `max_completion_tokens: 1` when the client sent it; members the connector sets per pair are
 * removed here and added by prefillFor().
 */
export function prefillBase(upstreamText: string, hasMaxCompletionTokens: boolean, connector: Connector): string {
  const set: [string, string][] = [['max_tokens', '1']];
  if (hasMaxCompletionTokens) set.push(['max_completion_tokens', '1']);
  return editMembers(upstreamText, ['stream', 'stream_options', ...connectorMembers(connector)], set);
}

/** The decode leg's base: the upstream body (model rewritten, usage injected) without connector members. */
export function decodeBase(upstreamText: string, connector: Connector): string {
  const own = connectorMembers(connector);
  return own.length === 0 ? upstreamText : editMembers(upstreamText, own, []);
}

/** Appends members (JSON texts) to an object text that has none of them. */
export function withMembers(base: string, members: string): string {
  const close = base.lastIndexOf('}');
  let j = close - 1;
  while (j >= 0 && isWs(base.charCodeAt(j))) j--;
  const empty = base.charCodeAt(j) === 123; /* { */
  return base.slice(0, close) + (empty ? '' : ',') + members + base.slice(close);
}

/** What the prefill leg of a nixl/mooncake pair carries (vLLM's P/D convention). */
export const NIXL_PREFILL_PARAMS = '"kv_transfer_params":{"do_remote_decode":true,"do_remote_prefill":false}';

export interface LmcachePorts {
  /** LMCache `pd_peer_init_port` of the decode pod, one per tensor-parallel rank. */
  init: readonly number[];
  /** LMCache `pd_peer_alloc_port` of the decode pod, one per rank. */
  alloc: readonly number[];
}

/**
 * LMCache's PD mode: the prefiller pushes the KV to the decoder named in `disagg_spec` (its
 * receiver host and ports) while it prefills; the decode leg is then an ordinary request whose
 * prefix is already in the decoder's cache. Kthena sends nothing (its issue #1502).
 */
export function lmcachePrefillParams(requestId: string, decodeIp: string, ports: LmcachePorts): string {
  return '"kv_transfer_params":{"disagg_spec":{"req_id":' + JSON.stringify(requestId) + ',"receiver_host":' + JSON.stringify(decodeIp) +
    ',"receiver_init_port":' + JSON.stringify(ports.init) + ',"receiver_alloc_port":' + JSON.stringify(ports.alloc) + '}}';
}

/**
 * The `kv_transfer_params` value of a prefill response, as its JSON text (verbatim: block ids and
 * engine ids reach the decode pod exactly as the prefill pod wrote them), or 'null' when absent
 * or not a JSON object body (Kthena sends null and logs a warning).
 */
export function kvTransferParamsOf(body: string): string {
  let parsed: unknown;
  try { parsed = JSON.parse(body); } catch { return 'null'; }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'null';
  const sp = scanTopLevel(body, ['kv_transfer_params']).members.get('kv_transfer_params');
  return sp === undefined ? 'null' : body.slice(sp.valueStart, sp.valueEnd);
}

const roomWords = new Uint32Array(2);
/** A random non-negative 63-bit integer as decimal text (SGLang's bootstrap_room; Go's rand.Int63). */
export function bootstrapRoom(): string {
  getRandomValues(roomWords);
  return ((BigInt(roomWords[0] & 0x7fffffff) << 32n) | BigInt(roomWords[1])).toString();
}

export function sglangMembers(room: string, prefillIp: string, decode: boolean): string {
  return decode ? '"bootstrap_room":' + room + ',"bootstrap_host":' + JSON.stringify(prefillIp) : '"bootstrap_room":' + room;
}

export interface PrefillCallbacks {
  /** 2xx and the whole body (up to kMaxPrefillBodyBytes) received. */
  onSuccess(leg: PrefillLeg, body: string): void;
  /**
   * Transport error, timeout, or a non-2xx answer (`status` > 0). A 4xx answer's body is passed
   * (the client's request is at fault, not the pod); otherwise `body` is ''.
   */
  onFailure(leg: PrefillLeg, err: Error, status: number, body: string): void;
}

/**
 * One prefill request. Bounded: its own timeout covers the whole leg (the prefill answer is only
 * useful once complete) and the body kept is capped. abort() ends it without calling back.
 */
export class PrefillLeg {
  readonly started = performance.now();
  #controller: Dispatcher.DispatchController | null = null;
  #timer: NodeJS.Timeout | null = null;
  #done = false;
  #status = 0;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #cb: PrefillCallbacks;

  constructor(cb: PrefillCallbacks, timeoutMs: number) {
    this.#cb = cb;
    if (timeoutMs > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#fail(new Error(`prefill leg timed out after ${timeoutMs}ms`), 0);
      }, timeoutMs);
    }
  }

  get done(): boolean {
    return this.#done;
  }

  /** Ends the leg silently (client gone, or the pair was abandoned). */
  abort(): void {
    if (this.#done) return;
    this.#settle();
    this.#controller?.abort(new Error('prefill leg cancelled'));
  }

  /** dispatch() threw synchronously. */
  fail(err: Error): void {
    this.#fail(err, 0);
  }

  #settle(): void {
    this.#done = true;
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    this.#chunks = [];
  }

  #fail(err: Error, status: number, body = ''): void {
    if (this.#done) return;
    this.#settle();
    this.#controller?.abort(err);
    this.#cb.onFailure(this, err, status, body);
  }

  #body(): string {
    return this.#chunks.length === 1 ? this.#chunks[0].toString('utf8') : Buffer.concat(this.#chunks).toString('utf8');
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(new Error('prefill leg cancelled'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    if (this.#done) return;
    this.#status = statusCode;
    // A 4xx body is kept for the client; other failures end the leg at once.
    if ((statusCode < 200 || statusCode >= 300) && !(statusCode >= 400 && statusCode < 500)) this.#fail(new Error(`prefill pod answered ${statusCode}`), statusCode);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    this.#bytes += chunk.length;
    if (this.#bytes <= kMaxPrefillBodyBytes) this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    const body = this.#bytes > kMaxPrefillBodyBytes ? '' : this.#body();
    if (this.#status >= 400) {
      this.#settle();
      this.#cb.onFailure(this, new Error(`prefill pod answered ${this.#status}`), this.#status, body);
      return;
    }
    this.#settle();
    this.#cb.onSuccess(this, body);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.#fail(err, this.#status);
  }
}
