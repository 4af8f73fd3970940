import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MessagePort } from 'node:worker_threads';
import { AdmissionService, type BackendView } from '../../src/admission/service.js';
import {
  kAdmAdmit, kAdmCancel, kAdmEnqueue, kAdmReject, kAdmRelease, kRejectClosed, kRejectTimeout,
  type AdmissionSettings, type FairnessSettings, type FromAdmission, type SessionBoostSettings, type ToAdmission,
} from '../../src/shared/admission.js';

/** A port that records what the service sends and lets the test speak for a worker, synchronously. */
class FakePort {
  sent: FromAdmission[] = [];
  #fn: ((m: ToAdmission) => void) | null = null;
  on(_: 'message', fn: (m: ToAdmission) => void): void { this.#fn = fn; }
  postMessage(m: FromAdmission): void { this.sent.push(m); }
  close(): void { /* nothing to free */ }
  say(m: ToAdmission): void { this.#fn!(m); }
  admitted(): number[] { return this.sent.filter((m) => m[0] === kAdmAdmit).map((m) => m[1]); }
  rejected(): [number, number][] { return this.sent.filter((m) => m[0] === kAdmReject).map((m) => [m[1], m[2] as number]); }
}

const fairness = (o: Partial<FairnessSettings> = {}): AdmissionSettings => ({
  mode: 'fairness',
  fairness: {
    windowMs: 300_000, inputTokenWeight: 1, outputTokenWeight: 2, queueTimeoutMs: 60_000, maxConcurrent: 0, maxQps: 100,
    priorityRefreshRetries: 0, rebuildThreshold: 64, priorityTokenWeight: 1, priorityRequestNumWeight: 0, ...o,
  },
});
const boost = (o: Partial<SessionBoostSettings> = {}): AdmissionSettings => ({
  mode: 'session-boost',
  sessionBoost: { header: 'x-session-id', maxSessions: 4096, inflightPerPod: 1, gracePeriodMs: 0, timeoutMs: 30_000, ...o },
});

let now = 0;
const clock = (): number => now;
let svc: AdmissionService | null = null;

function setup(s: AdmissionSettings, backend: BackendView = () => ({ pods: 0, anyIdle: false, remote: 0 }), workers = 1): FakePort[] {
  svc = new AdmissionService(s, backend, clock);
  const ports: FakePort[] = [];
  for (let i = 0; i < workers; i++) {
    const p = new FakePort();
    svc.attach(i, p as unknown as MessagePort);
    ports.push(p);
  }
  return ports;
}

beforeEach(() => {
  now = 1_000_000;
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
});
afterEach(() => {
  svc?.close();
  svc = null;
  vi.useRealTimers();
});

/** Moves the service's clock and the fake timers together, 1 ms at a time. */
function advance(ms: number): void {
  for (let i = 0; i < ms; i++) {
    now += 1;
    vi.advanceTimersByTime(1);
  }
}

describe('AdmissionService, fairness with a concurrency limit', () => {
  it('admits up to FAIRNESS_MAX_CONCURRENT per model and the lightest user when a place frees', () => {
    const [p] = setup(fairness({ maxConcurrent: 1 }));
    // heavy used tokens before: one request, released with usage
    p!.say([kAdmEnqueue, 1, 'm', 'heavy', '']);
    expect(p!.admitted()).toEqual([1]);
    p!.say([kAdmRelease, 1, 1000, 100, 1]);
    p!.say([kAdmEnqueue, 2, 'm', 'light', '']);
    p!.say([kAdmEnqueue, 3, 'm', 'heavy', '']);
    p!.say([kAdmEnqueue, 4, 'm', 'light', '']);
    p!.say([kAdmEnqueue, 5, 'm', '', '']);
    expect(p!.admitted()).toEqual([1, 2]);
    p!.say([kAdmRelease, 2, 10, 10, 1]);
    expect(p!.admitted()).toEqual([1, 2, 4]);
    p!.say([kAdmRelease, 3, 0, 0, 1]); // not admitted yet: ignored, frees nothing
    expect(p!.admitted()).toEqual([1, 2, 4]);
    p!.say([kAdmRelease, 4, 10, 10, 1]);
    expect(p!.admitted()).toEqual([1, 2, 4, 3]);
    p!.say([kAdmRelease, 3, 10, 10, 1]);
    expect(p!.admitted()).toEqual([1, 2, 4, 3, 5]);
  });

  it('keeps the limit and the order across workers: one queue per router', () => {
    const [a, b] = setup(fairness({ maxConcurrent: 1 }), undefined, 2);
    a!.say([kAdmEnqueue, 1, 'm', 'x', '']);
    b!.say([kAdmEnqueue, 1, 'm', 'y', '']);
    a!.say([kAdmEnqueue, 2, 'm', 'z', '']);
    expect(a!.admitted()).toEqual([1]);
    expect(b!.admitted()).toEqual([]);
    a!.say([kAdmRelease, 1, 0, 0, 1]);
    expect(b!.admitted()).toEqual([1]);
    expect(a!.admitted()).toEqual([1]);
    b!.say([kAdmRelease, 1, 0, 0, 1]);
    expect(a!.admitted()).toEqual([1, 2]);
  });

  it('answers a request that waited FAIRNESS_QUEUE_TIMEOUT with a timeout and counts it', () => {
    const [p] = setup(fairness({ maxConcurrent: 1, queueTimeoutMs: 1000 }));
    p!.say([kAdmEnqueue, 1, 'm', 'u', '']);
    p!.say([kAdmEnqueue, 2, 'm', 'u', '']);
    advance(999);
    expect(p!.rejected()).toEqual([]);
    advance(1);
    expect(p!.rejected()).toEqual([[2, kRejectTimeout]]);
    const cancelled = svc!.metricsJSON().find((f) => f.name === 'kthena_router_fairness_queue_cancelled_total')!;
    expect(cancelled.values).toEqual([{ value: 1, labels: { model: 'm', user_id: '_all' } }]);
  });

  it('forgets a cancelled request and gives a place admitted after a cancel back', () => {
    const [p] = setup(fairness({ maxConcurrent: 1 }));
    p!.say([kAdmEnqueue, 1, 'm', 'u', '']);
    p!.say([kAdmEnqueue, 2, 'm', 'u', '']);
    p!.say([kAdmEnqueue, 3, 'm', 'u', '']);
    p!.say([kAdmCancel, 2]);
    p!.say([kAdmRelease, 1, 0, 0, 1]);
    expect(p!.admitted()).toEqual([1, 3]);
  });

  it('releases the places of a worker that exited and drops what waited on it', () => {
    const [a, b] = setup(fairness({ maxConcurrent: 1 }), undefined, 2);
    a!.say([kAdmEnqueue, 1, 'm', 'u', '']);
    a!.say([kAdmEnqueue, 2, 'm', 'u', '']);
    b!.say([kAdmEnqueue, 1, 'm', 'v', '']);
    svc!.detach(0);
    expect(b!.admitted()).toEqual([1]);
  });
});

describe('AdmissionService, fairness paced by FAIRNESS_MAX_QPS', () => {
  it('admits at most MAX_QPS per second per model, the first at once', () => {
    const [p] = setup(fairness({ maxQps: 10 }));
    for (let i = 1; i <= 5; i++) p!.say([kAdmEnqueue, i, 'm', 'u' + i, '']);
    expect(p!.admitted()).toEqual([1]);
    advance(99);
    expect(p!.admitted()).toEqual([1]);
    advance(1);
    expect(p!.admitted()).toEqual([1, 2]);
    advance(300);
    expect(p!.admitted()).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('AdmissionService, session boost', () => {
  it('admits within in-flight-per-pod x pods, and only while a pod has an empty engine queue', () => {
    let view = { pods: 2, anyIdle: true, remote: 0 };
    const [p] = setup(boost({ inflightPerPod: 1 }), () => view);
    for (let i = 1; i <= 4; i++) p!.say([kAdmEnqueue, i, 'm', '', 's' + i]);
    expect(p!.admitted()).toEqual([1, 2]);
    view = { pods: 2, anyIdle: false, remote: 0 };
    p!.say([kAdmRelease, 1, 0, 0, 1]);
    expect(p!.admitted()).toEqual([1, 2]);
    view = { pods: 2, anyIdle: true, remote: 0 };
    svc!.backendChanged();
    expect(p!.admitted()).toEqual([1, 2, 3]);
  });

  it('counts the other replicas\' in-flight requests on the model\'s pods (shared in-flight counts)', () => {
    let view = { pods: 2, anyIdle: true, remote: 1 };
    const [p] = setup(boost({ inflightPerPod: 2 }), () => view);
    for (let i = 1; i <= 5; i++) p!.say([kAdmEnqueue, i, 'm', '', 's' + i]);
    // 2 per pod x 2 pods = 4 in the cluster; another replica has 1 of them.
    expect(p!.admitted()).toEqual([1, 2, 3]);
    view = { pods: 2, anyIdle: true, remote: 4 };
    p!.say([kAdmRelease, 1, 0, 0, 1]);
    expect(p!.admitted()).toEqual([1, 2, 3]);
    // The other replica's requests finished: the next refresh re-checks the gate.
    view = { pods: 2, anyIdle: true, remote: 0 };
    svc!.backendChanged();
    expect(p!.admitted()).toEqual([1, 2, 3, 4, 5]);
  });

  it('serves the returning session first once its previous turn completed', () => {
    const [p] = setup(boost({ inflightPerPod: 1 }), () => ({ pods: 1, anyIdle: true, remote: 0 }));
    p!.say([kAdmEnqueue, 1, 'm', '', 'chat-a']);
    p!.say([kAdmEnqueue, 2, 'm', '', 'chat-b']);
    p!.say([kAdmEnqueue, 3, 'm', '', 'chat-c']);
    p!.say([kAdmRelease, 1, 5, 5, 1]);
    expect(p!.admitted()).toEqual([1, 2]);
    p!.say([kAdmEnqueue, 4, 'm', '', 'chat-a']); // follow-up of a completed session
    p!.say([kAdmRelease, 2, 5, 5, 1]);
    expect(p!.admitted()).toEqual([1, 2, 4]);
  });

  it('does not boost a session whose request failed before load balancing chose a pod', () => {
    const [p] = setup(boost({ inflightPerPod: 1 }), () => ({ pods: 1, anyIdle: true, remote: 0 }));
    p!.say([kAdmEnqueue, 1, 'm', '', 'chat-a']);
    p!.say([kAdmEnqueue, 2, 'm', '', 'chat-b']);
    p!.say([kAdmRelease, 1, 0, 0, 0]);
    p!.say([kAdmEnqueue, 3, 'm', '', 'chat-a']);
    p!.say([kAdmRelease, 2, 0, 0, 1]);
    expect(p!.admitted()).toEqual([1, 2, 3]);
  });

  it('holds admission for the grace period after a release, so a follow-up can arrive first', () => {
    const [p] = setup(boost({ inflightPerPod: 1, gracePeriodMs: 50 }), () => ({ pods: 1, anyIdle: true, remote: 0 }));
    p!.say([kAdmEnqueue, 1, 'm', '', 'a']);
    p!.say([kAdmEnqueue, 2, 'm', '', 'b']);
    p!.say([kAdmRelease, 1, 0, 0, 1]);
    advance(20);
    p!.say([kAdmEnqueue, 3, 'm', '', 'a']);
    expect(p!.admitted()).toEqual([1]);
    advance(30);
    expect(p!.admitted()).toEqual([1, 3]);
  });

  it('waits without bound when SESSION_BOOST_TIMEOUT <= 0', () => {
    const [p] = setup(boost({ inflightPerPod: 1, timeoutMs: 0 }), () => ({ pods: 1, anyIdle: true, remote: 0 }));
    p!.say([kAdmEnqueue, 1, 'm', '', 'a']);
    p!.say([kAdmEnqueue, 2, 'm', '', 'b']);
    now += 3_600_000;
    vi.advanceTimersByTime(3_600_000);
    expect(p!.rejected()).toEqual([]);
  });
});

describe('AdmissionService, lifecycle', () => {
  it('refuses the waiting requests of a model no route serves any more', () => {
    const [p] = setup(fairness({ maxConcurrent: 1 }));
    p!.say([kAdmEnqueue, 1, 'gone', 'u', '']);
    p!.say([kAdmEnqueue, 2, 'gone', 'u', '']);
    p!.say([kAdmEnqueue, 3, 'kept', 'u', '']);
    svc!.retainModels(new Set(['kept']));
    expect(p!.rejected()).toEqual([[2, kRejectClosed]]);
    expect(p!.admitted()).toEqual([1, 3]);
  });

  it('exposes Kthena queue families with user_id="_all"', () => {
    const [p] = setup(fairness({ maxConcurrent: 1 }));
    p!.say([kAdmEnqueue, 1, 'm', 'secret-user', '']);
    p!.say([kAdmEnqueue, 2, 'm', 'secret-user', '']);
    const fams = svc!.metricsJSON();
    const size = fams.find((f) => f.name === 'kthena_router_fairness_queue_size')!;
    expect(size.values).toEqual([{ value: 1, labels: { model: 'm', user_id: '_all' } }]);
    expect(fams.find((f) => f.name === 'kthena_router_fairness_queue_inflight')!.values[0]!.value).toBe(1);
    expect(JSON.stringify(fams)).not.toContain('secret-user');
  });
});
