/**
 * kvcache-aware against a real redis-server and real simulated engine pods (127.0.31.0/24).
 * Every pod of a fleet listens on the same port (on its own address), so one tokenizer port in the
 * plugin args reaches all of them, as port 8000 does on a cluster.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { startSimulatedPods } from '../../native-bench/src/sim/engine.js';
import type { SimFleet, SimPod, SimPodSpec } from '../../native-bench/src/sim/engine.js';
import { tokenizeChat, tokenizeText } from '../../native-bench/src/sim/tokenize.js';
import {
  KV_ERRORS_TOTAL,
  KV_MATCH_RATIO,
  KV_REDIS_DURATION,
  KV_TOKENIZE_DURATION,
  KvCacheAwareScorer,
} from '../../workers/scheduler/kvcache-aware.js';
import { kvBlockHashes, kvBlockKey } from '../../src/shared/kv-blocks.js';
import { gcKvBlocks } from '../../src/kvgc.js';
import type { SchedEndpoint, ScheduleRequest } from '../../workers/scheduler/types.js';
import type { PluginArgs } from '../../workers/scheduler/plugin-api.js';
import type { MetricJSON } from '../../src/shared/metric-json.js';
import { startRedis } from '../helpers/redis.js';
import type { RedisServer } from '../helpers/redis.js';

const MODEL = 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B';
const NS = 'default';
const FAST = { ttftMs: 1, itlMs: 1, outputTokens: 2 };
/** An address in our range where nothing listens. */
const DEAD_IP = '127.0.31.250';

/** Independent implementation of Kthena's computeStandardizedHash, for checking. */
function referenceHash(tokens: number[]): bigint {
  const b = Buffer.alloc(tokens.length * 4);
  tokens.forEach((t, i) => b.writeUInt32BE(t, i * 4));
  return createHash('sha256').update(b).digest().readBigUInt64BE(0) & 0x7fffffffffffffffn;
}

/** Polls `fn` until it returns a value other than undefined; fails after `timeoutMs`. */
async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Fleet {
  port: number;
  pod(name: string): SimPod;
  close(): Promise<void>;
}

/** Starts the pods on one shared port number (first pod picks it); retries if the port is taken. */
async function startOnOnePort(specs: SimPodSpec[]): Promise<Fleet> {
  for (let attempt = 0; ; attempt++) {
    const first = await startSimulatedPods([{ ...specs[0], port: 0 }]);
    const port = first.pods[0].port;
    let rest: SimFleet | null = null;
    try {
      if (specs.length > 1) rest = await startSimulatedPods(specs.slice(1).map((s) => ({ ...s, port })));
    } catch (err) {
      await first.close();
      if (attempt < 5 && /EADDRINUSE/.test((err as Error).message)) continue;
      throw err;
    }
    const fleets = rest ? [first, rest] : [first];
    return {
      port,
      pod(name: string): SimPod {
        for (const f of fleets) {
          const p = f.pods.find((x) => x.name === name);
          if (p) return p;
        }
        throw new Error(`no pod ${name}`);
      },
      async close() {
        await Promise.all(fleets.map((f) => f.close()));
      },
    };
  }
}

function endpoint(slot: number, podName: string, ip: string, startedAtSec = 0): SchedEndpoint {
  return { slot, gen: 1, podName, namespace: NS, ip, startedAtSec };
}

function chatReq(messages: { role: string; content: string }[], engine: 'vLLM' | 'SGLang' = 'vLLM'): ScheduleRequest {
  const prompt = messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
  return { model: MODEL, modelId: 0, prompt, body: { model: MODEL, messages }, engine };
}

function textReq(prompt: string, engine: 'vLLM' | 'SGLang' = 'vLLM'): ScheduleRequest {
  return { model: MODEL, modelId: 0, prompt, body: { model: MODEL, prompt }, engine };
}

function family(metrics: MetricJSON[], name: string): MetricJSON {
  const f = metrics.find((m) => m.name === name);
  if (!f) throw new Error(`no family ${name}`);
  return f;
}

function errorCount(scorer: KvCacheAwareScorer, stage: string): number {
  const v = family(scorer.metricsJSON(), KV_ERRORS_TOTAL).values.find((x) => x.labels.stage === stage && x.labels.model === MODEL);
  return v?.value ?? 0;
}

function histCount(scorer: KvCacheAwareScorer, name: string): number {
  const v = family(scorer.metricsJSON(), name).values.find((x) => x.metricName === name + '_count' && x.labels.model === MODEL);
  return v?.value ?? 0;
}

function tokenizeCalls(pod: SimPod) {
  return pod.requests.filter((r) => r.path === '/tokenize');
}

/** A user-visible prompt long enough for many blocks: distinct words so every block differs. */
function longText(words: number, seed = 'w'): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(`${seed}${i}`);
  return out.join(' ');
}

let redisServer: RedisServer;
let redis: Redis;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  await redis.ping();
});

afterAll(async () => {
  redis?.disconnect();
  await redisServer?.stop();
});

beforeEach(async () => {
  await redis.flushall();
});

describe('block hashing', () => {
  it('hashes each block as the first 8 bytes of SHA-256 over big-endian uint32 ids, masked to 63 bits', () => {
    const block = Array.from({ length: 16 }, (_, i) => i + 1);
    const [h] = kvBlockHashes(block, 16, 128);
    expect(h).toBe(referenceHash(block));
    // Pinned vector (computed with Python's hashlib, as the Kthena runtime does).
    expect(h).toBe(6615856733697512468n);
    // Ids >= 2^31 are unsigned; the mask clears the top bit.
    expect(kvBlockHashes(new Array(16).fill(0xffffffff), 16, 128)[0]).toBe(461591577787014669n);
  });

  it('cuts blocks of blockSize tokens, keeps the trailing partial block, and stops at maxBlocks', () => {
    const tokens = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const hashes = kvBlockHashes(tokens, 16, 128);
    expect(hashes).toEqual([referenceHash(tokens.slice(0, 16)), referenceHash(tokens.slice(16, 32)), referenceHash(tokens.slice(32, 40))]);
    expect(kvBlockHashes(tokens, 16, 2)).toEqual(hashes.slice(0, 2));
    expect(kvBlockHashes([], 16, 128)).toEqual([]);
  });

  it('does not chain: the same block content hashes the same at any position', () => {
    const block = Array.from({ length: 4 }, (_, i) => 7 * i);
    const [a, b] = kvBlockHashes([...block, ...block], 4, 128);
    expect(a).toBe(b);
  });

  it('writes the hash in decimal in the key', () => {
    expect(kvBlockKey(MODEL, 6615856733697512468n)).toBe(`matrix:kv:block:${MODEL}@6615856733697512468`);
  });
});

describe('scoring against Redis', () => {
  let fleet: Fleet;
  let args: PluginArgs;
  let scorer: KvCacheAwareScorer;
  const eps = [endpoint(0, 'pod-a', '127.0.31.1'), endpoint(1, 'pod-b', '127.0.31.2'), endpoint(2, 'pod-c', '127.0.31.3')];

  beforeAll(async () => {
    fleet = await startOnOnePort([
      { name: 'pod-a', ip: '127.0.31.1', port: 0, models: [MODEL], ...FAST },
      { name: 'pod-b', ip: '127.0.31.2', port: 0, models: [MODEL], ...FAST },
      { name: 'pod-c', ip: '127.0.31.3', port: 0, models: [MODEL], ...FAST },
      { name: 'pod-s', ip: '127.0.31.4', port: 0, models: [MODEL], engine: 'SGLang', ...FAST },
    ]);
    args = { blockSizeToHash: 16, maxBlocksToMatch: 128, vllmTokenizerPort: fleet.port, sglangTokenizerPort: fleet.port };
    scorer = new KvCacheAwareScorer({ redis, random: () => 0 });
  });

  afterAll(async () => {
    await scorer?.close();
    await fleet?.close();
  });

  beforeEach(() => {
    for (const n of ['pod-a', 'pod-b', 'pod-c', 'pod-s']) fleet.pod(n).clearRequests();
  });

  async function own(tokens: number[], blocks: Record<string, number[]>, writtenAt = '1700000000', bs = 16): Promise<void> {
    const hashes = kvBlockHashes(tokens, bs, Infinity);
    for (const [pod, idx] of Object.entries(blocks)) {
      for (const i of idx) await redis.hset(kvBlockKey(MODEL, hashes[i]), `${pod}.${NS}`, writtenAt);
    }
  }

  it('scores only pods holding block 0, by consecutive prefix blocks, floor(matchLen/total*100)', async () => {
    const prompt = longText(85); // 86 tokens: 6 blocks, the last partial
    const tokens = tokenizeText(prompt, true);
    expect(Math.ceil(tokens.length / 16)).toBe(6);
    expect(tokens.length % 16).not.toBe(0);
    await own(tokens, {
      'pod-a': [0, 1, 2, 3], // matchLen 4 -> floor(4/6*100) = 66
      'pod-b': [0, 1, 3, 4], // gap at 2 -> matchLen 2 -> 33
      'pod-c': [1, 2, 3, 4, 5], // no block 0 -> no entry
      'pod-z': [0, 1, 2, 3, 4, 5], // not a candidate: ignored
    });
    const out = new Float64Array(8).fill(-1);
    expect(await scorer.score(args, textReq(prompt), eps, out)).toBe(true);
    expect(Array.from(out.subarray(0, 3))).toEqual([66, 33, NaN]);
    expect(out[3]).toBe(-1); // beyond endpoints.length: untouched
    const ratio = family(scorer.metricsJSON(), KV_MATCH_RATIO).values;
    const sum = ratio.find((v) => v.metricName === KV_MATCH_RATIO + '_sum' && v.labels.model === MODEL);
    expect(sum?.value).toBeCloseTo(4 / 6, 10);
  });

  it('truncates the score the way Go does int(float64(m)/float64(t)*100)', async () => {
    const prompt = longText(1200);
    const tokens = tokenizeText(prompt, true);
    expect(tokens.length).toBeGreaterThan(1600);
    const hundred = { ...args, maxBlocksToMatch: 100 };
    await own(tokens, { 'pod-a': Array.from({ length: 29 }, (_, i) => i) });
    const out = new Float64Array(3);
    expect(await scorer.score(hundred, textReq(prompt), eps, out)).toBe(true);
    // 29/100*100 = 28.999999999999996 in float64.
    expect(out[0]).toBe(28);
  });

  it('gives no pod an entry when nobody holds block 0 and records a 0 match ratio', async () => {
    const prompt = longText(40, 'miss');
    const before = histCount(scorer, KV_MATCH_RATIO);
    const out = new Float64Array(3);
    expect(await scorer.score(args, textReq(prompt), eps, out)).toBe(true);
    expect(Array.from(out)).toEqual([NaN, NaN, NaN]);
    expect(histCount(scorer, KV_MATCH_RATIO)).toBe(before + 1);
    const zero = family(scorer.metricsJSON(), KV_MATCH_RATIO).values.find(
      (v) => v.metricName === KV_MATCH_RATIO + '_bucket' && v.labels.le === 0 && v.labels.model === MODEL,
    );
    expect(zero?.value).toBeGreaterThanOrEqual(1);
  });

  it('drops owners written at or before the pod started; keeps unknown start times and unparsable values', async () => {
    const prompt = longText(40, 'stale');
    const tokens = tokenizeText(prompt, true);
    const started = 1_750_000_000;
    const hashes = kvBlockHashes(tokens, 16, Infinity);
    for (const h of hashes) {
      await redis.hset(kvBlockKey(MODEL, h), {
        [`pod-a.${NS}`]: String(started), // same second as the start: may predate it, dropped
        [`pod-b.${NS}`]: String(started + 1), // after the start: kept
        [`pod-c.${NS}`]: '1700000000|GPU', // unparsable: kept
      });
    }
    const restarted = [
      endpoint(0, 'pod-a', '127.0.31.1', started),
      endpoint(1, 'pod-b', '127.0.31.2', started),
      endpoint(2, 'pod-c', '127.0.31.3', started),
    ];
    const out = new Float64Array(3);
    expect(await scorer.score(args, textReq(prompt), restarted, out)).toBe(true);
    expect(Array.from(out)).toEqual([NaN, 100, 100]);
    // Same data, pod-a's start unknown: its ownership stands.
    expect(await scorer.score(args, textReq(prompt), [endpoint(0, 'pod-a', '127.0.31.1', 0)], out)).toBe(true);
    expect(out[0]).toBe(100);
  });

  it('sends vLLM a chat body with add_generation_prompt, to the randomly chosen candidate', async () => {
    const messages = [{ role: 'user', content: 'hello there' }];
    const pick = new KvCacheAwareScorer({ redis, random: () => 0.5 }); // 3 candidates -> index 1
    try {
      expect(await pick.score(args, chatReq(messages), eps, new Float64Array(3))).toBe(true);
    } finally {
      await pick.close();
    }
    expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(0);
    const [call] = tokenizeCalls(fleet.pod('pod-b'));
    expect(call.method).toBe('POST');
    expect(call.body).toEqual({ model: MODEL, messages, add_special_tokens: false, add_generation_prompt: true });
    expect(Object.keys(call.body as object)).toEqual(['model', 'messages', 'add_special_tokens', 'add_generation_prompt']);
  });

  it('sends SGLang a chat body without add_generation_prompt, on the SGLang port', async () => {
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }];
    const sgArgs = { ...args, vllmTokenizerPort: 1 }; // a vLLM port would be refused
    const out = new Float64Array(1);
    expect(await scorer.score(sgArgs, chatReq(messages, 'SGLang'), [endpoint(0, 'pod-s', '127.0.31.4')], out)).toBe(true);
    const [call] = tokenizeCalls(fleet.pod('pod-s'));
    expect(call.body).toEqual({ model: MODEL, messages, add_special_tokens: false });
  });

  it('sends a text prompt with add_special_tokens true', async () => {
    expect(await scorer.score(args, textReq('Once upon a time'), eps, new Float64Array(3))).toBe(true);
    const [call] = tokenizeCalls(fleet.pod('pod-a'));
    expect(call.body).toEqual({ model: MODEL, prompt: 'Once upon a time', add_special_tokens: true });
    expect(Object.keys(call.body as object)).toEqual(['model', 'prompt', 'add_special_tokens']);
  });

  it('contributes nothing for an empty prompt or empty messages, without tokenizing', async () => {
    const out = new Float64Array(3).fill(5);
    expect(await scorer.score(args, textReq(''), eps, out)).toBe(false);
    expect(Array.from(out)).toEqual([NaN, NaN, NaN]);
    expect(await scorer.score(args, chatReq([]), eps, out)).toBe(false);
    expect(await scorer.score(args, textReq('x'), [], out)).toBe(false);
    expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(0);
  });

  it('retries the tokenizer once, on the next candidate', async () => {
    const before = errorCount(scorer, 'tokenize');
    const mixed = [endpoint(0, 'pod-dead', DEAD_IP), endpoint(1, 'pod-a', '127.0.31.1')];
    expect(await scorer.score(args, textReq('retry me'), mixed, new Float64Array(2))).toBe(true);
    expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(1);
    expect(errorCount(scorer, 'tokenize')).toBe(before);
  });

  it('tokenizes on a pod to avoid (ejected) only when every candidate is one', async () => {
    const avoided = new Set(['pod-a']);
    const pick = new KvCacheAwareScorer({ redis, random: () => 0, avoid: (e) => avoided.has(e.podName) });
    try {
      // random() = 0 picks pod-a, which is avoided: pod-b tokenizes.
      expect(await pick.score(args, textReq('avoid a'), eps, new Float64Array(3))).toBe(true);
      expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(0);
      expect(tokenizeCalls(fleet.pod('pod-b'))).toHaveLength(1);
      // The retry skips avoided pods too: the dead first pick's next one, pod-c, is avoided; pod-a serves.
      avoided.clear();
      avoided.add('pod-c');
      const mixed = [endpoint(0, 'pod-x', DEAD_IP), endpoint(1, 'pod-c', '127.0.31.3'), endpoint(2, 'pod-a', '127.0.31.1')];
      expect(await pick.score(args, textReq('retry past c'), mixed, new Float64Array(3))).toBe(true);
      expect(tokenizeCalls(fleet.pod('pod-c'))).toHaveLength(0);
      expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(1);
      // Every candidate avoided: the random pick is used after all.
      for (const n of ['pod-a', 'pod-b', 'pod-c']) avoided.add(n);
      expect(await pick.score(args, textReq('all avoided'), eps, new Float64Array(3))).toBe(true);
      expect(tokenizeCalls(fleet.pod('pod-a'))).toHaveLength(2);
    } finally {
      await pick.close();
    }
  });

  it('returns false and counts stage=tokenize when no tokenizer answers', async () => {
    const tokBefore = histCount(scorer, KV_TOKENIZE_DURATION);
    const errBefore = errorCount(scorer, 'tokenize');
    const dead = [endpoint(0, 'pod-x', DEAD_IP), endpoint(1, 'pod-y', '127.0.31.251')];
    const out = new Float64Array(2).fill(7);
    expect(await scorer.score(args, textReq('nobody home'), dead, out)).toBe(false);
    expect(Array.from(out)).toEqual([NaN, NaN]);
    expect(errorCount(scorer, 'tokenize')).toBe(errBefore + 1);
    // Durations are recorded for successful stages only, as Kthena does.
    expect(histCount(scorer, KV_TOKENIZE_DURATION)).toBe(tokBefore);
  });

  it('returns false and counts stage=tokenize on a tokenizer timeout', async () => {
    const silent = http.createServer(() => undefined); // reads the request, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.31.5', r));
    const port = (silent.address() as { port: number }).port;
    const quick = new KvCacheAwareScorer({ redis, tokenizeTimeoutMs: 100 });
    try {
      const t0 = Date.now();
      const ok = await quick.score({ ...args, vllmTokenizerPort: port }, textReq('slow'), [endpoint(0, 'pod-q', '127.0.31.5')], new Float64Array(1));
      expect(ok).toBe(false);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(errorCount(quick, 'tokenize')).toBe(1);
    } finally {
      await quick.close();
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('returns false and counts stage=redis when Redis is down', async () => {
    const doomed = await startRedis();
    const client = new Redis(doomed.url);
    client.on('error', () => undefined);
    const lonely = new KvCacheAwareScorer({ redis: client, redisTimeoutMs: 1000 });
    try {
      await client.ping();
      const out = new Float64Array(3);
      expect(await lonely.score(args, textReq(longText(20)), eps, out)).toBe(true);
      await doomed.stop();
      await until('the client to notice', () => (client.status === 'ready' ? undefined : true));
      const before = histCount(lonely, KV_REDIS_DURATION);
      out.fill(3);
      expect(await lonely.score(args, textReq(longText(20)), eps, out)).toBe(false);
      expect(Array.from(out)).toEqual([NaN, NaN, NaN]);
      expect(errorCount(lonely, 'redis')).toBe(1);
      expect(errorCount(lonely, 'tokenize')).toBe(0);
      expect(histCount(lonely, KV_REDIS_DURATION)).toBe(before);
    } finally {
      await lonely.close();
      client.disconnect();
      await doomed.stop();
    }
  });

  it('exports its families in prom-client JSON shape with Kthena buckets', () => {
    const fams = scorer.metricsJSON();
    expect(fams.map((f) => f.name)).toEqual([KV_MATCH_RATIO, KV_REDIS_DURATION, KV_TOKENIZE_DURATION, KV_ERRORS_TOTAL]);
    for (const f of fams) expect(f.aggregator).toBe('sum');
    const les = family(fams, KV_MATCH_RATIO)
      .values.filter((v) => v.metricName === KV_MATCH_RATIO + '_bucket' && v.labels.model === MODEL)
      .map((v) => v.labels.le);
    expect(les).toEqual([0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1, '+Inf']);
    const dles = family(fams, KV_REDIS_DURATION)
      .values.filter((v) => v.metricName === KV_REDIS_DURATION + '_bucket' && v.labels.model === MODEL)
      .map((v) => v.labels.le);
    expect(dles).toEqual([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, '+Inf']);
    expect(family(fams, KV_ERRORS_TOTAL).values).toEqual([{ value: 1, labels: { model: MODEL, stage: 'tokenize' } }]);
  });
});

describe('gcKvBlocks', () => {
  it('deletes only fields older than maxAge, walking the keyspace with a resumable cursor', async () => {
    const now = 1_800_000_000;
    const day = 86400;
    // Enough keys that the walk takes several SCAN steps.
    for (let i = 0; i < 250; i++) {
      await redis.hset(kvBlockKey(MODEL, BigInt(i)), { [`old.${NS}`]: String(now - day - 1), [`new.${NS}`]: String(now - 10) });
    }
    await redis.hset(kvBlockKey(MODEL, 9999n), {
      [`edge.${NS}`]: String(now - day), // exactly 24 h: not older than 24 h, kept
      [`tagged.${NS}`]: String(now - 10 * day) + '|GPU', // unparsable: kept (as Kthena)
    });
    await redis.hset(kvBlockKey(MODEL, 10000n), { [`old.${NS}`]: String(now - 2 * day) });
    await redis.hset('unrelated:key', { [`old.${NS}`]: String(now - 2 * day) });

    let cursor = '0';
    let steps = 0;
    do {
      cursor = await gcKvBlocks(redis, now, day, cursor);
      steps++;
    } while (cursor !== '0');
    expect(steps).toBeGreaterThan(1);

    for (let i = 0; i < 250; i++) {
      expect(await redis.hgetall(kvBlockKey(MODEL, BigInt(i)))).toEqual({ [`new.${NS}`]: String(now - 10) });
    }
    expect(await redis.hgetall(kvBlockKey(MODEL, 9999n))).toEqual({
      [`edge.${NS}`]: String(now - day),
      [`tagged.${NS}`]: String(now - 10 * day) + '|GPU',
    });
    expect(await redis.exists(kvBlockKey(MODEL, 10000n))).toBe(0); // emptied hash: gone
    expect(await redis.hgetall('unrelated:key')).toEqual({ [`old.${NS}`]: String(now - 2 * day) });
  });
});

describe('simulated KV events', () => {
  let fleet: Fleet;
  let scorer: KvCacheAwareScorer;
  let args: PluginArgs;
  const eps = [endpoint(0, 'kv-a', '127.0.31.11'), endpoint(1, 'kv-b', '127.0.31.12'), endpoint(2, 'kv-c', '127.0.31.13')];

  beforeAll(async () => {
    const kvEvents = { redisUrl: redisServer.url, namespace: NS };
    fleet = await startOnOnePort(
      ['kv-a', 'kv-b', 'kv-c'].map((name, i) => ({ name, ip: `127.0.31.${11 + i}`, port: 0, models: [MODEL], ...FAST, kvEvents })),
    );
    args = { blockSizeToHash: 16, maxBlocksToMatch: 128, vllmTokenizerPort: fleet.port, sglangTokenizerPort: fleet.port };
    scorer = new KvCacheAwareScorer({ redis });
  });

  afterAll(async () => {
    await scorer?.close();
    await fleet?.close();
  });

  async function complete(pod: SimPod, path: string, body: Record<string, unknown>): Promise<void> {
    const res = await fetch(pod.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    await res.text();
  }

  it('the sim tokenizer answers vLLM shape and agrees with what a completion caches', async () => {
    const messages = [{ role: 'user', content: 'What is a KV cache?' }];
    const res = await fetch(fleet.pod('kv-a').url + '/tokenize', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages, add_special_tokens: false, add_generation_prompt: true }),
    });
    const body = (await res.json()) as { count: number; max_model_len: number; tokens: number[] };
    expect(res.status).toBe(200);
    expect(Object.keys(body)).toEqual(['count', 'max_model_len', 'tokens']);
    expect(body.tokens).toEqual(tokenizeChat(messages, true, false));
    expect(body.count).toBe(body.tokens.length);
    const bad = await fetch(fleet.pod('kv-a').url + '/tokenize', { method: 'POST', body: JSON.stringify({ model: 'nope', prompt: 'x' }) });
    expect(bad.status).toBe(404);
    await bad.text();
  });

  it('routes a repeated chat prompt to the pod that served it', async () => {
    const system = { role: 'system', content: longText(120, 'sys') };
    const first = [system, { role: 'user', content: 'first question' }];
    await complete(fleet.pod('kv-b'), '/v1/chat/completions', { model: MODEL, messages: first, max_tokens: 2 });

    const req = chatReq(first);
    const out = new Float64Array(3);
    const scores = await until('kv-b to own the prompt blocks', async () => {
      expect(await scorer.score(args, req, eps, out)).toBe(true);
      return out[1] > 0 ? Array.from(out) : undefined;
    });
    const tokens = tokenizeChat(first, true, false);
    const total = Math.ceil(tokens.length / 16);
    expect(scores).toEqual([NaN, Math.floor((Math.floor(tokens.length / 16) / total) * 100), NaN]);

    // A follow-up sharing only the system prompt still goes to kv-b, with a lower score.
    const second = [system, { role: 'user', content: 'a different question altogether' }];
    expect(await scorer.score(args, chatReq(second), eps, out)).toBe(true);
    expect(out[1]).toBeGreaterThan(0);
    expect(out[1]).toBeLessThan(scores[1]);
    expect(Number.isNaN(out[0]) && Number.isNaN(out[2])).toBe(true);
  });

  it('routes a repeated text prompt to the pod that served it', async () => {
    const prompt = longText(80, 'txt');
    await complete(fleet.pod('kv-c'), '/v1/completions', { model: MODEL, prompt, max_tokens: 2 });
    const out = new Float64Array(3);
    await until('kv-c to own the prompt blocks', async () => {
      expect(await scorer.score(args, textReq(prompt), eps, out)).toBe(true);
      return out[2] > 0 ? true : undefined;
    });
    expect(Number.isNaN(out[0]) && Number.isNaN(out[1])).toBe(true);
    // The pod wrote full blocks only, stamped with its owner id.
    const tokens = tokenizeText(prompt, true);
    const hashes = kvBlockHashes(tokens, 16, Infinity);
    const fullBlocks = Math.floor(tokens.length / 16);
    for (let i = 0; i < hashes.length; i++) {
      const v = await redis.hget(kvBlockKey(MODEL, hashes[i]), `kv-c.${NS}`);
      if (i < fullBlocks) expect(v).toMatch(/^\d+$/);
      else expect(v).toBeNull();
    }
  });
});
