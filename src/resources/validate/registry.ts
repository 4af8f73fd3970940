/**
 * Every kind the router validates, by entry point. A new kind is one file under kinds/ (its schema
 * and rules, exporting a KindRules or AdmissionRules) and one line here.
 */
import type { AnyResource } from '../types.js';
import type { GatewayResource } from '../gateway.js';
import type { AdmissionRules, KindRules } from './kind.js';
import { modelRoute } from './kinds/model-route.js';
import { modelServer } from './kinds/model-server.js';
import { externalModelProvider } from './kinds/external-model-provider.js';
import { pod } from './kinds/pod.js';
import { gatewayClass } from './kinds/gateway-class.js';
import { gateway } from './kinds/gateway.js';
import { httpRoute } from './kinds/http-route.js';
import { referenceGrant } from './kinds/reference-grant.js';
import { inferencePool } from './kinds/inference-pool.js';
import { inferenceObjective } from './kinds/inference-objective.js';
import { service } from './kinds/service.js';
import { namespace } from './kinds/namespace.js';
import { secret } from './kinds/secret.js';

/** Kthena's kinds and the Pods they select: parseManifestObject. */
export const KTHENA_KINDS: readonly KindRules<AnyResource>[] = [
  modelRoute,
  modelServer,
  externalModelProvider,
  pod,
];

/** Gateway API, Inference Extension and the core kinds they refer to: parseGatewayObject. */
export const GATEWAY_KINDS: readonly KindRules<GatewayResource>[] = [
  gatewayClass,
  gateway,
  httpRoute,
  referenceGrant,
  inferencePool,
  inferenceObjective,
  service,
  namespace,
  secret,
];

/** The kinds the validating webhook admits (src/webhook), by kind. */
export const ADMISSION_KINDS = {
  ModelRoute: modelRoute,
  ModelServer: modelServer,
  ExternalModelProvider: externalModelProvider,
} as const satisfies Readonly<Record<string, AdmissionRules>>;
