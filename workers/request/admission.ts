/**
 * Kthena's fairness scheduling and session boost on the request path: after the route and its
 * ModelServer are known and before load balancing, the request takes a place in its model's
 * router-wide queue (the control thread orders it, workers/admission.ts speaks for it) and goes on
 * when admitted. finish() gives the place back with the engine's usage, whatever ended the request.
 */
import { AdmitResult, type AdmissionClient } from '../admission.js';
import { clientAborted, internalError, respondError } from './finish.js';
import type { RequestState } from './state.js';

export function queueThen(st: RequestState, client: AdmissionClient, model: string, go: () => void): void {
  const session = client.sessionHeader === '' ? '' : st.headerValue(client.sessionHeader);
  st.admission = client.enqueue(model, st.userId, session, (r) => {
    try {
      if (st.finished) return;
      if (st.aborted) { clientAborted(st); return; }
      if (r === AdmitResult.Admitted) go();
      else if (r === AdmitResult.TimedOut) respondError(st, 'RTR_ERR_FAIRNESS_QUEUE_TIMEOUT');
      else respondError(st, 'RTR_ERR_FAIRNESS_QUEUE_CLOSED');
    } catch (err) {
      internalError(st, err);
    }
  });
}
