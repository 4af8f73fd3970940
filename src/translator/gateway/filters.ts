/** HTTPRoute filters: which the router honours, and their IR. */
import type { FiltersIR, HeaderModifierIR, PathModifierIR } from '../../ir/gateway.js';
import type { HTTPHeaderModifier, HTTPPathModifier, HTTPRouteFilter, HTTPRouteRule } from '../../resources/gateway.js';

/** Header names compare case-insensitively; only the first of equivalent names counts (spec). */
export function firstByName<T extends { name: string }>(list: T[], caseInsensitive: boolean): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const n = caseInsensitive ? x.name.toLowerCase() : x.name;
    if (seen.has(n)) return false;
    seen.add(n);
    return true;
  });
}

export function unsupportedFilter(rule: HTTPRouteRule): string | null {
  const supported = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']);
  const bad = rule.filters.find((f) => !supported.has(f.type));
  if (bad !== undefined) return `filter ${bad.type} is not supported`;
  for (const b of rule.backendRefs) {
    const bb = b.filters.find((f) => f.type !== 'RequestHeaderModifier' && f.type !== 'ResponseHeaderModifier');
    if (bb !== undefined) return `backendRef filter ${bb.type} is not supported (only header modifiers)`;
  }
  return null;
}

function headerModIR(h: HTTPHeaderModifier | undefined): HeaderModifierIR | null {
  if (h === undefined) return null;
  return {
    set: firstByName(h.set, true).map((x) => [x.name.toLowerCase(), x.value]),
    add: h.add.map((x) => [x.name.toLowerCase(), x.value]),
    remove: [...new Set(h.remove.map((x) => x.toLowerCase()))],
  };
}

function pathModIR(p: HTTPPathModifier | undefined): PathModifierIR | null {
  if (p === undefined) return null;
  return { type: p.type, value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '' };
}

export function filtersIR(filters: HTTPRouteFilter[]): FiltersIR {
  const out: FiltersIR = { requestHeaders: null, responseHeaders: null, redirect: null, rewrite: null };
  for (const f of filters) {
    if (f.type === 'RequestHeaderModifier') out.requestHeaders = headerModIR(f.requestHeaderModifier);
    else if (f.type === 'ResponseHeaderModifier') out.responseHeaders = headerModIR(f.responseHeaderModifier);
    else if (f.type === 'RequestRedirect' && f.requestRedirect !== undefined) {
      const r = f.requestRedirect;
      out.redirect = { scheme: r.scheme ?? '', hostname: r.hostname ?? '', port: r.port ?? 0, path: pathModIR(r.path), statusCode: r.statusCode };
    } else if (f.type === 'URLRewrite' && f.urlRewrite !== undefined) {
      out.rewrite = { hostname: f.urlRewrite.hostname ?? '', path: pathModIR(f.urlRewrite.path) };
    }
  }
  return out;
}
