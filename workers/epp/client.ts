/**
 * The data-plane side of the Gateway API Inference Extension's Endpoint Picker protocol
 * (kubernetes-sigs/gateway-api-inference-extension:docs/proposals/004-endpoint-picker-protocol):
 * one Envoy ext_proc bidirectional gRPC stream per request to the InferencePool's EPP.
 *
 * Per request: request headers (with `:method`, `:path`, `:authority`, `:scheme`) and, when there is
 * one, the whole body in one chunk (FULL_DUPLEX_STREAMED, as the reference EPP expects; it answers
 * only once the body has ended), with `metadata_context.filter_metadata["envoy.lb.subset_hint"]
 * ["x-gateway-destination-endpoint-subset"]` = the pool endpoints this router can reach. The EPP's
 * answer: the `x-gateway-destination-endpoint` header mutation or `dynamic_metadata["envoy.lb"]`
 * (`ip:port[,ip:port...]`, primary first, then fallbacks), other header mutations, an optional
 * replacement body, or an ImmediateResponse (its status and body go to the client). When the
 * upstream answers, `x-gateway-destination-endpoint-served` is reported on the response headers
 * and the stream is half-closed; response bodies are not sent (response_body_mode NONE).
 *
 * Cost: one HTTP/2 channel per EPP target per worker, reused by every request (grpc-js multiplexes
 * streams); the subset hint and protocol configuration are encoded once per snapshot
 * (`prepareSubset`) and appended to each request's header message as bytes.
 */
import grpc from '@grpc/grpc-js';
import type { EndpointPickerIR } from '../../src/ir/gateway.js';
import {
  BODY_MODE_FULL_DUPLEX_STREAMED, BODY_MODE_NONE, PROCESS_METHOD, STATUS_CONTINUE_AND_REPLACE,
  decodeResponse, encodeRequest, type PbCommonResponse, type PbHeaderMutation, type PbProcessingResponse, type PbStruct,
} from './proto.js';

export const DESTINATION_KEY = 'x-gateway-destination-endpoint';
/** Protocol v0.3.0's single fallback; replaced by the comma list in v0.4.0, still accepted. */
export const FALLBACK_KEY = 'x-gateway-destination-endpoint-fallback';
export const SUBSET_KEY = 'x-gateway-destination-endpoint-subset';
export const SERVED_KEY = 'x-gateway-destination-endpoint-served';
export const LB_NAMESPACE = 'envoy.lb';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';

/**
 * Request headers a client must not choose (GIE classifies them as input control / output
 * injection headers): never forwarded to the EPP nor upstream.
 */
export function isReservedHeader(name: string): boolean {
  return name.startsWith('x-gateway-destination-endpoint');
}

/** What the worker knows of the request when it asks. `headers` is the flat lower-case list. */
export interface EppRequest {
  headers: readonly string[];
  method: string;
  /** Path with query. */
  path: string;
  authority: string;
  scheme: 'http' | 'https';
  /** null or empty: no body (the headers message ends the stream). */
  body: Uint8Array | null;
}

export interface EppResult {
  /**
   * 'picked': route to `endpoints` (primary first, then fallbacks). 'immediate': answer the client
   * with `status` and `message` (the EPP's ImmediateResponse). 'failed': the picker could not be
   * used (unreachable, stream error, timeout, no destination): apply the pool's failureMode.
   */
  kind: 'picked' | 'immediate' | 'failed';
  endpoints: string[];
  /** Request headers the EPP set (lower-case names; destination keys excluded). */
  setHeaders: [string, string][];
  removeHeaders: string[];
  /** Replacement request body, or null to keep the original. */
  body: Uint8Array | null;
  status: number;
  /** 'failed': why; 'immediate': the body text. */
  message: string;
  timedOut: boolean;
}

export interface EppClientOptions {
  /** Bound on the pick (request sent -> destination known), ms. */
  timeoutMs: number;
  /** TLS without certificate verification (the reference EPP serves a self-signed certificate). */
  tls: boolean;
}

/** A subset hint and protocol configuration, encoded once (see prepareSubset). */
export type PreparedSubset = Uint8Array;

/**
 * metadata_context (subset hint) + protocol_config fields of a ProcessingRequest, encoded: protobuf
 * fields concatenate, so these bytes are appended to every request-headers message as they are.
 */
export function prepareSubset(endpoints: readonly string[] | null): PreparedSubset {
  const msg: Record<string, unknown> = {
    protocol_config: { request_body_mode: BODY_MODE_FULL_DUPLEX_STREAMED, response_body_mode: BODY_MODE_NONE },
  };
  if (endpoints !== null) {
    msg.metadata_context = {
      filter_metadata: {
        [SUBSET_NAMESPACE]: { fields: { [SUBSET_KEY]: { list_value: { values: endpoints.map((e) => ({ string_value: e })) } } } },
      },
    };
  }
  return encodeRequest(msg);
}

/** The grpc-js target of a picker: its pods' addresses (round robin), else cluster DNS; '' = none. */
export function eppTarget(epp: EndpointPickerIR): string {
  if (epp.addresses.length > 0) {
    const v6 = epp.addresses.filter((a) => a.startsWith('['));
    const v4 = epp.addresses.filter((a) => !a.startsWith('['));
    return v4.length > 0 ? `ipv4:${v4.join(',')}` : `ipv6:${v6.join(',')}`;
  }
  return epp.dns !== '' ? `dns:${epp.dns}` : '';
}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

const SERVICE_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/** One in-flight exchange. `done` reports the served endpoint (or none) and closes the stream. */
export interface EppCall {
  /** The request is over (or the client went away): report `served` when set, half-close. */
  done(served: string | null, status: number): void;
}

function headerText(h: { key?: string; value?: string; raw_value?: Uint8Array } | undefined | null): [string, string] | null {
  if (h == null || !h.key) return null;
  const v = h.raw_value != null && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('latin1') : h.value ?? '';
  return [h.key.toLowerCase(), v];
}

function metadataString(s: PbStruct | null | undefined, ns: string, key: string): string {
  const inner = s?.fields?.[ns]?.struct_value?.fields?.[key];
  if (inner == null) return '';
  if (inner.string_value) return inner.string_value;
  const list = inner.list_value?.values;
  return list != null ? list.map((v) => v.string_value ?? '').filter((v) => v !== '').join(',') : '';
}

function splitEndpoints(v: string, out: string[]): void {
  for (const part of v.split(',')) {
    const e = part.trim();
    if (e !== '' && !out.includes(e)) out.push(e);
  }
}

class Exchange implements EppCall {
  call: grpc.ClientDuplexStream<Uint8Array, PbProcessingResponse> | null = null;
  timer: NodeJS.Timeout | null = null;
  settled = false;
  closed = false;
  /** Waiting for the request-body answer(s) after the headers answer (a body was sent). */
  awaitingBody: boolean;
  result: EppResult = { kind: 'failed', endpoints: [], setHeaders: [], removeHeaders: [], body: null, status: 0, message: '', timedOut: false };
  streamed: Buffer[] | null = null;

  constructor(readonly hasBody: boolean, readonly timeoutMs: number, readonly cb: (r: EppResult) => void) {
    this.awaitingBody = hasBody;
  }

  settle(): void {
    if (this.settled) return;
    this.settled = true;
    const r = this.result;
    // The destination keys are the protocol's, not headers for the model server; the router
    // computes content-length itself.
    if (r.setHeaders.length > 0) r.setHeaders = r.setHeaders.filter(([k]) => !isReservedHeader(k) && k !== 'content-length' && k.charCodeAt(0) !== 58 /* ':' */);
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.cb(this.result);
  }

  fail(message: string, timedOut = false): void {
    if (this.settled) return;
    const r = this.result;
    r.kind = 'failed';
    r.endpoints.length = 0;
    r.message = message;
    r.timedOut = timedOut;
    this.settle();
    this.close(true);
  }

  close(cancel: boolean): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.call;
    if (c === null) return;
    if (cancel) c.cancel();
    else c.end();
  }

  onMessage(m: PbProcessingResponse): void {
    if (this.settled) return;
    const r = this.result;
    if (m.immediate_response != null) {
      const ir = m.immediate_response;
      r.kind = 'immediate';
      r.status = ir.status?.code ?? 0;
      if (r.status < 200 || r.status > 599) r.status = 500;
      r.message = ir.body != null && ir.body.length > 0 ? Buffer.from(ir.body).toString('utf8') : ir.details ?? '';
      this.settle();
      this.close(true);
      return;
    }
    if (m.request_headers != null) {
      const cr = m.request_headers.response;
      this.applyMutation(cr?.header_mutation);
      let dest = '';
      for (const [k, v] of r.setHeaders) if (k === DESTINATION_KEY) dest = v;
      if (dest === '') dest = metadataString(m.dynamic_metadata, LB_NAMESPACE, DESTINATION_KEY);
      if (dest !== '') splitEndpoints(dest, r.endpoints);
      for (const [k, v] of r.setHeaders) if (k === FALLBACK_KEY) splitEndpoints(v, r.endpoints);
      if (cr?.status === STATUS_CONTINUE_AND_REPLACE) { this.applyBody(cr); this.awaitingBody = false; }
      if (r.endpoints.length === 0) { this.fail('the endpoint picker answered without x-gateway-destination-endpoint'); return; }
      r.kind = 'picked';
      if (!this.awaitingBody) this.settle();
      return;
    }
    if (m.request_body != null) {
      const cr = m.request_body.response;
      if (cr != null) this.applyMutation(cr.header_mutation);
      const done = this.applyBody(cr);
      if (done) {
        this.awaitingBody = false;
        // The headers answer comes first in the protocol; a body answer alone picks nothing yet.
        if (r.kind === 'picked') this.settle();
      }
    }
  }

  applyMutation(hm: PbHeaderMutation | null | undefined): void {
    if (hm == null) return;
    const r = this.result;
    for (const o of hm.set_headers ?? []) {
      const h = headerText(o.header);
      if (h !== null) r.setHeaders.push(h);
    }
    for (const n of hm.remove_headers ?? []) r.removeHeaders.push(n.toLowerCase());
  }

  /** Applies a body mutation; true when the request body is complete (no more chunks to wait for). */
  applyBody(cr: PbCommonResponse | null | undefined): boolean {
    const bm = cr?.body_mutation;
    if (bm == null) return true;
    const r = this.result;
    if (bm.streamed_response != null) {
      const s = bm.streamed_response;
      if (s.body != null && s.body.length > 0) (this.streamed ??= []).push(toBuffer(s.body));
      if (!s.end_of_stream) return false;
      r.body = this.streamed === null ? new Uint8Array(0) : Buffer.concat(this.streamed);
      return true;
    }
    if (bm.clear_body) r.body = new Uint8Array(0);
    else if (bm.body != null && bm.body.length > 0) r.body = bm.body;
    return true;
  }

  done(served: string | null, status: number): void {
    if (!this.settled) { this.fail('request finished before the endpoint picker answered'); return; }
    if (this.closed || this.call === null) return;
    if (served !== null) {
      this.call.write(encodeRequest({
        response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from(String(status)) }] }, end_of_stream: true },
        metadata_context: { filter_metadata: { [LB_NAMESPACE]: { fields: { [SERVED_KEY]: { string_value: served } } } } },
      }));
    }
    this.close(false);
    // A picker that never closes its side must not hold the stream: cancel after the same bound.
    const c = this.call;
    this.timer = setTimeout(() => { this.timer = null; c.cancel(); }, this.timeoutMs);
  }
}

export class EppClient {
  readonly #opts: EppClientOptions;
  readonly #clients = new Map<string, grpc.Client>();
  readonly #creds: grpc.ChannelCredentials;
  readonly #metadata = new grpc.Metadata();

  constructor(opts: EppClientOptions) {
    this.#opts = opts;
    this.#creds = opts.tls
      ? grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined })
      : grpc.credentials.createInsecure();
  }

  /** Open channels, for tests and metrics. */
  get channels(): number {
    return this.#clients.size;
  }

  #client(target: string): grpc.Client {
    let c = this.#clients.get(target);
    if (c === undefined) {
      c = new grpc.Client(target, this.#creds, {
        'grpc.service_config': SERVICE_CONFIG,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
      this.#clients.set(target, c);
    }
    return c;
  }

  /** Closes the channels of pickers no longer in the snapshot. */
  retain(epps: Iterable<EndpointPickerIR>): void {
    const keep = new Set<string>();
    for (const e of epps) keep.add(eppTarget(e));
    for (const [t, c] of this.#clients) {
      if (!keep.has(t)) { c.close(); this.#clients.delete(t); }
    }
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  /**
   * Asks the picker. `cb` runs exactly once, asynchronously, unless `done` was called first (then
   * it runs with 'failed'). The returned call must be `done` when the request is over.
   */
  pick(epp: EndpointPickerIR, subset: PreparedSubset, req: EppRequest, cb: (r: EppResult) => void): EppCall {
    const hasBody = req.body !== null && req.body.length > 0;
    const ex = new Exchange(hasBody, this.#opts.timeoutMs, cb);
    const target = eppTarget(epp);
    if (epp.unresolved !== '' || target === '') {
      const why = epp.unresolved !== '' ? epp.unresolved : `endpoint picker Service ${epp.service} has no ready endpoint`;
      queueMicrotask(() => ex.fail(why));
      return ex;
    }
    let call: grpc.ClientDuplexStream<Uint8Array, PbProcessingResponse>;
    try {
      call = this.#client(target).makeBidiStreamRequest<Uint8Array, PbProcessingResponse>(PROCESS_METHOD, toBuffer, decodeResponse, this.#metadata);
    } catch (err) {
      queueMicrotask(() => ex.fail(`endpoint picker ${epp.service}: ${(err as Error).message}`));
      return ex;
    }
    ex.call = call;
    call.on('data', (m: PbProcessingResponse) => ex.onMessage(m));
    call.on('error', (err: grpc.ServiceError) => {
      ex.closed = true;
      ex.fail(`endpoint picker ${epp.service}: ${grpc.status[err.code] ?? err.code} ${err.details ?? err.message}`);
    });
    call.on('status', () => {
      if (ex.timer !== null && ex.settled) { clearTimeout(ex.timer); ex.timer = null; }
    });
    call.on('end', () => {
      ex.closed = true;
      ex.fail(`endpoint picker ${epp.service} closed the stream without a destination`);
    });
    ex.timer = setTimeout(() => { ex.timer = null; ex.fail(`endpoint picker ${epp.service} did not answer within ${this.#opts.timeoutMs}ms`, true); }, this.#opts.timeoutMs);

    const hv: { key: string; raw_value: Buffer }[] = [
      { key: ':method', raw_value: Buffer.from(req.method) },
      { key: ':path', raw_value: Buffer.from(req.path) },
      { key: ':authority', raw_value: Buffer.from(req.authority) },
      { key: ':scheme', raw_value: Buffer.from(req.scheme) },
    ];
    const h = req.headers;
    for (let i = 0; i < h.length; i += 2) {
      if (isReservedHeader(h[i]!) || h[i] === 'host') continue;
      hv.push({ key: h[i]!, raw_value: Buffer.from(h[i + 1]!, 'latin1') });
    }
    const head = encodeRequest({ request_headers: { headers: { headers: hv }, end_of_stream: !hasBody } });
    call.write(Buffer.concat([head, subset]));
    if (hasBody) {
      call.write(encodeRequest({ request_body: { body: req.body, end_of_stream: true } }));
    }
    return ex;
  }
}
