/**
 * The worker's JWT authenticator for the live router configuration: one per distinct `auth:`
 * block, kept across snapshots that do not change it (its JWKS and verified-token cache survive
 * route edits), replaced when the block changes, closed when it is removed.
 */
import type { AuthIR } from '../../src/ir/types.js';
import { JwtAuthenticator, type JwtAuthenticatorOptions } from './jwt.js';

export class AuthHolder {
  readonly #log: JwtAuthenticatorOptions['log'];
  #snap: object | null = null;
  #key = '';
  #authn: JwtAuthenticator | null = null;

  constructor(log: JwtAuthenticatorOptions['log']) {
    this.#log = log;
  }

  /** The authenticator of `snap` (null: authentication off). Cheap when the snapshot did not change. */
  for(snap: { ir: { auth?: AuthIR | null } } | null): JwtAuthenticator | null {
    if (snap === this.#snap || snap === null) return this.#authn;
    this.#snap = snap;
    const a = snap.ir.auth ?? null;
    const key = a === null ? '' : JSON.stringify(a);
    if (key === this.#key) return this.#authn;
    this.#key = key;
    this.#authn?.close();
    this.#authn = a === null ? null : new JwtAuthenticator(a, { log: this.#log });
    // The JWKS is fetched now; requests arriving meanwhile wait for this same fetch.
    void this.#authn?.start();
    return this.#authn;
  }

  close(): void {
    this.#authn?.close();
    this.#authn = null;
  }
}
