/**
 * A local HTTPS stand-in for an external model provider (OpenAI-compatible or Anthropic): a CA
 * and a serving certificate made at test time (node-forge, loopback IP in the SAN), an https
 * server on 127.0.0.1 that records every request it receives and answers through a handler the
 * test chooses.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import https from 'node:https';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';

export interface TestCa {
  caPem: string;
  /** A serving certificate for the IP addresses, signed by this CA. */
  issue(ips: string[]): { certPem: string; keyPem: string };
}

function keyPair(): { priv: forge.pki.rsa.PrivateKey; pub: forge.pki.rsa.PublicKey; privPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { priv: forge.pki.privateKeyFromPem(privateKey), pub: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey, privPem: privateKey };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

export function createTestCa(name: string): TestCa {
  const k = keyPair();
  const ca = forge.pki.createCertificate();
  ca.publicKey = k.pub;
  ca.serialNumber = serial();
  ca.validity.notBefore = new Date(Date.now() - 60_000);
  ca.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: 'commonName', value: name }];
  ca.setSubject(subject);
  ca.setIssuer(subject);
  ca.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, digitalSignature: true, critical: true }]);
  ca.sign(k.priv, forge.md.sha256.create());
  return {
    caPem: forge.pki.certificateToPem(ca),
    issue(ips) {
      const lk = keyPair();
      const c = forge.pki.createCertificate();
      c.publicKey = lk.pub;
      c.serialNumber = serial();
      c.validity.notBefore = new Date(Date.now() - 60_000);
      c.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
      c.setSubject([{ name: 'commonName', value: ips[0]! }]);
      c.setIssuer(subject);
      c.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: ips.map((ip) => ({ type: 7, ip })) },
      ]);
      c.sign(k.priv, forge.md.sha256.create());
      return { certPem: forge.pki.certificateToPem(c), keyPem: lk.privPem };
    },
  };
}

export interface ProviderCall {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: () => any;
}

export type ProviderHandler = (call: ProviderCall, res: ServerResponse) => void;

export interface MockProvider {
  port: number;
  /** https://127.0.0.1:port */
  url: string;
  calls: ProviderCall[];
  handler: ProviderHandler;
  close(): Promise<void>;
}

export async function startMockProvider(tls: { certPem: string; keyPem: string }, handler: ProviderHandler): Promise<MockProvider> {
  const mock: MockProvider = { port: 0, url: '', calls: [], handler, close: async () => undefined };
  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const call: ProviderCall = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json: () => JSON.parse(body) };
      mock.calls.push(call);
      mock.handler(call, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  mock.port = (server.address() as AddressInfo).port;
  mock.url = `https://127.0.0.1:${mock.port}`;
  mock.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return mock;
}

/** Writes an SSE response: each event as `data: <json>\n\n`, then `data: [DONE]` when asked. */
export function sse(res: ServerResponse, events: unknown[], done = true): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const e of events) res.write(`data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`);
  if (done) res.write('data: [DONE]\n\n');
  res.end();
}
