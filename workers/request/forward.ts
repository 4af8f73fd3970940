/**
 * What is forwarded upstream and back: the request's headers without hop-by-hop ones, its path
 * (or the URLRewrite's), the body with `model` and `stream_options.include_usage` spliced in, and
 * the set of upstream response headers never copied to the client.
 */
import { applySplices, scanTopLevel, type Splice } from '../jsonedit.js';
import type { CompiledServer } from '../compile.js';
import type { RequestState } from './state.js';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'content-length', 'expect', 'http2-settings',
]);
/** uWS writes its own Date header and framing; forwarding the upstream's would duplicate them. */
export const HOP_BY_HOP_RESPONSE: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'date']);

/** The request's headers minus hop-by-hop ones (and those its Connection header names). */
export function upstreamHeaders(h: readonly string[]): string[] {
  const out: string[] = [];
  // Headers the client named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  let named: string[] | null = null;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'connection') {
      for (const t of h[i + 1].split(',')) {
        const n = t.trim().toLowerCase();
        if (n !== '' && n !== 'close' && n !== 'keep-alive') (named ??= []).push(n);
      }
    }
  }
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i];
    if (HOP_BY_HOP.has(k) || (named !== null && named.includes(k))) continue;
    out.push(k, h[i + 1]);
  }
  return out;
}

export function upstreamPathOf(st: RequestState): string {
  if (st.upstreamPath !== '') return st.upstreamPath;
  return st.query === '' ? st.rec.path : st.rec.path + '?' + st.query;
}

/**
 * The body sent upstream: `model` replaced by the ModelServer's spec.model (not for a LoRA
 * adapter), and a streaming request asked for usage (stream_options.include_usage) so the
 * router can count tokens; the usage-only chunk that adds is dropped on the way back (sse.ts).
 * `raw` is `text`'s bytes.
 */
export function buildUpstreamBody(st: RequestState, raw: Buffer, text: string, body: Record<string, unknown>, server: CompiledServer): Buffer | string {
  const splices: Splice[] = [];
  const scan = scanTopLevel(text, ['model', 'stream_options']);
  if (server.model !== '' && !st.isLora && body.model !== server.model) {
    const m = scan.members.get('model')!;
    splices.push({ start: m.valueStart, end: m.valueEnd, text: JSON.stringify(server.model) });
  }
  if (body.stream === true) {
    st.streamRequested = true;
    const so = body.stream_options;
    const includes = so !== null && typeof so === 'object' && (so as { include_usage?: unknown }).include_usage === true;
    if (!includes) {
      st.injectedUsage = true;
      const span = scan.members.get('stream_options');
      if (span !== undefined) {
        const merged = so !== null && typeof so === 'object' && !Array.isArray(so) ? { ...(so as object), include_usage: true } : { include_usage: true };
        splices.push({ start: span.valueStart, end: span.valueEnd, text: JSON.stringify(merged) });
      } else {
        splices.push({ start: scan.close, end: scan.close, text: (scan.count > 0 ? ',' : '') + '"stream_options":{"include_usage":true}' });
      }
    }
  }
  // Nothing to change (the common case with include_usage set or no streaming, and no spec.model
  // rewrite): the client's bytes go as they came, without a string round trip.
  return splices.length === 0 ? raw : applySplices(text, splices);
}
