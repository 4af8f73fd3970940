/**
 * An in-process Endpoint Picker for tests: a grpc-js server speaking Envoy's ext_proc v3 stream the
 * way the GIE reference picker does (pkg/lwepp/handlers): it reads the request headers, waits for
 * the body's end, then answers the headers message with the `x-gateway-destination-endpoint` header
 * mutation and `envoy.lb` dynamic metadata, then the body message. Its behaviour is set per test:
 * pick given endpoints (or the first of the subset hint), answer slowly, fail the stream, answer an
 * ImmediateResponse, rewrite the body, or pick nothing. Every exchange is recorded.
 */
import grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import {
  PROCESS_METHOD, decodeRequest, encodeResponse, type PbProcessingResponse, type PbStruct,
} from '../../workers/epp/proto.js';

export interface EppSeen {
  headers: Record<string, string>;
  body: string;
  /** The subset hint (envoy.lb.subset_hint / x-gateway-destination-endpoint-subset), null if absent. */
  subset: string[] | null;
  requestBodyMode: number;
  /** x-gateway-destination-endpoint-served, reported on the response headers. */
  served: string | null;
  responseStatus: string | null;
}

export interface EppBehaviour {
  /** Endpoints to answer (primary first, then fallbacks). Default: the first of the subset hint. */
  pick?: (seen: EppSeen) => string[];
  /** Wait this long before answering the pick. */
  delayMs?: number;
  /** Fail the stream with this gRPC status instead of answering. */
  error?: grpc.status;
  immediate?: { status: number; body: string };
  /** Where the destination goes: both (default, as the reference picker), header or metadata only. */
  carrier?: 'both' | 'header' | 'metadata';
  /** Extra request headers to set. */
  setHeaders?: Record<string, string>;
  /** Replacement request body (sent as a streamed_response body mutation). */
  body?: string;
  /** Answer the headers message without a destination. */
  noDestination?: boolean;
}

export interface EppServer {
  port: number;
  seen: EppSeen[];
  behaviour: EppBehaviour;
  /** Streams opened since start. */
  streams: number;
  close(): Promise<void>;
}

function str(v: unknown): string {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('latin1');
  return typeof v === 'string' ? v : '';
}

function structString(s: PbStruct | undefined, ns: string, key: string): string[] | null {
  const v = s?.fields?.[ns]?.struct_value?.fields?.[key];
  if (v == null) return null;
  if (v.list_value != null) return (v.list_value.values ?? []).map((x) => x.string_value ?? '');
  return (v.string_value ?? '').split(',').filter((x) => x !== '');
}

function selfSigned(): { cert: Buffer; key: Buffer } {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: 'commonName', value: 'epp.test' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: Buffer.from(forge.pki.certificateToPem(cert)), key: Buffer.from(forge.pki.privateKeyToPem(keys.privateKey)) };
}

export async function startEppServer(o: { host?: string; port?: number; tls?: boolean; behaviour?: EppBehaviour } = {}): Promise<EppServer> {
  const server = new grpc.Server();
  const state: EppServer = { port: 0, seen: [], behaviour: o.behaviour ?? {}, streams: 0, close: async () => {} };
  const handler = (call: grpc.ServerDuplexStream<Record<string, unknown>, PbProcessingResponse>): void => {
    state.streams++;
    const seen: EppSeen = { headers: {}, body: '', subset: null, requestBodyMode: -1, served: null, responseStatus: null };
    state.seen.push(seen);
    const b = state.behaviour;
    let body: Buffer[] = [];
    const answer = (): void => {
      if (b.error !== undefined) { call.emit('error', { code: b.error, details: 'picker failure' }); return; }
      if (b.immediate !== undefined) {
        call.write({ immediate_response: { status: { code: b.immediate.status }, body: Buffer.from(b.immediate.body) } });
        call.end();
        return;
      }
      const eps = b.noDestination ? [] : b.pick ? b.pick(seen) : seen.subset !== null && seen.subset.length > 0 ? [seen.subset[0]!] : [];
      const dest = eps.join(',');
      const carrier = b.carrier ?? 'both';
      const set = [
        ...(dest !== '' && carrier !== 'metadata' ? [{ header: { key: 'x-gateway-destination-endpoint', raw_value: Buffer.from(dest) } }] : []),
        ...Object.entries(b.setHeaders ?? {}).map(([k, v]) => ({ header: { key: k, raw_value: Buffer.from(v) } })),
      ];
      const msg: PbProcessingResponse = { request_headers: { response: { header_mutation: { set_headers: set } } } };
      if (dest !== '' && carrier !== 'header') {
        msg.dynamic_metadata = { fields: { 'envoy.lb': { struct_value: { fields: { 'x-gateway-destination-endpoint': { string_value: dest } } } } } };
      }
      call.write(msg);
      if (hadBody) {
        call.write({
          request_body: {
            response: b.body !== undefined ? { body_mutation: { streamed_response: { body: Buffer.from(b.body), end_of_stream: true } } } : {},
          },
        });
      }
    };
    let hadBody = false;
    const later = (): void => { if (b.delayMs) setTimeout(answer, b.delayMs); else answer(); };
    call.on('data', (m: Record<string, unknown>) => {
      const rh = m.request_headers as { headers?: { headers?: { key: string; value?: string; raw_value?: Uint8Array }[] }; end_of_stream?: boolean } | null;
      const rb = m.request_body as { body?: Uint8Array; end_of_stream?: boolean } | null;
      const resp = m.response_headers as { headers?: { headers?: { key: string; raw_value?: Uint8Array }[] } } | null;
      if (rh != null) {
        for (const h of rh.headers?.headers ?? []) seen.headers[h.key] = h.raw_value != null && h.raw_value.length > 0 ? str(h.raw_value) : h.value ?? '';
        const md = m.metadata_context as { filter_metadata?: Record<string, PbStruct> } | null;
        seen.subset = structString({ fields: Object.fromEntries(Object.entries(md?.filter_metadata ?? {}).map(([k, v]) => [k, { struct_value: v }])) }, 'envoy.lb.subset_hint', 'x-gateway-destination-endpoint-subset');
        seen.requestBodyMode = (m.protocol_config as { request_body_mode?: number } | null)?.request_body_mode ?? -1;
        if (rh.end_of_stream) later();
      } else if (rb != null) {
        hadBody = true;
        if (rb.body != null) body.push(Buffer.from(rb.body));
        if (rb.end_of_stream) {
          seen.body = Buffer.concat(body).toString('utf8');
          body = [];
          later();
        }
      } else if (resp != null) {
        const md = m.metadata_context as { filter_metadata?: Record<string, PbStruct> } | null;
        seen.served = (md?.filter_metadata?.['envoy.lb']?.fields?.['x-gateway-destination-endpoint-served']?.string_value) ?? null;
        seen.responseStatus = str(resp.headers?.headers?.find((h) => h.key === ':status')?.raw_value);
        call.write({ response_headers: { response: {} } });
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => { /* the router cancelled */ });
  };
  server.addService({
    Process: {
      path: PROCESS_METHOD, requestStream: true, responseStream: true, originalName: 'Process',
      requestSerialize: (v: unknown) => Buffer.from(v as Uint8Array),
      requestDeserialize: (b: Buffer) => decodeRequest(b),
      responseSerialize: (v: PbProcessingResponse) => Buffer.from(encodeResponse(v)),
      responseDeserialize: (b: Buffer) => b,
    },
  } as grpc.ServiceDefinition, { Process: handler } as grpc.UntypedServiceImplementation);
  const creds = o.tls ? (() => { const c = selfSigned(); return grpc.ServerCredentials.createSsl(null, [{ cert_chain: c.cert, private_key: c.key }], false); })()
    : grpc.ServerCredentials.createInsecure();
  const host = o.host ?? '127.0.0.1';
  state.port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${o.port ?? 0}`, creds, (err, port) => (err ? reject(err) : resolve(port))));
  state.close = () => new Promise<void>((resolve) => { server.forceShutdown(); resolve(); });
  return state;
}
