import { re2SyntaxError } from '../../shared/re2.js';
import { isIP } from 'node:net';
import type { GatewayIR } from '../../ir/gateway.js';
import { MAX_DURATION_MS } from './common.js';
import { entryOrder } from './ir.js';

/**
 * Every structural problem of a Gateway IR (indexes in range, sorted and unique keys, ports, weights,
 * regexes the workers will compile), gathered rather than stopping at the first. Non-empty means:
 * do not publish. The translator never produces one; this guards the encode/decode path.
 */
export function validateGatewayIR(ir: GatewayIR): string[] {
  const errs: string[] = [];
  const idx = (v: number, len: number): boolean => Number.isInteger(v) && v >= 0 && v < len;
  const portOk = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;
  ir.endpoints.forEach((e, i) => {
    const at = `endpoints[${i}] (${e.key})`;
    if (e.key !== `${e.namespace}/${e.pod}:${e.port}`) errs.push(`${at}: key must be namespace/pod:port`);
    if (i > 0 && !(ir.endpoints[i - 1]!.key < e.key)) errs.push(`${at}: endpoints must be sorted by key and unique`);
    if (isIP(e.ip) === 0) errs.push(`${at}: ip ${JSON.stringify(e.ip)} is not an IP address`);
    if (!portOk(e.port)) errs.push(`${at}: port ${e.port} out of range 1-65535`);
  });
  const endpointList = (at: string, list: readonly number[]): void => list.forEach((e, j) => {
    if (!idx(e, ir.endpoints.length)) errs.push(`${at}.endpoints[${j}] = ${e} is out of range`);
    else if (j > 0 && !(list[j - 1]! < e)) errs.push(`${at}.endpoints must be strictly ascending`);
  });
  ir.pools.forEach((p, i) => endpointList(`pools[${i}] (${p.key})`, p.endpoints));
  ir.rules.forEach((r, i) => {
    const at = `rules[${i}]`;
    if (!idx(r.route, ir.routes.length)) errs.push(`${at}: route ${r.route} is out of range`);
    let total = 0;
    r.backends.forEach((b, j) => {
      const bat = `${at}.backends[${j}] (${b.key})`;
      if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > 1000000) errs.push(`${bat}: weight ${b.weight} must be an integer in 0-1000000`);
      total += b.weight;
      if (b.kind === 'pool' && (!idx(b.pool, ir.pools.length) || ir.pools[b.pool]!.key !== b.key)) errs.push(`${bat}: pool ${b.pool} does not name ${b.key}`);
      if (b.kind !== 'pool' && b.pool !== -1) errs.push(`${bat}: pool must be -1 for a ${b.kind} backend`);
      if ((b.kind === 'invalid') !== (b.status !== 0)) errs.push(`${bat}: status ${b.status} does not fit kind ${b.kind}`);
      endpointList(bat, b.endpoints);
    });
    if (total !== r.totalWeight) errs.push(`${at}: totalWeight ${r.totalWeight} is not the sum of the weights (${total})`);
    for (const [name, v] of [['requestTimeoutMs', r.requestTimeoutMs], ['backendRequestTimeoutMs', r.backendRequestTimeoutMs]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_DURATION_MS) errs.push(`${at}: ${name} ${v} must be an integer in 0-${MAX_DURATION_MS}`);
    }
  });
  // The workers compile with RE2 (src/shared/re2.ts), so that is the engine to ask.
  const compiles = (re: string): boolean => re2SyntaxError(`^(?:${re})$`) === null;
  ir.listeners.forEach((l, i) => {
    const at = `listeners[${i}] (${l.gateway}/${l.name})`;
    if (!idx(l.gatewayIndex, ir.gateways.length) || ir.gateways[l.gatewayIndex]!.key !== l.gateway) errs.push(`${at}: gatewayIndex does not name ${l.gateway}`);
    if (!portOk(l.port)) errs.push(`${at}: port ${l.port} out of range 1-65535`);
    l.entries.forEach((e, j) => {
      const eat = `${at}.entries[${j}]`;
      if (!idx(e.rule, ir.rules.length)) errs.push(`${eat}: rule ${e.rule} is out of range`);
      else if (ir.rules[e.rule]!.route !== e.route) errs.push(`${eat}: route ${e.route} is not the route of rule ${e.rule}`);
      if (j > 0 && entryOrder(l.entries[j - 1]!, e) > 0) errs.push(`${eat}: entries are not in precedence order`);
      const regexes = [...(e.pathType === 'RegularExpression' ? [e.path] : []), ...[...e.headers, ...e.queryParams].filter((m) => m.type === 'RegularExpression').map((m) => m.value)];
      for (const re of regexes) if (!compiles(re)) errs.push(`${eat}: regex ${JSON.stringify(re)} does not compile`);
    });
  });
  const seenPorts = new Set<number>();
  ir.ports.forEach((p, i) => {
    const at = `ports[${i}] (${p.port})`;
    if (seenPorts.has(p.port) || (i > 0 && !(ir.ports[i - 1]!.port < p.port))) errs.push(`${at}: ports must be sorted and unique`);
    seenPorts.add(p.port);
    const targets = [...p.exact.map((x) => x[1]), ...p.wildcard.map((x) => x[1]), ...(p.any >= 0 ? [p.any] : [])];
    for (const t of targets) {
      if (!idx(t, ir.listeners.length)) errs.push(`${at}: listener ${t} is out of range`);
      else if (ir.listeners[t]!.port !== p.port || ir.listeners[t]!.protocol !== p.protocol) errs.push(`${at}: listener ${t} is not a ${p.protocol} listener on this port`);
    }
    if (targets.length === 0) errs.push(`${at}: no listener`);
  });
  return errs;
}
