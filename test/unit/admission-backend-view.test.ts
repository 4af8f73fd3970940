/**
 * Session boost's backend view (src/admission/backend-view.ts): pods serving a model and whether
 * one is idle are cached until invalidated; the other replicas' in-flight requests on those pods
 * (kEpRemoteInflight) are read fresh at every call, since shared in-flight counts move every 50 ms.
 */
import { describe, expect, it } from 'vitest';
import { ScrapedBackendView } from '../../src/admission/backend-view.js';
import { epIndex, kEndpointStride, kEpModelBits, kEpRemoteInflight, kEpScrapeState, kEpWaiting } from '../../src/shared/layout.js';

describe('ScrapedBackendView', () => {
  it('sums the other replicas\' in-flight requests on the model\'s pods, fresh at each call', () => {
    const ep = new Int32Array(new SharedArrayBuffer(8 * kEndpointStride * 4));
    // Slots 0 and 1 serve model id 0; slot 2 serves another model.
    ep[epIndex(0, kEpModelBits)] = 1;
    ep[epIndex(1, kEpModelBits)] = 1;
    ep[epIndex(2, kEpModelBits)] = 2;
    for (const s of [0, 1, 2]) { ep[epIndex(s, kEpScrapeState)] = 1; ep[epIndex(s, kEpWaiting)] = 0; }
    const bv = new ScrapedBackendView(ep, { slots: () => [0, 1, 2], modelIds: () => new Map([['m', 0], ['other', 1]]) });
    expect(bv.view('m')).toMatchObject({ pods: 2, anyIdle: true, remote: 0 });
    ep[epIndex(0, kEpRemoteInflight)] = 3;
    ep[epIndex(1, kEpRemoteInflight)] = 2;
    ep[epIndex(2, kEpRemoteInflight)] = 50;
    expect(bv.view('m').remote).toBe(5);
    expect(bv.view('other')).toMatchObject({ pods: 1, remote: 50 });
  });
});
