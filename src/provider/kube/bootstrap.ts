/**
 * Gateway API bootstrap (docs/reference/kthena-behaviour.md §6.1), run when --enable-gateway-api is set in Kubernetes mode:
 * GatewayClass `kthena-router` (controllerName `volcano.sh/kthena-router`) and the Gateway
 * `default` in POD_NAMESPACE with one HTTP listener on --port accepting routes from all
 * namespaces. Each is created only when missing (a user's edits are kept). An unreachable API
 * server is retried with backoff in the background; start-up never waits for it.
 */
import { objectPath, type KubeClient } from '../../kube/client.js';
import { backoffDelay, type BackoffOptions, DEFAULT_BACKOFF } from '../../kube/backoff.js';
import { GATEWAY_GROUP_VERSION } from './kinds.js';

export const GATEWAY_CLASS_NAME = 'kthena-router';
export const CONTROLLER_NAME = 'volcano.sh/kthena-router';
export const DEFAULT_GATEWAY_NAME = 'default';

export function bootstrapObjects(namespace: string, port: number): { path: string; collection: string; body: object }[] {
  return [
    {
      path: objectPath(GATEWAY_GROUP_VERSION, 'gatewayclasses', undefined, GATEWAY_CLASS_NAME),
      collection: `/apis/${GATEWAY_GROUP_VERSION}/gatewayclasses`,
      body: { apiVersion: GATEWAY_GROUP_VERSION, kind: 'GatewayClass', metadata: { name: GATEWAY_CLASS_NAME }, spec: { controllerName: CONTROLLER_NAME } },
    },
    {
      path: objectPath(GATEWAY_GROUP_VERSION, 'gateways', namespace, DEFAULT_GATEWAY_NAME),
      collection: `/apis/${GATEWAY_GROUP_VERSION}/namespaces/${encodeURIComponent(namespace)}/gateways`,
      body: {
        apiVersion: GATEWAY_GROUP_VERSION, kind: 'Gateway', metadata: { name: DEFAULT_GATEWAY_NAME, namespace },
        spec: { gatewayClassName: GATEWAY_CLASS_NAME, listeners: [{ name: 'default', port, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } }] },
      },
    },
  ];
}

type Log = { info: (o: object, msg: string) => void; warn: (o: object, msg: string) => void };

export class GatewayBootstrap {
  done = false;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #port: number;
  readonly #backoff: BackoffOptions;
  readonly #log: Log | undefined;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #failures = 0;

  constructor(o: { client: KubeClient; namespace: string; port: number; backoff?: BackoffOptions; log?: Log }) {
    this.#client = o.client;
    this.#namespace = o.namespace;
    this.#port = o.port;
    this.#backoff = o.backoff ?? DEFAULT_BACKOFF;
    this.#log = o.log;
  }

  start(): void {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    try {
      for (const o of bootstrapObjects(this.#namespace, this.#port)) {
        const got = await this.#client.request('GET', o.path);
        if (got.status === 200) continue;
        if (got.status !== 404) throw new Error(`GET ${o.path}: ${got.status}`);
        const r = await this.#client.request('POST', o.collection, o.body);
        // 409: created by another replica meanwhile.
        if (r.status !== 201 && r.status !== 200 && r.status !== 409) throw new Error(`POST ${o.collection}: ${r.status}`);
        if (r.status !== 409) this.#log?.info({ kind: (o.body as { kind: string }).kind, path: o.path }, 'Gateway API bootstrap: created');
      }
      this.done = true;
    } catch (err) {
      this.#failures++;
      const delay = backoffDelay(this.#failures, this.#backoff);
      this.#log?.warn({ err: (err as Error).message, retryInMs: delay }, 'Gateway API bootstrap failed; retrying');
      this.#timer = setTimeout(() => void this.#run(), delay);
      this.#timer.unref();
    }
  }
}
