/**
 * The error catalogue. Every failure the router can answer with, or record in the access log,
 * is one entry here: a stable `code` (never reused once retired), the HTTP status, the
 * OpenAI-style `error.type`, the Kthena access-log/metric `error_type`, and Kthena's message text
 * (so that anything grepping Kthena's messages keeps working).
 *
 * Callers match on `code`, never on `instanceof`: errors crossing `postMessage` are structured-
 * cloned and lose their class. `docs/errors.md` lists exactly these entries (a test keeps the two
 * identical in both directions).
 */

export interface CatalogEntry {
  /** Stable code, e.g. RTR_ERR_NO_ROUTE. */
  readonly code: string;
  /** HTTP status answered to the client (0: nothing can be answered, e.g. the client is gone). */
  readonly status: number;
  /** OpenAI-style error.type. */
  readonly type: 'invalid_request_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'service_unavailable_error' | 'timeout_error';
  /** Kthena's access-log / metric error_type. */
  readonly kthenaType: string;
  /** Default message (Kthena's text where Kthena has one); `%s` is replaced by the detail. */
  readonly message: string;
  /** One line for docs/errors.md. */
  readonly description: string;
}

function entry(e: CatalogEntry): CatalogEntry {
  return Object.freeze(e);
}

export const Catalog = Object.freeze({
  RTR_ERR_BAD_JSON: entry({
    code: 'RTR_ERR_BAD_JSON', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: '%s',
    description: 'The request body is not valid JSON; the message is the parser error (Kthena: the Go decoder error, e.g. "unexpected EOF", "EOF" for an empty body).',
  }),
  RTR_ERR_INVALID_BODY: entry({
    code: 'RTR_ERR_INVALID_BODY', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'invalid request body',
    description: 'The body is valid JSON but not a single JSON object.',
  }),
  RTR_ERR_BODY_TOO_LARGE: entry({
    code: 'RTR_ERR_BODY_TOO_LARGE', status: 413, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'request body too large: limit is %s bytes',
    description: 'The body (or its declared content-length) exceeds --max-body-bytes (default 32 MiB). Kthena has no limit.',
  }),
  RTR_ERR_JSON_TOO_DEEP: entry({
    code: 'RTR_ERR_JSON_TOO_DEEP', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'JSON nesting deeper than %s levels',
    description: 'The body nests arrays/objects deeper than 64 levels (the router re-serializes parts of the body and would otherwise overflow its stack).',
  }),
  RTR_ERR_BAD_HEADER: entry({
    code: 'RTR_ERR_BAD_HEADER', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'invalid request header: %s',
    description: 'A duplicate `Host`, a header name that is not an HTTP token, or a header value with a control character (0x00-0x1f except tab, 0x7f) or a character above 0xff: bytes the upstream client refuses, answered before any scheduling.',
  }),
  RTR_ERR_BAD_PATH: entry({
    code: 'RTR_ERR_BAD_PATH', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'invalid request path: %s',
    description: 'The path or query holds a byte outside printable ASCII (raw UTF-8, a space, a control character): RFC 3986 wants it percent-encoded.',
  }),
  RTR_ERR_BAD_FRAMING: entry({
    code: 'RTR_ERR_BAD_FRAMING', status: 400, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'ambiguous request framing: %s',
    description: 'Transfer-Encoding together with Content-Length, a Transfer-Encoding other than exactly `chunked`, several Transfer-Encoding headers, or a Content-Length that is not a decimal number (or differs between two headers): the request-smuggling shapes (RFC 9112 §6.1). The connection is closed after the answer; a request pipelined in the same read gets it dropped unanswered (docs/runtime.md).',
  }),
  RTR_ERR_MODEL_NOT_FOUND: entry({
    code: 'RTR_ERR_MODEL_NOT_FOUND', status: 404, type: 'invalid_request_error', kthenaType: 'request_parsing',
    message: 'model not found',
    description: 'The body has no `model`, or it is not a non-empty string (Kthena\'s answer, 404).',
  }),
  RTR_ERR_PROMPT_NOT_FOUND: entry({
    code: 'RTR_ERR_PROMPT_NOT_FOUND', status: 404, type: 'invalid_request_error', kthenaType: 'prompt_parsing',
    message: 'prompt not found',
    description: 'The body has none of `prompt` (string), `messages` (array) or `input`, or they have the wrong type.',
  }),
  RTR_ERR_NO_ROUTE: entry({
    code: 'RTR_ERR_NO_ROUTE', status: 404, type: 'not_found_error', kthenaType: 'route_not_found',
    message: 'route not found',
    description: 'No ModelRoute matches the request model (modelName, then LoRA adapters) and its headers/URI.',
  }),
  RTR_ERR_PATH_NOT_FOUND: entry({
    code: 'RTR_ERR_PATH_NOT_FOUND', status: 404, type: 'not_found_error', kthenaType: 'route_not_found',
    message: '404 page not found',
    description: 'A path the router does not serve (only /healthz, /readyz and /v1/* are served on the router port).',
  }),
  RTR_ERR_BACKEND_INVALID: entry({
    code: 'RTR_ERR_BACKEND_INVALID', status: 500, type: 'server_error', kthenaType: 'inference_pool_discovery',
    message: 'invalid backend: %s',
    description: 'Gateway API: the HTTPRoute rule chose a backendRef that is not found, not permitted (no ReferenceGrant) or of an unsupported kind; its share of the traffic gets 500, as the Gateway API specification requires. Also a rule with no backendRefs (or only zero weights).',
  }),
  RTR_ERR_BACKEND_NO_ENDPOINT: entry({
    code: 'RTR_ERR_BACKEND_NO_ENDPOINT', status: 503, type: 'service_unavailable_error', kthenaType: 'inference_pool_discovery',
    message: 'no ready endpoint for backend: %s',
    description: 'Gateway API: the chosen Service or InferencePool has no ready endpoint.',
  }),
  RTR_ERR_REQUEST_TIMEOUT: entry({
    code: 'RTR_ERR_REQUEST_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'proxy',
    message: 'request timed out after %s',
    description: 'Gateway API: HTTPRoute timeouts.request elapsed before the response was complete (a response already started is cut off).',
  }),
  RTR_ERR_SHED: entry({
    code: 'RTR_ERR_SHED', status: 429, type: 'rate_limit_error', kthenaType: 'inference_pool_selection',
    message: 'system saturated, sheddable request dropped',
    description: 'Inference Extension: the InferencePool is saturated (its engines\' queues or KV caches are full) and the request\'s InferenceObjective has a negative priority (sheddable), as GIE\'s admission answers.',
  }),
  RTR_ERR_QUEUE_FULL: entry({
    code: 'RTR_ERR_QUEUE_FULL', status: 429, type: 'rate_limit_error', kthenaType: 'inference_pool_selection',
    message: 'flow-control queue of InferencePool %s is full',
    description: 'Inference Extension: the InferencePool is saturated and this worker already holds the maximum number of waiting requests for it.',
  }),
  RTR_ERR_QUEUE_TIMEOUT: entry({
    code: 'RTR_ERR_QUEUE_TIMEOUT', status: 503, type: 'service_unavailable_error', kthenaType: 'inference_pool_selection',
    message: 'request timed out in the flow-control queue of InferencePool %s',
    description: 'Inference Extension: the request waited for room in a saturated InferencePool longer than the queue allows (60 s).',
  }),
  RTR_ERR_AUTH_MISSING: entry({
    code: 'RTR_ERR_AUTH_MISSING', status: 401, type: 'invalid_request_error', kthenaType: 'authentication',
    message: 'Authorization header missing or invalid',
    description: 'JWT authentication is on (routerConfiguration `auth.jwksUri`) and the /v1/* request has no `Authorization: Bearer <token>` header (scheme case-insensitive, exactly two fields). Kthena\'s message.',
  }),
  RTR_ERR_UNAUTHORIZED: entry({
    code: 'RTR_ERR_UNAUTHORIZED', status: 401, type: 'invalid_request_error', kthenaType: 'authentication',
    message: 'Unauthorized: %s',
    description: 'The bearer token failed verification: signature or key (`failed to parse jwt: ...`), `iss`, `aud`, `exp`, `nbf`, `iat` or `sub` (`failed to validate claims: ...`), or no JWKS could be fetched. Kthena\'s reasons; the token itself is never echoed.',
  }),
  RTR_ERR_API_KEY_MISSING: entry({
    code: 'RTR_ERR_API_KEY_MISSING', status: 401, type: 'invalid_request_error', kthenaType: 'authentication',
    message: 'API key missing',
    description: 'The target ModelServer has `apiKeyRules` and the request carries no key at any of their locations (the rule\'s header, `Authorization: Bearer <key>` by default, or query parameter). Not in Kthena (its API keys are a proposal).',
  }),
  RTR_ERR_API_KEY_INVALID: entry({
    code: 'RTR_ERR_API_KEY_INVALID', status: 401, type: 'invalid_request_error', kthenaType: 'authentication',
    message: 'Unauthorized: invalid API key',
    description: 'The key the request carries is in no API-key Secret the router holds (or was revoked). The key is never echoed or logged.',
  }),
  RTR_ERR_API_KEY_FORBIDDEN: entry({
    code: 'RTR_ERR_API_KEY_FORBIDDEN', status: 403, type: 'invalid_request_error', kthenaType: 'authorization',
    message: 'Forbidden: API key not allowed for this model',
    description: 'The key is valid (another ModelServer admits it) but none of the target ModelServer\'s `apiKeyRules` selects its Secret.',
  }),
  RTR_ERR_INPUT_RATE_LIMIT: entry({
    code: 'RTR_ERR_INPUT_RATE_LIMIT', status: 429, type: 'rate_limit_error', kthenaType: 'input_rate_limit',
    message: 'input token rate limit exceeded',
    description: 'The matched ModelRoute\'s `rateLimit.inputTokensPerUnit` budget for the request model holds fewer tokens than the request\'s input estimate (a request larger than the whole budget is always refused); also a global limit while its Redis cannot answer with --rate-limit-fail-closed. The request metric\'s error_type is `rate_limit`, as Kthena\'s.',
  }),
  RTR_ERR_OUTPUT_RATE_LIMIT: entry({
    code: 'RTR_ERR_OUTPUT_RATE_LIMIT', status: 429, type: 'rate_limit_error', kthenaType: 'output_rate_limit',
    message: 'output token rate limit exceeded',
    description: 'The matched ModelRoute\'s `rateLimit.outputTokensPerUnit` budget for the request model holds less than one token (earlier responses used it up). The request metric\'s error_type is `rate_limit`, as Kthena\'s.',
  }),
  RTR_ERR_FAIRNESS_QUEUE_TIMEOUT: entry({
    code: 'RTR_ERR_FAIRNESS_QUEUE_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'scheduling',
    message: 'Request processing timed out in queue',
    description: 'Fairness scheduling or session boost: the request waited in its model\'s queue longer than FAIRNESS_QUEUE_TIMEOUT (60 s) or SESSION_BOOST_TIMEOUT (30 s).',
  }),
  RTR_ERR_FAIRNESS_QUEUE_CLOSED: entry({
    code: 'RTR_ERR_FAIRNESS_QUEUE_CLOSED', status: 503, type: 'service_unavailable_error', kthenaType: 'scheduling',
    message: 'failed to enqueue request: queue closed',
    description: 'Fairness scheduling or session boost: the model\'s queue closed while the request waited (its last ModelRoute was removed, or the router is shutting down).',
  }),
  RTR_ERR_EPP_UNAVAILABLE: entry({
    code: 'RTR_ERR_EPP_UNAVAILABLE', status: 503, type: 'service_unavailable_error', kthenaType: 'inference_pool_selection',
    message: 'endpoint picker of InferencePool failed: %s',
    description: 'Inference Extension, --inference-pool-picker=external, failureMode FailClose: the pool\'s Endpoint Picker could not be used (its Service is missing or has no ready pod, the stream failed, it named no destination or only endpoints this router does not know).',
  }),
  RTR_ERR_EPP_TIMEOUT: entry({
    code: 'RTR_ERR_EPP_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'inference_pool_selection',
    message: 'endpoint picker of InferencePool %s did not answer in time',
    description: 'Inference Extension, --inference-pool-picker=external, failureMode FailClose: the pool\'s Endpoint Picker did not answer within --endpoint-picker-timeout (default 10s).',
  }),
  RTR_ERR_MODEL_SERVER_NOT_FOUND: entry({
    code: 'RTR_ERR_MODEL_SERVER_NOT_FOUND', status: 404, type: 'not_found_error', kthenaType: 'pod_discovery',
    message: "can't find model server: %s",
    description: 'The matched rule targets a ModelServer that does not exist (or is invalid) in the route\'s namespace.',
  }),
  RTR_ERR_PROVIDER_NOT_FOUND: entry({
    code: 'RTR_ERR_PROVIDER_NOT_FOUND', status: 404, type: 'not_found_error', kthenaType: 'provider_discovery',
    message: "can't find external model provider: %s",
    description: 'The matched rule targets an ExternalModelProvider that does not exist (or is invalid) in the route\'s namespace.',
  }),
  RTR_ERR_PROVIDER_NOT_READY: entry({
    code: 'RTR_ERR_PROVIDER_NOT_READY', status: 503, type: 'service_unavailable_error', kthenaType: 'provider_config',
    message: 'external provider %s is not ready',
    description: 'The ExternalModelProvider\'s credential does not resolve (its Secret is missing or lacks the credential label, the key is missing or empty, the value is not a valid header value) or its configuration is invalid: its `Ready` condition is False.',
  }),
  RTR_ERR_PROVIDER_PATH: entry({
    code: 'RTR_ERR_PROVIDER_PATH', status: 400, type: 'invalid_request_error', kthenaType: 'request_protocol',
    message: 'provider type %s',
    description: 'The request path is not one the provider type serves (OpenAI: /v1/chat/completions, /v1/completions, /v1/responses; Anthropic: /v1/messages). Kthena\'s message: `provider type "OpenAI" does not support path "/v1/embeddings"`.',
  }),
  RTR_ERR_PROVIDER_TRANSPORT: entry({
    code: 'RTR_ERR_PROVIDER_TRANSPORT', status: 502, type: 'server_error', kthenaType: 'upstream_transport',
    message: 'external provider %s request failed',
    description: 'The call to the ExternalModelProvider failed before its response headers: DNS, connection refused or reset, TLS handshake or certificate verification. Not retried (as Kthena).',
  }),
  RTR_ERR_PROVIDER_TIMEOUT: entry({
    code: 'RTR_ERR_PROVIDER_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'upstream_transport',
    message: 'external provider %s request failed',
    description: 'The ExternalModelProvider did not connect within 10 s or send its response headers within --upstream-timeout (default 5m). Kthena sets no timeout on provider calls.',
  }),
  RTR_ERR_UNSUPPORTED_FEATURE: entry({
    code: 'RTR_ERR_UNSUPPORTED_FEATURE', status: 501, type: 'server_error', kthenaType: 'pod_discovery',
    message: 'not supported by this router yet: %s',
    description: 'The matched ModelServer needs a feature this release does not serve; answered explicitly instead of routing differently from the manifest.',
  }),
  RTR_ERR_NO_ENDPOINT: entry({
    code: 'RTR_ERR_NO_ENDPOINT', status: 503, type: 'service_unavailable_error', kthenaType: 'pod_discovery',
    message: 'no available pods for model server: %s',
    description: 'The ModelServer selects no Running, Ready, non-terminating pod with an IP.',
  }),
  RTR_ERR_SCHEDULING: entry({
    code: 'RTR_ERR_SCHEDULING', status: 503, type: 'service_unavailable_error', kthenaType: 'scheduling',
    message: "can't schedule to target pod: %s",
    description: 'The scheduler left no candidate (e.g. every pod filtered out). Kthena answers 400 for this server-side condition; we answer 503.',
  }),
  RTR_ERR_UPSTREAM_ALL_FAILED: entry({
    code: 'RTR_ERR_UPSTREAM_ALL_FAILED', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'request to all pods failed',
    description: 'Every attempt (connect error, reset, header timeout or 5xx before any byte reached the client) failed.',
  }),
  RTR_ERR_PD_ALL_FAILED: entry({
    code: 'RTR_ERR_PD_ALL_FAILED', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'all prefill/decode attempts failed',
    description: 'Prefill/decode disaggregation: every prefill/decode pair tried failed (a prefill or decode leg answered non-2xx, timed out or could not connect) before any byte reached the client. Kthena answers 500; we answer 503, as for the aggregated path.',
  }),
  RTR_ERR_UPSTREAM_CONNECT: entry({
    code: 'RTR_ERR_UPSTREAM_CONNECT', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'upstream connect error: %s',
    description: 'One attempt could not connect (or the connection was reset before response headers); retried on the next endpoint. Seen in logs, not answered by itself.',
  }),
  RTR_ERR_UPSTREAM_HEADERS_TIMEOUT: entry({
    code: 'RTR_ERR_UPSTREAM_HEADERS_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'proxy',
    message: 'upstream did not answer within %s',
    description: 'One attempt exceeded ModelServer trafficPolicy.timeout before response headers; retried on the next endpoint.',
  }),
  RTR_ERR_UPSTREAM_IDLE_TIMEOUT: entry({
    code: 'RTR_ERR_UPSTREAM_IDLE_TIMEOUT', status: 504, type: 'timeout_error', kthenaType: 'proxy',
    message: 'upstream sent nothing for %s',
    description: 'After the response headers, no byte arrived from the pod for the idle timeout (trafficPolicy.timeout when set, else --upstream-idle-timeout, default 60 s): a hung engine. The response is ended (SSE: a final error event), the pod counts a failure for outlier detection.',
  }),
  RTR_ERR_UPSTREAM_PROTOCOL: entry({
    code: 'RTR_ERR_UPSTREAM_PROTOCOL', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'upstream response unusable: %s',
    description: 'One attempt\'s response broke HTTP/1.1 framing (conflicting Content-Length and Transfer-Encoding, a malformed or oversized head, an unexpected 101, bytes after the response) or the connection closed before its end; the connection is closed and, before any byte reached the client, the attempt is retried on the next endpoint.',
  }),
  RTR_ERR_UPSTREAM_STATUS: entry({
    code: 'RTR_ERR_UPSTREAM_STATUS', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'upstream answered %s',
    description: 'One attempt got a 5xx before any byte reached the client; retried on the next endpoint.',
  }),
  RTR_ERR_UPSTREAM_MIDSTREAM: entry({
    code: 'RTR_ERR_UPSTREAM_MIDSTREAM', status: 0, type: 'server_error', kthenaType: 'proxy',
    message: 'upstream failed after the response started: %s',
    description: 'The upstream failed after bytes reached the client; the client\'s response is ended (SSE streams get a final error event) and the failure is logged.',
  }),
  RTR_ERR_CLIENT_ABORTED: entry({
    code: 'RTR_ERR_CLIENT_ABORTED', status: 499, type: 'invalid_request_error', kthenaType: 'client_aborted',
    message: 'client closed the request',
    description: 'The client went away; the upstream request is aborted. Recorded in the access log and metrics with status 499 (nginx convention).',
  }),
  RTR_ERR_NOT_READY: entry({
    code: 'RTR_ERR_NOT_READY', status: 503, type: 'service_unavailable_error', kthenaType: 'route_not_found',
    message: 'router is not ready',
    description: 'No routing snapshot has been published yet, or this worker could not decode any published snapshot (a worker that fails to decode a later one keeps serving its previous snapshot).',
  }),
  RTR_ERR_SHUTTING_DOWN: entry({
    code: 'RTR_ERR_SHUTTING_DOWN', status: 503, type: 'service_unavailable_error', kthenaType: 'proxy',
    message: 'router is shutting down',
    description: 'The router is draining after SIGTERM and takes no new request on an open connection.',
  }),
  RTR_ERR_INTERNAL: entry({
    code: 'RTR_ERR_INTERNAL', status: 500, type: 'server_error', kthenaType: 'internal',
    message: 'internal error: %s',
    description: 'A bug in the router; the worker keeps serving and the error is logged with its stack.',
  }),
  RTR_ERR_CONFIG_INVALID: entry({
    code: 'RTR_ERR_CONFIG_INVALID', status: 0, type: 'invalid_request_error', kthenaType: 'config',
    message: 'invalid configuration: %s',
    description: 'A flag, environment variable or manifest is invalid; at start-up the router exits 2 with this message, later the last good configuration stays live.',
  }),
  RTR_ERR_NATIVE_UWS: entry({
    code: 'RTR_ERR_NATIVE_UWS', status: 0, type: 'server_error', kthenaType: 'internal',
    message: 'the native uWebSockets.js binary could not be loaded: %s',
    description: 'The router refuses to start on uWebSockets.js\'s slow JavaScript fallback.',
  }),
  RTR_ERR_LISTEN: entry({
    code: 'RTR_ERR_LISTEN', status: 0, type: 'server_error', kthenaType: 'internal',
    message: 'cannot listen on %s',
    description: 'A port could not be bound (in use, or no permission); reported in the log and at start-up as exit code 1.',
  }),
  RTR_ERR_WEBHOOK_CERT: entry({
    code: 'RTR_ERR_WEBHOOK_CERT', status: 0, type: 'server_error', kthenaType: 'webhook',
    message: 'webhook certificate unavailable: %s',
    description: 'The validating webhook found no usable certificate (Secret, files or self-generated); the webhook is not served, routing is unaffected.',
  }),
  RTR_ERR_KUBE_API: entry({
    code: 'RTR_ERR_KUBE_API', status: 0, type: 'server_error', kthenaType: 'internal',
    message: 'Kubernetes API request failed: %s',
    description: 'Kubernetes mode: a list, watch, status write or Lease request failed (unreachable API server, HTTP error); logged and retried with backoff, never fatal.',
  }),
});

export type ErrorCode = keyof typeof Catalog;

/** A router error: carries the catalogue entry's code and status, plus an optional detail. */
export class RouterError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: CatalogEntry['type'];
  readonly kthenaType: string;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const e = Catalog[code];
    super(formatMessage(e, detail), options);
    this.name = 'RouterError';
    this.code = code;
    this.status = e.status;
    this.type = e.type;
    this.kthenaType = e.kthenaType;
  }
}

export function formatMessage(e: CatalogEntry, detail?: string): string {
  return e.message.includes('%s') ? e.message.replace('%s', detail ?? '') : e.message;
}

/** The OpenAI-shaped body for a catalogued error. */
export function errorBody(code: ErrorCode, message: string): string {
  const e = Catalog[code];
  return JSON.stringify({ error: { message, type: e.type, code } });
}
