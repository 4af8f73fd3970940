/**
 * The subset of Envoy's external processing API (envoy.service.ext_proc.v3, data-plane-api) that
 * the Gateway API Inference Extension's Endpoint Picker protocol uses, written out from the public
 * .proto definitions: the messages and field numbers are the wire contract with any EPP (the GIE
 * reference picker, llm-d's). Only fields this router reads or writes are declared; protobufjs skips
 * the others on decode, so a newer EPP stays compatible. Enums are declared as int32 (same varint
 * encoding) so that a value added upstream never fails a decode.
 *
 * The schema is a string parsed once per thread at import (like publish/codec.ts), not .proto files
 * on disk: the image ships only dist/.
 */
import protobuf from 'protobufjs';

const GOOGLE = `
syntax = "proto3";
package google.protobuf;
message Struct { map<string, Value> fields = 1; }
message Value {
  oneof kind {
    int32 null_value = 1; double number_value = 2; string string_value = 3; bool bool_value = 4;
    Struct struct_value = 5; ListValue list_value = 6;
  }
}
message ListValue { repeated Value values = 1; }
`;

const CORE = `
syntax = "proto3";
package envoy.config.core.v3;
message HeaderValue { string key = 1; string value = 2; bytes raw_value = 3; }
// append (2, BoolValue) is deprecated upstream; append_action 2 = OVERWRITE_IF_EXISTS_OR_ADD.
message HeaderValueOption { HeaderValue header = 1; int32 append_action = 3; }
message HeaderMap { repeated HeaderValue headers = 1; }
message Metadata { map<string, google.protobuf.Struct> filter_metadata = 1; }
`;

const TYPE = `
syntax = "proto3";
package envoy.type.v3;
message HttpStatus { int32 code = 1; }
`;

const EXT_PROC = `
syntax = "proto3";
package envoy.service.ext_proc.v3;

service ExternalProcessor {
  rpc Process(stream ProcessingRequest) returns (stream ProcessingResponse);
}

// request_body_mode / response_body_mode: envoy.extensions.filters.http.ext_proc.v3.ProcessingMode
// BodySendMode (NONE 0, STREAMED 1, BUFFERED 2, BUFFERED_PARTIAL 3, FULL_DUPLEX_STREAMED 4).
message ProtocolConfiguration {
  int32 request_body_mode = 1;
  int32 response_body_mode = 2;
  bool send_body_without_waiting_for_header_response = 3;
}

message ProcessingRequest {
  oneof request {
    HttpHeaders request_headers = 2;
    HttpHeaders response_headers = 3;
    HttpBody request_body = 4;
    HttpBody response_body = 5;
    HttpTrailers request_trailers = 6;
    HttpTrailers response_trailers = 7;
  }
  envoy.config.core.v3.Metadata metadata_context = 8;
  bool observability_mode = 10;
  ProtocolConfiguration protocol_config = 11;
}

message HttpHeaders { envoy.config.core.v3.HeaderMap headers = 1; bool end_of_stream = 3; }
message HttpBody { bytes body = 1; bool end_of_stream = 2; }
message HttpTrailers { envoy.config.core.v3.HeaderMap trailers = 1; }

message ProcessingResponse {
  oneof response {
    HeadersResponse request_headers = 1;
    HeadersResponse response_headers = 2;
    BodyResponse request_body = 3;
    BodyResponse response_body = 4;
    TrailersResponse request_trailers = 5;
    TrailersResponse response_trailers = 6;
    ImmediateResponse immediate_response = 7;
  }
  google.protobuf.Struct dynamic_metadata = 8;
}

message HeadersResponse { CommonResponse response = 1; }
message BodyResponse { CommonResponse response = 1; }
message TrailersResponse { HeaderMutation header_mutation = 1; }

// status: CONTINUE 0, CONTINUE_AND_REPLACE 1.
message CommonResponse {
  int32 status = 1;
  HeaderMutation header_mutation = 2;
  BodyMutation body_mutation = 3;
  bool clear_route_cache = 5;
}

message HeaderMutation { repeated envoy.config.core.v3.HeaderValueOption set_headers = 1; repeated string remove_headers = 2; }

message StreamedBodyResponse { bytes body = 1; bool end_of_stream = 2; }
message BodyMutation {
  oneof mutation { bytes body = 1; bool clear_body = 2; StreamedBodyResponse streamed_response = 3; }
}

// body is a string in older data-plane-api versions: the same wire type, read as bytes here.
message ImmediateResponse { envoy.type.v3.HttpStatus status = 1; HeaderMutation headers = 2; bytes body = 3; string details = 5; }
`;

const root = new protobuf.Root();
for (const text of [GOOGLE, CORE, TYPE, EXT_PROC]) protobuf.parse(text, root, { keepCase: true });

export const ProcessingRequestType = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
export const ProcessingResponseType = root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
/** gRPC method path of the bidirectional stream. */
export const PROCESS_METHOD = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
export const BODY_MODE_NONE = 0;
export const BODY_MODE_FULL_DUPLEX_STREAMED = 4;
export const STATUS_CONTINUE_AND_REPLACE = 1;
export const APPEND_OVERWRITE_IF_EXISTS_OR_ADD = 2;

// Shapes of decoded messages (protobufjs plain objects with keepCase field names), as far as read.
export interface PbValue { null_value?: number; number_value?: number; string_value?: string; bool_value?: boolean; struct_value?: PbStruct; list_value?: { values?: PbValue[] } }
export interface PbStruct { fields?: Record<string, PbValue> }
export interface PbHeaderValue { key?: string; value?: string; raw_value?: Uint8Array }
export interface PbHeaderMutation { set_headers?: { header?: PbHeaderValue; append_action?: number }[]; remove_headers?: string[] }
export interface PbCommonResponse {
  status?: number;
  header_mutation?: PbHeaderMutation;
  body_mutation?: { body?: Uint8Array; clear_body?: boolean; streamed_response?: { body?: Uint8Array; end_of_stream?: boolean } };
}
export interface PbProcessingResponse {
  request_headers?: { response?: PbCommonResponse };
  response_headers?: { response?: PbCommonResponse };
  request_body?: { response?: PbCommonResponse };
  response_body?: { response?: PbCommonResponse };
  request_trailers?: object;
  response_trailers?: object;
  immediate_response?: { status?: { code?: number }; headers?: PbHeaderMutation; body?: Uint8Array; details?: string };
  dynamic_metadata?: PbStruct;
}

/** A google.protobuf.Struct value for an encoder: { fields: { k: { string_value } } }. */
export function stringStruct(entries: Readonly<Record<string, string>>): PbStruct {
  const fields: Record<string, PbValue> = {};
  for (const [k, v] of Object.entries(entries)) fields[k] = { string_value: v };
  return { fields };
}

/** Encodes a ProcessingRequest given as a plain object (keepCase names). */
export function encodeRequest(msg: Record<string, unknown>): Uint8Array {
  return ProcessingRequestType.encode(msg as unknown as protobuf.Message).finish();
}

export function decodeResponse(buf: Uint8Array): PbProcessingResponse {
  return ProcessingResponseType.decode(buf) as unknown as PbProcessingResponse;
}

export function decodeRequest(buf: Uint8Array): Record<string, unknown> {
  return ProcessingRequestType.decode(buf) as unknown as Record<string, unknown>;
}

export function encodeResponse(msg: PbProcessingResponse): Uint8Array {
  return ProcessingResponseType.encode(msg as unknown as protobuf.Message).finish();
}
