/**
 * The admission.k8s.io/v1 AdmissionReview exchange, as a pure function of (path, content type,
 * body) so that the TLS server stays a thin shell. Paths, status codes and texts follow Kthena's
 * webhook (pkg/kthena-router/webhook/{validator,utils}.go): a request it cannot read is answered
 * 400 with Go's http.Error text, a readable one 200 with `response.allowed` and, when denied,
 * `response.status.message`.
 */
import { admissionErrors, type AdmissionKind } from '../resources/validate.js';
import { denialMessage } from './messages.js';
import { JWT_CLAIM_WITHOUT_AUTH, jwtClaimSource } from '../resources/sticky-auth.js';

export interface WebhookReply {
  status: number;
  contentType: string;
  body: string;
}

/** Webhook path -> kind, and the noun Kthena's decode error uses. */
export const ADMISSION_PATHS: Readonly<Record<string, { kind: AdmissionKind; noun: string }>> = Object.freeze({
  '/validate/modelroute': { kind: 'ModelRoute', noun: 'modelRoute' },
  '/validate/modelserver': { kind: 'ModelServer', noun: 'modelServer' },
  '/validate/externalmodelprovider': { kind: 'ExternalModelProvider', noun: 'externalModelProvider' },
});

const TEXT = 'text/plain; charset=utf-8';

/** Go's http.Error: the message plus a newline, as plain text. */
function httpError(status: number, message: string): WebhookReply {
  return { status, contentType: TEXT, body: `${message}\n` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a decision was, for the log and the metric. */
export interface AdmissionOutcome {
  kind?: AdmissionKind;
  allowed?: boolean;
  uid?: string;
  name?: string;
  namespace?: string;
}

/** What the router's live configuration adds to the resource rules. */
export interface AdmissionContext {
  /** JWT authentication is configured: without it a ModelRoute with a JWTClaim session source is denied. */
  jwtAuth?: boolean;
}

export function handleWebhookRequest(path: string, contentType: string | undefined, body: Buffer, outcome: AdmissionOutcome = {}, ctx: AdmissionContext = {}): WebhookReply {
  if (path === '/healthz') return { status: 200, contentType: TEXT, body: 'ok' };
  const route = ADMISSION_PATHS[path];
  // Go's ServeMux answer for an unknown path.
  if (route === undefined) return httpError(404, '404 page not found');
  outcome.kind = route.kind;

  const ct = contentType ?? '';
  if (ct !== 'application/json') return httpError(400, `invalid Content-Type, expected application/json, got ${ct}`);

  let review: unknown;
  try {
    if (body.length === 0) throw new Error('unexpected end of JSON input');
    review = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return httpError(400, `failed to decode body: ${(e as Error).message}`);
  }
  if (!isObject(review)) return httpError(400, 'failed to decode body: an AdmissionReview must be a JSON object');
  // Kthena dereferences request without a check (a nil request crashes the handler and the
  // connection drops); an explicit 400 tells the caller what is wrong.
  const request = review.request;
  if (!isObject(request)) return httpError(400, 'failed to decode body: the AdmissionReview has no request');
  const object = request.object;
  if (object === undefined || object === null) return httpError(400, `failed to decode ${route.noun}: unexpected end of JSON input`);
  if (!isObject(object)) return httpError(400, `failed to decode ${route.noun}: the object must be a JSON object`);

  const uid = typeof request.uid === 'string' ? request.uid : '';
  outcome.uid = uid;
  const meta = isObject(object.metadata) ? object.metadata : {};
  if (typeof meta.name === 'string') outcome.name = meta.name;
  const ns = typeof meta.namespace === 'string' ? meta.namespace : typeof request.namespace === 'string' ? request.namespace : undefined;
  if (ns !== undefined) outcome.namespace = ns;

  const errors = admissionErrors(route.kind, object);
  if (route.kind === 'ModelRoute' && ctx.jwtAuth !== true) {
    const at = jwtClaimSource(object.spec);
    if (at >= 0) errors.push({ field: `spec.sessionSticky.sources[${at}].type`, type: 'Invalid', value: 'JWTClaim', detail: JWT_CLAIM_WITHOUT_AUTH });
  }
  const response: Record<string, unknown> = { uid, allowed: errors.length === 0 };
  if (errors.length > 0) response.status = { metadata: {}, message: denialMessage(route.kind, errors) };
  outcome.allowed = errors.length === 0;
  return {
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({
      apiVersion: typeof review.apiVersion === 'string' ? review.apiVersion : 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response,
    }),
  };
}
