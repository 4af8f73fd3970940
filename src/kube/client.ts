/**
 * The one connection to the Kubernetes API: @kubernetes/client-node's KubeConfig (kubeconfig file
 * or in-cluster service account, with its TLS, token and exec-plugin handling) and Watch, plus a
 * small JSON request helper for lists, status writes and Leases that reuses the same agent and
 * credentials (applyToFetchOptions runs per request, so a rotated service-account token is
 * picked up).
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { RouterError } from '../errors.js';

export interface KubeResponse {
  status: number;
  /** Parsed JSON body (null when empty or not JSON). */
  body: unknown;
}

/** A failed request: the HTTP status (0 when there was no response) travels with the catalogued error. */
export interface KubeApiError extends RouterError {
  statusCode: number;
}

export function kubeApiError(statusCode: number, detail: string, cause?: unknown): KubeApiError {
  const e = new RouterError('RTR_ERR_KUBE_API', detail, { cause }) as KubeApiError;
  e.statusCode = statusCode;
  return e;
}

export class KubeClient {
  readonly kc: KubeConfig;
  readonly watch: Watch;
  readonly server: string;
  readonly #timeoutMs: number;
  readonly #inFlight = new Set<http.ClientRequest>();

  constructor(kc: KubeConfig, o: { timeoutMs?: number } = {}) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new RouterError('RTR_ERR_CONFIG_INVALID', 'kubeconfig: no current cluster');
    this.kc = kc;
    this.watch = new Watch(kc);
    this.server = cluster.server.replace(/\/+$/, '');
    this.#timeoutMs = o.timeoutMs ?? 30_000;
  }

  /**
   * `--kubeconfig FILE`, or the pod's service account when `inCluster` (KUBERNETES_SERVICE_HOST/
   * PORT, and the token and CA under /var/run/secrets/kubernetes.io/serviceaccount, below
   * `serviceAccountRoot` when given). Throws RTR_ERR_CONFIG_INVALID.
   */
  static load(o: { kubeconfig: string; inCluster: boolean; serviceAccountRoot?: string }): KubeClient {
    const kc = new KubeConfig();
    try {
      if (o.kubeconfig !== '') kc.loadFromFile(o.kubeconfig);
      else {
        // Without a mounted token (automountServiceAccountToken: false) every request would fail
        // with 401 and the router would never become ready: say so at start instead.
        const token = `${o.serviceAccountRoot ?? ''}/var/run/secrets/kubernetes.io/serviceaccount/token`;
        if (!existsSync(token)) throw new Error(`no service account token at ${token} (automountServiceAccountToken disabled?); use --kubeconfig FILE or --config DIR`);
        kc.loadFromCluster(o.serviceAccountRoot);
      }
      return new KubeClient(kc);
    } catch (err) {
      if ((err as RouterError).code === 'RTR_ERR_CONFIG_INVALID') throw err;
      const what = o.kubeconfig !== '' ? `--kubeconfig ${o.kubeconfig}` : 'in-cluster configuration';
      throw new RouterError('RTR_ERR_CONFIG_INVALID', `${what}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * One JSON request. Resolves with any HTTP status (callers decide what a 404 or 409 means);
   * rejects with RTR_ERR_KUBE_API (statusCode 0) when no response arrived.
   */
  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
    const r = await this.#send(method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)), { 'content-type': contentType });
    let parsed: unknown = null;
    if (r.text !== '') {
      try { parsed = JSON.parse(r.text); } catch { parsed = null; }
    }
    return { status: r.status, body: parsed };
  }

  /**
   * The same connection as a fetch-shaped function (the webhook's KubeFetch): text in, text out.
   * Rejects only when no response arrived.
   */
  async fetch(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; text(): Promise<string> }> {
    const r = await this.#send(init.method ?? 'GET', path, init.body === undefined ? undefined : Buffer.from(init.body), init.headers ?? {});
    return { status: r.status, text: async () => r.text };
  }

  async #send(method: string, path: string, payload: Buffer | undefined, extra: Record<string, string>): Promise<{ status: number; text: string }> {
    const init = await this.kc.applyToFetchOptions({});
    const headers: Record<string, string> = { accept: 'application/json' };
    new Headers(init.headers as HeadersInit).forEach((v, k) => { headers[k] = v; });
    if (payload !== undefined) {
      for (const [k, v] of Object.entries(extra)) headers[k.toLowerCase()] = v;
      headers['content-length'] = String(payload.length);
    }
    const url = new URL(this.server + path);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent: init.agent as http.Agent | undefined, timeout: this.#timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(kubeApiError(0, `${method} ${path}: ${err.message}`, err)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      this.#inFlight.add(req);
      req.on('close', () => this.#inFlight.delete(req));
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (err) => reject(kubeApiError(0, `${method} ${path}: ${err.message}`, err)));
      req.end(payload);
    });
  }

  /** Aborts requests in flight (shutdown must not wait for a slow or unreachable API server). */
  close(): void {
    for (const req of this.#inFlight) req.destroy(new Error('client closed'));
    this.#inFlight.clear();
  }

  /** As request, but a status outside 2xx rejects with RTR_ERR_KUBE_API carrying it. */
  async requestOk(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    const r = await this.request(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) {
      const msg = (r.body as { message?: string } | null)?.message ?? http.STATUS_CODES[r.status] ?? '';
      throw kubeApiError(r.status, `${method} ${path}: ${r.status} ${msg}`);
    }
    return r.body;
  }
}

/** `/api/v1` for the core group, else `/apis/{group}/{version}`. */
export function apiPrefix(apiVersion: string): string {
  return apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
}

/** The path of one object (optionally a subresource such as `status`). */
export function objectPath(apiVersion: string, plural: string, namespace: string | undefined, name: string, sub?: string): string {
  const ns = namespace !== undefined && namespace !== '' ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${apiPrefix(apiVersion)}${ns}/${plural}/${encodeURIComponent(name)}${sub !== undefined ? `/${sub}` : ''}`;
}
