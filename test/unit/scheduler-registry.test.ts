/**
 * The scheduler plugin registry: a plugin is one file under workers/scheduler/plugins/ plus one
 * registry line, and its definition alone drives configuration, defaults and the snapshot.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultArgs, resolveArgs } from '../../workers/scheduler/plugin-api.js';
import { FILTER_PLUGIN_NAMES, PLUGIN_IDENTITIES, PLUGINS, SCORE_PLUGIN_NAMES, pluginIdentity, pluginNamed } from '../../workers/scheduler/registry.js';
import { parseRouterConfig } from '../../src/routerconfig/parse.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/shared/snapshot-codec.js';
import { translate } from '../../src/translator/index.js';

const pluginDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../workers/scheduler/plugins');
const emptyResources = { modelRoutes: [], modelServers: [], pods: [] };

describe('scheduler plugin registry', () => {
  it('registers every plugin file exactly once, under the name its file carries', () => {
    const files = readdirSync(pluginDir).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
    expect(PLUGINS.map((p) => p.name).sort()).toEqual(files);
    expect(new Set(PLUGINS.map((p) => p.name)).size).toBe(PLUGINS.length);
  });

  it("gives each plugin a role and defaults its own schema accepts", () => {
    for (const p of PLUGINS) {
      expect(p.filter !== undefined || p.score !== undefined, p.name).toBe(true);
      expect(resolveArgs(p, defaultArgs(p)).problems, p.name).toEqual([]);
    }
  });

  it("knows Kthena's plugins in their roles, least-request in both", () => {
    expect([...FILTER_PLUGIN_NAMES].sort()).toEqual(['least-request', 'lora-affinity']);
    expect([...SCORE_PLUGIN_NAMES].sort()).toEqual(['gpu-usage', 'kvcache-aware', 'least-latency', 'least-request', 'prefix-cache', 'random']);
    expect(pluginIdentity('least-request', 'filter')).not.toBe(pluginIdentity('least-request', 'score'));
    expect(pluginIdentity('gpu-usage', 'filter')).toBe(-1);
    expect(new Set(PLUGIN_IDENTITIES.map((p) => `${p.type}/${p.name}`)).size).toBe(PLUGIN_IDENTITIES.length);
  });

  it('rejects an unknown argument and an out-of-range value with the schema in the message', () => {
    const lr = pluginNamed('least-request')!;
    expect(resolveArgs(lr, { maxWaitingRequests: 0 }).problems).toEqual([{ arg: 'maxWaitingRequests', message: 'must be an integer in [1, 1000000], got 0' }]);
    expect(resolveArgs(lr, { nope: 1 }).problems[0].message).toBe('unknown argument "nope" for plugin "least-request" (known: maxWaitingRequests)');
    expect(resolveArgs(pluginNamed('random')!, { x: 1 }).problems[0].message).toContain('(it takes none)');
    expect(resolveArgs(pluginNamed('least-latency')!, { TTFTTPOTWeightFactor: 1.5 }).problems[0].message).toBe('must be a number in [0, 1], got 1.5');
  });

  it('carries configured plugin arguments through the snapshot as one sub-document', () => {
    const r = parseRouterConfig(`scheduler:
  pluginConfig:
  - {name: least-request, args: {maxWaitingRequests: 7}}
  - {name: kvcache-aware, args: {blockSizeToHash: 32, vllmTokenizerPort: 8001}}
  - {name: least-latency, args: {TTFTTPOTWeightFactor: 0.25}}
  plugins:
    Filter: {enabled: [least-request]}
    Score: {enabled: [{name: kvcache-aware, weight: 2}, {name: least-latency, weight: 1}]}
`);
    expect(r.problems.filter((p) => p.severity === 'rejected')).toEqual([]);
    const ir = translate(emptyResources, r.scheduler!).ir;
    const back = decodeSnapshot(encodeSnapshot(ir)).scheduler;
    expect(back).toEqual(r.scheduler);
    expect(back.args).toEqual({
      'least-request': { maxWaitingRequests: 7 },
      'kvcache-aware': { blockSizeToHash: 32, maxBlocksToMatch: 128, vllmTokenizerPort: 8001, sglangTokenizerPort: 30000 },
      'least-latency': { TTFTTPOTWeightFactor: 0.25 },
    });
  });
});
