/**
 * Simulated pods in model mode over HTTP (127.0.41.x): cached_tokens, reported simulated timing,
 * time scale, PD legs (vLLM NIXL and SGLang bootstrap), LoRA load/unload, metrics from the model's
 * state and KV events mirrored into Redis. Timing assertions use the simulated times the pods report
 * (sim_t, sim_timing, the recorded outcome), never the wall clock, except generous hang bounds.
 */
import http from 'node:http';

import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';

import { startSimulatedPods } from '../../native-bench/src/sim/engine.js';
import type { SimFleet, SimPodSpec } from '../../native-bench/src/sim/engine.js';
import { simSpecsFromArgs, loadFleetFile } from '../../native-bench/src/sim/cli.js';
import { parseEngineMetrics } from '../../src/scrape/engines.js';
import { FamilySelector, parsePrometheus } from '../../src/scrape/prom.js';
import { kvBlockHashes, kvBlockKey } from '../../src/shared/kv-blocks.js';
import { startRedis } from '../helpers/redis.js';

const BASE = 'deepseek-ai/DeepSeek-R1-Distill-Qwen-7B';
/** a = 10 ms, b = 0.1 ms/token, c = 1 ms/sequence. */
const COEF = { stepMs: 10, prefillMsPerToken: 0.1, decodeMsPerSeq: 1 };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function call(url: string, method = 'GET', body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(url, {
      method,
      agent: false,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The JSON objects of an SSE body, without [DONE]. */
function chunks(text: string): Record<string, any>[] {
  const events = text.split('\n\n').filter((e) => e !== '').map((e) => e.slice('data: '.length));
  expect(events.at(-1)).toBe('[DONE]');
  return events.slice(0, -1).map((e) => JSON.parse(e));
}

/** `n` token ids unique to `seed`. */
function toks(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 * (seed + 1) + i);
}

const complete = (url: string, prompt: number[], extra: Record<string, unknown> = {}) =>
  call(`${url}/v1/completions`, 'POST', { model: BASE, prompt, max_tokens: 1, ...extra });

let fleet: SimFleet | null = null;

async function start(specs: Partial<SimPodSpec>[]): Promise<SimFleet> {
  fleet = await startSimulatedPods(
    specs.map((s, i) => ({ name: `m${i}`, ip: `127.0.41.${i + 1}`, port: 0, models: [BASE], model: COEF, ...s }) as SimPodSpec),
  );
  return fleet;
}

afterEach(async () => {
  await fleet?.close();
  fleet = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to 5 s) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
  expect(cond()).toBe(true);
}

describe('model mode over HTTP', () => {
  it('reports the prefix hit in cached_tokens and a shorter simulated TTFT', async () => {
    const f = await start([{ timeScale: 20, reportTiming: true }]);
    const url = f.pods[0].url;
    const prefix = toks(320, 0);
    const cold = await complete(url, [...prefix, ...toks(40, 1)]);
    expect(cold.status).toBe(200);
    expect(cold.headers['x-sim-time-scale']).toBe('20');
    const a = JSON.parse(cold.text);
    expect(a.usage).toEqual({ prompt_tokens: 360, completion_tokens: 1, total_tokens: 361, prompt_tokens_details: { cached_tokens: 0 } });
    expect(a.sim_timing).toEqual({ ttft_ms: 10 + 36, e2e_ms: 10 + 36, queue_ms: 0 });
    expect(a.choices[0].finish_reason).toBe('length');

    const warm = JSON.parse((await complete(url, [...prefix, ...toks(40, 2)])).text);
    expect(warm.usage.prompt_tokens_details).toEqual({ cached_tokens: 320 });
    expect(warm.sim_timing.ttft_ms).toBeCloseTo(10 + 4, 6);
    expect(f.pods[0].requests.at(-1)?.outcome).toMatchObject({ mode: 'model', status: 200, cachedTokens: 320, promptTokens: 360, ttftMs: 14 });

    // Chat prompts are tokenized (ChatML) and cached the same way.
    const chat = { model: BASE, messages: [{ role: 'user', content: 'word '.repeat(200) }], max_tokens: 2 };
    await call(`${url}/v1/chat/completions`, 'POST', chat);
    const again = JSON.parse((await call(`${url}/v1/chat/completions`, 'POST', chat)).text);
    expect(again.usage.prompt_tokens).toBeGreaterThan(200);
    expect(again.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((again.usage.prompt_tokens - 1) / 16) * 16);
  });

  it('stamps every streamed chunk with sim_t, and timeScale does not change simulated times', async () => {
    const f = await start([{ timeScale: 1, reportTiming: true }, { timeScale: 40, reportTiming: true }]);
    const run = async (url: string): Promise<number[][]> => {
      const out: number[][] = [];
      for (const seed of [1, 2]) {
        const r = await call(`${url}/v1/completions`, 'POST', {
          model: BASE,
          prompt: [...toks(256, 0), ...toks(44, seed)],
          max_tokens: 5,
          stream: true,
          stream_options: { include_usage: true },
        });
        const cs = chunks(r.text);
        for (const c of cs) expect(typeof c.sim_t).toBe('number');
        out.push(cs.map((c) => c.sim_t));
      }
      return out;
    };
    const slow = await run(f.pods[0].url);
    const fast = await run(f.pods[1].url);
    expect(fast).toEqual(slow);
    // 5 token chunks + the usage chunk; cold prefill 10 + 30, then a + c per token.
    expect(slow[0]).toEqual([40, 51, 62, 73, 84, 84]);
    // 256 cached tokens: 44 to compute.
    expect(slow[1][0]).toBeCloseTo(14.4, 6);
  });

  it('keeps the fixed-delay defaults when no model is configured, scaled by timeScale', async () => {
    const f = await start([{ model: undefined, ttftMs: 400, itlMs: 200, outputTokens: 3, timeScale: 20, reportTiming: true }]);
    const t0 = Date.now();
    const r = await call(`${f.pods[0].url}/v1/completions`, 'POST', { model: BASE, prompt: 'hello world' });
    expect(Date.now() - t0).toBeLessThan(2000);
    const body = JSON.parse(r.text);
    expect(body.usage.prompt_tokens_details).toBeNull();
    // Measured wall time x 20: timers may fire up to a millisecond early (20 simulated ms).
    expect(body.sim_timing.ttft_ms).toBeGreaterThanOrEqual(370);
    expect(body.sim_timing.e2e_ms).toBeGreaterThanOrEqual(760);
    expect(f.pods[0].mode).toBe('fixed');
  });

  it('keeps the failure switches working and frees the blocks of a request cut short', async () => {
    const f = await start([{ timeScale: 10, kvCacheTokens: 16 * 50 }]);
    const p = f.pods[0];
    const drained = async () => {
      // Generous: the pod notices the cut connection on its own schedule (slower on a loaded machine).
      for (let i = 0; i < 2000 && p.inflight > 0; i++) await sleep(5);
      expect(p.inflight).toBe(0);
      expect(p.state().engineModel).toMatchObject({ running: 0, waiting: 0, kvBlocksUsed: 0 });
    };
    p.set({ dieMidStreamAfter: 3 });
    const cut = await complete(p.url, toks(100, 1), { max_tokens: 50, stream: true }).then(
      (r) => r.text,
      () => 'cut',
    );
    expect(cut === 'cut' || !cut.includes('[DONE]')).toBe(true);
    expect(p.requests.at(-1)?.outcome?.error).toMatch(/dieMidStreamAfter/);
    await drained();

    // A client that goes away mid-stream.
    await new Promise<void>((resolve) => {
      const req = http.request(`${p.url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
      req.on('response', (res) => res.once('data', () => { req.destroy(); resolve(); }));
      req.on('error', () => resolve());
      req.end(JSON.stringify({ model: BASE, prompt: toks(100, 2), max_tokens: 500, stream: true }));
    });
    await drained();
    expect((await call(`${p.url}/metrics`)).text).toContain(`vllm:request_success_total{model_name="${BASE}",finished_reason="abort"} 2.0`);

    p.set({ failStatus: 503 });
    expect((await complete(p.url, toks(10, 3))).status).toBe(503);
    p.set({ failStatus: null, hangMs: 120 });
    const t0 = Date.now();
    const hung = await complete(p.url, toks(10, 3), { max_tokens: 2 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(110);
    expect(hung.status).toBe(200);
    p.set({ hangMs: 0, resetBeforeHeaders: true });
    await expect(complete(p.url, toks(10, 3))).rejects.toThrow(/ECONNRESET|socket hang up/);
  });

  it('refuses a prompt longer than max-model-len with vLLM’s message', async () => {
    const f = await start([{ model: { ...COEF, maxModelLen: 100 } }]);
    const r = await complete(f.pods[0].url, toks(95, 1), { max_tokens: 10 });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).message).toMatch(/maximum context length is 100 tokens\. However, you requested 105 tokens/);
  });
});

describe('PD legs', () => {
  it('vLLM NIXL: the prefill pod returns kv_transfer_params and the decode pod charges the transfer instead of the prefill', async () => {
    const f = await start([
      { name: 'prefill', role: 'prefill', reportTiming: true, timeScale: 10, model: { ...COEF, kvTransferMsPerKToken: 5 } },
      { name: 'decode', role: 'decode', reportTiming: true, timeScale: 10, model: { ...COEF, kvTransferMsPerKToken: 5 } },
      { name: 'plain', reportTiming: true, timeScale: 10, model: { ...COEF, kvTransferMsPerKToken: 5 } },
    ]);
    const [p, d, plain] = f.pods;
    const prompt = toks(2000, 1);
    const pre = await complete(p.url, prompt, { kv_transfer_params: { do_remote_decode: true, do_remote_prefill: false } });
    expect(pre.status).toBe(200);
    const pb = JSON.parse(pre.text);
    expect(pb.usage.completion_tokens).toBe(1);
    expect(pb.sim_timing.ttft_ms).toBeCloseTo(10 + 200, 6);
    const params = pb.kv_transfer_params;
    expect(params).toMatchObject({ do_remote_prefill: true, do_remote_decode: false, remote_host: p.ip, remote_port: 5600, tp_size: 1 });
    expect(typeof params.remote_engine_id).toBe('string');
    expect(params.remote_block_ids).toHaveLength(Math.ceil(2000 / 16));
    expect(p.requests.at(-1)?.outcome).toMatchObject({ pd: 'nixl-prefill', remoteEngineId: params.remote_engine_id });

    const dec = await complete(d.url, prompt, { kv_transfer_params: params, max_tokens: 3 });
    const db = JSON.parse(dec.text);
    expect(db.usage.completion_tokens).toBe(3);
    const outcome = d.requests.at(-1)?.outcome;
    // 2000 tokens at 5 ms per 1k, then one step computing the last prompt token: a + b.
    expect(outcome).toMatchObject({ pd: 'nixl-decode', kvTransferTokens: 2000, kvTransferMs: 10, remoteEngineId: params.remote_engine_id });
    expect(outcome?.ttftMs).toBeCloseTo(10 + 10 + 0.1, 6);
    // Reported to the client from the prefill leg's receipt: the whole PD request's TTFT.
    expect(db.sim_timing.ttft_ms).toBeGreaterThanOrEqual(210 + 20.1);

    // A pod without a KV connector ignores the field and prefills locally.
    const local = JSON.parse((await complete(plain.url, prompt, { kv_transfer_params: params, max_tokens: 3 })).text);
    expect(local.kv_transfer_params).toBeUndefined();
    expect(local.sim_timing.ttft_ms).toBeCloseTo(210, 6);
    expect(plain.requests.at(-1)?.outcome?.pd).toBe('none');
  });

  it('SGLang bootstrap: the decode leg waits for the prefill of its room, then receives the KV', async () => {
    const spec = { engine: 'SGLang' as const, reportTiming: true, timeScale: 10, bootstrapTimeoutMs: 20_000 };
    const f = await start([
      { name: 'sg-prefill', role: 'prefill', ...spec },
      { name: 'sg-decode', role: 'decode', ...spec },
    ]);
    const [p, d] = f.pods;
    const prompt = toks(1000, 3);
    const decode = call(`${d.url}/v1/completions`, 'POST', {
      model: BASE, prompt, max_tokens: 2, stream: true, bootstrap_room: 42, bootstrap_host: p.ip,
    });
    await until(() => d.inflight === 1);
    await sleep(60);
    const pre = await complete(p.url, prompt, { bootstrap_room: 42 });
    expect(pre.status).toBe(200);
    const r = await decode;
    expect(r.status).toBe(200);
    const cs = chunks(r.text);
    const out = d.requests.at(-1)?.outcome;
    expect(out).toMatchObject({ pd: 'bootstrap-decode', bootstrapRoom: '42', bootstrapHost: p.ip, kvTransferTokens: 1000, completionTokens: 2 });
    expect(p.requests.at(-1)?.outcome).toMatchObject({ pd: 'bootstrap-prefill', bootstrapRoom: '42' });
    // It waited for the prefill leg, sent 60 wall ms (600 simulated) after it was received, to be
    // computed (10 + 100), then for the transfer (5) and one step (10.1).
    expect(cs[0].sim_t).toBeGreaterThanOrEqual(550 + 110 + 5 + 10.1);
    const page = (await call(`${d.url}/metrics`)).text;
    expect(page).not.toContain('vllm:');
    expect(page).toContain('sglang:cache_config_info{page_size="16",num_pages="25000"} 1.0');
    expect(parseEngineMetrics(page, 'SGLang', [BASE])).toMatchObject({ running: 0, waiting: 0, ttft: { count: 1 } });

    // A prefill leg that never comes: the decode leg fails after bootstrapTimeoutMs (simulated).
    await fleet!.close();
    const g = await start([
      { name: 'sg-prefill', role: 'prefill', ...spec },
      { name: 'sg-decode', role: 'decode', ...spec, bootstrapTimeoutMs: 2000 },
    ]);
    const t0 = Date.now();
    const lost = await complete(g.pods[1].url, prompt, { bootstrap_room: 7, bootstrap_host: g.pods[0].ip });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(lost.status).toBe(500);
    expect(JSON.parse(lost.text).message).toMatch(/no prefill for bootstrap_room 7/);
    expect(g.pods[1].inflight).toBe(0);
    // A disaggregated SGLang pod needs the room.
    const bare = await complete(g.pods[0].url, prompt);
    expect(bare.status).toBe(400);
    expect(JSON.parse(bare.text).message).toMatch(/bootstrap_room/);
  });
});

describe('PD legs on fixed-delay pods', () => {
  it('speak the same protocols without the engine model', async () => {
    const fixed = { model: undefined, ttftMs: 5, itlMs: 1, outputTokens: 2, bootstrapTimeoutMs: 5000 };
    const f = await start([
      { name: 'fp', role: 'prefill', ...fixed },
      { name: 'sp', role: 'prefill', engine: 'SGLang', ...fixed },
      { name: 'sd', role: 'decode', engine: 'SGLang', ...fixed },
    ]);
    const [fp, sp, sd] = f.pods;
    const pre = JSON.parse((await call(`${fp.url}/v1/completions`, 'POST', {
      model: BASE, prompt: 'x'.repeat(400), max_tokens: 1, kv_transfer_params: { do_remote_decode: true },
    })).text);
    expect(pre.kv_transfer_params).toMatchObject({ do_remote_prefill: true, remote_host: fp.ip });
    expect(pre.kv_transfer_params.remote_block_ids).toHaveLength(Math.ceil(100 / 16));

    const decode = call(`${sd.url}/v1/completions`, 'POST', { model: BASE, prompt: 'hi', bootstrap_room: '9', bootstrap_host: sp.ip });
    await until(() => sd.inflight === 1);
    await call(`${sp.url}/v1/completions`, 'POST', { model: BASE, prompt: 'hi', max_tokens: 1, bootstrap_room: 9 });
    const r = await decode;
    expect(r.status).toBe(200);
    expect(sd.requests.at(-1)?.outcome).toMatchObject({ mode: 'fixed', pd: 'bootstrap-decode', bootstrapRoom: '9', status: 200 });
  });
});

describe('LoRA adapters', () => {
  it('loads and unloads adapters with vLLM’s API and answers, preloading them into a slot', async () => {
    const f = await start([{ reportTiming: true, timeScale: 10, model: { ...COEF, maxLoras: 1, loraLoadMs: 100 } }]);
    const p = f.pods[0];
    const load = await call(`${p.url}/v1/load_lora_adapter`, 'POST', { lora_name: 'sql', lora_path: '/adapters/sql-v2' });
    expect(load.status).toBe(200);
    expect(load.text).toBe("Success: LoRA adapter 'sql' added successfully.");
    const models = JSON.parse((await call(`${p.url}/v1/models`)).text);
    expect(models.data.map((m: { id: string }) => m.id)).toEqual([BASE, 'sql']);
    expect(models.data[1]).toMatchObject({ root: '/adapters/sql-v2', parent: BASE });
    const dup = await call(`${p.url}/v1/load_lora_adapter`, 'POST', { lora_name: 'sql', lora_path: '/x' });
    expect(dup.status).toBe(400);
    expect(JSON.parse(dup.text)).toMatchObject({ type: 'InvalidUserInput', message: "The lora adapter 'sql' has already been loaded." });
    expect((await call(`${p.url}/v1/load_lora_adapter`, 'POST', { lora_name: 'x' })).status).toBe(400);

    // Preloaded: the first request does not pay the load; a second adapter displaces it (one slot).
    const warm = JSON.parse((await complete(p.url, toks(16, 1), { model: 'sql' })).text);
    expect(warm.sim_timing.ttft_ms).toBeCloseTo(10 + 1.6, 6);
    await call(`${p.url}/v1/load_lora_adapter`, 'POST', { lora_name: 'chat', lora_path: '/adapters/chat' });
    const back = JSON.parse((await complete(p.url, toks(16, 2), { model: 'sql' })).text);
    expect(back.sim_timing.ttft_ms).toBeCloseTo(10 + 1.6 + 100, 6);
    expect(p.requests.at(-1)?.outcome?.loraLoaded).toBe(true);

    const unload = await call(`${p.url}/v1/unload_lora_adapter`, 'POST', { lora_name: 'sql' });
    expect(unload.status).toBe(200);
    expect(unload.text).toBe("Success: LoRA adapter 'sql' removed successfully.");
    const gone = await call(`${p.url}/v1/unload_lora_adapter`, 'POST', { lora_name: 'sql' });
    expect(gone.status).toBe(404);
    expect(JSON.parse(gone.text)).toMatchObject({ type: 'NotFoundError', message: "The lora adapter 'sql' cannot be found." });
    expect((await complete(p.url, toks(16, 3), { model: 'sql' })).status).toBe(400);
    expect(p.models).toEqual([BASE, 'chat']);
  });
});

describe('metrics from the model state', () => {
  const label = `model_name="${BASE}"`;
  const value = (text: string, series: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    expect(line, series).toBeDefined();
    return Number(line!.slice(series.length + 1));
  };

  it('reports running, waiting, KV usage and adapters while requests are in flight', async () => {
    const f = await start([{ models: [BASE, 'lora-A'], model: { ...COEF, stepMs: 2000, maxNumSeqs: 1 }, kvCacheTokens: 16 * 100 }]);
    const p = f.pods[0];
    // The adapter request first, so that it is the one running.
    const inflight = [complete(p.url, toks(160, 1), { model: 'lora-A', max_tokens: 4, stream: true }).catch(() => null)];
    await until(() => p.inflight === 1);
    inflight.push(
      ...[2, 3].map((seed) => complete(p.url, toks(160, seed), { max_tokens: 4, stream: true }).catch(() => null)),
    );
    await until(() => p.inflight === 3);
    const text = (await call(`${p.url}/metrics`)).text;
    expect(value(text, `vllm:num_requests_running{${label}}`)).toBe(1);
    expect(value(text, `vllm:num_requests_waiting{${label}}`)).toBe(2);
    // One running request, in its prefill step, holding ceil(160 / 16) = 10 blocks of 100.
    expect(value(text, `vllm:kv_cache_usage_perc{${label}}`)).toBeCloseTo(0.1, 9);
    expect(text).toMatch(/vllm:lora_requests_info\{max_lora="4",running_lora_adapters="lora-A",waiting_lora_adapters=""\} \d/);
    expect(text).toContain('vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",gpu_memory_utilization="0.9",num_gpu_blocks="100"} 1.0');
    expect(p.state()).toMatchObject({ mode: 'model', engineModel: { running: 1, waiting: 2, kvBlocksUsed: 10 } });
    await fleet!.close();
    fleet = null;
    await Promise.all(inflight);
  });

  it('counts prefix hits, preemptions, tokens and latencies in simulated seconds', async () => {
    // 8 blocks: two 30 + 60 token requests outgrow memory together (each takes ~600 simulated ms,
    // 150 wall ms at this scale, so both are in flight together).
    const f = await start([{ timeScale: 4, kvCacheTokens: 128 }]);
    const p = f.pods[0];
    await Promise.all([complete(p.url, toks(30, 1), { max_tokens: 60 }), complete(p.url, toks(30, 2), { max_tokens: 60 })]);
    await complete(p.url, toks(30, 1), { max_tokens: 1 });
    const text = (await call(`${p.url}/metrics`)).text;
    const st = p.state().engineModel!;
    expect(st.preemptions).toBeGreaterThanOrEqual(1);
    expect(value(text, `vllm:num_preemptions_total{${label}}`)).toBe(st.preemptions);
    expect(value(text, `vllm:prefix_cache_hits_total{${label}}`)).toBe(st.prefixHits);
    expect(value(text, `vllm:prefix_cache_queries_total{${label}}`)).toBe(st.prefixQueries);
    expect(st.prefixHits).toBeGreaterThanOrEqual(16);
    expect(value(text, `vllm:prompt_tokens_total{${label}}`)).toBe(90);
    expect(value(text, `vllm:generation_tokens_total{${label}}`)).toBe(121);
    expect(value(text, `vllm:request_success_total{${label},finished_reason="length"}`)).toBe(3);
    expect(value(text, `vllm:time_to_first_token_seconds_count{${label}}`)).toBe(3);
    expect(value(text, `vllm:e2e_request_latency_seconds_count{${label}}`)).toBe(3);
    expect(value(text, `vllm:inter_token_latency_seconds_count{${label}}`)).toBe(118);
    // The third request: 16 tokens cached, 14 computed: 10 + 1.4 ms, observed in seconds.
    const ttftSum = value(text, `vllm:time_to_first_token_seconds_sum{${label}}`);
    expect(ttftSum).toBeGreaterThan(0.0114);
    expect(text).toContain(`vllm:e2e_request_latency_seconds_bucket{${label},le="0.3"}`);
    expect(value(text, `vllm:kv_cache_usage_perc{${label}}`)).toBe(0);
    // The router's own scraper reads the page, with the families' real types.
    const reading = parseEngineMetrics(text, 'vLLM', [BASE]);
    expect(reading).toMatchObject({ waiting: 0, running: 0, kvUsage: 0, prefixHits: st.prefixHits, prefixQueries: st.prefixQueries });
    expect(reading.ttft?.count).toBe(3);
    const wanted = ['vllm:num_preemptions', 'vllm:request_success', 'vllm:cache_config_info', 'vllm:e2e_request_latency_seconds', 'vllm:request_queue_time_seconds'];
    const families = parsePrometheus(text, new FamilySelector(wanted));
    expect(wanted.map((n) => families.get(n)?.type)).toEqual(['counter', 'counter', 'gauge', 'histogram', 'histogram']);
    // metricsOverride still wins.
    p.set({ metricsOverride: { waiting: 9, kvCacheUsage: 0.5 } });
    const forced = (await call(`${p.url}/metrics`)).text;
    expect(value(forced, `vllm:num_requests_waiting{${label}}`)).toBe(9);
    expect(value(forced, `vllm:kv_cache_usage_perc{${label}}`)).toBe(0.5);
  });
});

describe('KV events from the prefix cache', () => {
  it('publishes the cached blocks to Redis and removes them on eviction', async () => {
    const redisServer = await startRedis();
    const redis = new Redis(redisServer.url);
    try {
      const f = await start([{ name: 'kv0', timeScale: 50, kvCacheTokens: 8 * 16, kvEvents: { redisUrl: redisServer.url, namespace: 'ns' } }]);
      const p = f.pods[0];
      const keys = (prompt: number[]) => kvBlockHashes(prompt, 16, Infinity).slice(0, Math.floor(prompt.length / 16)).map((h) => kvBlockKey(BASE, h));
      const owners = async (prompt: number[]) => Promise.all(keys(prompt).map((k) => redis.hget(k, 'kv0.ns')));
      const settle = async (want: (v: (string | null)[]) => boolean, prompt: number[]) => {
        for (let i = 0; i < 200; i++) {
          if (want(await owners(prompt))) return;
          await sleep(10);
        }
        throw new Error('redis did not settle');
      };
      const p1 = toks(33, 1);
      await complete(p.url, p1);
      await settle((v) => v.every((x) => x !== null), p1);
      // Three more distinct prompts push p1's blocks out of the 8-block cache.
      for (const seed of [2, 3, 4]) await complete(p.url, toks(33, seed));
      await settle((v) => v.every((x) => x === null), p1);
      await settle((v) => v.every((x) => x !== null), toks(33, 4));
      expect(p.state().engineModel!.evictions).toBeGreaterThanOrEqual(2);
    } finally {
      redis.disconnect();
      await fleet?.close();
      fleet = null;
      await redisServer.stop();
    }
  });
});

describe('cli and fleet file', () => {
  it('turns engine-model flags into a model spec and applies the time scale', async () => {
    const { specs } = await simSpecsFromArgs([
      '--pods', '3', '--port', '0', '--prefill-pods', '1', '--step-ms', '12', '--max-num-seqs', '64',
      '--kv-cache-tokens', '200000', '--time-scale', '10', '--report-timing', '--no-prefix-caching',
    ]);
    expect(specs.map((s) => s.role)).toEqual(['prefill', 'decode', 'decode']);
    expect(specs[0]).toMatchObject({ model: { stepMs: 12, maxNumSeqs: 64, prefixCaching: false }, kvCacheTokens: 200000, timeScale: 10, reportTiming: true });
    expect((await simSpecsFromArgs(['--mode', 'model'])).specs[0].model).toEqual({});
    expect((await simSpecsFromArgs([])).specs[0].model).toBeUndefined();
    await expect(simSpecsFromArgs(['--time-scale', '0.5'])).rejects.toThrow(/--time-scale/);
    await expect(simSpecsFromArgs(['--mode', 'fixed', '--step-ms', '3'])).rejects.toThrow(/--mode model/);
  });

  it('merges fleet-wide defaults into every pod of a fleet file', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(tmpdir(), 'sim-fleet-'));
    try {
      const file = path.join(dir, 'fleet.json');
      await writeFile(file, JSON.stringify({
        timeScale: 20,
        reportTiming: true,
        podDefaults: { model: { stepMs: 8 }, kvCacheTokens: 65536 },
        pods: [
          { name: 'a', ip: '127.0.41.1', port: 0, models: [BASE] },
          { name: 'b', ip: '127.0.41.2', port: 0, models: [BASE], timeScale: 5, role: 'decode' },
        ],
      }));
      const specs = await loadFleetFile(file);
      expect(specs[0]).toMatchObject({ timeScale: 20, reportTiming: true, model: { stepMs: 8 }, kvCacheTokens: 65536 });
      expect(specs[1]).toMatchObject({ timeScale: 5, role: 'decode' });
      await writeFile(file, JSON.stringify({ pods: [{ name: 'a', ip: '127.0.41.1', port: 0, models: [BASE] }], speed: 2 }));
      await expect(loadFleetFile(file)).rejects.toThrow(/unknown field "speed"/);
      await writeFile(file, JSON.stringify({ pods: [{ name: 'a', ip: '127.0.41.1', port: 0, models: [BASE], model: { stepsMs: 2 } }] }));
      await expect(loadFleetFile(file)).rejects.toThrow(/model has unknown field "stepsMs"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
