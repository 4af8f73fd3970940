/**
 * The validating webhook over real TLS on 127.0.42.x: AdmissionReview in, Kthena's answers out
 * (messages from Kthena's own validator_test.go), certificates from a Secret, from files
 * (reloaded) or self-generated and verified against the generated CA.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.js';
import {
  generateWebhookCertificate, patchWebhookCaBundle, webhookDnsNames, WEBHOOK_NAMES, type KubeFetch,
} from '../../src/webhook/certs.js';
import { handleWebhookRequest } from '../../src/webhook/admission.js';

const HOST = '127.0.42.1';
const NS = 'kthena-system';
const SVC = 'kthena-router-webhook';
const SNI = `${SVC}.${NS}.svc`;
const log = pino({ level: 'silent' });
const API = 'networking.serving.volcano.sh/v1alpha1';

type Obj = Record<string, unknown>;

interface Reply { status: number; contentType: string; body: string; peerFingerprint: string }

function post(port: number, ca: string, urlPath: string, body: string, contentType = 'application/json', servername = SNI): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: HOST, port, path: urlPath, method: 'POST', ca, servername, agent: false,
      headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const sock = res.socket as import('node:tls').TLSSocket;
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          body: Buffer.concat(chunks).toString('utf8'),
          peerFingerprint: sock.getPeerCertificate().fingerprint256 ?? '',
        });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function review(object: unknown, uid = 'uid-1'): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid, operation: 'CREATE', namespace: 'default', object },
  });
}

const route = (spec: Obj): Obj => ({ apiVersion: API, kind: 'ModelRoute', metadata: { name: 'test-route', namespace: 'default' }, spec });
const server = (spec: Obj): Obj => ({ apiVersion: API, kind: 'ModelServer', metadata: { name: 'test-server', namespace: 'default' }, spec });
const provider = (spec: Obj): Obj => ({ apiVersion: API, kind: 'ExternalModelProvider', metadata: { name: 'p', namespace: 'default' }, spec });
const rule = (targets: Obj[], extra: Obj = {}): Obj => ({ name: 'test-rule', targetModels: targets, ...extra });
const msSpec = (ws: Obj): Obj => ({ inferenceEngine: 'vLLM', workloadSelector: ws, workloadPort: { port: 8000 } });

const QUALIFIED = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/** [path, object, expected message (null: allowed)]; messages are Kthena's validator_test.go expectations. */
const CASES: [string, string, Obj, string | null][] = [
  ['route with model name', '/validate/modelroute', route({ modelName: 'test-model', rules: [rule([{ modelServerName: 'test-server' }])] }), null],
  ['route with lora adapters', '/validate/modelroute', route({ loraAdapters: ['adapter1', 'adapter2'], rules: [rule([{ modelServerName: 'test-server' }])] }), null],
  ['route with default and zero weights', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 'a' }, { modelServerName: 'b', weight: 0 }])] }), null],
  ['route with weighted internal and external targets', '/validate/modelroute',
    route({ modelName: 'm', rules: [rule([{ modelServerName: 's', weight: 80 }, { externalModelProviderName: 'openai-provider', weight: 20 }])] }), null],
  ['route missing both model name and lora adapters', '/validate/modelroute', route({ rules: [rule([{ modelServerName: 'test-server' }])] }),
    'validation failed:\n  - spec: Required value: either modelName or loraAdapters must be specified'],
  ['route with empty lora adapters', '/validate/modelroute', route({ loraAdapters: ['', 'adapter2', ''], rules: [rule([{ modelServerName: 's' }])] }),
    'validation failed:\n  - spec.loraAdapters[0]: Invalid value: "": lora adapter name cannot be an empty string\n  - spec.loraAdapters[2]: Invalid value: "": lora adapter name cannot be an empty string'],
  ['route target with both kinds', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 'test-server', externalModelProviderName: 'openai-provider' }])] }),
    'validation failed:\n  - spec.rules[0].targetModels[0]: Invalid value: "test-server/openai-provider": exactly one of modelServerName or externalModelProviderName must be set'],
  ['route target with neither kind', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{}])] }),
    'validation failed:\n  - spec.rules[0].targetModels[0]: Invalid value: "/": exactly one of modelServerName or externalModelProviderName must be set'],
  ['lora route to an external provider', '/validate/modelroute', route({ loraAdapters: ['adapter1'], rules: [rule([{ externalModelProviderName: 'openai-provider' }])] }),
    'validation failed:\n  - spec.rules[0].targetModels[0].externalModelProviderName: Invalid value: "openai-provider": lora routes must target modelServerName'],
  ['route with all weights zero', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 'a', weight: 0 }, { modelServerName: 'b', weight: 0 }])] }),
    'validation failed:\n  - spec.rules[0].targetModels: Invalid value: 0: total weight must be greater than zero'],
  ['route with an invalid header regex', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 's' }], { modelMatch: { headers: { 'x-user': { regex: '[' } } } })] }),
    'validation failed:\n  - spec.rules[0].modelMatch.headers[x-user].regex: Invalid value: "[": error parsing regexp: missing closing ]: `[`'],
  ['route with an invalid uri regex', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 's' }], { modelMatch: { uri: { regex: '[' } } })] }),
    'validation failed:\n  - spec.rules[0].modelMatch.uri.regex: Invalid value: "[": error parsing regexp: missing closing ]: `[`'],
  ['route behind an older CRD: a schema error is reported in the same form', '/validate/modelroute', route({ modelName: 'm', rules: [rule([{ modelServerName: 's', weight: 101 }])] }),
    'validation failed:\n  - spec.rules[0].targetModels[0].weight: Invalid value: 101: must be less than or equal to 100'],

  ['model server', '/validate/modelserver', server(msSpec({ matchLabels: { app: 'test-server' } })), null],
  ['model server with a PD group', '/validate/modelserver',
    server(msSpec({ matchLabels: { app: 's' }, pdGroup: { groupKey: 'pd-group', prefillLabels: { role: 'prefill' }, decodeLabels: { role: 'decode' } } })), null],
  ['model server with an empty workload selector', '/validate/modelserver', server(msSpec({})),
    'validation failed:   - spec.workloadSelector.matchLabels: Required value: labels must contain at least one label'],
  ['model server with an invalid label key', '/validate/modelserver', server(msSpec({ matchLabels: { 'app@name': 'test-server' } })),
    `validation failed:   - spec.workloadSelector.matchLabels: Invalid value: {"app@name":"test-server"}: invalid selector: key: Invalid value: "app@name": ${QUALIFIED}`],
  ['model server with an empty PD group', '/validate/modelserver',
    server(msSpec({ matchLabels: { app: 's' }, pdGroup: { groupKey: '', prefillLabels: {}, decodeLabels: {} } })),
    'validation failed:   - spec.workloadSelector.pdGroup.groupKey: Required value: groupKey must be specified  - spec.workloadSelector.pdGroup.prefillLabels: Required value: labels must contain at least one label  - spec.workloadSelector.pdGroup.decodeLabels: Required value: labels must contain at least one label'],

  ['openai provider', '/validate/externalmodelprovider',
    provider({ providerType: 'OpenAI', model: 'gpt-4o-mini', baseURL: 'https://api.openai.com/v1', auth: { secretRef: { name: 'openai-api-key', key: 'apiKey' } } }), null],
  ['anthropic provider with a version header', '/validate/externalmodelprovider',
    provider({ providerType: 'Anthropic', baseURL: 'https://api.anthropic.com', auth: { scheme: 'Bearer', secretRef: { name: 'k', key: 'apiKey' } }, headers: { 'anthropic-version': '2023-06-01' } }), null],
  ['provider with an http baseURL (older CRD)', '/validate/externalmodelprovider', provider({ baseURL: 'http://api.example.com' }),
    'validation failed:\n  - spec.baseURL: Invalid value: "http://api.example.com": should match \'^https://.+\''],
  ['provider URL with userinfo, query and fragment', '/validate/externalmodelprovider', provider({ baseURL: 'https://user@example.com/v1?debug=true#frag' }),
    'validation failed:\n  - spec.baseURL: Invalid value: "https://user@example.com/v1?debug=true#frag": baseURL must not contain userinfo, query, or fragment'],
  ['provider with a reserved authorization header', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com/v1', headers: { authorization: 'Bearer unsafe' } }),
    'validation failed:\n  - spec.headers[authorization]: Invalid value: "authorization": header is reserved and cannot be configured as a static header'],
  ['provider with a reserved X-API-Key header', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.anthropic.com', headers: { 'X-API-Key': 'unsafe' } }),
    'validation failed:\n  - spec.headers[X-API-Key]: Invalid value: "X-API-Key": header is reserved and cannot be configured as a static header'],
  ['provider with a malformed header name', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com/v1', headers: { 'Bad Header': 'value' } }),
    'validation failed:\n  - spec.headers[Bad Header]: Invalid value: "Bad Header": header name is invalid'],
  ['provider header value with CR LF', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com/v1', headers: { 'X-Tenant': 'tenant-a\r\nX-Injected: true' } }),
    'validation failed:\n  - spec.headers[X-Tenant]: Invalid value: "tenant-a\\r\\nX-Injected: true": header value is invalid'],
  ['provider header value with DEL', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com/v1', headers: { 'X-Tenant': 'a\x7fb' } }),
    'validation failed:\n  - spec.headers[X-Tenant]: Invalid value: "a\\x7fb": header value is invalid'],
  ['provider with secretRef.optional true', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com', auth: { secretRef: { name: 'k', key: 'apiKey', optional: true } } }),
    'validation failed:\n  - spec.auth.secretRef.optional: Invalid value: true: optional must be false or unset'],
  ['provider with an empty secret name and key', '/validate/externalmodelprovider', provider({ baseURL: 'https://api.example.com', auth: { secretRef: { name: '', key: '' } } }),
    'validation failed:\n  - spec.auth.secretRef.name: Required value: secret name is required\n  - spec.auth.secretRef.key: Required value: secret key is required'],
];

describe('validating webhook over TLS (self-generated certificate)', () => {
  let srv: WebhookServer;
  beforeAll(async () => {
    srv = await startWebhookServer({
      port: 0, host: HOST, certFile: '', keyFile: '', certSecretName: 'unused', serviceName: SVC, namespace: NS, log,
    });
  });
  afterAll(async () => { await srv.close(); });

  it('serves a certificate for <service>.<namespace>.svc that verifies against the generated CA', async () => {
    expect(srv.source).toBe('generated');
    const ca = new X509Certificate(srv.caPem!);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toContain('CN=kthena-webhook-ca');
    const r = await post(srv.port, srv.caPem!, '/healthz', '');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    // The other DNS name verifies too; a name outside the certificate fails the handshake.
    await expect(post(srv.port, srv.caPem!, '/healthz', '', 'application/json', `${SVC}.${NS}.svc.cluster.local`)).resolves.toMatchObject({ status: 200 });
    await expect(post(srv.port, srv.caPem!, '/healthz', '', 'application/json', 'other.example.com')).rejects.toThrow(/altnames|Hostname/i);
    // A CA that did not sign it is refused.
    const stranger = generateWebhookCertificate(['x.y.svc']).caPem;
    await expect(post(srv.port, stranger, '/healthz', '')).rejects.toThrow(/self.signed|unable to verify|certificate/i);
  });

  it.each(CASES)('%s', async (_name, urlPath, object, message) => {
    const r = await post(srv.port, srv.caPem!, urlPath, review(object, 'uid-42'));
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('application/json');
    const body = JSON.parse(r.body) as { apiVersion: string; kind: string; response: { uid: string; allowed: boolean; status?: { message: string } } };
    expect(body.apiVersion).toBe('admission.k8s.io/v1');
    expect(body.kind).toBe('AdmissionReview');
    expect(body.response.uid).toBe('uid-42');
    expect(body.response.allowed).toBe(message === null);
    if (message === null) expect(body.response.status).toBeUndefined();
    else expect(body.response.status?.message).toBe(message);
  });

  it.each([
    ['malformed JSON', '/validate/modelroute', '{"request":', 'application/json', 'failed to decode body: '],
    ['an empty body', '/validate/modelserver', '', 'application/json', 'failed to decode body: unexpected end of JSON input\n'],
    ['a review without a request', '/validate/modelroute', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', 'application/json', 'failed to decode body: the AdmissionReview has no request\n'],
    ['a request without an object', '/validate/externalmodelprovider', '{"request":{"uid":"u"}}', 'application/json', 'failed to decode externalModelProvider: unexpected end of JSON input\n'],
    ['an object that is not an object', '/validate/modelroute', '{"request":{"uid":"u","object":[1]}}', 'application/json', 'failed to decode modelRoute: the object must be a JSON object\n'],
    ['the wrong content type', '/validate/modelroute', review(route({ modelName: 'm', rules: [] })), 'text/plain', 'invalid Content-Type, expected application/json, got text/plain\n'],
  ])('answers 400 to %s', async (_name, urlPath, body, ct, text) => {
    const r = await post(srv.port, srv.caPem!, urlPath, body, ct);
    expect(r.status).toBe(400);
    expect(r.contentType).toBe('text/plain; charset=utf-8');
    expect(r.body.startsWith(text)).toBe(true);
  });

  it('answers 404 to an unknown path, as Go\'s ServeMux', async () => {
    const r = await post(srv.port, srv.caPem!, '/validate/pods', review({}));
    expect(r.status).toBe(404);
    expect(r.body).toBe('404 page not found\n');
  });
});

describe('request size', () => {
  it('answers 400 to a review above the size limit and keeps serving', async () => {
    const srv = await startWebhookServer({
      port: 0, host: '127.0.42.6', certFile: '', keyFile: '', certSecretName: 'x', serviceName: SVC, namespace: NS, log, maxBodyBytes: 4096,
    });
    try {
      const send = (body: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
        const req = https.request({
          host: '127.0.42.6', port: srv.port, path: '/validate/modelroute', method: 'POST', ca: srv.caPem!, servername: SNI, agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => { text += c.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
      const big = review(route({ modelName: 'x'.repeat(10_000), rules: [rule([{ modelServerName: 's' }])] }));
      expect(await send(big)).toEqual({ status: 400, body: 'failed to read request body: larger than 4096 bytes\n' });
      const ok = await send(review(route({ modelName: 'm', rules: [rule([{ modelServerName: 's' }])] })));
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).response.allowed).toBe(true);
    } finally {
      await srv.close();
    }
  });
});

describe('handleWebhookRequest', () => {
  it('reports the decision for the log', () => {
    const outcome = {};
    handleWebhookRequest('/validate/modelroute', 'application/json', Buffer.from(review(route({ rules: [rule([{ modelServerName: 's' }])] }), 'u9')), outcome);
    expect(outcome).toEqual({ kind: 'ModelRoute', allowed: false, uid: 'u9', name: 'test-route', namespace: 'default' });
  });

  it('denies a JWTClaim session source unless JWT authentication is configured', () => {
    const sticky = route({ modelName: 'm', rules: [rule([{ modelServerName: 's' }])], sessionSticky: { sources: [{ type: 'Header', name: 'x-s' }, { type: 'JWTClaim', name: 'sid' }] } });
    const decide = (jwtAuth: boolean | undefined): { allowed: boolean; status?: { message: string } } =>
      JSON.parse(handleWebhookRequest('/validate/modelroute', 'application/json', Buffer.from(review(sticky)), {}, jwtAuth === undefined ? undefined : { jwtAuth }).body).response;
    for (const off of [undefined, false]) {
      const r = decide(off);
      expect(r.allowed).toBe(false);
      expect(r.status!.message).toBe('validation failed:\n  - spec.sessionSticky.sources[1].type: Invalid value: "JWTClaim": a JWTClaim session source needs JWT authentication: set auth.jwksUri and auth.issuer in the router configuration');
    }
    expect(decide(true).allowed).toBe(true);
  });
});

describe('certificate from files, reloaded when they change', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'webhook-certs-')); });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('serves the files and swaps in a renewed pair without a restart', async () => {
    const dns = webhookDnsNames(SVC, NS);
    const a = generateWebhookCertificate(dns);
    const b = generateWebhookCertificate(dns);
    const certFile = path.join(dir, 'tls.crt');
    const keyFile = path.join(dir, 'tls.key');
    writeFileSync(certFile, a.certPem);
    writeFileSync(keyFile, a.keyPem);
    const srv = await startWebhookServer({
      port: 0, host: '127.0.42.2', certFile, keyFile, certSecretName: 'x', serviceName: SVC, namespace: NS, log, reloadIntervalMs: 50,
    });
    try {
      expect(srv.source).toBe('files');
      expect(srv.caPem).toBeUndefined();
      const fpA = new X509Certificate(a.certPem).fingerprint256;
      const fpB = new X509Certificate(b.certPem).fingerprint256;
      const fetchFp = (ca: string): Promise<string> => new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.42.2', port: srv.port, path: '/healthz', ca, servername: SNI, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve((res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256 ?? ''));
        });
        req.on('error', reject);
        req.end();
      });
      expect(await fetchFp(a.caPem)).toBe(fpA);

      // A half-written renewal (new certificate, old key) does not load: the old pair keeps serving.
      writeFileSync(certFile, b.certPem);
      await new Promise((r) => setTimeout(r, 200));
      expect(await fetchFp(a.caPem)).toBe(fpA);

      writeFileSync(keyFile, b.keyPem);
      const deadline = Date.now() + 10_000;
      let fp = '';
      while (Date.now() < deadline) {
        fp = await fetchFp(b.caPem).catch(() => '');
        if (fp === fpB) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(fp).toBe(fpB);
    } finally {
      await srv.close();
    }
  });
});

/** An in-memory API server for the three calls the certificate code makes. */
function fakeKube(opts: { vwcExists?: boolean; createConflict?: Obj } = {}) {
  const secrets = new Map<string, Obj>();
  const calls: { method: string; path: string; contentType?: string; body?: unknown }[] = [];
  const patches: unknown[] = [];
  const reply = (status: number, body: unknown) => ({ status, text: async () => JSON.stringify(body) });
  const kube: KubeFetch = async (p, init = {}) => {
    const method = init.method ?? 'GET';
    calls.push({ method, path: p, contentType: init.headers?.['content-type'], body: init.body === undefined ? undefined : JSON.parse(init.body) });
    let m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(p);
    if (m !== null) {
      if (method === 'GET') {
        const s = secrets.get(`${m[1]}/${m[2]}`);
        return s === undefined ? reply(404, { kind: 'Status', reason: 'NotFound', message: 'not found' }) : reply(200, s);
      }
      if (method === 'POST') {
        const body = JSON.parse(init.body!) as { metadata: { name: string } };
        if (opts.createConflict !== undefined) {
          secrets.set(`${m[1]}/${body.metadata.name}`, opts.createConflict);
          return reply(409, { kind: 'Status', reason: 'AlreadyExists', message: 'already exists' });
        }
        secrets.set(`${m[1]}/${body.metadata.name}`, body);
        return reply(201, body);
      }
    }
    m = /^\/apis\/admissionregistration\.k8s\.io\/v1\/validatingwebhookconfigurations\/([^/]+)$/.exec(p);
    if (m !== null && method === 'PATCH') {
      if (opts.vwcExists === false) return reply(404, { kind: 'Status', reason: 'NotFound', message: 'not found' });
      patches.push(JSON.parse(init.body!));
      return reply(200, {});
    }
    return reply(403, { kind: 'Status', reason: 'Forbidden', message: `unexpected ${method} ${p}` });
  };
  return { kube, secrets, calls, patches };
}

describe('certificate from a Secret, generated into one, CA bundle patched', () => {
  it('generates, stores the Secret, patches every webhook with the CA, and the next start reuses it', async () => {
    const fake = fakeKube();
    const base = { port: 0, host: '127.0.42.3', certFile: '/nonexistent/tls.crt', keyFile: '/nonexistent/tls.key', certSecretName: 'kthena-router-webhook-certs', serviceName: SVC, namespace: NS, log, kube: fake.kube };
    const first = await startWebhookServer(base);
    let caFirst: string;
    try {
      expect(first.source).toBe('generated');
      caFirst = first.caPem!;
      const stored = fake.secrets.get(`${NS}/kthena-router-webhook-certs`) as { type: string; data: Record<string, string> };
      expect(stored.type).toBe('kubernetes.io/tls');
      expect(Buffer.from(stored.data['ca.crt']!, 'base64').toString()).toBe(caFirst);
      const serving = new X509Certificate(Buffer.from(stored.data['tls.crt']!, 'base64'));
      expect(serving.verify(new X509Certificate(caFirst).publicKey)).toBe(true);
      expect(serving.subjectAltName).toBe(`DNS:${SVC}.${NS}.svc, DNS:${SVC}.${NS}.svc.cluster.local`);
      expect(fake.patches).toEqual([{ webhooks: WEBHOOK_NAMES.map((name) => ({ name, clientConfig: { caBundle: Buffer.from(caFirst).toString('base64') } })) }]);
      const patchCall = fake.calls.find((c) => c.method === 'PATCH')!;
      expect(patchCall.path).toBe('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kthena-router-validating-webhook');
      expect(patchCall.contentType).toBe('application/strategic-merge-patch+json');
    } finally {
      await first.close();
    }

    const second = await startWebhookServer(base);
    try {
      expect(second.source).toBe('secret');
      expect(second.caPem).toBe(caFirst);
      expect(fake.calls.filter((c) => c.method === 'POST')).toHaveLength(1);
      const r = await new Promise<number>((resolve, reject) => {
        https.request({ host: '127.0.42.3', port: second.port, path: '/healthz', ca: caFirst, servername: SNI, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); })
          .on('error', reject).end();
      });
      expect(r).toBe(200);
    } finally {
      await second.close();
    }
  });

  it('uses the certificate of the replica that created the Secret first', async () => {
    const theirs = generateWebhookCertificate(webhookDnsNames(SVC, NS));
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const fake = fakeKube({ createConflict: { data: { 'tls.crt': b64(theirs.certPem), 'tls.key': b64(theirs.keyPem), 'ca.crt': b64(theirs.caPem) } } });
    const srv = await startWebhookServer({ port: 0, host: '127.0.42.4', certFile: '', keyFile: '', certSecretName: 's', serviceName: SVC, namespace: NS, log, kube: fake.kube });
    try {
      expect(srv.caPem).toBe(theirs.caPem);
      expect(fake.patches).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });

  it('skips a missing ValidatingWebhookConfiguration and reports other API failures', async () => {
    expect(await patchWebhookCaBundle(fakeKube({ vwcExists: false }).kube, 'pem')).toBe('not-found');
    const denied: KubeFetch = async () => ({ status: 403, text: async () => JSON.stringify({ message: 'forbidden: cannot patch' }) });
    await expect(patchWebhookCaBundle(denied, 'pem')).rejects.toMatchObject({ code: 'RTR_ERR_WEBHOOK_CERT', message: expect.stringContaining('forbidden: cannot patch') });
  });

  it('refuses a certificate pair that does not load, naming the error code', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const a = generateWebhookCertificate(['a.b.svc']);
    const b = generateWebhookCertificate(['a.b.svc']);
    const fake = fakeKube();
    fake.secrets.set(`${NS}/s`, { data: { 'tls.crt': b64(a.certPem), 'tls.key': b64(b.keyPem) } });
    await expect(startWebhookServer({ port: 0, host: '127.0.42.5', certFile: '', keyFile: '', certSecretName: 's', serviceName: SVC, namespace: NS, log, kube: fake.kube }))
      .rejects.toMatchObject({ code: 'RTR_ERR_WEBHOOK_CERT' });
  });
});
