import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import {
  KTHENA_API_VERSION, modelRouteSpecSchema, modelServerSpecSchema, normalizeTimestamp,
  parseManifestObject, regexError, toResourceSet,
} from '../../src/resources/validate.js';
import { parseDurationMs } from '../../src/util/duration.js';
import type { AnyResource, ModelRoute, ModelServer, Pod } from '../../src/resources/types.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const NOW = '2025-06-01T12:00:00Z';
const ctx = (previous?: AnyResource) => ({ file: 'test.yaml', now: () => NOW, previous });

type Obj = Record<string, unknown>;

function route(spec: Obj, metadata: Obj = {}): Obj {
  return { apiVersion: KTHENA_API_VERSION, kind: 'ModelRoute', metadata: { name: 'r', ...metadata }, spec };
}
const target = (extra: Obj = {}): Obj => ({ modelServerName: 's', ...extra });
const simpleSpec = (extra: Obj = {}): Obj => ({ modelName: 'm', rules: [{ targetModels: [target()] }], ...extra });

function server(spec: Obj, metadata: Obj = {}): Obj {
  return { apiVersion: KTHENA_API_VERSION, kind: 'ModelServer', metadata: { name: 's', ...metadata }, spec };
}
const serverSpec = (extra: Obj = {}): Obj => ({
  inferenceEngine: 'vLLM', workloadSelector: { matchLabels: { app: 'a' } }, workloadPort: { port: 8000 }, ...extra,
});

function pod(status: Obj, metadata: Obj = {}, spec?: Obj): Obj {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { app: 'a' }, ...metadata }, ...(spec ? { spec } : {}), status };
}

/** [field, message] pairs of a rejected object (asserting it was rejected). */
function rejected(raw: unknown, previous?: AnyResource): [string, string][] {
  const r = parseManifestObject(raw, ctx(previous));
  expect(r.resource).toBeUndefined();
  expect(r.problems.every((p) => p.severity === 'rejected')).toBe(true);
  return r.problems.map((p) => [p.field, p.message]);
}

function accepted<T extends AnyResource>(raw: unknown, previous?: AnyResource): T {
  const r = parseManifestObject(raw, ctx(previous));
  expect(r.problems).toEqual([]);
  expect(r.resource).toBeDefined();
  return r.resource as T;
}

const SUBDOMAIN = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DURATION = 'must be a non-negative duration such as "10s", "1m30s" or "500ms"';

describe('ModelRoute validation rejects what the API server and the Kthena webhook reject', () => {
  const cases: [string, Obj, [string, string][]][] = [
    ['neither modelName nor loraAdapters (CEL)', route({ rules: [{ targetModels: [target()] }] }),
      [['spec', 'ModelName and LoraAdapters cannot both be empty']]],
    ['empty modelName and empty loraAdapters (CEL)', route({ modelName: '', loraAdapters: [], rules: [{ targetModels: [target()] }] }),
      [['spec', 'ModelName and LoraAdapters cannot both be empty']]],
    ['both target kinds set (CEL)', route(simpleSpec({ rules: [{ targetModels: [target(), target({ externalModelProviderName: 'p' })] }] })),
      [['spec.rules[0].targetModels[1]', 'exactly one of modelServerName or externalModelProviderName must be set']]],
    ['no target kind set (CEL)', route(simpleSpec({ rules: [{ targetModels: [{ weight: 10 }] }] })),
      [['spec.rules[0].targetModels[0]', 'exactly one of modelServerName or externalModelProviderName must be set']]],
    ['empty-string target names count as unset (CEL)', route(simpleSpec({ rules: [{ targetModels: [{ modelServerName: '', externalModelProviderName: '' }] }] })),
      [['spec.rules[0].targetModels[0]', 'exactly one of modelServerName or externalModelProviderName must be set']]],
    ['lora route to an external provider (webhook)', route({ loraAdapters: ['a'], rules: [{ targetModels: [{ externalModelProviderName: 'p' }] }] }),
      [['spec.rules[0].targetModels[0].externalModelProviderName', 'lora routes must target modelServerName']]],
    ['empty lora adapter name (webhook)', route({ loraAdapters: ['a', ''], rules: [{ targetModels: [target()] }] }),
      [['spec.loraAdapters[1]', 'lora adapter name cannot be an empty string']]],
    ['weights summing to zero (webhook)', route(simpleSpec({ rules: [{ targetModels: [target({ weight: 0 }), target({ weight: 0 })] }] })),
      [['spec.rules[0].targetModels', 'total weight must be greater than zero']]],
    ['weight above 100', route(simpleSpec({ rules: [{ targetModels: [target(), target({ weight: 101 })] }] })),
      [['spec.rules[0].targetModels[1].weight', 'Invalid value: 101: must be less than or equal to 100']]],
    ['negative weight', route(simpleSpec({ rules: [{ targetModels: [target({ weight: -1 })] }] })),
      [['spec.rules[0].targetModels[0].weight', 'Invalid value: -1: must be greater than or equal to 0']]],
    ['weight written as a string', route(simpleSpec({ rules: [{ targetModels: [target({ weight: '70' })] }] })),
      [['spec.rules[0].targetModels[0].weight', 'Invalid value: "string": must be of type integer']]],
    ['fractional weight', route(simpleSpec({ rules: [{ targetModels: [target({ weight: 7.5 })] }] })),
      [['spec.rules[0].targetModels[0].weight', 'Invalid value: "number": must be of type integer']]],
    ['missing rules', route({ modelName: 'm' }), [['spec.rules', 'Required value']]],
    ['rules not a list', route({ modelName: 'm', rules: { a: 1 } }), [['spec.rules', 'Invalid value: "object": must be of type array']]],
    ['rule without targetModels', route({ modelName: 'm', rules: [{ name: 'x' }] }), [['spec.rules[0].targetModels', 'Required value']]],
    ['rule with an empty targetModels list', route({ modelName: 'm', rules: [{ targetModels: [] }] }),
      [['spec.rules[0].targetModels', 'Invalid value: 0: must have at least 1 items']]],
    ['17 rules', route({ modelName: 'm', rules: Array.from({ length: 17 }, () => ({ targetModels: [target()] })) }),
      [['spec.rules', 'Too many: 17: must have at most 16 items']]],
    ['17 targets', route({ modelName: 'm', rules: [{ targetModels: Array.from({ length: 17 }, () => target()) }] }),
      [['spec.rules[0].targetModels', 'Too many: 17: must have at most 16 items']]],
    ['11 lora adapters', route({ loraAdapters: Array.from({ length: 11 }, (_, i) => `l${i}`), rules: [{ targetModels: [target()] }] }),
      [['spec.loraAdapters', 'Too many: 11: must have at most 10 items']]],
    ['modelName not a string', route(simpleSpec({ modelName: 42 })), [['spec.modelName', 'Invalid value: "integer": must be of type string']]],
    ['unknown field in spec', route(simpleSpec({ modelname: 'typo' })), [['spec.modelname', 'unknown field "modelname"']]],
    ['unknown field deep in a target', route(simpleSpec({ rules: [{ targetModels: [{ modelServer: 's' }] }] })),
      [['spec.rules[0].targetModels[0].modelServer', 'unknown field "modelServer"']]],
    ['unknown field in a string match', route(simpleSpec({ rules: [{ modelMatch: { uri: { suffix: '/x' } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.uri.suffix', 'unknown field "suffix"']]],
    ['lookahead in a header regex', route(simpleSpec({ rules: [{ modelMatch: { headers: { 'user-type': { regex: '^(?!free)' } } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.headers[user-type].regex', 'error parsing regexp: invalid or unsupported Perl syntax: `(?!`']]],
    ['lookbehind in a uri regex', route(simpleSpec({ rules: [{ modelMatch: { uri: { regex: '(?<=/v1)/chat' } }, targetModels: [target()] }] })),
      // Go >= 1.22 reads `(?<` as a named group (regexp/syntax parsePerlFlags), hence its wording.
      [['spec.rules[0].modelMatch.uri.regex', 'error parsing regexp: invalid named capture: `(?<=/v1)/chat`']]],
    ['backreference in a header regex', route(simpleSpec({ rules: [{ modelMatch: { headers: { x: { regex: '(a)\\1' } } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.headers[x].regex', 'error parsing regexp: invalid escape sequence: `\\1`']]],
    ['uri regex that does not compile', route(simpleSpec({ rules: [{ modelMatch: { uri: { regex: '(' } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.uri.regex', 'error parsing regexp: missing closing ): `(`']]],
    ['an empty header name', route(simpleSpec({ rules: [{ modelMatch: { headers: { '': { exact: 'x' } } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.headers', 'header name must not be empty']]],
    ['header match not an object', route(simpleSpec({ rules: [{ modelMatch: { headers: { x: 'premium' } }, targetModels: [target()] }] })),
      [['spec.rules[0].modelMatch.headers[x]', 'Invalid value: "string": must be of type object']]],
    ['rate limit unit outside the enum', route(simpleSpec({ rateLimit: { unit: 'week', inputTokensPerUnit: 1 } })),
      [['spec.rateLimit.unit', 'Unsupported value: "week": supported values: "second", "minute", "hour", "day", "month"']]],
    ['rate limit of zero tokens', route(simpleSpec({ rateLimit: { inputTokensPerUnit: 0 } })),
      [['spec.rateLimit.inputTokensPerUnit', 'Invalid value: 0: must be greater than or equal to 1']]],
    ['rate limit above int32', route(simpleSpec({ rateLimit: { outputTokensPerUnit: 2 ** 31 } })),
      [['spec.rateLimit.outputTokensPerUnit', 'Invalid value: 2147483648: must be a 32-bit integer']]],
    ['global rate limit without a redis address', route(simpleSpec({ rateLimit: { inputTokensPerUnit: 1, global: { redis: {} } } })),
      [['spec.rateLimit.global.redis.address', 'Required value']]],
    ['sessionSticky with empty sources (proposal E2E-SS-10)', route(simpleSpec({ sessionSticky: { sources: [] } })),
      [['spec.sessionSticky.sources', 'Invalid value: 0: must have at least 1 items']]],
    ['sessionSticky without sources', route(simpleSpec({ sessionSticky: { sessionAffinitySeconds: 60 } })),
      [['spec.sessionSticky.sources', 'Required value']]],
    ['sessionSticky with a zero TTL', route(simpleSpec({ sessionSticky: { sessionAffinitySeconds: 0, sources: [{ type: 'Header', name: 'x' }] } })),
      [['spec.sessionSticky.sessionAffinitySeconds', 'Invalid value: 0: must be greater than or equal to 1']]],
    ['sessionSticky source of an unknown type', route(simpleSpec({ sessionSticky: { sources: [{ type: 'Body', name: 'x' }] } })),
      [['spec.sessionSticky.sources[0].type', 'Unsupported value: "Body": supported values: "Header", "Query", "Cookie", "JWTClaim"']]],
    ['parentRef without a name', route(simpleSpec({ parentRefs: [{ namespace: 'gw' }] })), [['spec.parentRefs[0].name', 'Required value']]],
    ['parentRef namespace not a DNS label', route(simpleSpec({ parentRefs: [{ name: 'gw', namespace: 'Bad_NS' }] })),
      [['spec.parentRefs[0].namespace', 'Invalid value: "Bad_NS": should match \'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$\'']]],
    ['parentRef port out of range', route(simpleSpec({ parentRefs: [{ name: 'gw', port: 0 }] })),
      [['spec.parentRefs[0].port', 'Invalid value: 0: must be greater than or equal to 1']]],
    ['no spec', { apiVersion: KTHENA_API_VERSION, kind: 'ModelRoute', metadata: { name: 'r' } }, [['spec', 'Required value']]],
    ['spec not an object', route('nope' as unknown as Obj), [['spec', 'Invalid value: "string": must be of type object']]],
    ['no metadata.name', route(simpleSpec(), { name: undefined }), [['metadata.name', 'Required value: name is required']]],
    ['metadata.name not a DNS subdomain', route(simpleSpec(), { name: 'My_Route' }), [['metadata.name', `Invalid value: "My_Route": ${SUBDOMAIN}`]]],
    ['metadata.namespace not a DNS label', route(simpleSpec(), { namespace: 'a.b' }),
      [['metadata.namespace', "Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]]],
    ['unknown metadata field', route(simpleSpec(), { label: { a: 'b' } }), [['metadata.label', 'unknown field "label"']]],
    ['invalid label key', route(simpleSpec(), { labels: { 'bad key': 'v' } }),
      [['metadata.labels', "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]]],
    ['label value not a string', route(simpleSpec(), { labels: { v: 1 } }), [['metadata.labels[v]', 'Invalid value: "integer": must be of type string']]],
    ['invalid creationTimestamp', route(simpleSpec(), { creationTimestamp: 'yesterday' }),
      [['metadata.creationTimestamp', 'Invalid value: "yesterday": must be an RFC 3339 timestamp']]],
    ['unknown top-level field', { ...route(simpleSpec()), specs: {} }, [['specs', 'unknown field "specs"']]],
    ['several schema errors at once, all reported', route({ modelName: 1, rules: [{ targetModels: [target({ weight: 500 })] }], extra: true }),
      [['spec.modelName', 'Invalid value: "integer": must be of type string'],
        ['spec.rules[0].targetModels[0].weight', 'Invalid value: 500: must be less than or equal to 100'],
        ['spec.extra', 'unknown field "extra"']]],
    ['webhook rules are not run on an object the schema already refuses', route({ loraAdapters: [''], rules: [{ targetModels: [target({ weight: 101 })] }] }),
      [['spec.rules[0].targetModels[0].weight', 'Invalid value: 101: must be less than or equal to 100']]],
  ];
  it.each(cases)('rejects %s', (_name, raw, expected) => {
    expect(rejected(raw)).toEqual(expected);
  });

  it('rejects a new modelName for an existing route (CEL transition rule)', () => {
    const previous = accepted<ModelRoute>(route(simpleSpec()));
    expect(rejected(route(simpleSpec({ modelName: 'other' })), previous)).toEqual([['spec.modelName', 'modelName is immutable']]);
  });

  it('lets modelName be set or removed when one side has none (transition rules need both)', () => {
    const loraOnly = accepted<ModelRoute>(route({ loraAdapters: ['a'], rules: [{ targetModels: [target()] }] }));
    accepted(route({ modelName: 'm', loraAdapters: ['a'], rules: [{ targetModels: [target()] }] }), loraOnly);
    const named = accepted<ModelRoute>(route(simpleSpec({ loraAdapters: ['a'] })));
    accepted(route({ loraAdapters: ['a'], rules: [{ targetModels: [target()] }] }), named);
  });

  it('puts file, kind, namespace and name on every problem', () => {
    const r = parseManifestObject(route(simpleSpec({ modelName: 1 }), { namespace: 'team-a', name: 'x' }), { file: 'dir/a.yaml', now: () => NOW });
    expect(r.problems).toEqual([{
      kind: 'ModelRoute', namespace: 'team-a', name: 'x', file: 'dir/a.yaml', field: 'spec.modelName',
      message: 'Invalid value: "integer": must be of type string', severity: 'rejected',
    }]);
  });
});

describe('ModelServer validation', () => {
  const cases: [string, Obj, [string, string][]][] = [
    ['no inferenceEngine', server(serverSpec({ inferenceEngine: undefined })), [['spec.inferenceEngine', 'Required value']]],
    ['unknown inferenceEngine', server(serverSpec({ inferenceEngine: 'TGI' })),
      [['spec.inferenceEngine', 'Unsupported value: "TGI": supported values: "vLLM", "SGLang"']]],
    ['engine name in the wrong case', server(serverSpec({ inferenceEngine: 'vllm' })),
      [['spec.inferenceEngine', 'Unsupported value: "vllm": supported values: "vLLM", "SGLang"']]],
    ['no workloadPort', server(serverSpec({ workloadPort: undefined })), [['spec.workloadPort', 'Required value']]],
    ['no port', server(serverSpec({ workloadPort: { protocol: 'http' } })), [['spec.workloadPort.port', 'Required value']]],
    ['port 0', server(serverSpec({ workloadPort: { port: 0 } })), [['spec.workloadPort.port', 'Invalid value: 0: must be greater than or equal to 1']]],
    ['port 65536', server(serverSpec({ workloadPort: { port: 65536 } })), [['spec.workloadPort.port', 'Invalid value: 65536: must be less than or equal to 65535']]],
    ['port as a string', server(serverSpec({ workloadPort: { port: '8000' } })), [['spec.workloadPort.port', 'Invalid value: "string": must be of type integer']]],
    ['protocol outside the enum', server(serverSpec({ workloadPort: { port: 1, protocol: 'grpc' } })),
      [['spec.workloadPort.protocol', 'Unsupported value: "grpc": supported values: "http", "https"']]],
    ['no workloadSelector', server(serverSpec({ workloadSelector: undefined })), [['spec.workloadSelector', 'Required value']]],
    ['empty matchLabels (webhook)', server(serverSpec({ workloadSelector: { matchLabels: {} } })),
      [['spec.workloadSelector.matchLabels', 'labels must contain at least one label']]],
    ['no matchLabels (webhook)', server(serverSpec({ workloadSelector: {} })),
      [['spec.workloadSelector.matchLabels', 'labels must contain at least one label']]],
    ['matchLabels value not a string', server(serverSpec({ workloadSelector: { matchLabels: { version: 1 } } })),
      [['spec.workloadSelector.matchLabels[version]', 'Invalid value: "integer": must be of type string']]],
    ['matchLabels with an invalid value (webhook)', server(serverSpec({ workloadSelector: { matchLabels: { app: 'has space' } } })),
      [['spec.workloadSelector.matchLabels', "invalid selector: values[0]: Invalid value: \"has space\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]]],
    ['pdGroup without groupKey', server(serverSpec({ workloadSelector: { matchLabels: { a: 'b' }, pdGroup: { prefillLabels: { r: 'p' }, decodeLabels: { r: 'd' } } } })),
      [['spec.workloadSelector.pdGroup.groupKey', 'Required value']]],
    ['pdGroup with an empty groupKey (webhook)', server(serverSpec({ workloadSelector: { matchLabels: { a: 'b' }, pdGroup: { groupKey: '', prefillLabels: { r: 'p' }, decodeLabels: { r: 'd' } } } })),
      [['spec.workloadSelector.pdGroup.groupKey', 'groupKey must be specified']]],
    ['pdGroup without prefillLabels and decodeLabels', server(serverSpec({ workloadSelector: { matchLabels: { a: 'b' }, pdGroup: { groupKey: 'g' } } })),
      [['spec.workloadSelector.pdGroup.decodeLabels', 'Required value'], ['spec.workloadSelector.pdGroup.prefillLabels', 'Required value']]],
    ['pdGroup with empty label maps (webhook)', server(serverSpec({ workloadSelector: { matchLabels: { a: 'b' }, pdGroup: { groupKey: 'g', prefillLabels: {}, decodeLabels: {} } } })),
      [['spec.workloadSelector.pdGroup.prefillLabels', 'labels must contain at least one label'],
        ['spec.workloadSelector.pdGroup.decodeLabels', 'labels must contain at least one label']]],
    ['timeout that is not a duration', server(serverSpec({ trafficPolicy: { timeout: '10 seconds' } })),
      [['spec.trafficPolicy.timeout', `Invalid value: "10 seconds": ${DURATION}`]]],
    ['timeout without a unit', server(serverSpec({ trafficPolicy: { timeout: '10' } })),
      [['spec.trafficPolicy.timeout', `Invalid value: "10": ${DURATION}`]]],
    ['negative timeout', server(serverSpec({ trafficPolicy: { timeout: '-1s' } })),
      [['spec.trafficPolicy.timeout', `Invalid value: "-1s": ${DURATION}`]]],
    ['timeout as a number', server(serverSpec({ trafficPolicy: { timeout: 10 } })),
      [['spec.trafficPolicy.timeout', 'Invalid value: "integer": must be of type string']]],
    ['bad retryInterval', server(serverSpec({ trafficPolicy: { retry: { attempts: 2, retryInterval: 'soon' } } })),
      [['spec.trafficPolicy.retry.retryInterval', `Invalid value: "soon": ${DURATION}`]]],
    ['kvConnector type outside the enum', server(serverSpec({ kvConnector: { type: 'rdma' } })),
      [['spec.kvConnector.type', 'Unsupported value: "rdma": supported values: "http", "lmcache", "nixl", "mooncake"']]],
    ['model longer than 256 characters', server(serverSpec({ model: 'x'.repeat(257) })), [['spec.model', 'Too long: may not be longer than 256']]],
    ['unknown spec field', server(serverSpec({ workloadPorts: { port: 1 } })), [['spec.workloadPorts', 'unknown field "workloadPorts"']]],
    ['no spec', { apiVersion: KTHENA_API_VERSION, kind: 'ModelServer', metadata: { name: 's' } }, [['spec', 'Required value']]],
  ];
  it.each(cases)('rejects %s', (_name, raw, expected) => {
    expect(rejected(raw)).toEqual(expected);
  });
});

describe('Pod validation', () => {
  it.each([
    ['a podIP that is not an IP', pod({ podIP: 'not-an-ip' }), [['status.podIP', 'Invalid value: "not-an-ip": must be a valid IP address']]],
    ['a phase outside the enum', pod({ phase: 'running' }),
      [['status.phase', 'Unsupported value: "running": supported values: "Pending", "Running", "Succeeded", "Failed", "Unknown"']]],
    ['a condition without status', pod({ conditions: [{ type: 'Ready' }] }), [['status.conditions[0].status', 'Required value']]],
    ['no name', pod({}, { name: undefined }), [['metadata.name', 'Required value: name is required']]],
    ['an invalid startTime', pod({ startTime: 'now' }), [['status.startTime', 'Invalid value: "now": must be an RFC 3339 timestamp']]],
  ] as [string, Obj, [string, string][]][])('rejects %s', (_name, raw, expected) => {
    expect(rejected(raw)).toEqual(expected);
  });

  it('reads podIP, phase, Ready, nodeName, startTime, deletionTimestamp and ignores the rest of the Pod', () => {
    const p = accepted<Pod>(pod(
      { phase: 'Running', podIP: '127.0.0.5', startTime: '2025-01-01T00:00:00Z', hostIP: '10.0.0.1',
        conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True', lastTransitionTime: null }] },
      { namespace: 'ml', deletionTimestamp: '2025-01-02T00:00:00Z' },
      { nodeName: 'n1', containers: [{ name: 'engine', image: 'vllm' }] },
    ));
    expect(p.spec).toEqual({ nodeName: 'n1' });
    expect(p.status).toEqual({ podIP: '127.0.0.5', phase: 'Running', ready: true, startTime: '2025-01-01T00:00:00Z' });
    expect(p.metadata).toMatchObject({ namespace: 'ml', deletionTimestamp: '2025-01-02T00:00:00Z', labels: { app: 'a' } });
  });

  it('keeps the newest running container start (kvcache-aware ignores KV blocks written before it)', () => {
    const p = accepted<Pod>(pod({
      startTime: '2025-01-01T00:00:00Z',
      containerStatuses: [
        { name: 'engine', state: { running: { startedAt: '2025-01-03T00:00:00Z' } }, restartCount: 2 },
        { name: 'sidecar', state: { running: { startedAt: '2025-01-01T00:00:05Z' } } },
        { name: 'init', state: { terminated: { exitCode: 0 } } },
      ],
    }));
    expect(p.status.containersStartedAt).toBe('2025-01-03T00:00:00Z');
    expect(rejected(pod({ containerStatuses: [{ state: { running: { startedAt: 'soon' } } }] })))
      .toEqual([['status.containerStatuses[0].state.running.startedAt', 'Invalid value: "soon": must be an RFC 3339 timestamp']]);
  });

  it('is not ready unless the Ready condition is "True", and needs no spec or status', () => {
    expect(accepted<Pod>(pod({ conditions: [{ type: 'Ready', status: 'False' }] })).status.ready).toBe(false);
    expect(accepted<Pod>(pod({ conditions: [{ type: 'ContainersReady', status: 'True' }] })).status.ready).toBe(false);
    const bare = accepted<Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare' } });
    expect(bare.spec).toEqual({});
    expect(bare.status).toEqual({ ready: false });
  });
});

describe('kinds and documents this router does not serve', () => {
  it('ignores other kinds with a warning', () => {
    const r = parseManifestObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' } }, ctx());
    expect(r.resource).toBeUndefined();
    expect(r.problems).toEqual([{ kind: 'Deployment', namespace: 'default', name: 'd', file: 'test.yaml', field: 'kind', message: 'kind Deployment is not served by this router; ignored', severity: 'warning' }]);
  });

  it('ignores a served kind in another apiVersion with a warning', () => {
    const r = parseManifestObject({ ...route(simpleSpec()), apiVersion: 'networking.serving.volcano.sh/v1beta1' }, ctx());
    expect(r.resource).toBeUndefined();
    expect(r.problems.map((p) => [p.field, p.message, p.severity])).toEqual([
      ['apiVersion', 'kind ModelRoute in apiVersion networking.serving.volcano.sh/v1beta1 is not served by this router; ignored', 'warning'],
    ]);
  });

  it('serves ExternalModelProvider (test/unit/provider.test.ts has its rules)', () => {
    const r = parseManifestObject({ apiVersion: KTHENA_API_VERSION, kind: 'ExternalModelProvider', metadata: { name: 'p' }, spec: { baseURL: 'https://x' } }, ctx());
    expect(r.problems).toEqual([]);
    expect(r.resource?.kind).toBe('ExternalModelProvider');
  });

  it('rejects a document without apiVersion or kind, or that is not an object', () => {
    expect(rejected({ metadata: { name: 'x' } })).toEqual([['apiVersion', 'Required value'], ['kind', 'Required value']]);
    expect(rejected(['a', 'b'])).toEqual([['', 'a manifest must be an object, got array']]);
    expect(rejected('text')).toEqual([['', 'a manifest must be an object, got string']]);
  });

  it('yields nothing for an empty document', () => {
    expect(parseManifestObject(null, ctx())).toEqual({ problems: [] });
    expect(parseManifestObject(undefined, ctx())).toEqual({ problems: [] });
  });
});

describe('defaults, metadata and typed output', () => {
  it('applies the CRD defaults of a ModelRoute', () => {
    const r = accepted<ModelRoute>(route(simpleSpec({
      parentRefs: [{ name: 'gw' }, { name: 'svc', group: '', kind: 'Service' }],
      rateLimit: { inputTokensPerUnit: 5 },
      rules: [{ targetModels: [target(), target({ weight: 0 })] }],
    })));
    expect(r.spec.rules[0]!.targetModels.map((t) => t.weight)).toEqual([100, 0]);
    expect(r.spec.parentRefs).toEqual([
      { name: 'gw', group: 'gateway.networking.k8s.io', kind: 'Gateway' },
      { name: 'svc', group: '', kind: 'Service' },
    ]);
    expect(r.spec.rateLimit).toEqual({ inputTokensPerUnit: 5, unit: 'second' });
  });

  it('applies the CRD defaults of a ModelServer and parses durations to milliseconds', () => {
    const s = accepted<ModelServer>(server(serverSpec({ trafficPolicy: { timeout: '1m30s', retry: { attempts: 3 } }, kvConnector: {} })));
    expect(s.spec.workloadPort).toEqual({ port: 8000, protocol: 'http' });
    expect(s.spec.trafficPolicy).toEqual({ timeoutMs: 90000, retry: { attempts: 3, retryIntervalMs: 100 } });
    expect(s.spec.kvConnector).toEqual({ type: 'http' });
    const plain = accepted<ModelServer>(server(serverSpec()));
    expect(plain.spec.kvConnector).toBeUndefined();
    expect(plain.spec.trafficPolicy).toBeUndefined();
    expect(accepted<ModelServer>(server(serverSpec({ trafficPolicy: { retry: {} } }))).spec.trafficPolicy)
      .toEqual({ retry: { attempts: 0, retryIntervalMs: 100 } });
  });

  it('keeps the spec as written in rawSpec', () => {
    const spec = serverSpec({ trafficPolicy: { timeout: '10s' } });
    const s = accepted<ModelServer>(server(spec));
    expect(s.rawSpec).toEqual(spec);
    expect(s.rawSpec).not.toBe(spec);
  });

  it('treats null fields as absent, as the API server prunes them', () => {
    const r = accepted<ModelRoute>(route({ modelName: 'm', loraAdapters: null, rules: [{ name: null, modelMatch: null, targetModels: [{ modelServerName: 's', weight: null }] }] }, { creationTimestamp: null }));
    expect(r.spec).toEqual({ modelName: 'm', rules: [{ targetModels: [{ modelServerName: 's', weight: 100 }] }] });
    expect(r.metadata.creationTimestamp).toBe(NOW);
  });

  it('defaults metadata: namespace "default", labels {}, resourceVersion "", generation 1, a stable uid, now() as creationTimestamp', () => {
    const r = accepted<ModelRoute>(route(simpleSpec()));
    expect(r.metadata).toEqual({
      name: 'r', namespace: 'default', labels: {}, resourceVersion: '', generation: 1, creationTimestamp: NOW,
      uid: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
    });
    expect(accepted<ModelRoute>(route(simpleSpec())).metadata.uid).toBe(r.metadata.uid);
    expect(accepted<ModelServer>(server(serverSpec(), { name: 'r' })).metadata.uid).not.toBe(r.metadata.uid);
    expect(accepted<ModelRoute>(route(simpleSpec(), { namespace: 'other' })).metadata.uid).not.toBe(r.metadata.uid);
  });

  it('keeps metadata written in the manifest, timestamps normalized to UTC', () => {
    const r = accepted<ModelRoute>(route(simpleSpec(), {
      namespace: 'team', uid: 'abc', resourceVersion: '42', generation: 9, labels: { 'app.kubernetes.io/name': 'x' },
      annotations: { note: 'kept out of the typed object' }, creationTimestamp: '2024-01-01T02:00:00+02:00',
    }));
    expect(r.metadata).toEqual({
      name: 'r', namespace: 'team', uid: 'abc', resourceVersion: '42', generation: 1,
      labels: { 'app.kubernetes.io/name': 'x' }, creationTimestamp: '2024-01-01T00:00:00Z',
    });
  });

  it('keeps creationTimestamp from the previous version and bumps generation only when the spec changes', () => {
    const v1 = parseManifestObject(route(simpleSpec()), { file: 'a.yaml', now: () => '2024-01-01T00:00:00Z' }).resource!;
    const same = parseManifestObject(route(simpleSpec()), { file: 'b.yaml', now: () => NOW, previous: v1 }).resource!;
    expect(same.metadata).toMatchObject({ creationTimestamp: '2024-01-01T00:00:00Z', generation: 1 });
    const v2 = parseManifestObject(route(simpleSpec({ rules: [{ targetModels: [target({ weight: 5 })] }] })), { file: 'a.yaml', now: () => NOW, previous: same }).resource!;
    expect(v2.metadata).toMatchObject({ creationTimestamp: '2024-01-01T00:00:00Z', generation: 2 });
    const relabelled = parseManifestObject(route(simpleSpec({ rules: [{ targetModels: [target({ weight: 5 })] }] }), { labels: { a: 'b' } }), { file: 'a.yaml', now: () => NOW, previous: v2 }).resource!;
    expect(relabelled.metadata.generation).toBe(2);
  });

  it('returns deep-frozen resources', () => {
    const r = accepted<ModelRoute>(route(simpleSpec()));
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.spec.rules[0]!.targetModels[0])).toBe(true);
    expect(Object.isFrozen(r.metadata.labels)).toBe(true);
  });

  it('builds a ResourceSet sorted by namespace/name', () => {
    const a = accepted<ModelRoute>(route(simpleSpec(), { name: 'b', namespace: 'x' }));
    const b = accepted<ModelRoute>(route(simpleSpec(), { name: 'a', namespace: 'y' }));
    const c = accepted<ModelRoute>(route(simpleSpec(), { name: 'z', namespace: 'x' }));
    const p = accepted<Pod>(pod({}));
    const set = toResourceSet([b, p, c, a]);
    expect(set.modelRoutes.map((r) => `${r.metadata.namespace}/${r.metadata.name}`)).toEqual(['x/b', 'x/z', 'y/a']);
    expect(set.pods).toEqual([p]);
    expect(set.modelServers).toEqual([]);
  });
});

describe('Kthena examples', () => {
  const dir = path.join(fixtures, 'kthena-examples');
  const docs = readdirSync(dir).sort().flatMap((f) =>
    parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d, i) => ({ f, i, raw: d.toJS() as Obj | null })));
  const served = docs.filter((d) => d.raw !== null && (d.raw.kind === 'ModelRoute' || d.raw.kind === 'ModelServer'));

  it('include every kind of route and server the brief names', () => {
    expect(served.length).toBeGreaterThanOrEqual(14);
  });

  it.each(served.map((d) => [`${d.f}#${d.i}`, d.raw] as const))('validates %s', (_name, raw) => {
    const r = parseManifestObject(raw, { file: _name, now: () => NOW });
    expect(r.problems).toEqual([]);
    expect(r.resource?.kind).toBe(raw!.kind);
  });
});

describe('broken fixtures', () => {
  const dir = path.join(fixtures, 'manifests', 'broken');
  const load = (f: string) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8'));

  it('malformed.yaml: the YAML error is confined to its document', () => {
    const docs = load('malformed.yaml');
    expect(docs.map((d) => d.errors.length > 0)).toEqual([false, true, false]);
    expect(parseManifestObject(docs[0]!.toJS(), ctx()).resource?.metadata.name).toBe('good-server');
    expect(parseManifestObject(docs[2]!.toJS(), ctx()).resource?.metadata.name).toBe('good-route');
  });

  it('invalid-modelroute.yaml: one precise problem per document', () => {
    const got = load('invalid-modelroute.yaml').map((d) => parseManifestObject(d.toJS(), ctx()))
      .map((r) => { expect(r.resource).toBeUndefined(); return r.problems.map((p) => `${p.name} ${p.field}: ${p.message}`); });
    expect(got).toEqual([
      ['no-model spec: ModelName and LoraAdapters cannot both be empty'],
      ['two-targets-in-one spec.rules[0].targetModels[1]: exactly one of modelServerName or externalModelProviderName must be set'],
      ['lora-to-provider spec.rules[0].targetModels[0].externalModelProviderName: lora routes must target modelServerName'],
      ['zero-weights spec.rules[0].targetModels: total weight must be greater than zero'],
      ['weight-too-big spec.rules[0].targetModels[1].weight: Invalid value: 130: must be less than or equal to 100'],
      ['lookahead spec.rules[0].modelMatch.headers[user-type].regex: error parsing regexp: invalid or unsupported Perl syntax: `(?!`'],
      ['typo-field spec.rules[0].targetModels[0].modelServer: unknown field "modelServer"'],
      [`Not_A_DNS_Name metadata.name: Invalid value: "Not_A_DNS_Name": ${SUBDOMAIN}`],
    ]);
  });

  it('invalid-modelserver.yaml: one precise problem per document', () => {
    const got = load('invalid-modelserver.yaml').map((d) => parseManifestObject(d.toJS(), ctx()))
      .map((r) => { expect(r.resource).toBeUndefined(); return r.problems.map((p) => `${p.name} ${p.field}: ${p.message}`); });
    expect(got).toEqual([
      ['no-labels spec.workloadSelector.matchLabels: labels must contain at least one label'],
      ['bad-port spec.workloadPort.port: Invalid value: 70000: must be less than or equal to 65535'],
      ['bad-engine spec.inferenceEngine: Unsupported value: "TGI": supported values: "vLLM", "SGLang"'],
      [`bad-timeout spec.trafficPolicy.timeout: Invalid value: "10 seconds": ${DURATION}`],
      ['pd-incomplete spec.workloadSelector.pdGroup.groupKey: groupKey must be specified',
        'pd-incomplete spec.workloadSelector.pdGroup.decodeLabels: labels must contain at least one label'],
    ]);
  });
});

describe('parseDurationMs follows Go time.ParseDuration', () => {
  it.each([
    ['10s', 10000], ['1m30s', 90000], ['500ms', 500], ['1h', 3600000], ['1h2m3.5s', 3723500], ['300ms', 300],
    ['1.5h', 5400000], ['0', 0], ['0s', 0], ['+5s', 5000], ['-0s', 0], ['.5s', 500], ['1.s', 1000],
    ['500us', 0.5], ['1µs', 0.001], ['1μs', 0.001], ['1500ns', 0.0015], ['2h45m', 9900000],
    ['9223372036854775807ns', 9223372036854.775],
  ] as [string, number][])('parses %s as %s ms', (s, ms) => {
    expect(parseDurationMs(s)).toBe(ms);
  });

  it.each(['', '1', '10 s', ' 1s', '1s ', 's', '.s', '1x', '1h-1m', '-1s', '-1.5h', '1e3s', 'abc', '9223372036854775808ns', '2562048h', '1ss'])(
    'rejects %j', (s) => {
      expect(parseDurationMs(s)).toBeNull();
    });
});

describe('regexError: exactly what Go\'s RE2 accepts', () => {
  it.each(['^premium$', 'gold|silver', '^/v1/(chat/)?completions$', '[a-z]+\\d{2,3}', '(?:a|b)', '(?<name>x)', '[(?=]', '\\.', 'a{1000}', '\\bword\\b', '[\\]a]',
    // RE2 syntax V8 reads differently: the workers match with RE2 semantics, so these are fine.
    '(?i)premium', '\\Aabc\\z', '[[:alpha:]]+', '\\pL', '[]a]', '(?P<n>a)', '^(a+)+$'])(
    'accepts %j', (re) => {
      expect(regexError(re)).toBeNull();
    });

  it.each([
    ['x(?=y)', 'error parsing regexp: invalid or unsupported Perl syntax: `(?=`'],
    ['x(?!y)', 'error parsing regexp: invalid or unsupported Perl syntax: `(?!`'],
    // Go >= 1.22 reads `(?<` as the start of a named group.
    ['(?<=y)x', 'error parsing regexp: invalid named capture: `(?<=y)x`'],
    ['(?<!y)x', 'error parsing regexp: invalid named capture: `(?<!y)x`'],
    ['(a)\\1', 'error parsing regexp: invalid escape sequence: `\\1`'],
    ['(?<n>a)\\k<n>', 'error parsing regexp: invalid escape sequence: `\\k`'],
    ['\\u0041', 'error parsing regexp: invalid escape sequence: `\\u`'],
    ['a{1001}', 'error parsing regexp: invalid repeat count: `{1001}`'],
    ['a{2,1001}', 'error parsing regexp: invalid repeat count: `{2,1001}`'],
    // Worded as Go's regexp/syntax words them.
    ['(', 'error parsing regexp: missing closing ): `(`'],
    ['a(b', 'error parsing regexp: missing closing ): `a(b`'],
    ['[', 'error parsing regexp: missing closing ]: `[`'],
    ['a[bc', 'error parsing regexp: missing closing ]: `[bc`'],
    ['a)', 'error parsing regexp: unexpected ): `a)`'],
    ['*a', 'error parsing regexp: missing argument to repetition operator: `*`'],
    ['a**', 'error parsing regexp: invalid nested repetition operator: `**`'],
    ['\\', 'error parsing regexp: trailing backslash at end of expression: ``'],
    ['[z-a]', 'error parsing regexp: invalid character class range: `z-a`'],
  ])('rejects %j', (re, msg) => {
    expect(regexError(re)).toBe(msg);
  });
});

describe('normalizeTimestamp', () => {
  it.each([
    ['2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z'],
    ['2024-01-01T02:00:00+02:00', '2024-01-01T00:00:00Z'],
    ['2024-01-01t00:00:00.250z', '2024-01-01T00:00:00.250Z'],
    ['2024-01-01T00:00:00.123456789Z', '2024-01-01T00:00:00.123Z'],
    ['2024-01-01', null], ['2024-13-01T00:00:00Z', null], ['soon', null], [12, null],
  ] as [unknown, string | null][])('%j -> %j', (v, want) => {
    expect(normalizeTimestamp(v)).toBe(want);
  });
});

describe('schemas match the upstream CRDs', () => {
  // Compares our transcription with the CRD's openAPIV3Schema: every property, type, required list,
  // enum, bound, pattern and default.
  type CrdSchema = {
    type?: string; properties?: Record<string, CrdSchema>; required?: string[]; items?: CrdSchema;
    additionalProperties?: CrdSchema; enum?: string[]; allOf?: { enum?: string[] }[]; minimum?: number; maximum?: number;
    minItems?: number; maxItems?: number; minLength?: number; maxLength?: number; pattern?: string; default?: unknown;
  };
  type Ours = {
    t: string; properties?: Record<string, Ours>; required?: string[]; items?: Ours; values?: Ours; enum?: string[];
    minimum?: number; maximum?: number; minItems?: number; maxItems?: number; minLength?: number; maxLength?: number;
    pattern?: string; default?: unknown;
  };

  function diff(crd: CrdSchema, ours: Ours, at: string, out: string[]): void {
    if (crd.type !== ours.t) {
      out.push(`${at}: type ${crd.type} vs ${ours.t}`);
      return;
    }
    const same = (what: string, a: unknown, b: unknown): void => {
      if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${at}: ${what} ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    };
    same('enum', crd.enum ?? crd.allOf?.[0]?.enum, ours.enum);
    for (const k of ['minimum', 'maximum', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'default'] as const) same(k, crd[k], ours[k]);
    if (crd.type === 'array') diff(crd.items!, ours.items!, `${at}[]`, out);
    if (crd.type === 'object') {
      if (crd.additionalProperties) {
        if (!ours.values) out.push(`${at}: map expected`);
        else diff(crd.additionalProperties, ours.values, `${at}[*]`, out);
        return;
      }
      same('properties', Object.keys(crd.properties ?? {}).sort(), Object.keys(ours.properties ?? {}).sort());
      same('required', [...(crd.required ?? [])].sort(), [...(ours.required ?? [])].sort());
      for (const [k, v] of Object.entries(crd.properties ?? {})) {
        if (ours.properties?.[k]) diff(v, ours.properties[k]!, `${at}.${k}`, out);
      }
    }
  }

  /** spec fields of ours that Kthena's CRD lacks: ModelRoute.spec.sessionSticky, ModelServer.spec.apiKeyRules (Kthena's proposals). */
  const OUR_EXTENSIONS: Record<string, string[]> = {
    'networking.serving.volcano.sh_modelroutes.yaml': ['sessionSticky'],
    'networking.serving.volcano.sh_modelservers.yaml': ['apiKeyRules'],
  };

  it.each([
    ['networking.serving.volcano.sh_modelroutes.yaml', modelRouteSpecSchema],
    ['networking.serving.volcano.sh_modelservers.yaml', modelServerSpecSchema],
  ] as const)('%s', (file, ours) => {
    const crd = parseYaml(readFileSync(path.join(fixtures, 'crds', file), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: CrdSchema } }[] } };
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    const out: string[] = [];
    // Fields this router adds beyond Kthena's CRD (each a row in docs/compat.md) are compared
    // without them; everything Kthena declares must match exactly.
    const extensions = OUR_EXTENSIONS[file] ?? [];
    const trimmed = { ...(ours as unknown as Ours), properties: Object.fromEntries(Object.entries((ours as unknown as Ours).properties ?? {}).filter(([k]) => !extensions.includes(k))) };
    diff(spec, trimmed as Ours, 'spec', out);
    expect(out).toEqual([]);
    for (const k of extensions) expect(Object.keys((ours as unknown as Ours).properties ?? {})).toContain(k);
  });
});
