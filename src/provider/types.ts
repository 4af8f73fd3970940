/**
 * What the control plane needs from a source of resources (a directory of manifests, or the
 * Kubernetes API). Both providers validate with src/resources/validate.ts and emit the same
 * ResourceSet, so the translator and all routing behaviour are shared.
 */
import type { Problem, ResourceSet } from '../resources/types.js';

export interface ProviderSnapshot {
  resources: ResourceSet;
  problems: Problem[];
}

export interface Provider {
  /**
   * Starts watching. The file provider rejects when its directory cannot be listed; the
   * Kubernetes provider never rejects for an unreachable API server (it retries and stays not
   * ready), only for an unusable kubeconfig.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Minimal logger shape both providers use (pino's). */
export interface ProviderLog {
  debug?: (o: object, msg: string) => void;
  info: (o: object, msg: string) => void;
  warn: (o: object, msg: string) => void;
  error: (o: object, msg: string) => void;
}
