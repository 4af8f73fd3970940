/**
 * Gateway listener ports: which ports the workers serve besides --port (every port of the
 * snapshot's Gateways), their certificates, and what could not be bound. A port another process
 * holds is found by a plain bind before the workers bind it with SO_REUSEPORT (which would share
 * it silently), reported as a problem and a PortUnavailable listener condition, and tried again
 * every 5 s until it is free or no longer wanted.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RouterError } from '../errors.js';
import type { GatewayStatuses } from '../ir/gateway.js';
import type { RoutingIR } from '../ir/types.js';
import type { Logger } from '../log.js';
import type { Problem, ResourceSet } from '../resources/types.js';
import type { ListenPort } from '../shared/messages.js';

/** Binds and releases `host:port` without SO_REUSEPORT: rejects (EADDRINUSE, EACCES) when anything holds it. */
export function probePort(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve()));
  });
}

export interface ListenerSyncOptions {
  host: string;
  /** --port: served by the default Gateway and by the workers from the start. */
  routerPort: number;
  log: Logger;
  /** Delivers the port set to the workers (WorkerPool.setListenPorts). */
  send(ports: ListenPort[]): void;
  /** The listener problems changed (a port became unavailable, or available again). */
  onProblems(): void;
  /** True once the router drains: nothing is retried then. */
  stopping(): boolean;
}

export class ListenerSync {
  readonly #o: ListenerSyncOptions;
  /** The ports the workers were told to serve (wanted ones minus those another process holds). */
  #listenPorts: ListenPort[] = [];
  #listenKey = '';
  /** Ports some worker could not bind, or another process holds: port -> error. */
  #portFailures = new Map<number, string>();
  /** Gateway ports another process holds (found by probePort before the workers are told). */
  #probeFailures = new Map<number, string>();
  #wantedPorts: ListenPort[] = [];
  #reprobe: NodeJS.Timeout | null = null;
  #problems: Problem[] = [];
  #tlsDir: string | null = null;

  constructor(o: ListenerSyncOptions) {
    this.#o = o;
  }

  /** Problems for the ports that cannot be served. */
  get problems(): readonly Problem[] {
    return this.#problems;
  }

  /**
   * Every worker listens on each port of the snapshot's Gateways (besides --port). HTTPS ports get
   * the certificate of their first listener, written from its Secret into a private temporary
   * directory (uWS reads files).
   */
  sync(ir: RoutingIR, resources: ResourceSet): void {
    const secrets = new Map((resources.secrets ?? []).map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
    const ports: ListenPort[] = [];
    for (const p of ir.gateway.ports) {
      if (p.port === this.#o.routerPort) continue;
      if (p.protocol === 'HTTP') { ports.push({ port: p.port, tls: null }); continue; }
      const l = ir.gateway.listeners.find((x) => x.port === p.port && x.certificates.length > 0);
      const secret = l !== undefined ? secrets.get(l.certificates[0]) : undefined;
      if (secret?.tls === undefined) continue; // the translator reported the unresolved reference
      this.#tlsDir ??= mkdtempSync(path.join(tmpdir(), 'kthena-router-tls-'));
      const base = path.join(this.#tlsDir, `${secret.metadata.namespace}_${secret.metadata.name}`);
      writeFileSync(`${base}.crt`, secret.tls.cert, { mode: 0o600 });
      writeFileSync(`${base}.key`, secret.tls.key, { mode: 0o600 });
      ports.push({ port: p.port, tls: { cert: `${base}.crt`, key: `${base}.key` } });
    }
    const key = JSON.stringify(ports);
    if (key === this.#listenKey) return;
    this.#listenKey = key;
    void this.#probe(ports);
  }

  async #probe(ports: ListenPort[]): Promise<void> {
    const { host, log } = this.#o;
    this.#wantedPorts = ports;
    const known = new Set(this.#listenPorts.map((p) => p.port));
    const failed: { port: number; error: string }[] = [];
    for (const p of ports) {
      if (known.has(p.port)) continue;
      try {
        await probePort(host, p.port);
      } catch (err) {
        failed.push({ port: p.port, error: `${host}:${p.port} is in use by another process (${(err as { code?: string }).code ?? (err as Error).message})` });
      }
    }
    for (const f of failed) if (!this.#probeFailures.has(f.port)) log.error({ port: f.port }, new RouterError('RTR_ERR_LISTEN', `${f.error} (Gateway listener)`).message);
    this.#probeFailures = new Map(failed.map((f) => [f.port, f.error]));
    this.#listenPorts = ports.filter((p) => !this.#probeFailures.has(p.port));
    this.bindResult([]);
    this.#o.send(this.#listenPorts);
    // A port another process holds is tried again until it is free (or no longer wanted).
    if (this.#probeFailures.size > 0 && this.#reprobe === null && !this.#o.stopping()) {
      this.#reprobe = setTimeout(() => {
        this.#reprobe = null;
        if (!this.#o.stopping() && this.#wantedPorts === ports) void this.#probe(ports);
      }, 5000);
      this.#reprobe.unref();
    }
  }

  /** A worker's bind result: a port that cannot be bound is reported, never silent. */
  bindResult(failed: { port: number; error: string }[]): void {
    const wanted = this.#listenPorts;
    const now = new Map(failed.map((f) => [f.port, f.error]));
    for (const p of wanted) {
      const err = now.get(p.port);
      if (err !== undefined && !this.#portFailures.has(p.port)) {
        this.#o.log.error({ port: p.port }, new RouterError('RTR_ERR_LISTEN', `${err} (Gateway listener)`).message);
        this.#portFailures.set(p.port, err);
      } else if (err === undefined && this.#portFailures.has(p.port)) {
        this.#portFailures.delete(p.port);
      }
    }
    for (const p of [...this.#portFailures.keys()]) if (!wanted.some((x) => x.port === p)) this.#portFailures.delete(p);
    for (const [port, error] of this.#probeFailures) this.#portFailures.set(port, error);
    this.#problems = [...this.#portFailures].map(([port, error]) => ({
      kind: 'Gateway', namespace: '', name: `port ${port}`, field: 'spec.listeners[].port', message: `${error}: listeners on this port are not programmed (PortUnavailable)`, severity: 'rejected' as const,
    }));
    this.#o.onProblems();
  }

  /** The translator's Gateway statuses with listeners on an unbindable port marked not programmed. */
  adjust(statuses: GatewayStatuses, ir: RoutingIR | null): GatewayStatuses {
    if (this.#portFailures.size === 0) return statuses;
    const ports = new Map<string, number>();
    for (const l of ir?.gateway.listeners ?? []) ports.set(`${l.gateway}/${l.name}`, l.port);
    return {
      ...statuses,
      gateways: statuses.gateways.map((g) => ({
        ...g,
        status: {
          ...g.status,
          listeners: g.status.listeners.map((l) => {
            const port = ports.get(`${g.namespace}/${g.name}/${l.name}`);
            const err = port !== undefined ? this.#portFailures.get(port) : undefined;
            if (err === undefined) return l;
            return {
              ...l,
              conditions: l.conditions.map((c) => (c.type === 'Programmed'
                ? { ...c, status: 'False' as const, reason: 'PortUnavailable', message: err }
                : c.type === 'Accepted' ? { ...c, status: 'False' as const, reason: 'PortUnavailable', message: err } : c)),
            };
          }),
        },
      })),
    };
  }

  /** Removes the certificate files written for HTTPS listeners. */
  close(): void {
    if (this.#reprobe !== null) clearTimeout(this.#reprobe);
    if (this.#tlsDir !== null) rmSync(this.#tlsDir, { recursive: true, force: true });
  }
}
