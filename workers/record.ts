/**
 * Per-request facts that the access log and the metrics read when a request finishes. One object
 * per request (owned by the request's RequestState); fields hold primitives or strings that were
 * pre-joined when the snapshot was compiled, so finishing a request builds no label objects.
 */
export class RequestRecord {
  /** Epoch ms at arrival (access-log timestamp). */
  startEpochMs = 0;
  /** performance.now() at arrival. */
  t0 = 0;
  /** performance.now() when the first upstream attempt was dispatched (0: never). */
  tDispatch = 0;
  /** performance.now() when upstream response headers arrived (0: never). */
  tHeaders = 0;
  /** performance.now() when the response to the client ended. */
  tEnd = 0;

  method = '';
  path = '';
  protocol = 'HTTP/1.1';
  statusCode = 0;

  /** Kthena error type (access log `error=<type>:<msg>`, metric error_type), '' when none. */
  errorType = '';
  errorMessage = '';
  /**
   * error_type of the request metric when it differs from the access log's (Kthena logs
   * `input_rate_limit`/`output_rate_limit` but counts `rate_limit`); '' = errorType.
   */
  metricErrorType = '';
  /** Catalogue code of the failure, '' when none. */
  errorCode = '';
  /** 'router' | 'upstream' | '' */
  errorOrigin = '';

  /** The request body's `model` ('' when absent). */
  modelName = '';
  /** Metric `model` label: modelName when some ModelRoute knows it, else 'unknown'. */
  modelLabel = 'unknown';
  /** namespace/name, '' when none. */
  modelRoute = '';
  modelServer = '';
  /** Pod name only (as Kthena). */
  selectedPod = '';
  /** PD: the prefill pod of the pair that served (or was tried last); selectedPod is its decode pod. */
  prefillPod = '';
  requestId = '';
  /** 'model_server' | 'external_provider' | 'inference_pool' | '' (metrics print 'unresolved'). */
  backendType = '';
  backendName = '';
  upstreamModel = '';
  upstreamStatusCode = 0;
  /** 1-based index of the last attempt, 0 when none was made. */
  upstreamAttempts = 0;
  gateway = '';
  httpRoute = '';
  inferencePool = '';
  /** -1: unknown. */
  inputTokens = -1;
  outputTokens = -1;
  /** Whether this request produced an access-log line and request metrics (only /v1/*). */
  logged = true;
}
