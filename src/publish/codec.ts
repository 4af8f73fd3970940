/**
 * Snapshot wire format: the routing IR as protobuf (protobufjs reflection, schema below). Workers
 * decode only when the generation changes, so decode cost is per publish, not per request.
 * Field numbers are part of the shared-memory contract between a control thread and workers of
 * the same build only; they are never persisted, but keep them stable anyway.
 */
import protobuf from 'protobufjs';
import type { RoutingIR } from '../ir/types.js';

const schema = `
syntax = "proto3";
package kthena.ir;
message StringMatch { string type = 1; string value = 2; string name = 3; }
message RuleMatch { repeated StringMatch headers = 1; StringMatch uri = 2; bool hasUri = 3; string bodyModel = 4; bool hasBodyModel = 5; }
message Target { string kind = 1; string key = 2; sint32 server = 3; uint32 weight = 4; }
message Rule { string name = 1; RuleMatch match = 2; bool hasMatch = 3; repeated Target targets = 4; uint32 totalWeight = 5; }
message Route { string key = 1; string namespace = 2; string name = 3; string modelName = 4; repeated string loraAdapters = 5; bool hasParentRefs = 6; repeated Rule rules = 7; }
message Server { string key = 1; string namespace = 2; string name = 3; string model = 4; string engine = 5; uint32 port = 6; uint32 timeoutMs = 7; sint32 retryAttempts = 8; uint32 retryIntervalMs = 9; repeated uint32 endpoints = 10; string unsupported = 11; }
message Endpoint { string key = 1; string namespace = 2; string name = 3; string ip = 4; sint32 slot = 5; }
message Snapshot { repeated Route routes = 1; repeated Server servers = 2; repeated Endpoint endpoints = 3; }
`;

const root = protobuf.parse(schema, { keepCase: true }).root;
const SnapshotType = root.lookupType('kthena.ir.Snapshot');

interface WireStringMatch { type: string; value: string; name: string }
interface WireRule {
  name: string; hasMatch: boolean; totalWeight: number;
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
      })),
    })),
    servers: ir.servers,
    endpoints: ir.endpoints,
  };
  return SnapshotType.encode(SnapshotType.fromObject(wire)).finish();
}

export function decodeSnapshot(bytes: Uint8Array): RoutingIR {
  const msg = SnapshotType.decode(bytes);
  const o = SnapshotType.toObject(msg, { defaults: true, arrays: true }) as {
    routes: { key: string; namespace: string; name: string; modelName: string; loraAdapters: string[]; hasParentRefs: boolean; rules: WireRule[] }[];
    servers: RoutingIR['servers'];
    endpoints: RoutingIR['endpoints'];
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
      })),
    })),
    servers: o.servers.map((s) => ({ ...s, engine: s.engine as 'vLLM' })),
    endpoints: o.endpoints,
  };
}
