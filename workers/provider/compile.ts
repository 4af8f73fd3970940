/**
 * An ExternalModelProvider of the snapshot, compiled once per generation for the request path.
 */
import type { ProviderIR } from '../../src/ir/types.js';
import type { UsageShape } from '../sse.js';
import { usageShapeOf } from './usage.js';

export interface CompiledProvider {
  /** namespace/name (metrics `backend_name`, messages). */
  key: string;
  type: 'OpenAI' | 'Anthropic';
  model: string;
  origin: string;
  basePath: string;
  insecureSkipVerify: boolean;
  /** spec.headers, flat [name, value, ...]. */
  headers: readonly string[];
  /** Lower-case names of spec.headers (a client header of the same name is replaced). */
  staticNames: ReadonlySet<string>;
  authHeader: string;
  authValue: string;
  notReady: string;
  /** Usage shapes by request path: chat/completions, and the Responses API. */
  usage: UsageShape;
  responsesUsage: UsageShape;
}

export function compileProvider(p: ProviderIR): CompiledProvider {
  const staticNames = new Set<string>();
  for (let i = 0; i < p.headers.length; i += 2) staticNames.add(p.headers[i].toLowerCase());
  return {
    key: p.key, type: p.type, model: p.model, origin: p.origin, basePath: p.basePath, insecureSkipVerify: p.insecureSkipVerify,
    headers: p.headers, staticNames, authHeader: p.authHeader, authValue: p.authValue, notReady: p.notReady,
    usage: usageShapeOf(p.type, ''), responsesUsage: usageShapeOf(p.type, '/v1/responses'),
  };
}
