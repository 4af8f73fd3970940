import { describe, it, expect, afterEach, vi } from 'vitest';
import { copyFile, mkdtemp, readFile, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { FileProvider, type FileSnapshot } from '../../src/provider/file/index.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const WAIT = { timeout: 5000, interval: 10 };

function routeYaml(name: string, opts: { model?: string; server?: string; weight?: number; namespace?: string } = {}): string {
  return `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata:
  name: ${name}
  namespace: ${opts.namespace ?? 'default'}
spec:
  modelName: ${opts.model ?? name}
  rules:
  - targetModels:
    - modelServerName: ${opts.server ?? 'srv'}
      weight: ${opts.weight ?? 100}
`;
}

function serverYaml(name: string, port = 8000): string {
  return `apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata:
  name: ${name}
spec:
  inferenceEngine: vLLM
  workloadSelector:
    matchLabels: {app: ${name}}
  workloadPort:
    port: ${port}
`;
}

interface Harness {
  dir: string;
  provider: FileProvider;
  snaps: FileSnapshot[];
  last: () => FileSnapshot;
  /** Waits until the latest snapshot satisfies `pred` and returns it. */
  until: (pred: (s: FileSnapshot) => boolean) => Promise<FileSnapshot>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A provider on a fresh temp dir, with a clock that ticks one second per rebuild. */
async function setup(files: Record<string, string> = {}, opts: { onChange?: (s: FileSnapshot) => void; pollMs?: number; removeGraceMs?: number } = {}): Promise<Harness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kthena-fp-'));
  for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
  const snaps: FileSnapshot[] = [];
  let tick = 0;
  const provider = new FileProvider(dir, {
    debounceMs: 20,
    pollMs: opts.pollMs ?? 50,
    removeGraceMs: opts.removeGraceMs ?? 100,
    now: () => new Date(Date.UTC(2025, 0, 1) + 1000 * tick++).toISOString(),
    onChange: (s) => {
      snaps.push(s);
      opts.onChange?.(s);
    },
  });
  cleanups.push(async () => {
    await provider.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await provider.start();
  const last = (): FileSnapshot => snaps[snaps.length - 1]!;
  const until = async (pred: (s: FileSnapshot) => boolean): Promise<FileSnapshot> => {
    await vi.waitFor(() => expect(snaps.length > 0 && pred(last())).toBe(true), WAIT);
    return last();
  };
  return { dir, provider, snaps, last, until };
}

const routeNames = (s: FileSnapshot): string[] => s.resources.modelRoutes.map((r) => `${r.metadata.namespace}/${r.metadata.name}`);
const routeOf = (s: FileSnapshot, name: string) => s.resources.modelRoutes.find((r) => r.metadata.name === name);

describe('FileProvider', () => {
  it('loads every manifest once at start, sorted by namespace/name, and emits exactly once', async () => {
    const h = await setup({
      'b.yaml': routeYaml('zeta') + '---\n' + routeYaml('alpha', { namespace: 'team' }),
      'a.yml': serverYaml('srv'),
      'notes.txt': 'not a manifest',
      '.hidden.yaml': routeYaml('hidden'),
    });
    expect(h.snaps).toHaveLength(1);
    const s = h.last();
    expect(routeNames(s)).toEqual(['default/zeta', 'team/alpha']);
    expect(s.resources.modelServers.map((m) => m.metadata.name)).toEqual(['srv']);
    expect(s.files).toEqual([path.join(h.dir, 'a.yml'), path.join(h.dir, 'b.yaml')]);
    expect(s.problems).toEqual([]);
  });

  it('applies an added file', async () => {
    const h = await setup({ 'a.yaml': routeYaml('one') });
    await writeFile(path.join(h.dir, 'b.yaml'), routeYaml('two'));
    const s = await h.until((x) => routeNames(x).length === 2);
    expect(routeNames(s)).toEqual(['default/one', 'default/two']);
    expect(routeOf(s, 'two')!.metadata.creationTimestamp).not.toBe(routeOf(s, 'one')!.metadata.creationTimestamp);
  });

  it('applies an edit: new spec, generation + 1, same creationTimestamp and uid', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r', { weight: 10 }) });
    const before = routeOf(h.last(), 'r')!;
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('r', { weight: 20 }));
    const s = await h.until((x) => routeOf(x, 'r')?.spec.rules[0]!.targetModels[0]!.weight === 20);
    const after = routeOf(s, 'r')!;
    expect(after.metadata.generation).toBe(before.metadata.generation + 1);
    expect(after.metadata.creationTimestamp).toBe(before.metadata.creationTimestamp);
    expect(after.metadata.uid).toBe(before.metadata.uid);
  });

  it('applies a file deletion by deleting its objects', async () => {
    const h = await setup({ 'a.yaml': routeYaml('keep'), 'b.yaml': routeYaml('gone') });
    await unlink(path.join(h.dir, 'b.yaml'));
    const s = await h.until((x) => routeNames(x).length === 1);
    expect(routeNames(s)).toEqual(['default/keep']);
    expect(s.files).toEqual([path.join(h.dir, 'a.yaml')]);
  });

  it('applies removing a document from a multi-document file', async () => {
    const h = await setup({ 'a.yaml': routeYaml('one') + '---\n' + routeYaml('two') });
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('one'));
    expect(routeNames(await h.until((x) => routeNames(x).length === 1))).toEqual(['default/one']);
  });

  it('a writer pausing mid-file loses nothing: a shorter parse never removes objects within the grace period', async () => {
    const full = routeYaml('one') + '---\n' + routeYaml('two') + '---\n' + routeYaml('three');
    const h = await setup({ 'a.yaml': full }, { removeGraceMs: 1000 });
    const file = path.join(h.dir, 'a.yaml');
    // The first part, a valid shorter file, sits on disk for 300 ms (several debounces and polls).
    await writeFile(file, routeYaml('one') + '---\n');
    await h.until((x) => x.files.length === 1 && h.snaps.length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    await writeFile(file, full + '---\n' + routeYaml('four'));
    await h.until((x) => routeNames(x).length === 4);
    for (const snap of h.snaps) expect(routeNames(snap)).toEqual(expect.arrayContaining(['default/one', 'default/two', 'default/three']));
  });

  it('deletes an object gone from its file once the file has stayed unchanged for the grace period; additions apply at once', async () => {
    const h = await setup({ 'a.yaml': routeYaml('one') + '---\n' + routeYaml('two') }, { removeGraceMs: 600 });
    const t0 = Date.now();
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('one') + '---\n' + routeYaml('new'));
    await h.until((x) => routeNames(x).includes('default/new'));
    expect(routeNames(h.last())).toContain('default/two');
    const s = await h.until((x) => !routeNames(x).includes('default/two'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    expect(routeNames(s)).toEqual(['default/new', 'default/one']);
  });

  it('keeps an object, its creationTimestamp and generation across a file rename', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r') });
    const before = routeOf(h.last(), 'r')!;
    await rename(path.join(h.dir, 'a.yaml'), path.join(h.dir, 'z.yaml'));
    const s = await h.until((x) => x.files.some((f) => f.endsWith('z.yaml')));
    expect(s.files).toEqual([path.join(h.dir, 'z.yaml')]);
    expect(routeOf(s, 'r')).toEqual(before);
  });

  it('reacts to fs.watch events without waiting for the poll', async () => {
    const h = await setup({ 'a.yaml': routeYaml('one') }, { pollMs: 60_000 });
    await writeFile(path.join(h.dir, 'b.yaml'), routeYaml('two'));
    await h.until((x) => routeNames(x).length === 2);
  });

  it('picks up an editor-style save (write a temp file, rename it over the original)', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r', { weight: 1 }) });
    await writeFile(path.join(h.dir, 'a.yaml.tmp'), routeYaml('r', { weight: 2 }));
    await rename(path.join(h.dir, 'a.yaml.tmp'), path.join(h.dir, 'a.yaml'));
    await h.until((x) => routeOf(x, 'r')?.spec.rules[0]!.targetModels[0]!.weight === 2);
  });

  it('rejects an invalid edit, keeps the last valid version and reports the problem; a fix then applies', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r', { weight: 10 }) });
    const valid = routeOf(h.last(), 'r')!;
    const file = path.join(h.dir, 'a.yaml');
    await writeFile(file, routeYaml('r', { weight: 500 }));
    const bad = await h.until((x) => x.problems.length > 0);
    expect(routeOf(bad, 'r')).toEqual(valid);
    expect(bad.problems).toEqual([
      { kind: 'ModelRoute', namespace: 'default', name: 'r', file, field: 'spec.rules[0].targetModels[0].weight', message: 'Invalid value: 500: must be less than or equal to 100', severity: 'rejected' },
      { kind: 'ModelRoute', namespace: 'default', name: 'r', file, field: '', message: 'this version is rejected; the last valid version (generation 1) stays in use', severity: 'warning' },
    ]);
    await writeFile(file, routeYaml('r', { weight: 30 }));
    const fixed = await h.until((x) => x.problems.length === 0);
    expect(routeOf(fixed, 'r')!.spec.rules[0]!.targetModels[0]!.weight).toBe(30);
    expect(routeOf(fixed, 'r')!.metadata).toMatchObject({ generation: 2, creationTimestamp: valid.metadata.creationTimestamp });
  });

  it('enforces modelName immutability against the last valid version', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r', { model: 'first' }) });
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('r', { model: 'second' }));
    const s = await h.until((x) => x.problems.length > 0);
    expect(s.problems[0]!.message).toBe('modelName is immutable');
    expect(routeOf(s, 'r')!.spec.modelName).toBe('first');
  });

  it('loads the other documents of a file when one has a YAML syntax error (Kthena\'s configmap-malformed idea)', async () => {
    const h = await setup();
    const file = path.join(h.dir, 'malformed.yaml');
    await copyFile(path.join(fixtures, 'manifests', 'broken', 'malformed.yaml'), file);
    const s = await h.until((x) => x.files.length === 1);
    expect(routeNames(s)).toEqual(['default/good-route']);
    expect(s.resources.modelServers.map((m) => m.metadata.name)).toEqual(['good-server']);
    expect(s.problems).toHaveLength(1);
    expect(s.problems[0]).toMatchObject({ file, severity: 'rejected', kind: '', name: '' });
    expect(s.problems[0]!.message).toMatch(/^YAML syntax error in document 2: .* at line \d+, column \d+$/);
  });

  it('does not delete the objects of a file while it has a YAML syntax error', async () => {
    const h = await setup({ 'a.yaml': routeYaml('one') + '---\n' + routeYaml('two') });
    const two = routeOf(h.last(), 'two')!;
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('one') + '---\nkind: ModelRoute\nmetadata: {name: two\n');
    const s = await h.until((x) => x.problems.length > 0);
    expect(routeOf(s, 'two')).toEqual(two);
    await writeFile(path.join(h.dir, 'a.yaml'), routeYaml('one'));
    expect(routeNames(await h.until((x) => x.problems.length === 0 && routeNames(x).length === 1))).toEqual(['default/one']);
  });

  it('keeps the definition from the lexicographically first file when an object is defined twice', async () => {
    const h = await setup({ 'b.yaml': routeYaml('dup', { weight: 2 }), 'a.yaml': routeYaml('dup', { weight: 1 }) });
    const s = h.last();
    expect(routeOf(s, 'dup')!.spec.rules[0]!.targetModels[0]!.weight).toBe(1);
    expect(s.problems).toEqual([{
      kind: 'ModelRoute', namespace: 'default', name: 'dup', file: path.join(h.dir, 'b.yaml'), field: 'metadata.name', severity: 'rejected',
      message: `ModelRoute default/dup is already defined in ${path.join(h.dir, 'a.yaml')} (document 1); this definition is ignored`,
    }]);
    const created = routeOf(s, 'dup')!.metadata.creationTimestamp;
    await unlink(path.join(h.dir, 'a.yaml'));
    const after = await h.until((x) => x.problems.length === 0);
    expect(routeOf(after, 'dup')!.spec.rules[0]!.targetModels[0]!.weight).toBe(2);
    expect(routeOf(after, 'dup')!.metadata.creationTimestamp).toBe(created);
  });

  it('treats the same name in another kind or namespace as a different object', async () => {
    const h = await setup({ 'a.yaml': routeYaml('x') + '---\n' + serverYaml('x') + '---\n' + routeYaml('x', { namespace: 'other' }) });
    expect(h.last().problems).toEqual([]);
    expect(routeNames(h.last())).toEqual(['default/x', 'other/x']);
    expect(h.last().resources.modelServers).toHaveLength(1);
  });

  it('reports an unreadable file and keeps its previous objects until it is gone', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r') });
    const file = path.join(h.dir, 'a.yaml');
    await unlink(file);
    await symlink(path.join(h.dir, 'missing-target'), file); // dangling: listed, but reading fails
    const s = await h.until((x) => x.problems.length > 0);
    expect(routeNames(s)).toEqual(['default/r']);
    expect(s.problems).toEqual([{ kind: '', namespace: '', name: '', file, field: '', severity: 'rejected', message: expect.stringMatching(/^cannot read file: ENOENT/) }]);
    await unlink(file);
    const gone = await h.until((x) => x.files.length === 0 && x.resources.modelRoutes.length === 0);
    expect(gone.problems).toEqual([]);
  });

  it('follows symlinked files, as in a mounted ConfigMap', async () => {
    const h = await setup();
    const target = path.join(h.dir, '..data-route');
    await writeFile(target, routeYaml('linked'));
    await symlink(target, path.join(h.dir, 'route.yaml'));
    expect(routeNames(await h.until((x) => x.files.length === 1))).toEqual(['default/linked']);
  });

  it('expands a v1 List', async () => {
    const list = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p1, labels: {app: srv}}
  status: {phase: Running, podIP: 127.0.0.2, conditions: [{type: Ready, status: "True"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: p2, labels: {app: srv}}
  status: {phase: Pending}
`;
    const h = await setup({ 'pods.yaml': list });
    expect(h.last().resources.pods.map((p) => [p.metadata.name, p.status.ready])).toEqual([['p1', true], ['p2', false]]);
  });

  it('reports other kinds as warnings and ignores them', async () => {
    const h = await setup({ 'deploy.yaml': await readFile(path.join(fixtures, 'kthena-examples', 'LLM-Mock.yaml'), 'utf8') });
    const s = h.last();
    expect(s.problems.map((p) => [p.kind, p.severity])).toEqual([['Deployment', 'warning']]);
    expect(routeNames(s)).toEqual(['default/llama']);
  });

  it('does not emit when nothing changed (touch, or a rewrite with identical content)', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r') });
    const file = path.join(h.dir, 'a.yaml');
    let n = h.provider.rebuilds;
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    await vi.waitFor(() => expect(h.provider.rebuilds).toBeGreaterThan(n), WAIT);
    n = h.provider.rebuilds;
    // Replaced atomically (a plain write can be read half-done, which is reported: next test).
    await writeFile(file + '.tmp', routeYaml('r'));
    await rename(file + '.tmp', file);
    await vi.waitFor(() => expect(h.provider.rebuilds).toBeGreaterThan(n), WAIT);
    expect(h.snaps).toHaveLength(1);
  });

  it('keeps the objects of a file read while it is empty (a write in progress), and drops them when the file is deleted', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r') });
    const file = path.join(h.dir, 'a.yaml');
    await writeFile(file, '');
    await vi.waitFor(() => expect(h.last().problems.map((p) => p.message)).toContain('the file is empty; its previous objects stay in use until it has content again or is deleted'), WAIT);
    expect(routeNames(h.last())).toEqual(['default/r']);
    await unlink(file);
    await vi.waitFor(() => expect(routeNames(h.last())).toEqual([]), WAIT);
  });

  it('coalesces a burst of changes into one rebuild', async () => {
    const h = await setup();
    await Promise.all(Array.from({ length: 10 }, (_, i) => writeFile(path.join(h.dir, `r${i}.yaml`), routeYaml(`r${i}`))));
    await h.until((x) => routeNames(x).length === 10);
    expect(h.snaps.length).toBeLessThanOrEqual(3);
  });

  it('never lets a throwing onChange stop the watcher, and counts it', async () => {
    let first = true;
    const h = await setup({ 'a.yaml': routeYaml('r') }, {
      onChange: () => {
        if (first) {
          first = false;
          throw new Error('consumer bug');
        }
      },
    });
    expect(h.provider.crashes).toBe(1);
    await writeFile(path.join(h.dir, 'b.yaml'), routeYaml('s'));
    await h.until((x) => routeNames(x).length === 2);
    expect(h.provider.crashes).toBe(1);
  });

  it('emits nothing after stop()', async () => {
    const h = await setup({ 'a.yaml': routeYaml('r') });
    await h.provider.stop();
    await writeFile(path.join(h.dir, 'b.yaml'), routeYaml('s'));
    await new Promise((r) => setTimeout(r, 200));
    expect(h.snaps).toHaveLength(1);
  });

  it('refuses to start on a directory that does not exist', async () => {
    const p = new FileProvider(path.join(tmpdir(), 'kthena-fp-does-not-exist-7f3a'), { onChange: () => {} });
    await expect(p.start()).rejects.toMatchObject({ code: 'RTR_ERR_CONFIG_INVALID', message: expect.stringContaining('ENOENT') });
  });

  it('validates its options', () => {
    expect(() => new FileProvider('', { onChange: () => {} })).toThrow(TypeError);
    expect(() => new FileProvider('/tmp', {} as never)).toThrow('FileProvider: opts.onChange must be a function');
    expect(() => new FileProvider('/tmp', { onChange: () => {}, pollMs: -1 })).toThrow('FileProvider: opts.pollMs must be a non-negative number, got -1');
  });
});
