/**
 * Session boost's first admission level counts the other replicas' in-flight requests when
 * in-flight counts are shared through Redis (REDIS_HOST), over the real CLI: two routers (two
 * workers each) share one redis-server in front of one simulated pod, SESSION_BOOST_INFLIGHT_PER_POD=1.
 * A stream held through router 1 fills the pod's one place for the whole cluster: router 2 queues
 * its request (and times it out), then admits once the stream ended. Pod on 127.0.75.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import {
  chat, cleanup, docs, eventually, freePort, modelRouteYaml, openStream, podYaml, serverYaml, startPods, startReplicaPair, tempDir, writeFile,
  type RouterProc,
} from './harness.js';
import type { SimFleet } from '../../native-bench/src/sim/types.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let dir: string;
let fleet: SimFleet;
let redis: RedisServer;
let r1: RouterProc;
let r2: RouterProc;

beforeAll(async () => {
  dir = await tempDir('kthena-e2e-boost-shared-');
  const port = await freePort();
  fleet = await startPods([{ name: 'boost-a', ip: '127.0.75.1', port, models: ['m'], ttftMs: 2, itlMs: 10, outputTokens: 8000 }]);
  await writeFile(path.join(dir, 'all.yaml'), docs(
    podYaml('boost-a', '127.0.75.1'),
    serverYaml('srv', { port, model: 'm' }),
    modelRouteYaml('route-m', { modelName: 'm', rules: [{ targets: [{ server: 'srv' }] }] }),
  ));
  redis = await startRedis();
  const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redis.port), ENABLE_SESSION_BOOST: 'true', SESSION_BOOST_INFLIGHT_PER_POD: '1', SESSION_BOOST_TIMEOUT: '1s' };
  [r1, r2] = await startReplicaPair({ dir, env, workers: 2 });
}, 90_000);

afterAll(async () => {
  await Promise.all([r1?.stop(), r2?.stop()]);
  await fleet?.close();
  await redis?.stop();
  await cleanup(dir);
});

async function remoteInflight(r: RouterProc): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${r.debugPort}/debug/config_dump/pods`)).json() as { pods: { name: string; router: { remoteInflight: number } }[] };
  return body.pods.find((p) => p.name === 'boost-a')?.router.remoteInflight ?? -1;
}

describe('session boost with shared in-flight counts', () => {
  it('holds a replica\'s admission while another replica fills the pod, and admits once it is free', async () => {
    // The pod lists the model once scraped (session boost counts the pods whose /v1/models has it).
    const warm = await chat(r2.url, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'warm' }] });
    expect(warm.status).toBe(200);
    const held = await openStream(r1.url, { model: 'm', max_tokens: 8000, messages: [{ role: 'user', content: 'hold' }] });
    expect(held.status).toBe(200);
    await held.firstEvent;
    await eventually(async () => (await remoteInflight(r2)) === 1, 5000, 'router 2 sees router 1\'s stream');
    const queued = await chat(r2.url, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'q' }] });
    expect(queued.status).toBe(504);
    expect(queued.text).toContain('RTR_ERR_FAIRNESS_QUEUE_TIMEOUT');
    held.abort();
    await eventually(async () => (await remoteInflight(r2)) === 0, 5000, 'router 2 sees the stream gone');
    const after = await chat(r2.url, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'after' }] });
    expect(after.status).toBe(200);
  }, 60_000);
});
