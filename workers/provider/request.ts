/**
 * What goes to an external provider, as Kthena builds it (volcano-sh/kthena:pkg/kthena-router/
 * providers/adapter.go, openai.go, anthropic.go): the paths each provider type serves, the URL
 * joined from spec.baseURL and the request path, the header allow-list with the provider's static
 * headers and credential, and the body with spec.model and include_usage spliced in. Pure
 * functions over the compiled provider, so each rule is unit-tested on its own.
 */
import { applySplices, scanTopLevel, type Splice } from '../jsonedit.js';
import type { CompiledProvider } from './compile.js';

const OPENAI_PATHS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/responses']);

/** The request path is one the provider type serves (Kthena answers 400 otherwise). */
export function supportsPath(type: 'OpenAI' | 'Anthropic', path: string): boolean {
  return type === 'Anthropic' ? path === '/v1/messages' : OPENAI_PATHS.has(path);
}

/**
 * Kthena's trimAPIVersionPrefix + appendProviderPath: the base path (trailing slashes removed)
 * joined to the request path. A leading `v1/` of the request path is dropped when the base path
 * already names the API version: OpenAI whenever the base URL has a path
 * (`https://h/api/v1` + `/v1/chat/completions` -> `/api/v1/chat/completions`), Anthropic only when
 * it ends in `/v1`. The client's query is kept.
 */
export function providerPath(type: 'OpenAI' | 'Anthropic', basePath: string, path: string, query: string): string {
  let suffix = path.replace(/^\/+/, '');
  const strip = type === 'Anthropic' ? basePath.endsWith('/v1') : basePath !== '';
  if (strip) {
    if (suffix.startsWith('v1/')) suffix = suffix.slice(3);
    else if (suffix === 'v1') suffix = '';
  }
  let joined: string;
  if (suffix === '') joined = basePath === '' ? '/' : basePath;
  else joined = basePath === '' ? '/' + suffix : basePath + '/' + suffix;
  return query === '' ? joined : joined + '?' + query;
}

/** Client headers a provider may see (Kthena's allowedForwardHeaders), lower case. */
export const FORWARDED_HEADERS: ReadonlySet<string> = new Set([
  'content-type', 'accept', 'x-request-id', 'traceparent', 'tracestate', 'baggage',
  'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
]);
/** Anthropic's protocol headers, forwarded to Anthropic providers only. */
export const ANTHROPIC_HEADERS: ReadonlySet<string> = new Set(['anthropic-version', 'anthropic-beta']);

/**
 * The upstream headers: the client's allow-listed headers (everything else, its Authorization and
 * x-api-key included, stays behind), then the provider's static headers (replacing a client
 * header of the same name), `content-type: application/json` when none, then the credential.
 * `client` is flat [name, value, ...] with lower-case names.
 */
export function providerHeaders(p: CompiledProvider, client: readonly string[]): string[] {
  const out: string[] = [];
  let contentType = false;
  for (let i = 0; i < client.length; i += 2) {
    const k = client[i];
    if (!FORWARDED_HEADERS.has(k) && !(p.type === 'Anthropic' && ANTHROPIC_HEADERS.has(k))) continue;
    if (p.staticNames.has(k)) continue;
    if (k === 'content-type') contentType = true;
    out.push(k, client[i + 1]);
  }
  const h = p.headers;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i].toLowerCase() === 'content-type') contentType = true;
    out.push(h[i], h[i + 1]);
  }
  if (!contentType) out.push('content-type', 'application/json');
  if (p.authHeader !== '') out.push(p.authHeader, p.authValue);
  return out;
}

/**
 * The upstream body: the client's bytes, with `model` replaced by spec.model and, for a streaming
 * OpenAI request other than the Responses API, `stream_options.include_usage: true` added so the
 * router can count tokens (Kthena's addOpenAIStreamingTokenUsage: other stream_options members
 * kept; a stream_options that is not an object, or an include_usage that is already true or not a
 * boolean, is left alone). `injected` tells the response path to withhold the usage-only event.
 */
export function providerBody(
  p: CompiledProvider, path: string, raw: Buffer, text: string, body: Record<string, unknown>,
): { body: Buffer | string; injected: boolean } {
  const splices: Splice[] = [];
  const scan = scanTopLevel(text, ['model', 'stream_options']);
  if (p.model !== '' && body.model !== p.model) {
    const m = scan.members.get('model');
    if (m !== undefined) splices.push({ start: m.valueStart, end: m.valueEnd, text: JSON.stringify(p.model) });
  }
  let injected = false;
  if (p.type === 'OpenAI' && path !== '/v1/responses' && body.stream === true) {
    const so = body.stream_options;
    const span = scan.members.get('stream_options');
    if (span === undefined) {
      injected = true;
      splices.push({ start: scan.close, end: scan.close, text: (scan.count > 0 ? ',' : '') + '"stream_options":{"include_usage":true}' });
    } else if (so !== null && typeof so === 'object' && !Array.isArray(so)) {
      const iu = (so as { include_usage?: unknown }).include_usage;
      if (iu === undefined || iu === false) {
        injected = true;
        splices.push({ start: span.valueStart, end: span.valueEnd, text: JSON.stringify({ ...(so as object), include_usage: true }) });
      }
    }
  }
  return { body: splices.length === 0 ? raw : applySplices(text, splices), injected };
}
