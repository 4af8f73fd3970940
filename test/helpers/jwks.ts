/**
 * A local JWKS endpoint for the e2e tests of JWT authentication: one ES256 key pair (kid `k1`),
 * its public half served as `{keys: [...]}` on 127.0.0.1, the private half for signing tokens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey } from 'jose';

export interface LocalJwks {
  /** The URI to put in the router's `auth.jwksUri`. */
  readonly uri: string;
  /** Signs tokens the router accepts (alg ES256, kid k1). */
  readonly privateKey: CryptoKey;
  close(): Promise<void>;
}

export async function serveJwks(): Promise<LocalJwks> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const server = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    privateKey,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
