/**
 * deploy/: the Helm chart rendered by test/helpers/helm-render.ts (the chart's template subset,
 * Go semantics) with several value sets, every rendered object validated against the Kubernetes
 * schemas (kubernetes-models' OpenAPI validators, plus a TypeScript excess-property check that
 * catches unknown fields the way `kubectl apply --validate=strict` does), the CRDs against
 * Kthena's, Kthena's and our example manifests against both CRD sets, and the generated files
 * (CRDs, kustomize manifests) kept identical to a fresh generation.
 *
 * `UPDATE_DEPLOY=1 npx vitest run test/unit/deploy.test.ts` rewrites the generated files.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { renderChart, goFloat, mergeValues } from '../helpers/helm-render.js';
import { generateCrds } from '../helpers/crd-gen.js';
import { parseRouterConfig } from '../../src/routerconfig/parse.js';
import { parseManifestObject } from '../../src/resources/validate.js';
import { WEBHOOK_NAMES, VALIDATING_WEBHOOK_CONFIGURATION } from '../../src/webhook/certs.js';
import { ADMISSION_PATHS } from '../../src/webhook/admission.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const deployDir = path.join(root, 'deploy');
const chartDir = path.join(deployDir, 'chart', 'kthena-router');
const update = process.env.UPDATE_DEPLOY === '1';
const require = createRequire(import.meta.url);

type Obj = Record<string, any>;

function yamlDocs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Obj).filter((d) => d !== null && d !== undefined);
}

/** Generated file: rewritten under UPDATE_DEPLOY=1, else compared byte for byte. */
function generated(file: string, content: string): void {
  if (update) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  expect(existsSync(file), `${path.relative(root, file)} missing: run UPDATE_DEPLOY=1 npx vitest run test/unit/deploy.test.ts`).toBe(true);
  expect(readFileSync(file, 'utf8'), `${path.relative(root, file)} is stale: run UPDATE_DEPLOY=1 npx vitest run test/unit/deploy.test.ts`).toBe(content);
}

const HEADER = '# Generated from deploy/chart/kthena-router by test/unit/deploy.test.ts (UPDATE_DEPLOY=1); edit the chart, not this file.\n';

function manifestText(objects: { source: string; object: Obj }[]): string {
  return HEADER + objects.map((o) => `---\n# Source: kthena-router/templates/${o.source}\n${stringify(o.object, { lineWidth: 0 })}`).join('');
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

/** kubernetes-models class for an apiVersion/kind, and its TypeScript interface for the strict check. */
const MODELS: Record<string, { module: string; iface: string }> = {
  'v1/ServiceAccount': { module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
  'v1/ConfigMap': { module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'v1/Namespace': { module: 'kubernetes-models/v1/Namespace', iface: 'INamespace' },
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'policy/v1/PodDisruptionBudget': { module: 'kubernetes-models/policy/v1/PodDisruptionBudget', iface: 'IPodDisruptionBudget' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole', iface: 'IClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding', iface: 'IClusterRoleBinding' },
  'rbac.authorization.k8s.io/v1/Role': { module: 'kubernetes-models/rbac.authorization.k8s.io/v1/Role', iface: 'IRole' },
  'rbac.authorization.k8s.io/v1/RoleBinding': { module: 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding', iface: 'IRoleBinding' },
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': {
    module: 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration', iface: 'IValidatingWebhookConfiguration',
  },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': {
    module: 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition', iface: 'ICustomResourceDefinition',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', iface: 'IServiceMonitor' },
};

function modelKey(o: Obj): string {
  return `${o.apiVersion}/${o.kind}`;
}

/** The OpenAPI validation kubernetes-models generates from the Kubernetes API (types, required, formats). */
function openApiErrors(o: Obj): string[] {
  const m = MODELS[modelKey(o)];
  if (m === undefined) return [`no Kubernetes schema known for ${modelKey(o)}`];
  const mod = require(m.module) as Record<string, new (d: unknown) => { validate(): void }>;
  const Cls = Object.values(mod).find((v) => typeof v === 'function')!;
  try {
    new Cls(o).validate();
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

/**
 * The OpenAPI schemas allow unknown fields (the API server prunes or, with strict field
 * validation, refuses them). kubernetes-models' TypeScript interfaces list every field, so object
 * literals type-checked against them fail on any unknown or mistyped field at any depth.
 */
function strictFieldErrors(objects: Obj[]): string[] {
  const lines: string[] = [];
  objects.forEach((o, i) => {
    const m = MODELS[modelKey(o)];
    if (m === undefined) return;
    lines.push(`import type { ${m.iface} as T${i} } from '${m.module}';`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`);
  });
  const fileName = path.join(root, 'test', '__strict_fields__.ts');
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (f === fileName ? source : readFile(f));
  host.fileExists = (f) => f === fileName || fileExists(f);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang) => (f === fileName ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang));
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const obj = where ? /o(\d+):/.exec(source.split('\n').slice(0, where.line + 1).reverse().find((l) => /^export const o\d+:/.test(l)) ?? '')?.[1] : undefined;
    const o = obj !== undefined ? objects[Number(obj)] : undefined;
    return `${o ? `${modelKey(o)} ${o.metadata?.name}` : '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

/** An ajv validator for a CRD's openAPIV3Schema, strict about unknown fields as kubectl is. */
function crdValidator(crd: Obj): ValidateFunction {
  const strict = (s: Obj): Obj => {
    if (s === null || typeof s !== 'object') return s;
    const out: Obj = {};
    for (const [k, v] of Object.entries(s)) {
      if (k.startsWith('x-kubernetes-') || k === 'description') continue;
      if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v as Obj).map(([pk, pv]) => [pk, strict(pv as Obj)]));
      else if (k === 'items' || k === 'additionalProperties') out[k] = typeof v === 'object' ? strict(v as Obj) : v;
      else if (k === 'allOf' || k === 'anyOf' || k === 'oneOf') out[k] = (v as Obj[]).map(strict);
      else out[k] = v;
    }
    if (out.type === 'object' && out.properties !== undefined && out.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) {
      out.additionalProperties = false;
    }
    return out;
  };
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i);
  return ajv.compile(strict(crd.spec.versions[0].schema.openAPIV3Schema as Obj));
}

function crdSet(crds: Obj[]): Map<string, ValidateFunction> {
  return new Map(crds.map((c) => [`${c.spec.group}/${c.spec.versions[0].name}/${c.spec.names.kind}`, crdValidator(c)]));
}

function crdErrors(set: Map<string, ValidateFunction>, o: Obj): string[] | null {
  const v = set.get(`${o.apiVersion}/${o.kind}`);
  if (v === undefined) return null;
  return v(o) ? [] : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Kthena's CRDs (copies of shared/reference/crds in test/fixtures/crds). */
function kthenaCrds(): Obj[] {
  const dir = path.join(root, 'test', 'fixtures', 'crds');
  return readdirSync(dir).filter((f) => f.startsWith('networking.serving.volcano.sh_')).flatMap((f) => yamlDocs(path.join(dir, f)));
}

// ---------------------------------------------------------------------------------------------

const ALL_ON = {
  kthenaRouter: {
    replicas: 3,
    gatewayAPI: { enabled: true, inferenceExtension: true, listenerPorts: [{ name: 'gw-9000', port: 9000 }, { name: 'gw-9001', port: 9001 }] },
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    grafanaDashboard: { enabled: true },
    kubeAPIQPS: 50,
    kubeAPIBurst: 100,
    metrics: { exposeOnRouterPort: true },
    webhook: { caBundle: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64') },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
    podAnnotations: { 'prometheus.io/scrape': 'false' },
    service: { type: 'ClusterIP', annotations: { 'example.com/lb': 'internal' } },
    resource: { requests: { cpu: '2500m', memory: '1Gi' }, limits: { memory: '2Gi' } },
  },
};
const WEBHOOK_OFF = { kthenaRouter: { webhook: { enabled: false }, podDisruptionBudget: { enabled: false } } };

const VALUE_SETS: [string, unknown][] = [['defaults', {}], ['everything on', ALL_ON], ['webhook and PDB off', WEBHOOK_OFF]];

function render(values: unknown, namespace = 'kthena-system'): Obj[] {
  return renderChart(chartDir, { values, namespace }).renderObjects().map((o) => o.object);
}

function find(objs: Obj[], kind: string, name?: string): Obj {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  expect(o, `${kind} ${name ?? ''} rendered`).toBeDefined();
  return o!;
}

describe('generated files are up to date', () => {
  it('deploy/crds and the chart\'s crds/ are what the generator writes from the router\'s schemas', () => {
    for (const { file, crd } of generateCrds()) {
      const text = `# Generated from src/resources/validate.ts by test/unit/deploy.test.ts (UPDATE_DEPLOY=1).\n${stringify(crd, { lineWidth: 0 })}`;
      generated(path.join(deployDir, 'crds', file), text);
      generated(path.join(chartDir, 'crds', file), text);
    }
  });

  it('deploy/kustomize is the chart rendered with its defaults', () => {
    // As Helm renders it, except that kubectl, not Helm, manages these objects.
    const objects = renderChart(chartDir, { namespace: 'kthena-system', service: 'kustomize' }).renderObjects();
    generated(path.join(deployDir, 'kustomize', 'kthena-router.yaml'), manifestText(objects));
    const kustomization = parseYaml(readFileSync(path.join(deployDir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    for (const res of kustomization.resources) expect(existsSync(path.join(deployDir, res)), res).toBe(true);
    expect(kustomization.resources).toEqual(expect.arrayContaining([
      ...generateCrds().map((c) => `crds/${c.file}`), 'kustomize/namespace.yaml', 'kustomize/kthena-router.yaml',
    ]));
  });
});

describe('rendered chart objects are valid Kubernetes objects', () => {
  it.each(VALUE_SETS)('%s: OpenAPI schema and strict fields', (_name, values) => {
    const objs = [...render(values), ...generateCrds().map((c) => c.crd)];
    for (const o of objs) expect(openApiErrors(o), `${modelKey(o)} ${o.metadata?.name}`).toEqual([]);
    expect(strictFieldErrors(objs)).toEqual([]);
  });

  it('the strict check catches an unknown or mistyped field deep in an object', () => {
    const d = structuredClone(find(render({}), 'Deployment'));
    d.spec.template.spec.containers[0].livenesProbe = d.spec.template.spec.containers[0].livenessProbe;
    d.spec.replicas = 'three';
    const errs = strictFieldErrors([d]).join('\n');
    expect(errs).toMatch(/livenesProbe/);
    expect(errs).toMatch(/replicas|'string' is not assignable to type 'number'/);
    expect(openApiErrors(d).join('')).toMatch(/replicas/);
  });

  it('the kustomize manifests are valid too', () => {
    const objs = [
      ...yamlDocs(path.join(deployDir, 'kustomize', 'kthena-router.yaml')),
      ...yamlDocs(path.join(deployDir, 'kustomize', 'namespace.yaml')),
      ...generateCrds().map((c) => c.crd),
    ];
    for (const o of objs) expect(openApiErrors(o), `${modelKey(o)} ${o.metadata?.name}`).toEqual([]);
    expect(strictFieldErrors(objs)).toEqual([]);
  });
});

describe('the chart does what docs/deploy.md says', () => {
  let defaults: Obj[];
  let all: Obj[];
  beforeAll(() => {
    defaults = render({});
    all = render(ALL_ON, 'llm');
  });

  it('keeps Kthena\'s object names', () => {
    const names = defaults.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual([
      'ClusterRole/kthena-router', 'ClusterRoleBinding/kthena-router', 'ConfigMap/kthena-router-config', 'Deployment/kthena-router',
      'PodDisruptionBudget/kthena-router', 'Role/kthena-router', 'RoleBinding/kthena-router', 'Service/kthena-router',
      'Service/kthena-router-metrics', 'Service/kthena-router-webhook', 'ServiceAccount/kthena-router',
      `ValidatingWebhookConfiguration/${VALIDATING_WEBHOOK_CONFIGURATION}`,
    ]);
    expect(find(defaults, 'Service', 'kthena-router').spec).toMatchObject({ type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
    expect(find(defaults, 'Service', 'kthena-router-metrics').spec.ports).toEqual([{ name: 'metrics', port: 9090, targetPort: 'metrics' }]);
  });

  it('ties the worker count to the CPU request through the downward API', () => {
    const c = find(all, 'Deployment').spec.template.spec.containers[0];
    expect(c.args).toContain('--workers=$(KTHENA_ROUTER_CPU_REQUEST)');
    const env = c.env.find((e: Obj) => e.name === 'KTHENA_ROUTER_CPU_REQUEST');
    expect(env.valueFrom.resourceFieldRef).toEqual({ containerName: c.name, resource: 'requests.cpu', divisor: '1' });
    // $(VAR) expansion only works for a variable defined before use in env: it is.
    expect(c.resources.requests.cpu).toBe('2500m');
    const noCpu = mergeValues({}, { kthenaRouter: { resource: { requests: { cpu: null } } } });
    expect(() => render(noCpu)).toThrow(/kthenaRouter.resource.requests.cpu is required/);
  });

  it('passes Kthena\'s flags, which the router\'s own flag parser accepts', async () => {
    const { FLAGS } = await import('../../src/config.js');
    for (const objs of [defaults, all, render(WEBHOOK_OFF)]) {
      const args = find(objs, 'Deployment').spec.template.spec.containers[0].args as string[];
      expect(args[0]).toBe('serve');
      for (const a of args.slice(1)) {
        const name = /^--([a-z-]+)/.exec(a)?.[1];
        expect(name !== undefined && FLAGS[name] !== undefined, `flag ${a}`).toBe(true);
      }
    }
    // And the values parse: the router's own loader, with the CPU request substituted as the
    // kubelet does ($(VAR) expansion) and --config standing in for Kubernetes mode.
    const { loadConfig } = await import('../../src/config.js');
    for (const [objs, webhook] of [[defaults, true], [render(WEBHOOK_OFF), false]] as const) {
      const c = find(objs, 'Deployment').spec.template.spec.containers[0];
      const argv = (c.args as string[]).slice(1).map((a) => a.replace('$(KTHENA_ROUTER_CPU_REQUEST)', '3'));
      const env = Object.fromEntries((c.env as Obj[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
      const cfg = loadConfig('serve', [...argv, '--config', '/nonexistent'], env);
      expect(cfg).toMatchObject({ workers: 3, port: 8080, metricsPort: 9090, enableWebhook: webhook, drainTimeoutMs: 300_000, routerConfigFile: '/etc/config/routerConfiguration.yaml' });
      if (webhook) expect(cfg).toMatchObject({ webhookPort: 8443, certSecretName: 'kthena-router-webhook-certs', webhookServiceName: 'kthena-router-webhook' });
    }
    const args = find(all, 'Deployment').spec.template.spec.containers[0].args as string[];
    expect(args).toEqual(expect.arrayContaining(['--enable-gateway-api=true', '--enable-gateway-api-inference-extension=true', '--kube-api-qps=50', '--kube-api-burst=100', '--expose-metrics-on-router-port']));
  });

  it('passes Kthena\'s fairness and sessionBoost switches on to the router, which serves either and refuses both together', async () => {
    const { loadConfig } = await import('../../src/config.js');
    const envOf = (values: Obj): Record<string, string> => {
      const c = find(render(values), 'Deployment').spec.template.spec.containers[0];
      return Object.fromEntries((c.env as Obj[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    };
    const both = envOf({ kthenaRouter: { fairness: { enabled: true, windowSize: '1h' }, sessionBoost: { enabled: true } } });
    expect(both).toMatchObject({ ENABLE_FAIRNESS_SCHEDULING: 'true', ENABLE_SESSION_BOOST: 'true' });
    expect(() => loadConfig('serve', ['--config', '/nonexistent'], both)).toThrow(/mutually exclusive/);
    const fair = envOf({ kthenaRouter: { fairness: { enabled: true, windowSize: '1h' } } });
    expect(loadConfig('serve', ['--config', '/nonexistent'], fair).fairness).toMatchObject({ enabled: true, windowMs: 3_600_000 });
    const off = find(defaults, 'Deployment').spec.template.spec.containers[0].env as Obj[];
    expect(off.map((e) => e.name)).not.toContain('ENABLE_FAIRNESS_SCHEDULING');
  });

  it('runs non-root on a read-only root filesystem with /tmp as the only writable path', () => {
    const spec = find(defaults, 'Deployment').spec.template.spec;
    const c = spec.containers[0];
    expect(spec.securityContext.runAsNonRoot).toBe(true);
    expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const writable = c.volumeMounts.filter((m: Obj) => !m.readOnly).map((m: Obj) => m.mountPath);
    expect(writable).toEqual(['/tmp']);
    const tmp = spec.volumes.find((v: Obj) => v.name === c.volumeMounts.find((m: Obj) => m.mountPath === '/tmp').name);
    expect(tmp.emptyDir).toBeDefined();
  });

  it('probes /healthz and /readyz on the router port, and every Service targets a declared container port', () => {
    for (const objs of [defaults, all]) {
      const dep = find(objs, 'Deployment');
      const c = dep.spec.template.spec.containers[0];
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      const portNames = new Set(c.ports.map((p: Obj) => p.name));
      const podLabels = dep.spec.template.metadata.labels;
      for (const svc of objs.filter((o) => o.kind === 'Service')) {
        for (const p of svc.spec.ports) expect(portNames.has(p.targetPort), `${svc.metadata.name} -> ${p.targetPort}`).toBe(true);
        for (const [k, v] of Object.entries(svc.spec.selector as Obj)) expect(podLabels[k], `${svc.metadata.name} selector ${k}`).toBe(v);
      }
      for (const [k, v] of Object.entries(dep.spec.selector.matchLabels as Obj)) expect(podLabels[k]).toBe(v);
    }
    const ports = find(all, 'Service', 'kthena-router').spec.ports.map((p: Obj) => p.port);
    expect(ports).toEqual([80, 9000, 9001]);
  });

  it('mounts the ConfigMap as a directory (hot reload) and its default is Kthena\'s Helm profile, which the router parses', () => {
    const cm = find(defaults, 'ConfigMap', 'kthena-router-config');
    const r = parseRouterConfig(cm.data.routerConfiguration);
    expect(r.problems.filter((p) => p.severity === 'rejected')).toEqual([]);
    expect(r.scheduler?.filters).toEqual(['least-request']);
    const spec = find(defaults, 'Deployment').spec.template.spec;
    const mount = spec.containers[0].volumeMounts.find((m: Obj) => m.name === 'router-config');
    expect(mount.subPath).toBeUndefined();
    expect(spec.containers[0].args).toContain(`--router-config=${mount.mountPath}/routerConfiguration.yaml`);
  });

  it('grants exactly the verbs the provider needs', () => {
    const rules = (objs: Obj[], kind: string): string[] => find(objs, kind).rules.flatMap((r: Obj) =>
      (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) =>
        `${g || 'core'}/${res}${r.resourceNames ? `(${r.resourceNames.join(',')})` : ''}: ${(r.verbs as string[]).join(',')}`)));
    expect(rules(defaults, 'ClusterRole')).toEqual([
      'networking.serving.volcano.sh/modelroutes: get,list,watch',
      'networking.serving.volcano.sh/modelservers: get,list,watch',
      'networking.serving.volcano.sh/externalmodelproviders: get,list,watch',
      'networking.serving.volcano.sh/modelroutes/status: update,patch',
      'networking.serving.volcano.sh/modelservers/status: update,patch',
      'networking.serving.volcano.sh/externalmodelproviders/status: update,patch',
      'core/pods: get,list,watch',
      'core/secrets: get,list,watch',
      `admissionregistration.k8s.io/validatingwebhookconfigurations(${VALIDATING_WEBHOOK_CONFIGURATION}): patch`,
    ]);
    expect(rules(all, 'ClusterRole')).toEqual(expect.arrayContaining([
      'core/services: get,list,watch', 'core/namespaces: get,list,watch', 'discovery.k8s.io/endpointslices: get,list,watch',
      'gateway.networking.k8s.io/gatewayclasses: get,list,watch', 'gateway.networking.k8s.io/referencegrants: get,list,watch',
      'gateway.networking.k8s.io/gatewayclasses: create', 'gateway.networking.k8s.io/gateways: create',
      'gateway.networking.k8s.io/gateways/status: update,patch', 'gateway.networking.k8s.io/httproutes/status: update,patch',
      'inference.networking.k8s.io/inferencepools: get,list,watch', 'inference.networking.k8s.io/inferencepools/status: update,patch',
      'inference.networking.x-k8s.io/inferenceobjectives: get,list,watch', 'llm-d.ai/inferenceobjectives: get,list,watch',
    ]));
    expect(rules(defaults, 'Role')).toEqual(['core/configmaps: get,list,watch', 'coordination.k8s.io/leases: create,get,update', 'core/secrets: create']);
    // Nothing anywhere may delete, and nothing but the bootstrap and the certificate Secret is created.
    for (const objs of [defaults, all]) {
      for (const kind of ['ClusterRole', 'Role']) {
        for (const r of rules(objs, kind)) {
          expect(r).not.toMatch(/delete|deletecollection|escalate|bind|impersonate|\*/);
          if (r.includes('create')) expect(r).toMatch(/^(gateway\.networking\.k8s\.io\/(gatewayclasses|gateways)|core\/secrets|coordination\.k8s\.io\/leases): /);
        }
      }
    }
    const noWebhook = rules(render(WEBHOOK_OFF), 'ClusterRole').join('\n');
    expect(noWebhook).not.toMatch(/validatingwebhookconfigurations/);
    expect(find(all, 'ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'kthena-router', namespace: 'llm' }]);
  });

  it('configures the webhook the router serves: names, paths, Service, and the CA bundle it patches', () => {
    const vwc = find(all, 'ValidatingWebhookConfiguration');
    expect(vwc.webhooks.map((w: Obj) => w.name)).toEqual(WEBHOOK_NAMES);
    expect(vwc.webhooks.map((w: Obj) => w.clientConfig.service.path)).toEqual(Object.keys(ADMISSION_PATHS));
    const svc = find(all, 'Service', 'kthena-router-webhook');
    for (const w of vwc.webhooks) {
      expect(w.clientConfig.service).toMatchObject({ name: svc.metadata.name, namespace: 'llm', port: svc.spec.ports[0].port });
      expect(w.rules[0].apiGroups).toEqual(['networking.serving.volcano.sh']);
      expect(w.failurePolicy).toBe('Fail');
      expect(w.clientConfig.caBundle).toBe(ALL_ON.kthenaRouter.webhook.caBundle);
    }
    expect(find(defaults, 'ValidatingWebhookConfiguration').webhooks[0].clientConfig.caBundle).toBeUndefined();
    const off = render(WEBHOOK_OFF);
    expect(off.some((o) => o.kind === 'ValidatingWebhookConfiguration' || o.metadata.name === 'kthena-router-webhook' || o.kind === 'PodDisruptionBudget')).toBe(false);
    const c = find(off, 'Deployment').spec.template.spec.containers[0];
    expect(c.args).toContain('--enable-webhook=false');
    expect(c.ports.map((p: Obj) => p.name)).toEqual(['http', 'metrics']);
  });

  it('the ServiceMonitor selects the metrics Service, and the dashboard reads only documented metrics', () => {
    const sm = find(all, 'ServiceMonitor');
    const metrics = find(all, 'Service', 'kthena-router-metrics');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Obj)) expect(metrics.metadata.labels[k]).toBe(v);
    expect(sm.spec.endpoints[0].port).toBe(metrics.spec.ports[0].name);
    expect(sm.metadata.labels.release).toBe('prometheus');

    const cm = find(all, 'ConfigMap', 'kthena-router-dashboard');
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    const dash = JSON.parse(cm.data['kthena-router.json']) as { panels: { targets: { expr: string }[] }[]; uid: string };
    expect(dash.uid).toBe('kthena-router');
    const documented = new Set([...readFileSync(path.join(root, 'docs', 'metrics.md'), 'utf8').matchAll(/`(kthena_router_[a-z_]+)`/g)].map((m) => m[1]));
    const used = new Set(dash.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b(kthena_router_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')))));
    expect(used.size).toBeGreaterThan(10);
    for (const m of used) expect(documented.has(m), `${m} documented in docs/metrics.md`).toBe(true);
  });
});

describe('CRDs: ours against Kthena\'s', () => {
  const normalize = (s: unknown): unknown => {
    if (Array.isArray(s)) return s.map(normalize);
    if (s === null || typeof s !== 'object') return s;
    const o: Obj = {};
    for (const [k, v] of Object.entries(s as Obj)) {
      if (k === 'description' || k === 'x-kubernetes-map-type') continue;
      o[k] = normalize(v);
    }
    // controller-gen writes an enum twice as allOf for a named string type; it means one enum.
    if (Array.isArray(o.allOf) && o.allOf.every((a: Obj) => Object.keys(a).length === 1 && a.enum)) {
      o.enum = o.allOf[0].enum;
      delete o.allOf;
    }
    if (Array.isArray(o.required)) o.required = [...o.required].sort();
    return o;
  };

  it('every spec schema, CEL rule, name and printer column is Kthena\'s; status is a superset', () => {
    const theirs = new Map(kthenaCrds().map((c) => [c.metadata.name as string, c]));
    const ours = generateCrds().map((c) => c.crd as Obj);
    expect(ours.map((c) => c.metadata.name).sort()).toEqual([...theirs.keys()].sort());
    for (const our of ours) {
      const their = theirs.get(our.metadata.name)!;
      expect(our.spec.names).toEqual(their.spec.names);
      expect(our.spec.scope).toBe(their.spec.scope);
      const ov = our.spec.versions[0];
      const tv = their.spec.versions[0];
      expect(ov.name).toBe(tv.name);
      expect(ov.subresources).toEqual(tv.subresources);
      expect(ov.additionalPrinterColumns).toEqual(tv.additionalPrinterColumns);
      const os = ov.schema.openAPIV3Schema;
      const tsch = tv.schema.openAPIV3Schema;
      // Fields we add beyond Kthena's CRD (docs/compat.md): ModelRoute.spec.sessionSticky, ModelServer.spec.apiKeyRules (Kthena's proposals).
      const extensions = ({ 'modelroutes.networking.serving.volcano.sh': ['sessionSticky'], 'modelservers.networking.serving.volcano.sh': ['apiKeyRules'] } as Record<string, string[]>)[our.metadata.name] ?? [];
      const ourSpec = normalize(os.properties.spec) as Obj;
      for (const k of extensions) { expect(ourSpec.properties).toHaveProperty(k); delete ourSpec.properties[k]; }
      expect(ourSpec, `${our.metadata.name} spec`).toEqual(normalize(tsch.properties.spec));
      expect(os.required).toEqual(tsch.required);
      // Kthena's status (empty object, or the EMP conditions) is accepted by ours.
      const theirStatus = normalize(tsch.properties.status) as Obj;
      if (theirStatus.properties !== undefined) expect(normalize(os.properties.status)).toEqual(theirStatus);
      else expect(os.properties.status.type).toBe('object');
    }
  });
});

describe('example manifests against both CRD sets', () => {
  const examples = (dir: string): { file: string; object: Obj }[] =>
    readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => yamlDocs(path.join(dir, f)).map((object) => ({ file: f, object })));
  const EMP_EXAMPLES: Obj[] = [
    { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ExternalModelProvider', metadata: { name: 'deepseek-provider', namespace: 'default' },
      spec: { providerType: 'OpenAI', model: 'deepseek-chat', baseURL: 'https://api.deepseek.com', auth: { secretRef: { name: 'deepseek-api-key', key: 'apiKey' } } } },
    { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ExternalModelProvider', metadata: { name: 'anthropic', namespace: 'default' },
      spec: { providerType: 'Anthropic', baseURL: 'https://api.anthropic.com', headers: { 'anthropic-version': '2023-06-01' }, auth: { secretRef: { name: 'k', key: 'apiKey' } } } },
  ];

  it('Kthena\'s examples, ours and the provider examples validate against Kthena\'s CRDs and ours; the rest against Kubernetes', () => {
    const theirs = crdSet(kthenaCrds());
    const ours = crdSet(generateCrds().map((c) => c.crd));
    const all = [
      ...examples(path.join(root, 'test', 'fixtures', 'kthena-examples')),
      ...examples(path.join(root, 'examples')),
      ...EMP_EXAMPLES.map((object) => ({ file: 'ExternalModelProvider', object })),
    ];
    let custom = 0;
    const builtin: Obj[] = [];
    for (const { file, object } of all) {
      const a = crdErrors(theirs, object);
      const b = crdErrors(ours, object);
      if (a === null) {
        expect(b, `${file}: ${modelKey(object)} is not one of ours`).toBeNull();
        builtin.push(object);
        continue;
      }
      custom++;
      expect(a, `${file} vs Kthena's CRD`).toEqual([]);
      expect(b, `${file} vs our CRD`).toEqual([]);
      // And the router itself accepts it (file mode), with no warning.
      expect(parseManifestObject(object, { file, now: () => '2025-01-01T00:00:00Z' }).problems).toEqual([]);
    }
    expect(custom).toBeGreaterThanOrEqual(16);
    // Kthena's mock engine Deployments and our example Pods are ordinary Kubernetes objects.
    const known = builtin.filter((o) => ['apps/v1/Deployment', 'v1/Service', 'v1/Pod'].includes(modelKey(o)));
    expect(known.length).toBeGreaterThan(0);
    for (const o of known) {
      if (modelKey(o) === 'v1/Pod') {
        const mod = require('kubernetes-models/v1/Pod') as { Pod: new (d: unknown) => { validate(): void } };
        expect(() => new mod.Pod(o).validate()).not.toThrow();
      } else {
        expect(openApiErrors(o)).toEqual([]);
      }
    }
  });

  it('both CRD sets refuse what they should: an unknown field, a weight above 100, http baseURL', () => {
    const theirs = crdSet(kthenaCrds());
    const ours = crdSet(generateCrds().map((c) => c.crd));
    const bad: Obj[] = [
      { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ModelRoute', metadata: { name: 'r' }, spec: { modelName: 'm', rules: [{ targetModels: [{ modelServerName: 's', wieght: 5 }] }] } },
      { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ModelRoute', metadata: { name: 'r' }, spec: { modelName: 'm', rules: [{ targetModels: [{ modelServerName: 's', weight: 101 }] }] } },
      { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ExternalModelProvider', metadata: { name: 'p' }, spec: { baseURL: 'http://x' } },
      { apiVersion: 'networking.serving.volcano.sh/v1alpha1', kind: 'ModelServer', metadata: { name: 's' }, spec: { inferenceEngine: 'TGI', workloadSelector: {}, workloadPort: { port: 1 } } },
    ];
    for (const o of bad) {
      expect(crdErrors(theirs, o)!.length, JSON.stringify(o.spec)).toBeGreaterThan(0);
      expect(crdErrors(ours, o)!.length, JSON.stringify(o.spec)).toBeGreaterThan(0);
    }
  });
});

describe('helm-render follows Go template semantics for the subset', () => {
  let tmp: string;
  beforeAll(() => { tmp = mkdtempSync(path.join(tmpdir(), 'helm-subset-')); });
  afterAll(() => { rmSync(tmp, { recursive: true, force: true }); });
  const tpl = (src: string, values: unknown = {}): string => {
    const dir = path.join(tmp, 'helm-subset');
    mkdirSync(path.join(dir, 'templates'), { recursive: true });
    writeFileSync(path.join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: t\nversion: 1.2.3\nappVersion: "9"\n');
    writeFileSync(path.join(dir, 'values.yaml'), 'a: {b: 1, list: [x, y]}\nzero: 0\nempty: ""\nbig: 1000000\nflag: false\n');
    writeFileSync(path.join(dir, 'templates', 't.yaml'), src);
    return renderChart(dir, { values, release: 'rel', namespace: 'ns' }).renderTexts().get('t.yaml')!;
  };

  it('trims whitespace at {{- and -}} only', () => {
    expect(tpl('a:\n  {{- " b" }}\nc: {{ "d" -}}\n   e')).toBe('a: b\nc: de');
  });
  it('uses Go truthiness: 0, "", false, nil, empty list/map are false', () => {
    expect(tpl('{{ if .Values.zero }}1{{ else if .Values.empty }}2{{ else if .Values.flag }}3{{ else if .Values.nope }}4{{ else }}5{{ end }}')).toBe('5');
    expect(tpl('{{ if and .Values.a .Values.a.b }}yes{{ end }}{{ if or .Values.zero .Values.a.list }} or{{ end }}{{ if not .Values.empty }} not{{ end }}')).toBe('yes or not');
  });
  it('prints numbers as Go prints float64, missing values as nothing', () => {
    expect(tpl('{{ .Values.a.b }} {{ .Values.big }} {{ .Values.nothing.here }}.')).toBe('1 1e+06 .');
    expect([goFloat(8080), goFloat(0.5), goFloat(123456), goFloat(1e-5)]).toEqual(['8080', '0.5', '123456', '1e-05']);
  });
  it('ranges with dot rebound and $ as the root; quote, default, toYaml, nindent, include', () => {
    expect(tpl('{{- range .Values.a.list }}[{{ . }}{{ $.Release.Namespace }}]{{- end }}')).toBe('[xns][yns]');
    expect(tpl('{{ "x" | quote }} {{ .Values.flag | quote }} {{ .Values.nope | default "d" }} {{ default "d" .Values.a.b }}')).toBe('"x" "false" d 1');
    expect(tpl('k:{{- toYaml .Values.a | nindent 2 }}')).toBe('k:\n  b: 1\n  list:\n  - x\n  - y');
    expect(tpl('{{- define "n" -}}{{ .Chart.Name }}-{{ .Chart.Version }}{{- end -}}\n{{ include "n" . }}')).toBe('t-1.2.3');
  });
  it('with rebinds dot to a truthy value and runs else otherwise; int truncates (Kthena\'s chart uses both)', () => {
    expect(tpl('{{ with .Values.a }}{{ .b }}{{ $.Release.Name }}{{ end }}|{{ with .Values.zero }}no{{ else }}{{ .Values.a.b }}{{ end }}')).toBe('1rel|1');
    expect(tpl('{{ int .Values.a.b }} {{ int "15000" }} {{ .Values.nope | int }}')).toBe('1 15000 0');
  });
  it('refuses what it does not implement, so the chart cannot leave the subset unnoticed', () => {
    expect(() => tpl('{{ printf "%s" "x" }}')).toThrow(/outside the chart's template subset/);
    expect(() => tpl('{{ with $x := .Values.a }}{{ .b }}{{ end }}')).toThrow(/outside the chart's template subset/);
    expect(() => tpl('{{ $x := 1 }}')).toThrow(/outside the chart's template subset/);
    expect(() => tpl('{{ required "need it" .Values.nope }}')).toThrow(/need it/);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const stages = text.split(/^FROM /m).slice(1).map((s) => `FROM ${s}`);
  const final = stages[stages.length - 1]!;

  it('builds on Node 20 on Debian bookworm (glibc 2.36, which the uWS binary loads on)', () => {
    for (const from of lines.filter((l) => l.startsWith('FROM '))) expect(from).toMatch(/^FROM node:20(\.\d+)*-bookworm(-slim)?(@sha256:[0-9a-f]{64})?( AS \w+)?$/);
  });

  it('installs production dependencies with npm ci --omit=dev and ships the built dist', () => {
    expect(final).toMatch(/npm ci --omit=dev/);
    expect(text).toMatch(/npm run build/);
    expect(final).toMatch(/COPY --from=\w+ .*dist/);
  });

  it('runs as a non-root user and writes nothing outside /tmp', () => {
    const user = /^USER (\S+)$/m.exec(final);
    expect(user).not.toBeNull();
    expect(user![1]).not.toMatch(/^(root|0)(:|$)/);
    // Nothing after USER writes into the image, and the runtime environment points temp files at /tmp.
    const afterUser = final.slice(final.indexOf(user![0]));
    expect(afterUser).not.toMatch(/^(RUN|COPY|ADD) /m);
    expect(final).toMatch(/ENV .*NODE_ENV=production/);
    expect(final).toMatch(/ENTRYPOINT \["node", "\/app\/bin\/kthena-router\.js"\]/);
    const volumes = [...final.matchAll(/^VOLUME \[?"?([^"\]\s]+)/gm)].map((m) => m[1]);
    expect(volumes.every((v) => v === '/tmp')).toBe(true);
  });
});
