/**
 * Pod (v1): read, never served. Only the fields the router reads are checked, the rest of the
 * (large) Pod schema is ignored, and file-mode pods need no containers.
 */
import { isIP } from 'node:net';
import type { Pod } from '../../types.js';
import { type Issue, type Schema, ANY, arr, obj, show, str, walk } from '../schema.js';
import { normalizeTimestamp } from '../meta.js';
import { CRD_TOP_LEVEL_KEYS, type KindRules } from '../kind.js';

const podSpecSchema: Schema = obj({ nodeName: str() }, [], { ignoreUnknown: true });
const podStatusSchema: Schema = obj({
  podIP: str(),
  phase: str({ enum: ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] }),
  startTime: ANY,
  conditions: arr(obj({ type: str(), status: str() }, ['type', 'status'], { ignoreUnknown: true })),
  containerStatuses: arr(obj({ state: obj({ running: obj({ startedAt: ANY }, [], { ignoreUnknown: true }) }, [], { ignoreUnknown: true }) }, [], { ignoreUnknown: true })),
}, [], { ignoreUnknown: true });

interface PodStatusRaw {
  podIP?: string;
  phase?: string;
  startTime?: unknown;
  conditions?: { type: string; status: string }[];
  containerStatuses?: { state?: { running?: { startedAt?: unknown } } }[];
}

export const pod: KindRules<Pod> = {
  kind: 'Pod',
  apiVersions: ['v1'],
  topLevelKeys: CRD_TOP_LEVEL_KEYS,
  specRequired: false,
  parse(raw, issues: Issue[]) {
    const spec = raw.spec === undefined || raw.spec === null ? {} : walk(raw.spec, podSpecSchema, 'spec', issues) as { nodeName?: string } | undefined;
    const status = raw.status === undefined || raw.status === null ? {} : walk(raw.status, podStatusSchema, 'status', issues) as PodStatusRaw | undefined;
    let startTime: string | undefined;
    if (status?.startTime !== undefined) {
      const t = normalizeTimestamp(status.startTime);
      if (t === null) issues.push({ field: 'status.startTime', message: `Invalid value: ${show(status.startTime)}: must be an RFC 3339 timestamp` });
      else startTime = t;
    }
    // Kthena's kvcache-aware drops KV blocks written before the newest running container started
    // (a restarted container lost its cache even though the pod's startTime did not move).
    let containersStartedAt: string | undefined;
    (status?.containerStatuses ?? []).forEach((c, i) => {
      const v = c.state?.running?.startedAt;
      if (v === undefined) return;
      const t = normalizeTimestamp(v);
      if (t === null) issues.push({ field: `status.containerStatuses[${i}].state.running.startedAt`, message: `Invalid value: ${show(v)}: must be an RFC 3339 timestamp` });
      else if (containersStartedAt === undefined || Date.parse(t) > Date.parse(containersStartedAt)) containersStartedAt = t;
    });
    if (status?.podIP !== undefined && isIP(status.podIP) === 0) {
      issues.push({ field: 'status.podIP', message: `Invalid value: ${JSON.stringify(status.podIP)}: must be a valid IP address` });
    }
    if (issues.length > 0 || spec === undefined || status === undefined) return undefined;
    const podSpec: Pod['spec'] = {};
    if (spec.nodeName !== undefined) podSpec.nodeName = spec.nodeName;
    const podStatus: Pod['status'] = {
      ready: (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    };
    if (status.podIP !== undefined) podStatus.podIP = status.podIP;
    if (status.phase !== undefined) podStatus.phase = status.phase;
    if (startTime !== undefined) podStatus.startTime = startTime;
    if (containersStartedAt !== undefined) podStatus.containersStartedAt = containersStartedAt;
    return { generationOf: podSpec, build: (metadata) => ({ apiVersion: 'v1', kind: 'Pod', metadata, spec: podSpec, status: podStatus }) };
  },
};
