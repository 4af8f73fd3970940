import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import {
  generatedSharedPrefix,
  mergeResults,
  runThreaded,
  summarize,
  DatasetWorkload,
  headline,
  multiTurn,
  parseLoraMix,
  randomLengths,
  renderMarkdown,
  resultToJson,
  runLoad,
  writeJson,
  writeSvg,
} from '../../native-bench/src/index.js';
import { main, parseRunArgs, sweepFile } from '../../native-bench/src/cli.js';

/**
 * A tiny OpenAI-compatible streaming server on loopback that reports simulated time the way the
 * engine simulator does: header x-sim-time-scale: k, and sim_t on every chunk. Tokens are due at
 * sim_t = ttft + i * itl and sent at wall time sim_t / k. The model name picks a behaviour.
 */
interface Fake {
  url: string;
  /** Wall times (performance.now) at which requests arrived / finished, in order. */
  arrivals: number[];
  finishes: number[];
  bodies: Array<Record<string, unknown>>;
  paths: string[];
  maxConcurrent: number;
  close(): Promise<void>;
}

const servers: Fake[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function startFake(o: { k: number; ttft: number; itl: number; header?: boolean; pod?: string }): Promise<Fake> {
  let concurrent = 0;
  const fake: Fake = { url: '', arrivals: [], finishes: [], bodies: [], paths: [], maxConcurrent: 0, close: async () => undefined };
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model: string; max_tokens: number };
      fake.arrivals.push(performance.now());
      fake.bodies.push(body);
      fake.paths.push(req.url ?? '');
      concurrent++;
      fake.maxConcurrent = Math.max(fake.maxConcurrent, concurrent);
      const done = (): void => {
        concurrent--;
        fake.finishes.push(performance.now());
      };
      const model = body.model;
      if (model === 'http-503') {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'no endpoint', type: 'server_error', code: 503 } }));
        done();
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'text/event-stream' };
      if (o.header !== false) headers['x-sim-time-scale'] = String(o.k);
      if (o.pod !== undefined) headers['x-sim-pod'] = o.pod;
      res.writeHead(200, headers);
      const ev = (x: unknown): string => `data: ${JSON.stringify(x)}\n\n`;
      res.write(ev({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }], usage: null, sim_t: 0 }));
      if (model === 'hang') {
        res.on('close', done);
        return;
      }
      if (model === 'stream-error') {
        res.end(ev({ error: { message: 'engine failed', code: 500 } }) + 'data: [DONE]\n\n');
        done();
        return;
      }
      const n = body.max_tokens;
      let i = 0;
      const tStart = performance.now();
      const next = (): void => {
        if (res.destroyed) return done();
        if (model === 'reset' && i === 2) {
          res.socket?.destroy();
          return done();
        }
        if (i < n) {
          const simT = o.ttft + i * o.itl;
          res.write(ev({ choices: [{ index: 0, delta: { content: ` w${i}` } }], usage: null, sim_t: simT }));
          i++;
          const due = tStart + (o.ttft + i * o.itl) / o.k;
          setTimeout(next, Math.max(0, due - performance.now()));
          return;
        }
        const simEnd = o.ttft + (n - 1) * o.itl;
        res.write(ev({ choices: [], usage: { prompt_tokens: 10, completion_tokens: n, total_tokens: 10 + n, prompt_tokens_details: { cached_tokens: 4 } }, sim_t: simEnd }));
        res.end(model === 'no-done' ? '' : 'data: [DONE]\n\n');
        done();
      };
      setTimeout(next, o.ttft / o.k);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      fake.close = () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        });
      servers.push(fake);
      resolve(fake);
    });
  });
}

const GSP = { numGroups: 4, promptsPerGroup: 4, systemPromptLen: 32, questionLen: 8, outputLen: 6 };

describe('bench runLoad end to end', () => {
  it('streams a shared-prefix workload and accounts latencies in simulated time', async () => {
    const fake = await startFake({ k: 20, ttft: 400, itl: 10 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: generatedSharedPrefix(GSP, 1),
      rate: 40,
      seed: 1,
      slo: { ttftMs: 10_000, itlMs: 50 },
      keepRequests: true,
    });
    expect(r.time_scale).toMatchObject({ factor: 20, source: 'header', seen: [20], mismatches: 0 });
    expect(r.counts).toEqual({ arrivals: 16, sent: 16, ok: 16, errors: 0, rejected: 0, starved: 0 });
    expect(r.time_scale.sim_timed).toBe(16);
    // TTFT = sim_t of the first token (400) plus the real overhead (a few ms, more on a loaded
    // machine). The bound only separates it from wall time scaled by k added on top (>= 800); the
    // median, because a shared machine can stall one request for a few hundred ms.
    expect(r.latency.ttft_ms!.min).toBeGreaterThanOrEqual(400);
    expect(r.latency.ttft_ms!.p50).toBeLessThan(780);
    // ITL from sim_t differences: exactly the engine's 10 ms whatever the wall clock did.
    expect(r.latency.itl_ms).toMatchObject({ count: 16 * 5, min: 10, max: 10, p50: 10 });
    expect(r.latency.e2e_ms!.min).toBeGreaterThanOrEqual(450);
    expect(r.tokens).toMatchObject({ input: 160, output: 96, cached: 64, output_len_mismatch: 0, requests_without_usage: 0 });
    expect(r.tokens.cache_hit_rate).toBeCloseTo(0.4, 9);
    // Throughput is per simulated second: wall duration x k.
    expect(r.duration_s).toBeCloseTo(r.wall.duration_s * 20, 6);
    expect(r.throughput.requests_per_s).toBeCloseTo(16 / r.duration_s, 6);
    expect(r.throughput.output_tokens_per_s).toBeCloseTo(96 / r.duration_s, 6);
    expect(r.goodput).toMatchObject({ requests: 16, fraction: 1 });
    expect(r.schedule_lag_wall_ms!.count).toBe(16);
    // What the server was asked: streaming with usage, exactly max_tokens, chat messages.
    for (const b of fake.bodies.slice(1)) {
      expect(b).toMatchObject({ model: 'base', stream: true, stream_options: { include_usage: true }, max_tokens: 6, min_tokens: 6, ignore_eos: true });
      expect((b.messages as Array<{ content: string }>)[0].content).toHaveLength((32 + 8) * 4);
    }
    expect(r.requests).toHaveLength(16);
    expect(r.requests!.every((q) => q.ok && q.timing === 'sim' && q.itl_mean_ms === 10 && q.group !== null)).toBe(true);
    const h = headline(r);
    expect(h.errors).toBe(0);
    expect(h.itl_p99_ms).toBe(10);
    expect(h.goodput_rps).toBeCloseTo(16 / r.duration_s, 6);
  });

  it('keeps sending on schedule while responses are slow (open loop)', async () => {
    // Every response takes 1.5 s of wall time to its first token.
    const fake = await startFake({ k: 1, ttft: 1500, itl: 5 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: randomLengths({ inputLen: { min: 4, max: 4 }, outputLen: { min: 2, max: 2 } }, 1),
      rate: 100,
      requests: 30,
      timeScale: 1,
      keepRequests: true,
    });
    expect(r.counts.ok).toBe(30);
    // All 30 arrived (about 0.3 s of arrivals) before the first response finished.
    expect(fake.arrivals[29]).toBeLessThan(fake.finishes[0]);
    expect(fake.maxConcurrent).toBe(30);
    expect(r.wall.send_window_s).toBeLessThan(1.2);
    // A generous bound (the machine may be shared): a generator that waited for responses would lag by seconds.
    expect(r.schedule_lag_wall_ms!.p99).toBeLessThan(500);
    // Sends follow the arrival schedule: request i went out at its due time plus the lag.
    const sent = r.requests!.map((q) => q.sent_wall_ms);
    expect(sent[29] - sent[0]).toBeLessThan(1000);
    expect(r.latency.ttft_ms!.min).toBeGreaterThanOrEqual(1500);
  });

  it('rejects arrivals beyond max-inflight and counts them', async () => {
    const fake = await startFake({ k: 1, ttft: 800, itl: 5 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: randomLengths({ inputLen: { min: 4, max: 4 }, outputLen: { min: 1, max: 1 } }, 1),
      rate: 500,
      requests: 12,
      maxInflight: 3,
      timeScale: 1,
    });
    expect(r.counts.arrivals).toBe(12);
    expect(r.counts.sent + r.counts.rejected).toBe(12);
    expect(r.counts.sent).toBe(3);
    expect(r.counts.rejected).toBe(9);
    expect(fake.maxConcurrent).toBe(3);
    expect(r.warnings.some((w) => w.includes('rejected'))).toBe(true);
  });

  it('keeps at most N requests in flight in a closed loop', async () => {
    const fake = await startFake({ k: 5, ttft: 100, itl: 10 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: generatedSharedPrefix(GSP, 2),
      concurrency: 3,
      requests: 9,
    });
    expect(r.counts).toMatchObject({ arrivals: 9, sent: 9, ok: 9 });
    expect(fake.maxConcurrent).toBe(3);
    expect(r.schedule_lag_wall_ms).toBeNull();
    expect(r.config.mode).toBe('closed');
  });

  it('counts failures by kind: HTTP status, transport, timeout, broken streams', async () => {
    const fake = await startFake({ k: 10, ttft: 50, itl: 10 });
    const lora = parseLoraMix('http-503:0.15,reset:0.15,hang:0.15,no-done:0.15,stream-error:0.15');
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: randomLengths({ inputLen: { min: 4, max: 8 }, outputLen: { min: 4, max: 4 } }, 3),
      rate: 200,
      requests: 60,
      lora,
      seed: 3,
      timeScale: 10,
      // 2 s of wall time at k = 10: far above a healthy request even on a loaded machine.
      requestTimeoutS: 20,
      // 1 s of wall time to the first token: every successful request meets it even on a loaded machine.
      slo: { ttftMs: 10_000 },
    });
    const m = r.models;
    expect(r.counts.sent).toBe(60);
    expect(r.errors.http_503).toBe(m['http-503']);
    expect(r.errors.timeout).toBe(m.hang);
    expect(r.errors.incomplete_stream).toBe(m['no-done']);
    expect(r.errors.stream_error).toBe(m['stream-error']);
    const transport = Object.entries(r.errors).filter(([k]) => k.startsWith('transport_')).reduce((n, [, v]) => n + v, 0);
    expect(transport).toBe(m.reset);
    expect(r.counts.ok).toBe(m.base);
    expect(r.counts.errors).toBe(60 - m.base);
    expect(r.error_samples.http_503).toBe('no endpoint');
    expect(r.goodput!.requests).toBe(m.base);
    expect(r.goodput!.fraction).toBeCloseTo(m.base / 60, 9);
    for (const name of ['http-503', 'reset', 'hang', 'no-done', 'stream-error', 'base']) expect(m[name]).toBeGreaterThan(0);
  });

  it('refuses to start against an unreachable target, and counts transport errors', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    await expect(runLoad({ urls: [url], model: 'm', workload: generatedSharedPrefix(GSP), rate: 10 })).rejects.toThrow(/cannot reach/);
    const r = await runLoad({ urls: [url], model: 'm', workload: generatedSharedPrefix(GSP), concurrency: 2, requests: 4, timeScale: 1 });
    expect(r.counts).toMatchObject({ sent: 4, ok: 0, errors: 4 });
    expect(r.errors).toEqual({ transport_ECONNREFUSED: 4 });
    expect(r.latency.ttft_ms).toBeNull();
    expect(r.throughput.requests_per_s).toBe(0);
  });

  it('spreads requests over several servers round-robin', async () => {
    const a = await startFake({ k: 10, ttft: 50, itl: 10, pod: 'pod-a' });
    const b = await startFake({ k: 10, ttft: 50, itl: 10, pod: 'pod-b' });
    const r = await runLoad({
      urls: [a.url, b.url],
      roundRobin: true,
      model: 'base',
      workload: generatedSharedPrefix(GSP, 1),
      concurrency: 4,
      requests: 10,
    });
    expect(r.targets.map((t) => [t.sent, t.ok])).toEqual([[5, 5], [5, 5]]);
    // Which pod answered, from the simulator's x-sim-pod header.
    expect(r.backends).toEqual({ header: 'x-sim-pod', counts: { 'pod-a': { requests: 5, ok: 5 }, 'pod-b': { requests: 5, ok: 5 } } });
    // The probe went to the first server.
    expect(a.bodies).toHaveLength(6);
    expect(b.bodies).toHaveLength(5);
    await expect(runLoad({ urls: [a.url, b.url], model: 'x', workload: generatedSharedPrefix(GSP), rate: 1 })).rejects.toThrow(/roundRobin/);
  });

  it('sends each multi-turn turn with the previous answers', async () => {
    const fake = await startFake({ k: 20, ttft: 40, itl: 5 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: multiTurn({ sessions: 2, turns: 3, systemLen: 4, questionLen: 3, outputLen: 2 }, 1),
      concurrency: 2,
      timeScale: 20,
    });
    expect(r.counts).toMatchObject({ sent: 6, ok: 6 });
    const last = fake.bodies.map((b) => b.messages as Array<{ role: string; content: string }>).filter((ms) => ms.length === 6);
    expect(last).toHaveLength(2);
    for (const ms of last) {
      expect(ms.map((x) => x.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user']);
      expect(ms[2].content).toBe(' w0 w1');
    }
  });

  it('starves open-loop arrivals when no session is ready, and counts them', async () => {
    const fake = await startFake({ k: 1, ttft: 300, itl: 5 });
    const r = await runLoad({
      urls: [fake.url],
      model: 'base',
      workload: multiTurn({ sessions: 2, turns: 2, questionLen: 3, outputLen: 1 }, 1),
      rate: 50,
      timeScale: 1,
    });
    expect(r.counts.sent).toBe(4);
    expect(r.counts.starved).toBeGreaterThan(0);
    expect(r.warnings.some((w) => w.includes('session'))).toBe(true);
  });

  it('uses the completions endpoint with a text prompt', async () => {
    const fake = await startFake({ k: 10, ttft: 20, itl: 5, header: false });
    const r = await runLoad({ urls: [fake.url + '/'], model: 'base', endpoint: 'completions', workload: generatedSharedPrefix(GSP), concurrency: 2, requests: 4 });
    expect(r.config.paths).toEqual(['/v1/completions']);
    expect(typeof fake.bodies[1].prompt).toBe('string');
    // No x-sim-time-scale: k = 1, and since chunks carry sim_t, a warning says so.
    expect(r.time_scale.source).toBe('default');
    expect(r.time_scale.factor).toBe(1);
    expect(r.warnings.join(' ')).toMatch(/sim_t but no x-sim-time-scale/);
  });

  it('stops early on abort and counts in-flight requests as aborted', async () => {
    const fake = await startFake({ k: 1, ttft: 60_000, itl: 5 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const t = performance.now();
    const r = await runLoad({ urls: [fake.url], model: 'base', workload: generatedSharedPrefix(GSP), rate: 20, timeScale: 1, signal: ac.signal });
    expect(performance.now() - t).toBeLessThan(3000);
    expect(r.interrupted).toBe(true);
    expect(r.errors.aborted).toBe(r.counts.sent);
    expect(r.counts.sent).toBeGreaterThan(0);
  });

  it('writes JSON without raw samples, Markdown and a multi-series SVG', async () => {
    const fake = await startFake({ k: 10, ttft: 100, itl: 10 });
    const r = await runLoad({ urls: [fake.url], model: 'base', workload: generatedSharedPrefix(GSP), concurrency: 4, slo: { ttftMs: 500 } });
    const dir = mkdtempSync(join(tmpdir(), 'bench-run-'));
    try {
      writeJson(join(dir, 'r.json'), r);
      const j = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
      expect(j.schema).toBe('native-bench/run/v2');
      expect(j.samples).toBeUndefined();
      expect(j.requests).toBeUndefined();
      expect(j.machine.cores).toBeGreaterThan(0);
      expect(j.machine.node).toBe(process.version);
      // Ours at the top level, beside vLLM's summary keys.
      expect(j).toMatchObject(JSON.parse(JSON.stringify(resultToJson(r))));
      expect(j).toMatchObject({ completed: r.counts.ok, request_throughput: r.throughput.requests_per_s, median_ttft_ms: r.latency.ttft_ms!.p50, p99_ttft_ms: r.latency.ttft_ms!.p99, backend: 'openai-chat', model_id: 'base' });
      const md = renderMarkdown([{ name: 'policy-a', result: r }, { name: 'policy-b', result: r }]);
      expect(md).toMatch(/\| policy-a \|/);
      expect(md).toMatch(/Time scale k=10/);
      const svg = writeSvg(join(dir, 'c.svg'), [{ name: 'policy-a', result: r }, { name: 'policy-b & co', result: r }]);
      expect(svg.startsWith('<svg')).toBe(true);
      expect((svg.match(/<path /g) ?? []).length).toBe(2);
      expect(svg).toContain('policy-b &amp; co');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench CLI', () => {
  it('parses a run command line', () => {
    const c = parseRunArgs([
      '--url', 'http://127.0.0.1:1,http://127.0.0.1:2', '--round-robin', '--model', 'm', '--request-rate', '5',
      '--burstiness', '0.25', '--gsp-num-groups', '3', '--lora', 'a:0.5', '--slo-ttft-ms', '100', '--json', 'x.json',
    ]);
    // vLLM's burstiness 0.25 is a gamma shape: gaps with a coefficient of variation of 2.
    expect(c.load).toMatchObject({ urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], roundRobin: true, rate: 5, arrival: 'gamma', burstiness: 2, lora: [{ model: 'a', share: 0.5 }], slo: { ttftMs: 100 } });
    expect(c.load.workload.size).toBe(3 * 16);
    expect(c.json).toBe('x.json');
  });

  it.each([
    [['--model', 'm', '--rate', '1'], /--url is required/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--concurrency', '2'], /closed loop/],
    [['--url', 'http://127.0.0.1:1', '--max-concurrency', '4', '--concurrency', '2'], /closed loop/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--request-rate', '2'], /same option/],
    [['--url', 'http://127.0.0.1:1,http://127.0.0.1:2', '--rate', '1'], /--round-robin/],
    [['--url', 'http://127.0.0.1:1', '--rate', 'x'], /--request-rate takes positive numbers or inf/],
    [['--url', 'http://127.0.0.1:1', '--request-rate', '1,0'], /--request-rate takes positive numbers or inf/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--arrival', 'gamma'], /--arrival was removed/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--workload', 'random'], /--num-prompts or --duration/],
    [['--url', 'http://127.0.0.1:1', '--dataset-name', 'sharegpt'], /needs --dataset-path/],
    [['--url', 'http://127.0.0.1:1', '--dataset-path', 'x.json'], /does not apply to the generated-shared-prefix/],
    [['--url', 'http://127.0.0.1:1', '--endpoint', 'v1/completions'], /must be a path/],
    [['--url', 'http://127.0.0.1:1', '--endpoint', '/generate'], /--backend/],
    [['--url', 'http://127.0.0.1:1', '--dataset-name', 'multi-turn', '--threads', '2'], /cannot be sharded/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--mt-turns', '3'], /does not apply/],
    [['--url', 'http://127.0.0.1:1', '--rate', '1', '--bogus'], /bogus/],
  ])('refuses %j', (argv, msg) => {
    expect(() => parseRunArgs(argv as string[])).toThrow(msg as RegExp);
  });

  it('runs end to end and writes its files', async () => {
    const fake = await startFake({ k: 10, ttft: 100, itl: 10 });
    const dir = mkdtempSync(join(tmpdir(), 'bench-cli-'));
    try {
      const code = await main([
        'run', '--url', fake.url, '--model', 'base', '--rate', '50', '--requests', '8', '--gsp-num-groups', '2',
        '--gsp-prompts-per-group', '4', '--gsp-system-prompt-len', '16', '--gsp-question-len', '4', '--gsp-output-len', '3',
        '--json', join(dir, 'r.json'), '--md', join(dir, 'r.md'), '--svg', join(dir, 'r.svg'), '--quiet', '--no-progress',
      ]);
      expect(code).toBe(0);
      const j = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
      expect(j.counts.ok).toBe(8);
      expect(j.config.workload).toMatchObject({ name: 'generated-shared-prefix', gsp_num_groups: 2 });
      expect(readFileSync(join(dir, 'r.md'), 'utf8')).toMatch(/^# native-bench run/);
      expect(readFileSync(join(dir, 'r.svg'), 'utf8')).toMatch(/^<svg/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench vLLM-compatible arrivals', () => {
  const tiny = (): ReturnType<typeof randomLengths> => randomLengths({ inputLen: { min: 4, max: 4 }, outputLen: { min: 2, max: 2 } }, 1);

  it('queues arrivals beyond --max-concurrency instead of rejecting them', async () => {
    const fake = await startFake({ k: 1, ttft: 200, itl: 5 });
    const r = await runLoad({ urls: [fake.url], model: 'base', workload: tiny(), rate: Infinity, maxConcurrency: 3, requests: 9, timeScale: 1 });
    expect(r.counts).toMatchObject({ arrivals: 9, sent: 9, ok: 9, rejected: 0 });
    expect(fake.maxConcurrent).toBe(3);
    // Three waves of three: the last wave waited about two TTFTs for its slots.
    expect(r.queue_wait_ms!.count).toBe(9);
    expect(r.queue_wait_ms!.min).toBe(0);
    expect(r.queue_wait_ms!.max).toBeGreaterThanOrEqual(350);
    expect(r.config).toMatchObject({ rate: 'inf', max_concurrency: 3 });
  });

  it('replays a trace: requests go out at their timestamps', async () => {
    const fake = await startFake({ k: 1, ttft: 20, itl: 2 });
    const items = [0, 300, 600].map((t) => ({ messages: [{ role: 'user' as const, content: ' abcd' }], inputTokens: 1, outputTokens: 2, timestampMs: 1000 + t }));
    const w = new DatasetWorkload('jsonl', items, {});
    const r = await runLoad({ urls: [fake.url], model: 'base', workload: w, schedule: w.timestampsMs!, timeScale: 1, keepRequests: true });
    expect(r.counts.ok).toBe(3);
    const sent = r.requests!.map((q) => q.sent_wall_ms - r.requests![0].sent_wall_ms);
    expect(sent[1]).toBeGreaterThanOrEqual(295);
    expect(sent[2]).toBeGreaterThanOrEqual(595);
    expect(sent[2]).toBeLessThan(1500);
    expect(r.config.scheduled).toBe(true);
  });

  it('sends the request path given as --endpoint', async () => {
    const fake = await startFake({ k: 1, ttft: 5, itl: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'bench-ep-'));
    try {
      const code = await main(['run', '--base-url', fake.url, '--model', 'base', '--endpoint', '/v1/completions', '--num-prompts', '2',
        '--dataset-name', 'random', '--random-input-len', '4', '--random-output-len', '2', '--quiet', '--no-progress', '--json', join(dir, 'r.json')]);
      expect(code).toBe(0);
      expect(fake.paths).toEqual(['/v1/completions', '/v1/completions', '/v1/completions']);
      expect(typeof fake.bodies[1].prompt).toBe('string');
      expect(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'))).toMatchObject({ backend: 'openai', request_rate: 'inf', completed: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a rate sweep: one JSON per rate, one CSV row per rate, one chart', async () => {
    const fake = await startFake({ k: 10, ttft: 50, itl: 5 });
    const dir = mkdtempSync(join(tmpdir(), 'bench-sweep-'));
    try {
      const code = await main(['run', '--url', fake.url, '--model', 'base', '--request-rate', '20,inf', '--num-prompts', '4', '--gsp-num-groups', '2',
        '--gsp-prompts-per-group', '2', '--gsp-system-prompt-len', '8', '--gsp-question-len', '4', '--gsp-output-len', '3',
        '--json', join(dir, 'r.json'), '--csv', join(dir, 'r.csv'), '--svg', join(dir, 'r.svg'), '--quiet', '--no-progress']);
      expect(code).toBe(0);
      const a = JSON.parse(readFileSync(sweepFile(join(dir, 'r.json'), 20), 'utf8'));
      const b = JSON.parse(readFileSync(sweepFile(join(dir, 'r.json'), Infinity), 'utf8'));
      expect([a.request_rate, a.completed, b.request_rate, b.completed]).toEqual([20, 4, 'inf', 4]);
      const csv = readFileSync(join(dir, 'r.csv'), 'utf8').trim().split('\n');
      expect(csv).toHaveLength(3);
      expect(csv[0].split(',')[0]).toBe('name');
      expect(csv.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['rate 20,20', 'rate inf,inf']);
      expect((readFileSync(join(dir, 'r.svg'), 'utf8').match(/<path /g) ?? []).length).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench generator threads', () => {
  it('merges thread results exactly: sums, and percentiles from the merged samples', async () => {
    const fast = await startFake({ k: 1, ttft: 10, itl: 2 });
    const slow = await startFake({ k: 1, ttft: 120, itl: 2 });
    const w = (): ReturnType<typeof randomLengths> => randomLengths({ inputLen: { min: 4, max: 4 }, outputLen: { min: 3, max: 3 } }, 1);
    const a = await runLoad({ urls: [fast.url], model: 'base', workload: w(), concurrency: 2, requests: 6, timeScale: 1 });
    const b = await runLoad({ urls: [slow.url], model: 'base', workload: w(), concurrency: 2, requests: 4, timeScale: 1 });
    const m = mergeResults([a, b], { ...a.config, threads: 2 });
    expect(m.counts.ok).toBe(10);
    expect(m.tokens.output).toBe(30);
    const all = Float64Array.from([...a.samples.ttft_ms, ...b.samples.ttft_ms]);
    expect(m.latency.ttft_ms).toEqual(summarize(all));
    // Not the mean of the two medians.
    expect(m.latency.ttft_ms!.p50).not.toBeCloseTo((a.latency.ttft_ms!.p50 + b.latency.ttft_ms!.p50) / 2, 0);
    expect(m.wall.first_send_epoch_ms).toBe(Math.min(a.wall.first_send_epoch_ms!, b.wall.first_send_epoch_ms!));
  });

  it('deals one schedule over worker threads and sends every request once', async () => {
    const fake = await startFake({ k: 10, ttft: 50, itl: 5 });
    const spec = { kind: 'generated-shared-prefix' as const, params: { ...GSP }, seed: 3 };
    const r = await runThreaded({ urls: [fake.url], model: 'base', workload: generatedSharedPrefix(GSP, 3), rate: 200, requests: 16, maxConcurrency: 8 }, spec, 3);
    expect(r.config.threads).toBe(3);
    expect(r.counts).toMatchObject({ arrivals: 16, sent: 16, ok: 16, rejected: 0 });
    // Each of the 16 distinct prompts of the dataset once, across the threads.
    const prompts = fake.bodies.filter((x) => x.max_tokens === GSP.outputLen).map((x) => JSON.stringify(x.messages));
    expect(new Set(prompts).size).toBe(16);
    expect(r.latency.ttft_ms!.count).toBe(16);
  });
});
