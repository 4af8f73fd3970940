/**
 * Snapshot wire format: the routing IR as protobuf (protobufjs reflection, schema below). Workers
 * decode only when the generation changes, so decode cost is per publish, not per request.
 * Field numbers are part of the shared-memory contract between a control thread and workers of
 * the same build only; they are never persisted, but keep them stable anyway.
 */
import protobuf from 'protobufjs';
import type { ApiKeysIR, AuthIR, ProviderIR, RoutingIR, SchedulerIR } from '../ir/types.js';
import { emptyGatewayIR, type GatewayIR } from '../ir/gateway.js';

const schema = `
syntax = "proto3";
package kthena.ir;
message StringMatch { string type = 1; string value = 2; string name = 3; }
message RuleMatch { repeated StringMatch headers = 1; StringMatch uri = 2; bool hasUri = 3; string bodyModel = 4; bool hasBodyModel = 5; }
message Target { string kind = 1; string key = 2; sint32 server = 3; uint32 weight = 4; }
// fallbackPlusOne: RuleIR.fallback + 1 (0: none).
message Rule { string name = 1; RuleMatch match = 2; bool hasMatch = 3; repeated Target targets = 4; uint32 totalWeight = 5; uint32 fallbackPlusOne = 6; }
message RateLimitBucket { string model = 1; bool output = 2; uint32 slot = 3; uint32 gen = 4; }
message RateLimit { uint32 inputTokensPerUnit = 1; uint32 outputTokensPerUnit = 2; uint32 unitSeconds = 3; string redisAddress = 4; repeated RateLimitBucket buckets = 5; }
message Route { string key = 1; string namespace = 2; string name = 3; string modelName = 4; repeated string loraAdapters = 5; bool hasParentRefs = 6; repeated Rule rules = 7; RateLimit rateLimit = 8; bool hasRateLimit = 9; string sessionStickyJson = 20; }
message PdGroup { string name = 1; repeated uint32 decode = 2; repeated uint32 prefill = 3; }
message Server { string key = 1; string namespace = 2; string name = 3; string model = 4; string engine = 5; uint32 port = 6; uint32 timeoutMs = 7; sint32 retryAttempts = 8; uint32 retryIntervalMs = 9; repeated uint32 endpoints = 10; string unsupported = 11; repeated PdGroup pdGroups = 12; string connector = 13; }
message Endpoint { string key = 1; string namespace = 2; string name = 3; string ip = 4; sint32 slot = 5; sint32 gen = 6; uint32 startedAtSec = 7; }
message ScorePlugin { string name = 1; uint32 weight = 2; }
message PluginArgs { map<string, double> values = 1; }
message Scheduler {
  repeated string filters = 1; repeated ScorePlugin scores = 2;
  // 3-12 held one field per plugin argument before plugins owned their arguments.
  reserved 3 to 12;
  map<string, PluginArgs> args = 13;
}
message Snapshot {
  repeated Route routes = 1; repeated Server servers = 2; repeated Endpoint endpoints = 3;
  Scheduler scheduler = 4; repeated string modelNames = 5; repeated sint32 modelIds = 6;
  string gatewayJson = 7;
  string authJson = 8;
  string apiKeysJson = 9;
  // ExternalModelProviders (src/ir/types.ts ProviderIR): few, small, JSON like the Gateway IR.
  string providersJson = 16;
}
`;

const root = protobuf.parse(schema, { keepCase: true }).root;
const SnapshotType = root.lookupType('kthena.ir.Snapshot');

interface WireStringMatch { type: string; value: string; name: string }
interface WireRule {
  name: string; hasMatch: boolean; totalWeight: number; fallbackPlusOne: number;
  match?: { headers: WireStringMatch[]; uri?: WireStringMatch; hasUri: boolean; bodyModel: string; hasBodyModel: boolean };
  targets: { kind: string; key: string; server: number; weight: number }[];
}

export function encodeSnapshot(ir: RoutingIR): Uint8Array {
  const wire = {
    routes: ir.routes.map((r) => ({
      key: r.key, namespace: r.namespace, name: r.name, modelName: r.modelName,
      loraAdapters: r.loraAdapters, hasParentRefs: r.hasParentRefs,
      rules: r.rules.map((rule) => ({
        name: rule.name,
        hasMatch: rule.match !== null,
        match: rule.match === null ? undefined : {
          headers: rule.match.headers.map((h) => ({ type: h.type, value: h.value, name: h.name })),
          uri: rule.match.uri ?? undefined,
          hasUri: rule.match.uri !== null,
          bodyModel: rule.match.bodyModel ?? '',
          hasBodyModel: rule.match.bodyModel !== null,
        },
        targets: rule.targets.map((t) => ({ kind: t.kind, key: t.key, server: t.server, weight: t.weight })),
        totalWeight: rule.totalWeight,
        fallbackPlusOne: rule.fallback === undefined ? 0 : rule.fallback + 1,
      })),
      hasRateLimit: r.rateLimit != null,
      rateLimit: r.rateLimit == null ? undefined : {
        ...r.rateLimit,
        buckets: r.rateLimit.buckets.map((b) => ({ model: b.model, output: b.direction === 'output', slot: b.slot, gen: b.gen })),
      },
      sessionStickyJson: r.sessionSticky === undefined ? '' : JSON.stringify(r.sessionSticky),
    })),
    servers: ir.servers,
    endpoints: ir.endpoints,
    scheduler: schedulerToWire(ir.scheduler),
    modelNames: ir.modelNames,
    modelIds: ir.modelIds,
    // The Gateway IR is deep and changes rarely; JSON keeps one schema (src/ir/gateway.ts) for it.
    gatewayJson: JSON.stringify(ir.gateway),
    authJson: ir.auth ? JSON.stringify(ir.auth) : '',
    apiKeysJson: ir.apiKeys ? JSON.stringify(ir.apiKeys) : '',
    providersJson: (ir.providers ?? []).length > 0 ? JSON.stringify(ir.providers) : '',
  };
  return SnapshotType.encode(SnapshotType.fromObject(wire)).finish();
}

export function decodeSnapshot(bytes: Uint8Array): RoutingIR {
  const msg = SnapshotType.decode(bytes);
  const o = SnapshotType.toObject(msg, { defaults: true, arrays: true }) as {
    routes: {
      key: string; namespace: string; name: string; modelName: string; loraAdapters: string[]; hasParentRefs: boolean; rules: WireRule[];
      hasRateLimit: boolean; rateLimit?: WireRateLimit; sessionStickyJson: string;
    }[];
    servers: RoutingIR['servers'];
    endpoints: RoutingIR['endpoints'];
    scheduler: WireScheduler;
    modelNames: string[];
    modelIds: number[];
    gatewayJson: string;
    authJson: string;
    apiKeysJson: string;
    providersJson: string;
  };
  return {
    routes: o.routes.map((r) => ({
      key: r.key, namespace: r.namespace, name: r.name, modelName: r.modelName,
      loraAdapters: r.loraAdapters, hasParentRefs: r.hasParentRefs,
      rules: r.rules.map((rule) => ({
        name: rule.name,
        match: !rule.hasMatch || !rule.match ? null : {
          headers: rule.match.headers.map((h) => ({ type: h.type as 'exact', value: h.value, name: h.name })),
          uri: rule.match.hasUri && rule.match.uri ? { type: rule.match.uri.type as 'exact', value: rule.match.uri.value } : null,
          bodyModel: rule.match.hasBodyModel ? rule.match.bodyModel : null,
        },
        targets: rule.targets.map((t) => ({ kind: t.kind as 'server', key: t.key, server: t.server, weight: t.weight })),
        totalWeight: rule.totalWeight,
        ...(rule.fallbackPlusOne > 0 ? { fallback: rule.fallbackPlusOne - 1 } : {}),
      })),
      rateLimit: !r.hasRateLimit || !r.rateLimit ? null : {
        inputTokensPerUnit: r.rateLimit.inputTokensPerUnit, outputTokensPerUnit: r.rateLimit.outputTokensPerUnit,
        unitSeconds: r.rateLimit.unitSeconds, redisAddress: r.rateLimit.redisAddress,
        buckets: r.rateLimit.buckets.map((b) => ({ model: b.model, direction: b.output ? 'output' as const : 'input' as const, slot: b.slot, gen: b.gen })),
      },
      ...(r.sessionStickyJson === '' ? {} : { sessionSticky: JSON.parse(r.sessionStickyJson) as RoutingIR['routes'][number]['sessionSticky'] }),
    })),
    servers: o.servers.map((s) => ({ ...s, engine: s.engine as 'vLLM', connector: s.connector as RoutingIR['servers'][number]['connector'] })),
    ...(o.providersJson === '' ? {} : { providers: JSON.parse(o.providersJson) as ProviderIR[] }),
    endpoints: o.endpoints,
    scheduler: schedulerFromWire(o.scheduler),
    modelNames: o.modelNames,
    modelIds: o.modelIds,
    gateway: o.gatewayJson === '' ? emptyGatewayIR() : JSON.parse(o.gatewayJson) as GatewayIR,
    ...(o.authJson === '' ? {} : { auth: JSON.parse(o.authJson) as AuthIR }),
    ...(o.apiKeysJson === '' ? {} : { apiKeys: JSON.parse(o.apiKeysJson) as ApiKeysIR }),
  };
}

interface WireRateLimit {
  inputTokensPerUnit: number; outputTokensPerUnit: number; unitSeconds: number; redisAddress: string;
  buckets: { model: string; output: boolean; slot: number; gen: number }[];
}

interface WireScheduler {
  filters: string[];
  scores: { name: string; weight: number }[];
  args: Record<string, { values: Record<string, number> }>;
}

function schedulerToWire(s: SchedulerIR): WireScheduler {
  const args: WireScheduler['args'] = {};
  for (const [name, values] of Object.entries(s.args)) args[name] = { values: { ...values } };
  return { filters: s.filters, scores: s.scores, args };
}

function schedulerFromWire(w: WireScheduler): SchedulerIR {
  const args: Record<string, Readonly<Record<string, number>>> = {};
  for (const [name, a] of Object.entries(w.args)) args[name] = a.values;
  return { filters: w.filters, scores: w.scores.map((p) => ({ name: p.name, weight: p.weight })), args };
}
