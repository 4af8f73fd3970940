/**
 * An in-process fake Kubernetes API server speaking the HTTP protocol @kubernetes/client-node
 * uses (no API server can be installed on these machines):
 *  - list (`GET <collection>`) with `metadata.resourceVersion`, label and field selectors
 *    (`k=v` conjunctions, `metadata.name`/`metadata.namespace`), `limit`/`continue` paging; items
 *    of core kinds carry no apiVersion/kind, as on a real server;
 *  - watch (`?watch=true`) as a chunked stream of newline-delimited JSON events (ADDED, MODIFIED,
 *    DELETED, BOOKMARK when `allowWatchBookmarks=true`, ERROR), replaying the event log after the
 *    requested resourceVersion; a resourceVersion older than the last compaction gets the
 *    in-stream `ERROR` Status 410 "Expired" and the stream ends, as the real server does;
 *  - objects: GET, POST (409 AlreadyExists), PUT (409 Conflict on a stale
 *    metadata.resourceVersion), DELETE; `metadata.generation` bumps when the spec changes;
 *  - the `status` subresource: PUT and merge-PATCH, both 409 on a stale resourceVersion given in
 *    the body, recorded in `statusWrites`;
 *  - Leases (coordination.k8s.io/v1) are ordinary objects, so leader election runs against it.
 * Test controls: `compact()` (later watches from older versions get 410), `bookmark()`,
 * `dropWatches()` (destroys open watch connections), `errorWatches(code)` (in-stream ERROR), `failRequests` (answer 500), `touchBeforeNextStatusWrite`
 * (another writer changes the object first: the next status write conflicts), `requests` (log).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

export interface KObj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; uid?: string; creationTimestamp?: string; labels?: Record<string, string>; [k: string]: unknown };
  spec?: any;
  status?: any;
  data?: Record<string, string>;
  [k: string]: unknown;
}

interface LogEvent { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; coll: string; obj: KObj; prev?: KObj }

interface Watcher {
  coll: string;
  namespace: string | undefined;
  labelSelector: string;
  fieldSelector: string;
  bookmarks: boolean;
  res: http.ServerResponse;
}

export interface RecordedRequest { method: string; path: string; query: Record<string, string>; authorization: string }

const PLURALS: Record<string, string> = {
  ModelRoute: 'modelroutes', ModelServer: 'modelservers', ExternalModelProvider: 'externalmodelproviders', Pod: 'pods', Secret: 'secrets',
  ConfigMap: 'configmaps', Lease: 'leases', GatewayClass: 'gatewayclasses', Gateway: 'gateways', HTTPRoute: 'httproutes', Namespace: 'namespaces',
};
const CLUSTER_SCOPED = new Set(['gatewayclasses', 'namespaces']);

export function collectionOf(apiVersion: string, kind: string): string {
  const plural = PLURALS[kind] ?? `${kind.toLowerCase()}s`;
  return `${apiVersion}/${plural}`;
}

const PATH_RE = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/;

export class FakeApiServer {
  readonly server: http.Server;
  readonly #tls: boolean;
  url = '';
  rv = 100;
  /** Lowest resourceVersion a watch may resume from; older ones get 410. */
  compactedRv = 0;
  readonly store = new Map<string, Map<string, KObj>>();
  readonly log: LogEvent[] = [];
  readonly requests: RecordedRequest[] = [];
  readonly statusWrites: { coll: string; namespace: string; name: string; status: any }[] = [];
  /** Answer this many further requests (any) with 500. */
  failRequests = 0;
  /** Collections (`apiVersion/plural`) this server does not serve (CRD not installed): 404. */
  readonly unserved = new Set<string>();
  /** Refuse an expired watch with HTTP 410 instead of the in-stream ERROR event (both happen on real servers). */
  expiredAsHttpStatus = false;
  readonly #watchers = new Set<Watcher>();
  readonly #touch = new Set<string>();
  readonly #sockets = new Set<import('node:net').Socket>();

  /** With `tls` (PEM key and certificate) the server speaks HTTPS, as a real API server does. */
  constructor(o: { tls?: { key: string; cert: string } } = {}) {
    this.#tls = o.tls !== undefined;
    this.server = o.tls !== undefined
      ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, (req, res) => this.#handle(req, res))
      : http.createServer((req, res) => this.#handle(req, res));
    this.server.on('connection', (s) => { this.#sockets.add(s); s.on('close', () => this.#sockets.delete(s)); });
  }

  async listen(host: string): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, host, resolve));
    const a = this.server.address() as AddressInfo;
    this.url = `${this.#tls ? 'https' : 'http'}://${host}:${a.port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) w.res.destroy();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** A kubeconfig file pointing at this server. */
  writeKubeconfig(file: string, o: KubeconfigOptions = {}): Promise<string> {
    return writeKubeconfig(this.url, file, o);
  }

  // ---- programmatic API (what kubectl would do) ----

  /** Create or update (spec/metadata/data; status kept unless given). */
  apply(obj: KObj): KObj {
    const coll = collectionOf(obj.apiVersion, obj.kind);
    const ns = this.#nsOf(coll, obj.metadata.namespace);
    const cur = this.#coll(coll).get(`${ns}/${obj.metadata.name}`);
    if (cur === undefined) return this.#create(coll, ns, structuredClone(obj));
    const next: KObj = { ...structuredClone(obj), metadata: { ...cur.metadata, ...structuredClone(obj.metadata), uid: cur.metadata.uid, creationTimestamp: cur.metadata.creationTimestamp } };
    if (obj.status === undefined && cur.status !== undefined) next.status = cur.status;
    return this.#update(coll, ns, cur, next);
  }

  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const coll = collectionOf(apiVersion, kind);
    const ns = this.#nsOf(coll, namespace);
    const cur = this.#coll(coll).get(`${ns}/${name}`);
    if (cur === undefined) return false;
    this.#coll(coll).delete(`${ns}/${name}`);
    const rv = ++this.rv;
    const obj = { ...cur, metadata: { ...cur.metadata, resourceVersion: String(rv) } };
    this.#emit({ rv, type: 'DELETED', coll, obj });
    return true;
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KObj | undefined {
    const coll = collectionOf(apiVersion, kind);
    return this.#coll(coll).get(`${this.#nsOf(coll, namespace)}/${name}`);
  }

  /** Drops the event log: watches resuming from any older resourceVersion get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.log.length = 0;
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks. */
  bookmark(): number {
    let n = 0;
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const [apiVersion, kind] = this.#typeOf(w.coll);
      w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { apiVersion, kind, metadata: { resourceVersion: String(this.rv) } } }) + '\n');
      n++;
    }
    return n;
  }

  /**
   * Advances the resourceVersion with changes nobody watching sees (other kinds, as on a busy
   * cluster), so that a watch resuming from an old version would need the compacted log.
   */
  advance(n: number): void {
    this.rv += n;
  }

  /** Destroys every open watch connection mid-stream (no terminating chunk). */
  dropWatches(): number {
    const n = this.#watchers.size;
    for (const w of this.#watchers) w.res.socket?.destroy();
    this.#watchers.clear();
    return n;
  }

  /** Ends every open watch with an in-stream ERROR Status of this code (as an overloaded server does). */
  errorWatches(code: number, message = 'injected watch error'): number {
    const n = this.#watchers.size;
    for (const w of this.#watchers) w.res.end(JSON.stringify({ type: 'ERROR', object: this.#statusBody(code, 'InternalError', message) }) + '\n');
    this.#watchers.clear();
    return n;
  }

  watchCount(coll?: string): number {
    return [...this.#watchers].filter((w) => coll === undefined || w.coll === coll).length;
  }

  /** The next status write to this object finds it changed by someone else first (409, then a retry). */
  touchBeforeNextStatusWrite(apiVersion: string, kind: string, namespace: string, name: string): void {
    this.#touch.add(`${collectionOf(apiVersion, kind)}|${namespace}/${name}`);
  }

  // ---- internals ----

  #coll(coll: string): Map<string, KObj> {
    let m = this.store.get(coll);
    if (m === undefined) this.store.set(coll, m = new Map());
    return m;
  }

  #nsOf(coll: string, ns: string | undefined): string {
    return CLUSTER_SCOPED.has(coll.split('/').pop()!) ? '' : ns || 'default';
  }

  #typeOf(coll: string): [string, string] {
    const parts = coll.split('/');
    const plural = parts.pop()!;
    const kind = Object.entries(PLURALS).find(([, p]) => p === plural)?.[0] ?? plural;
    return [parts.join('/'), kind];
  }

  #create(coll: string, ns: string, obj: KObj): KObj {
    const rv = ++this.rv;
    obj.metadata = {
      ...obj.metadata, namespace: ns === '' ? undefined : ns, uid: randomUUID(), resourceVersion: String(rv), generation: 1,
      creationTimestamp: obj.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    if (ns === '') delete obj.metadata.namespace;
    this.#coll(coll).set(`${ns}/${obj.metadata.name}`, obj);
    this.#emit({ rv, type: 'ADDED', coll, obj });
    return obj;
  }

  #update(coll: string, ns: string, cur: KObj, next: KObj): KObj {
    const rv = ++this.rv;
    const specChanged = JSON.stringify(cur.spec) !== JSON.stringify(next.spec);
    next.metadata = { ...next.metadata, resourceVersion: String(rv), generation: (cur.metadata.generation ?? 1) + (specChanged ? 1 : 0) };
    this.#coll(coll).set(`${ns}/${next.metadata.name}`, next);
    this.#emit({ rv, type: 'MODIFIED', coll, obj: next, prev: cur });
    return next;
  }

  #emit(e: LogEvent): void {
    this.log.push(e);
    for (const w of this.#watchers) {
      const type = w.coll === e.coll ? this.#seenAs(w, e) : null;
      if (type !== null) w.res.write(JSON.stringify({ type, object: e.obj }) + '\n');
    }
  }

  /**
   * The event a filtered watch sees, as the API server's watch cache sends it: an update that makes
   * an object stop matching the selectors arrives as DELETED, one that makes it start as ADDED.
   */
  #seenAs(f: { namespace: string | undefined; labelSelector: string; fieldSelector: string }, e: LogEvent): LogEvent['type'] | null {
    const now = this.#matches(f, e.obj);
    if (e.type !== 'MODIFIED' || e.prev === undefined) return now ? e.type : null;
    const before = this.#matches(f, e.prev);
    if (now) return before ? 'MODIFIED' : 'ADDED';
    return before ? 'DELETED' : null;
  }

  #matches(f: { namespace: string | undefined; labelSelector: string; fieldSelector: string }, o: KObj): boolean {
    if (f.namespace !== undefined && (o.metadata.namespace ?? '') !== f.namespace) return false;
    for (const term of f.labelSelector.split(',').filter(Boolean)) {
      const [k, v] = term.split('=');
      if (o.metadata.labels?.[k] !== v) return false;
    }
    for (const term of f.fieldSelector.split(',').filter(Boolean)) {
      const [k, v] = term.split('=');
      if (k === 'metadata.name' && o.metadata.name !== v) return false;
      if (k === 'metadata.namespace' && o.metadata.namespace !== v) return false;
      if (k === 'type' && o.type !== v) return false;
    }
    return true;
  }

  #send(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  #statusBody(code: number, reason: string, message: string): object {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, authorization: req.headers.authorization ?? '' });
    if (this.failRequests > 0) {
      this.failRequests--;
      this.#send(res, 500, this.#statusBody(500, 'InternalError', 'injected failure'));
      return;
    }
    const m = PATH_RE.exec(url.pathname);
    if (m === null) { this.#send(res, 404, this.#statusBody(404, 'NotFound', 'the server could not find the requested resource')); return; }
    const apiVersion = m[1] ?? `${m[2]}/${m[3]}`;
    const namespace = m[4];
    const coll = `${apiVersion}/${m[5]}`;
    const name = m[6];
    const sub = m[7];
    if (this.unserved.has(coll)) { this.#send(res, 404, this.#statusBody(404, 'NotFound', 'the server could not find the requested resource')); return; }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: any;
      try { body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined; } catch {
        this.#send(res, 400, this.#statusBody(400, 'BadRequest', 'invalid JSON'));
        return;
      }
      if (name === undefined) this.#collection(req.method ?? 'GET', coll, namespace, query, body, res);
      else this.#object(req.method ?? 'GET', coll, this.#nsOf(coll, namespace), name, sub, body, req.headers['content-type'] ?? '', res);
    });
  }

  #collection(method: string, coll: string, namespace: string | undefined, q: Record<string, string>, body: any, res: http.ServerResponse): void {
    if (method === 'POST') {
      const ns = this.#nsOf(coll, namespace ?? body?.metadata?.namespace);
      if (this.#coll(coll).has(`${ns}/${body.metadata.name}`)) {
        this.#send(res, 409, this.#statusBody(409, 'AlreadyExists', `${coll} "${body.metadata.name}" already exists`));
        return;
      }
      this.#send(res, 201, this.#create(coll, ns, structuredClone(body)));
      return;
    }
    const filter = { namespace, labelSelector: q.labelSelector ?? '', fieldSelector: q.fieldSelector ?? '' };
    const [apiVersion, kind] = this.#typeOf(coll);
    const core = apiVersion === 'v1';
    const shape = (o: KObj): KObj => {
      if (!core) return o;
      const { apiVersion: _a, kind: _k, ...rest } = o;
      return rest as KObj;
    };
    if (q.watch === 'true') {
      const from = q.resourceVersion === undefined || q.resourceVersion === '' || q.resourceVersion === '0' ? null : Number(q.resourceVersion);
      if (from !== null && from < this.compactedRv && this.expiredAsHttpStatus) {
        this.#send(res, 410, this.#statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      // A real API server answers the headers at once; the client's fetch resolves on them.
      res.flushHeaders();
      if (from !== null && from < this.compactedRv) {
        res.end(JSON.stringify({ type: 'ERROR', object: this.#statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) }) + '\n');
        return;
      }
      if (from === null) {
        for (const o of this.#coll(coll).values()) if (this.#matches(filter, o)) res.write(JSON.stringify({ type: 'ADDED', object: o }) + '\n');
      } else {
        for (const e of this.log) {
          const type = e.rv > from && e.coll === coll ? this.#seenAs(filter, e) : null;
          if (type !== null) res.write(JSON.stringify({ type, object: e.obj }) + '\n');
        }
      }
      const w: Watcher = { coll, namespace, labelSelector: filter.labelSelector, fieldSelector: filter.fieldSelector, bookmarks: q.allowWatchBookmarks === 'true', res };
      this.#watchers.add(w);
      res.on('close', () => this.#watchers.delete(w));
      return;
    }
    const all = [...this.#coll(coll).values()].filter((o) => this.#matches(filter, o))
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    const limit = q.limit !== undefined ? Number(q.limit) : Infinity;
    const offset = q.continue !== undefined && q.continue !== '' ? Number(Buffer.from(q.continue, 'base64').toString('utf8')) : 0;
    const page = all.slice(offset, offset + limit);
    const more = offset + page.length < all.length;
    this.#send(res, 200, {
      apiVersion, kind: `${kind}List`,
      metadata: { resourceVersion: String(this.rv), ...(more ? { continue: Buffer.from(String(offset + page.length)).toString('base64') } : {}) },
      items: page.map(shape),
    });
  }

  #object(method: string, coll: string, ns: string, name: string, sub: string | undefined, body: any, contentType: string, res: http.ServerResponse): void {
    const key = `${ns}/${name}`;
    let cur = this.#coll(coll).get(key);
    if (cur === undefined) { this.#send(res, 404, this.#statusBody(404, 'NotFound', `${coll} "${name}" not found`)); return; }
    if (method === 'GET') { this.#send(res, 200, cur); return; }
    if (method === 'DELETE') {
      const [apiVersion, kind] = this.#typeOf(coll);
      this.remove(apiVersion, kind, ns, name);
      this.#send(res, 200, cur);
      return;
    }
    if (method !== 'PUT' && method !== 'PATCH') { this.#send(res, 405, this.#statusBody(405, 'MethodNotAllowed', method)); return; }
    if (sub === 'status' && this.#touch.delete(`${coll}|${key}`)) {
      cur = this.#update(coll, ns, cur, { ...cur, metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, touched: String(this.rv) } } });
    }
    const wantRv = body?.metadata?.resourceVersion;
    if (wantRv !== undefined && wantRv !== cur.metadata.resourceVersion) {
      this.#send(res, 409, this.#statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${coll} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
      return;
    }
    let next: KObj;
    if (method === 'PATCH') {
      if (!contentType.startsWith('application/merge-patch+json')) { this.#send(res, 415, this.#statusBody(415, 'UnsupportedMediaType', contentType)); return; }
      const patched = mergePatch(structuredClone(cur), body) as KObj;
      next = sub === 'status' ? { ...cur, status: patched.status } : { ...patched, metadata: { ...patched.metadata, uid: cur.metadata.uid } };
    } else {
      next = sub === 'status' ? { ...cur, status: body.status } : { ...body, status: cur.status, metadata: { ...body.metadata, uid: cur.metadata.uid, creationTimestamp: cur.metadata.creationTimestamp } };
    }
    if (sub === 'status') this.statusWrites.push({ coll, namespace: ns, name, status: structuredClone(next.status) });
    this.#send(res, 200, this.#update(coll, ns, cur, next));
  }
}

export interface KubeconfigOptions {
  /** PEM of the CA that signed the server's certificate (HTTPS); without it TLS is not verified. */
  ca?: string;
  token?: string;
}

/** A kubeconfig file for `url` (plain HTTP needs insecure-skip-tls-verify in the client). */
export async function writeKubeconfig(url: string, file: string, o: KubeconfigOptions = {}): Promise<string> {
  const trust = o.ca !== undefined ? `    certificate-authority-data: ${Buffer.from(o.ca).toString('base64')}` : '    insecure-skip-tls-verify: true';
  const text = [
    'apiVersion: v1', 'kind: Config', 'current-context: fake',
    'clusters:', '- name: fake', '  cluster:', `    server: ${url}`, trust,
    'users:', '- name: fake', '  user:', `    token: ${o.token ?? 'fake-token'}`,
    'contexts:', '- name: fake', '  context:', '    cluster: fake', '    user: fake',
  ].join('\n') + '\n';
  await writeFile(file, text);
  return file;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const t: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete t[k];
    else t[k] = mergePatch(t[k], v);
  }
  return t;
}
