/**
 * Token rate limits over the real CLI (docs/traffic-policy.md): Kthena's accounting (input
 * estimate before scheduling, output pre-check, output charged from the engine's usage, streamed
 * or not), local buckets shared by every worker thread, hot reload that neither refills nor keeps
 * a removed limit, LoRA-only routes, and global limits in a real Redis shared by two router
 * processes, with Redis killed and restarted mid-test. Simulated vLLM pods on 127.0.60.x.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accessLinesFor, chat, cleanup, docs, eventually, findSamples, modelRouteYaml, podYaml, sampleValue, scrape, serverYaml, startPods,
  startRouter, tempDir, writeFile, type RouterProc,
} from './harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import type { SimFleet } from '../../native-bench/src/sim/engine.js';

const PORT = 8000;
const ip = (n: number): string => `127.0.60.${n}`;
const CHAT = '/v1/chat/completions';
/** One user message "hello world": ceil(39 runes / 4) = 10 tokens (Kthena §2.2 step 8). */
const HELLO = [{ role: 'user', content: 'hello world' }];

interface Limit { input?: number; output?: number; unit: string; redis?: string }

function limitedRoute(name: string, model: string, limit: Limit | null, o: { loraAdapters?: string[] } = {}): string {
  const base = modelRouteYaml(name, {
    modelName: o.loraAdapters ? undefined : model, loraAdapters: o.loraAdapters,
    rules: [{ name: 'default', targets: [{ server: 'rl-server' }] }],
  });
  if (limit === null) return base;
  return [
    base,
    '  rateLimit:',
    ...(limit.input !== undefined ? [`    inputTokensPerUnit: ${limit.input}`] : []),
    ...(limit.output !== undefined ? [`    outputTokensPerUnit: ${limit.output}`] : []),
    `    unit: ${limit.unit}`,
    ...(limit.redis !== undefined ? ['    global:', '      redis:', `        address: "${limit.redis}"`] : []),
  ].join('\n');
}

function common(): string[] {
  return [
    serverYaml('rl-server', { port: PORT, labels: { app: 'rl' }, model: 'base' }),
    podYaml('rl-1', ip(1), { labels: { app: 'rl' } }),
    podYaml('rl-2', ip(2), { labels: { app: 'rl' } }),
  ];
}

let fleet: SimFleet;

beforeAll(async () => {
  // 8 output tokens per response; the adapter is served too.
  fleet = await startPods([
    { name: 'rl-1', ip: ip(1), port: PORT, models: ['base', 'lora-a'], ttftMs: 1, itlMs: 1, outputTokens: 8 },
    { name: 'rl-2', ip: ip(2), port: PORT, models: ['base', 'lora-a'], ttftMs: 1, itlMs: 1, outputTokens: 8 },
  ]);
});

afterAll(async () => {
  await fleet?.close();
});

/**
 * Sends `n` requests one after the other and returns their statuses. Each waits for its access-log
 * line: the router charges output tokens in finish(), which may run just after the client has read
 * the last byte, and the next request must see that charge.
 */
async function statuses(r: RouterProc, model: string, n: number, extra: object = {}, settle = true): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = randomUUID();
    const res = await chat(r.url, { model, messages: HELLO, ...extra }, { 'x-request-id': id });
    out.push(res.status);
    if (settle) await eventually(() => accessLinesFor(r, id).length > 0, 5000, `access-log line of ${id}`);
  }
  return out;
}

describe('local token rate limits (one budget per router)', () => {
  let dir = '';
  let router: RouterProc;
  const file = (): string => path.join(dir, 'routes.yaml');
  const routes = (reload: Limit | null): string => docs(
    limitedRoute('in-route', 'in-model', { input: 30, unit: 'minute' }),
    limitedRoute('shared-route', 'shared-model', { input: 100, unit: 'hour' }),
    limitedRoute('out-route', 'out-model', { output: 10, unit: 'minute' }),
    limitedRoute('out-stream-route', 'out-stream-model', { output: 10, unit: 'minute' }),
    limitedRoute('refill-route', 'refill-model', { input: 20, unit: 'second' }),
    limitedRoute('lora-route', 'lora-a', { input: 10, unit: 'hour' }, { loraAdapters: ['lora-a'] }),
    limitedRoute('reload-route', 'reload-model', reload),
    limitedRoute('free-route', 'free-model', null),
    ...common(),
  );

  beforeAll(async () => {
    dir = await tempDir('kthena-e2e-ratelimit-');
    await writeFile(file(), routes({ input: 20, unit: 'minute' }));
    router = await startRouter({ dir, workers: 2 });
    await router.waitReady(60_000);
  }, 90_000);

  afterAll(async () => {
    await router?.stop();
    await cleanup(dir);
  });

  it('refuses the request whose input estimate no longer fits, with Kthena\'s message, metric and access log', async () => {
    expect(await statuses(router, 'in-model', 3)).toEqual([200, 200, 200]);
    const r = await chat(router.url, { model: 'in-model', messages: HELLO });
    expect(r.status).toBe(429);
    expect(r.json()).toEqual({ error: { message: 'input token rate limit exceeded', type: 'rate_limit_error', code: 'RTR_ERR_INPUT_RATE_LIMIT' } });
    const id = r.headers.get('x-request-id')!;
    await eventually(() => accessLinesFor(router, id).length === 1, 5000, 'access-log line');
    expect(accessLinesFor(router, id)[0]).toContain(' 429 error=input_rate_limit:input token rate limit exceeded ');
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_rate_limit_exceeded_total', { model: 'in-model', limit_type: 'input_tokens', path: CHAT })).toBe(1);
    const refused = findSamples(m.samples, 'kthena_router_requests_total', { model: 'in-model', status_code: '429' });
    expect(refused.map((s) => [s.labels.error_type, s.labels.model_route, s.value])).toEqual([['rate_limit', 'default/in-route', 1]]);
    // A route without a limit is never refused.
    expect(await statuses(router, 'free-model', 6)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it('two worker threads draw from one budget: 40 concurrent requests of 10 tokens against 100 per hour admit exactly 10', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, () => chat(router.url, { model: 'shared-model', messages: HELLO })));
    const ok = results.filter((r) => r.status === 200).length;
    expect(ok).toBe(10);
    expect(results.filter((r) => r.status === 429).length).toBe(30);
  });

  it('charges the engine\'s completion tokens after the response and refuses once the output budget is spent (JSON)', async () => {
    // 10 per minute, 8 per response: the second response goes into debt, the third is refused.
    const id1 = randomUUID();
    const r1 = await chat(router.url, { model: 'out-model', messages: HELLO }, { 'x-request-id': id1 });
    expect(r1.status).toBe(200);
    expect(r1.json().usage.completion_tokens).toBe(8);
    await eventually(() => accessLinesFor(router, id1).length > 0, 5000, 'first response finished');
    expect(await statuses(router, 'out-model', 2)).toEqual([200, 429]);
    const r = await chat(router.url, { model: 'out-model', messages: HELLO });
    expect(r.json().error.message).toBe('output token rate limit exceeded');
    const m = await scrape(router.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_rate_limit_exceeded_total', { model: 'out-model', limit_type: 'output_tokens', path: CHAT })).toBe(2);
  });

  it('charges streamed responses from the usage the router asked the engine for', async () => {
    expect(await statuses(router, 'out-stream-model', 3, { stream: true })).toEqual([200, 200, 429]);
  });

  it('refills continuously: a budget spent within a second is back a second later', async () => {
    // Back to back (20 tokens a second refill 10 in half a second).
    expect(await statuses(router, 'refill-model', 3, {}, false)).toEqual([200, 200, 429]);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await statuses(router, 'refill-model', 1)).toEqual([200]);
  });

  it('limits a LoRA-only route under its adapter names (Kthena registered it under "" and never limited it)', async () => {
    expect(await statuses(router, 'lora-a', 2)).toEqual([200, 429]);
  });

  it('a route update keeps a spent bucket spent, and removing the limit removes it (Kthena #1505/#1704)', async () => {
    expect(await statuses(router, 'reload-model', 3)).toEqual([200, 200, 429]);
    // 21 per minute: Kthena re-creates its limiter full on every update; here the spent budget stays spent.
    await writeFile(file(), routes({ input: 21, unit: 'minute' }));
    await new Promise((r) => setTimeout(r, 2500));
    expect(await statuses(router, 'reload-model', 1)).toEqual([429]);
    await writeFile(file(), routes(null));
    await eventually(async () => (await chat(router.url, { model: 'reload-model', messages: HELLO })).status === 200, 5000, 'limit removed');
    expect(await statuses(router, 'reload-model', 3)).toEqual([200, 200, 200]);
  });
});

describe('global token rate limits in Redis', () => {
  let dir = '';
  let redis: RedisServer;
  let a: RouterProc;
  let b: RouterProc;
  let closed: RouterProc;
  let client: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    dir = await tempDir('kthena-e2e-ratelimit-global-');
    const address = `127.0.0.1:${redis.port}`;
    await writeFile(path.join(dir, 'routes.yaml'), docs(
      limitedRoute('global-route', 'global-model', { input: 50, unit: 'hour', redis: address }),
      limitedRoute('outage-route', 'outage-model', { input: 20, unit: 'hour', redis: address }),
      ...common(),
    ));
    [a, b, closed] = await Promise.all([
      startRouter({ dir, workers: 1 }),
      startRouter({ dir, workers: 1 }),
      startRouter({ dir, workers: 1, args: ['--rate-limit-fail-closed'] }),
    ]);
    await Promise.all([a.waitReady(90_000), b.waitReady(90_000), closed.waitReady(90_000)]);
    client = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    await client.connect();
  }, 120_000);

  afterAll(async () => {
    client?.disconnect();
    await Promise.all([a?.stop(), b?.stop(), closed?.stop()]);
    await redis?.stop();
    await cleanup(dir);
  });

  it('two router processes share one budget in Kthena\'s key layout, on Redis time, with Kthena\'s expiry', async () => {
    const got: number[] = [];
    for (let i = 0; i < 8; i++) got.push((await chat((i % 2 === 0 ? a : b).url, { model: 'global-model', messages: HELLO })).status);
    // 50 per hour, 10 per request: five admitted in total, whichever router took them.
    expect(got).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const h = await client.hgetall('kthena:ratelimit:global-model:input');
    expect(Number(h.tokens)).toBeLessThan(1);
    const [sec] = await client.time();
    expect(Math.abs(Number(h.last_update) - Number(sec))).toBeLessThan(60);
    const ttl = await client.ttl('kthena:ratelimit:global-model:input');
    expect(ttl).toBeGreaterThan(10_700);
    expect(ttl).toBeLessThanOrEqual(10_800);
  });

  it('Redis down: allowed by default (logged once, counted), refused with --rate-limit-fail-closed; both recover when it returns', async () => {
    expect(await statuses(a, 'outage-model', 3)).toEqual([200, 200, 429]);
    const port = redis.port;
    await redis.stop();

    expect(await statuses(a, 'outage-model', 4)).toEqual([200, 200, 200, 200]);
    expect(await statuses(closed, 'outage-model', 2)).toEqual([429, 429]);
    const down = a.stderr.filter((l) => l.includes('rate-limit Redis unreachable'));
    expect(down).toHaveLength(1);
    const m = await scrape(a.metricsPort);
    expect(sampleValue(m.samples, 'kthena_router_rate_limit_redis_errors_total', { model: 'outage-model', fail_mode: 'open' })).toBeGreaterThanOrEqual(4);

    redis = await startRedis({ port });
    // The fail-closed router admits again once its connection is back (an empty Redis: a full bucket).
    await eventually(async () => (await chat(closed.url, { model: 'outage-model', messages: HELLO })).status === 200, 10_000, 'fail-closed router recovers');
    // 20 per hour, the fail-closed router took 10: the default router gets one more, then the limit applies again.
    await eventually(async () => {
      const s = await statuses(a, 'outage-model', 1);
      return s[0] === 429;
    }, 10_000, 'limit enforced again');
    expect(a.stderr.filter((l) => l.includes('rate-limit Redis reachable again'))).toHaveLength(1);
  }, 60_000);
});
