/**
 * deploy/native-bench: the in-cluster load test. The Job manifest parses, reproduces Kthena's
 * benchmark job (rate 800, max concurrency 300, generated-shared-prefix) against the router
 * Service, writes its results to a volume, and its arguments are accepted by the CLI as written.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { parseRunArgs } from '../../native-bench/src/cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = path.join(root, 'deploy', 'native-bench');

interface Container { image: string; args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }
interface JobDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { backoffLimit: number; template: { spec: { restartPolicy: string; containers: Container[]; volumes: Array<{ name: string }> } } };
}

describe('native-bench Kubernetes Job', () => {
  const docs = parseAllDocuments(readFileSync(path.join(dir, 'job.yaml'), 'utf8'));
  const job = docs[0].toJS() as JobDoc;
  const c = job.spec.template.spec.containers[0];

  it('is one valid batch/v1 Job that runs once', () => {
    expect(docs.map((d) => d.errors.length)).toEqual([0]);
    expect(job).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'native-bench', namespace: 'kthena-system' } });
    expect(job.spec.backoffLimit).toBe(0);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
  });

  it("reproduces Kthena's benchmark job against the router Service, and the CLI accepts its arguments", () => {
    expect(c.args[0]).toBe('run');
    const cli = parseRunArgs(c.args.slice(1));
    expect(cli.load.urls).toEqual(['http://kthena-router.kthena-system.svc:80']);
    expect(cli.load).toMatchObject({ rate: 800, maxConcurrency: 300, endpoint: 'completions', path: '/v1/completions' });
    expect(cli.load.workload.params).toEqual({ gsp_num_groups: 256, gsp_prompts_per_group: 16, gsp_system_prompt_len: 256, gsp_question_len: 2048, gsp_output_len: 256 });
    expect(cli.backend).toBe('vllm');
    expect(cli.threads).toBeGreaterThan(1);
  });

  it('writes every result file into the mounted results volume', () => {
    const cli = parseRunArgs(c.args.slice(1));
    const mount = c.volumeMounts.find((m) => m.name === 'results')!.mountPath;
    for (const f of [cli.json, cli.csv, cli.md, cli.svg]) expect(f?.startsWith(mount + '/')).toBe(true);
    expect(job.spec.template.spec.volumes.map((v) => v.name)).toContain('results');
  });
});

describe('native-bench image', () => {
  const text = readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
  it('builds the whole tree and runs native-bench as a non-root user', () => {
    expect(text).toMatch(/^FROM node:20-bookworm AS build$/m);
    expect(text).toMatch(/COPY native-bench \.\/native-bench/);
    expect(text).toMatch(/npm run build/);
    expect(text).toMatch(/^USER 65532:65532$/m);
    expect(text).toMatch(/ENTRYPOINT \["node", "\/app\/native-bench\/bin\/native-bench\.js"\]/);
    // Every native-bench dependency is in the image (the tokenizer is a dev dependency of the router).
    const deps = Object.keys((JSON.parse(readFileSync(path.join(root, 'native-bench', 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
    const rootPkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const d of deps) {
      if (!(d in rootPkg.dependencies)) expect(text).toContain(`node_modules/${d} `);
    }
  });
});
