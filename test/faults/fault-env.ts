/**
 * Shared set-up of the fault suite (test/faults/): simulated pods on loopback, a manifest
 * directory, the real CLI. Every file uses its own 127.0.N.0/24 block (the pods' addresses) and the
 * harness's port blocks, so files run in parallel; every test bounds its traffic by count and time.
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import {
  cleanup, docs, freePort, modelRouteYaml, podYaml, serverYaml, startPods, startRouter, tempDir,
  type RouterProc,
} from '../e2e/harness.js';
import type { SimFleet, SimPodSpec } from '../../native-bench/src/sim/engine.js';

export interface FaultEnv {
  dir: string;
  fleet: SimFleet;
  router: RouterProc;
  simPort: number;
  ips: string[];
  close(): Promise<void>;
}

export interface FaultEnvOpts {
  /** Third octet of this file's 127.0.N.0/24 block. */
  block: number;
  pods: number;
  model?: string;
  /** ModelServer spec.model (the engine's name) when it differs from the route's modelName. */
  engineModel?: string;
  timeout?: string;
  workers?: number;
  env?: Record<string, string>;
  args?: string[];
  pod?: Partial<SimPodSpec>;
  /** Extra manifest documents. */
  extra?: string[];
  /** Runs once the pods listen, before the router starts (gets the pods' port). */
  before?: (simPort: number) => Promise<unknown>;
}

export async function faultEnv(o: FaultEnvOpts): Promise<FaultEnv> {
  const dir = await tempDir('kthena-faults-');
  const simPort = await freePort();
  const model = o.model ?? 'fault-model';
  const served = o.engineModel ?? model;
  const ips = Array.from({ length: o.pods }, (_, i) => `127.0.${o.block}.${i + 1}`);
  const fleet = await startPods(ips.map((ip, i) => ({
    name: `pod-${i}`, ip, port: simPort, models: [served], ttftMs: 2, itlMs: 1, outputTokens: 4, ...o.pod,
  })));
  const manifests = [
    serverYaml('ms', { port: simPort, model: o.engineModel, timeout: o.timeout }),
    ...ips.map((ip, i) => podYaml(`pod-${i}`, ip)),
    modelRouteYaml('route', { modelName: model, rules: [{ targets: [{ server: 'ms' }] }] }),
    ...(o.extra ?? []),
  ];
  await writeFile(path.join(dir, 'all.yaml'), docs(...manifests));
  await o.before?.(simPort);
  let router: RouterProc;
  try {
    router = await startRouter({
      dir, workers: o.workers ?? 2, args: o.args,
      env: { KTHENA_ROUTER_FAULT_INJECTION: '1', METRICS_SCRAPE_INTERVAL: '200ms', ...o.env },
    });
    await router.waitReady();
  } catch (err) {
    await fleet.close();
    await cleanup(dir);
    throw err;
  }
  return {
    dir, fleet, router, simPort, ips,
    async close() {
      await router.stop();
      await fleet.close();
      await cleanup(dir);
    },
  };
}

/** Resolves within `ms` or rejects naming what hung. */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); }),
  ]);
}

export const debugUrl = (r: RouterProc, p: string): string => `http://127.0.0.1:${r.debugPort}${p}`;
