/**
 * Selecting Kubernetes mode: --kubeconfig FILE, or in-cluster (KUBERNETES_SERVICE_HOST set and
 * no --config); file mode stays the default whenever --config is given.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { KubeClient, objectPath } from '../../src/kube/client.js';
import { collectionPath, WATCHED_KINDS } from '../../src/provider/kube/kinds.js';

const code = (f: () => unknown): string | undefined => {
  try { f(); } catch (e) { return `${(e as { code?: string }).code}: ${(e as Error).message}`; }
  return undefined;
};

describe('Kubernetes mode selection', () => {
  it('--kubeconfig selects Kubernetes mode without --config', () => {
    const cfg = loadConfig('serve', ['--kubeconfig', '/etc/kube/config'], {});
    expect(cfg.kubeconfig).toBe('/etc/kube/config');
    expect(cfg.inCluster).toBe(false);
  });

  it('in a pod (KUBERNETES_SERVICE_HOST) without --config: in-cluster', () => {
    expect(loadConfig('serve', [], { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).inCluster).toBe(true);
  });

  it('--config keeps file mode even in a pod', () => {
    const cfg = loadConfig('serve', ['--config', '/m'], { KUBERNETES_SERVICE_HOST: '10.0.0.1' });
    expect(cfg.inCluster).toBe(false);
    expect(cfg.kubeconfig).toBe('');
  });

  it('refuses --config with --kubeconfig, and no source at all', () => {
    expect(code(() => loadConfig('serve', ['--config', '/m', '--kubeconfig', '/k'], {}))).toBe(
      'RTR_ERR_CONFIG_INVALID: invalid configuration: --config DIR (file mode) and --kubeconfig FILE (Kubernetes mode) exclude each other');
    expect(code(() => loadConfig('serve', [], {}))).toMatch(/--config DIR is required .* or --kubeconfig FILE for Kubernetes mode/);
  });

  it('--enable-gateway-api in both modes', () => {
    expect(loadConfig('serve', ['--config', '/m', '--enable-gateway-api'], {}).enableGatewayApi).toBe(true);
    expect(loadConfig('serve', ['--kubeconfig', '/k', '--enable-gateway-api', '--enable-gateway-api-inference-extension'], {}).enableGatewayApi).toBe(true);
  });

  it('in-cluster without a mounted service account token is a configuration error', () => {
    expect(code(() => KubeClient.load({ kubeconfig: '', inCluster: true, serviceAccountRoot: '/nonexistent-root' }))).toBe(
      'RTR_ERR_CONFIG_INVALID: invalid configuration: in-cluster configuration: no service account token at /nonexistent-root/var/run/secrets/kubernetes.io/serviceaccount/token (automountServiceAccountToken disabled?); use --kubeconfig FILE or --config DIR');
  });

  it('an unreadable kubeconfig is a configuration error', () => {
    expect(code(() => KubeClient.load({ kubeconfig: '/nonexistent/kubeconfig', inCluster: false }))).toMatch(/^RTR_ERR_CONFIG_INVALID: invalid configuration: --kubeconfig \/nonexistent\/kubeconfig: ENOENT/);
  });
});

describe('watched kinds table', () => {
  const ctx = { podNamespace: 'kthena-system', gatewayApi: true, inferenceExtension: true };
  it('builds the API paths the API server serves', () => {
    const path = (kind: string) => collectionPath(WATCHED_KINDS.find((k) => k.kind === kind)!, ctx);
    expect(path('ModelRoute')).toBe('/apis/networking.serving.volcano.sh/v1alpha1/modelroutes');
    expect(path('Pod')).toBe('/api/v1/pods');
    expect(path('ConfigMap')).toBe('/api/v1/namespaces/kthena-system/configmaps');
    expect(path('GatewayClass')).toBe('/apis/gateway.networking.k8s.io/v1/gatewayclasses');
    expect(path('InferencePool')).toBe('/apis/inference.networking.k8s.io/v1/inferencepools');
    expect(objectPath('networking.serving.volcano.sh/v1alpha1', 'modelservers', 'ns', 'a', 'status')).toBe('/apis/networking.serving.volcano.sh/v1alpha1/namespaces/ns/modelservers/a/status');
  });

  it('watches Gateway API and Inference Extension kinds only when enabled', () => {
    const on = (c: typeof ctx) => WATCHED_KINDS.filter((k) => k.enabled(c)).map((k) => k.id ?? k.kind);
    expect(on({ ...ctx, gatewayApi: false, inferenceExtension: false })).toEqual(['ModelRoute', 'ModelServer', 'ExternalModelProvider', 'Pod', 'Secret', 'Secret/api-key', 'ConfigMap']);
    expect(on({ ...ctx, inferenceExtension: false })).toEqual(['ModelRoute', 'ModelServer', 'ExternalModelProvider', 'Pod', 'Secret', 'Secret/api-key', 'ConfigMap',
      'GatewayClass', 'Gateway', 'HTTPRoute', 'ReferenceGrant', 'Namespace', 'Secret/tls', 'Service', 'EndpointSlice']);
    expect(on(ctx)).toContain('InferencePool');
  });
});
