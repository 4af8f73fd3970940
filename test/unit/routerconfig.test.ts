import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRouterConfig } from '../../src/routerconfig/parse.js';
import { RouterConfigWatcher } from '../../src/routerconfig/watch.js';
import { DEFAULT_SCHEDULER, ROUTER_DEFAULT_SCHEDULER } from '../../src/routerconfig/defaults.js';
import type { SchedulerIR } from '../../src/ir/types.js';
import type { Problem } from '../../src/resources/types.js';

const fixture = (name: string): string => readFileSync(path.join(import.meta.dirname, 'fixtures/routerconfig', name), 'utf8');
const errors = (ps: Problem[]): Problem[] => ps.filter((p) => p.severity === 'rejected');

describe('router configuration (Kthena routerConfiguration format)', () => {
  it('reads the Helm chart default into exactly the built-in default profile', () => {
    const r = parseRouterConfig(fixture('helm-default.yaml'));
    expect(errors(r.problems)).toEqual([]);
    expect(r.scheduler).toEqual(DEFAULT_SCHEDULER);
  });

  it('unwraps a ConfigMap manifest and keeps filter and score order as configured', () => {
    const r = parseRouterConfig(fixture('configmap.yaml'));
    expect(errors(r.problems)).toEqual([]);
    expect(r.scheduler!.filters).toEqual(['least-request', 'lora-affinity']);
    expect(r.scheduler!.scores).toEqual([{ name: 'least-request', weight: 1 }, { name: 'kvcache-aware', weight: 2 }]);
    expect(r.scheduler!.args['kvcache-aware']).toEqual({ blockSizeToHash: 16, maxBlocksToMatch: 128, vllmTokenizerPort: 8000, sglangTokenizerPort: 30000 });
  });

  it('rejects an unknown plugin and an out-of-range argument, naming both fields', () => {
    const r = parseRouterConfig(fixture('invalid.yaml'), 'invalid.yaml');
    expect(r.scheduler).toBeNull();
    const fields = errors(r.problems).map((p) => p.field).sort();
    expect(fields).toEqual(['scheduler.pluginConfig[0].args.TTFTTPOTWeightFactor', 'scheduler.plugins.Score.enabled[1].name']);
    expect(r.problems.every((p) => p.file === 'invalid.yaml')).toBe(true);
    expect(errors(r.problems).find((p) => p.field.endsWith('.name'))!.message).toContain('unknown plugin "least-cache"');
  });

  it('rejects malformed YAML with the parser message', () => {
    const r = parseRouterConfig(fixture('malformed.yaml'));
    expect(r.scheduler).toBeNull();
    expect(r.problems[0].message).toMatch(/^not valid YAML/);
  });

  it.each([
    ['a negative weight', 'scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: -1}]}}}', 'scheduler.plugins.Score.enabled[0].weight'],
    ['a fractional weight', 'scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: 0.5}]}}}', 'scheduler.plugins.Score.enabled[0].weight'],
    ['maxWaitingRequests 0', 'scheduler: {pluginConfig: [{name: least-request, args: {maxWaitingRequests: 0}}], plugins: {Score: {enabled: [{name: least-request, weight: 1}]}}}', 'scheduler.pluginConfig[0].args.maxWaitingRequests'],
    ['an unknown argument', 'scheduler: {pluginConfig: [{name: prefix-cache, args: {blockSize: 4}}], plugins: {Score: {enabled: [{name: prefix-cache, weight: 1}]}}}', 'scheduler.pluginConfig[0].args.blockSize'],
    ['a score-only plugin used as a filter', 'scheduler: {plugins: {Filter: {enabled: [gpu-usage]}, Score: {enabled: [{name: gpu-usage, weight: 1}]}}}', 'scheduler.plugins.Filter.enabled[0]'],
    ['a plugin enabled twice', 'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}, {name: random, weight: 2}]}}}', 'scheduler.plugins.Score.enabled[1].name'],
    ['no score plugin at all', 'scheduler: {plugins: {Filter: {enabled: [least-request]}}}', 'scheduler.plugins.Score.enabled'],
    ['a JWT auth section without an issuer', 'auth: {jwksUri: "https://x"}\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}', 'auth.issuer'],
    ['a JWKS address that is not an http(s) URL', 'auth: {issuer: i, jwksUri: "file:///etc/jwks"}\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}', 'auth.jwksUri'],
    ['an unknown auth field', 'auth: {issuer: i, jwksUri: "https://x", audience: a}\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}', 'auth.audience'],
    ['audiences that are not a list of strings', 'auth: {issuer: i, jwksUri: "https://x", audiences: a}', 'auth.audiences'],
    ['a typo in a section name', 'scheduler: {plugin: {}}', 'scheduler.plugin'],
  ])('rejects %s', (_what, yaml, field) => {
    const r = parseRouterConfig(yaml);
    expect(r.scheduler).toBeNull();
    expect(errors(r.problems).map((p) => p.field)).toContain(field);
  });

  it('reads Kthena\'s auth section beside the scheduler, or alone (the default profile then)', () => {
    const both = parseRouterConfig('auth: {issuer: "https://idp", audiences: [kthena, kthena], jwksUri: "https://idp/jwks"}\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}');
    expect(errors(both.problems)).toEqual([]);
    expect(both.auth).toEqual({ issuer: 'https://idp', audiences: ['kthena'], jwksUri: 'https://idp/jwks' });
    const alone = parseRouterConfig('auth: {issuer: "https://idp", jwksUri: "http://127.0.0.1:9000/jwks"}');
    expect(alone.scheduler).toEqual(ROUTER_DEFAULT_SCHEDULER);
    expect(alone.auth).toEqual({ issuer: 'https://idp', audiences: [], jwksUri: 'http://127.0.0.1:9000/jwks' });
    // No jwksUri: authentication is off, as in Kthena, and said so.
    const off = parseRouterConfig('auth: {issuer: "https://idp"}\nscheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}');
    expect(off.auth).toBeNull();
    expect(off.problems.map((p) => `${p.severity} ${p.field}`)).toEqual(['warning auth.jwksUri']);
    expect(parseRouterConfig('scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}').auth).toBeNull();
  });

  it('drops random when other score plugins are enabled, with a warning, as Kthena does', () => {
    const r = parseRouterConfig('scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}, {name: gpu-usage, weight: 1}]}}}');
    expect(r.scheduler!.scores).toEqual([{ name: 'gpu-usage', weight: 1 }]);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0].severity).toBe('warning');
  });

  it('reads a missing weight as 0 (Kthena) and warns about it', () => {
    const r = parseRouterConfig('scheduler: {plugins: {Score: {enabled: [{name: gpu-usage}]}}}');
    expect(r.scheduler!.scores).toEqual([{ name: 'gpu-usage', weight: 0 }]);
    expect(r.problems.map((p) => p.severity)).toEqual(['warning']);
  });

  it('accepts the fixture shape without the scheduler: wrapper, with a warning', () => {
    const r = parseRouterConfig('plugins: {Score: {enabled: [{name: least-request, weight: 3}]}}');
    expect(r.scheduler!.scores).toEqual([{ name: 'least-request', weight: 3 }]);
    expect(r.problems.map((p) => p.severity)).toEqual(['warning']);
  });

  it('fills defaults for arguments that are not given', () => {
    const r = parseRouterConfig('scheduler: {pluginConfig: [{name: prefix-cache, args: {topKMatches: 2}}], plugins: {Score: {enabled: [{name: prefix-cache, weight: 1}]}}}');
    expect(r.scheduler!.args['prefix-cache']).toEqual({ blockSizeToHash: 64, maxBlocksToMatch: 128, maxHashCacheSize: 50000, promptShare: 0, topKMatches: 2 });
    // Only the enabled plugins' arguments travel in the profile.
    expect(Object.keys(r.scheduler!.args)).toEqual(['prefix-cache']);
  });
});

describe('router configuration file watcher', () => {
  let dir = '';
  let watcher: RouterConfigWatcher | null = null;
  afterEach(() => {
    watcher?.stop();
    watcher = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function until<T>(get: () => T | undefined, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('applies a valid edit, reports an invalid one without replacing the live config, then applies a fix', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rc-'));
    const file = path.join(dir, 'router.yaml');
    writeFileSync(file, 'scheduler: {plugins: {Score: {enabled: [{name: least-request, weight: 1}]}}}');
    const changes: SchedulerIR[] = [];
    const rejected: Problem[][] = [];
    watcher = new RouterConfigWatcher(file, { onChange: (s) => changes.push(s), onRejected: (p) => rejected.push(p) });
    const first = await watcher.load();
    expect(first.scheduler!.scores).toEqual([{ name: 'least-request', weight: 1 }]);
    watcher.start();

    // Replace by rename, as editors and ConfigMap volume updates do.
    writeFileSync(file + '.tmp', 'scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: 2}]}}}');
    renameSync(file + '.tmp', file);
    const applied = await until(() => changes[0]);
    expect(applied.scores).toEqual([{ name: 'gpu-usage', weight: 2 }]);

    writeFileSync(file, 'scheduler: {plugins: {Score: {enabled: [{name: gpu-usage, weight: -2}]}}}');
    const bad = await until(() => rejected[0]);
    expect(bad[0].field).toBe('scheduler.plugins.Score.enabled[0].weight');
    expect(changes).toHaveLength(1);

    writeFileSync(file, 'scheduler: {plugins: {Score: {enabled: [{name: random, weight: 1}]}}}');
    const fixed = await until(() => changes[1]);
    expect(fixed.scores).toEqual([{ name: 'random', weight: 1 }]);
  });

  it('reports a missing file at load', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rc-'));
    watcher = new RouterConfigWatcher(path.join(dir, 'nope.yaml'), { onChange: () => {}, onRejected: () => {} });
    const r = await watcher.load();
    expect(r.scheduler).toBeNull();
    expect(r.problems[0].message).toContain('ENOENT');
  });
});
