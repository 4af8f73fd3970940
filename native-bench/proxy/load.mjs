#!/usr/bin/env node
// Closed-loop load generator for the proxy benchmark, run by run.mjs in its own process (forked,
// so it reports over IPC) to keep its CPU out of the target's accounting.
//
// `concurrency` virtual users each keep exactly one request in flight on undici, sending the next
// one as soon as the previous response has fully arrived. This measures capacity and the latency
// at that load; it is not an open-loop arrival process, so latency under overload is understated
// (coordinated omission) and must be read next to req/s.
//
// Config: one JSON argument {origins, path, body, stream, expectEvents, concurrency, warmupMs,
// durationMs, samplesFile?}; with samplesFile, the raw latencies (and times to first byte) are
// written as Float64 arrays to samplesFile.latency / samplesFile.ttfb. Messages to the parent: {type:'start'} when measuring begins, {type:'end'} when it
// stops, then {type:'result', ...}.

import { Pool } from 'undici';

import { writeFileSync } from 'node:fs';

import { summarize } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const { origins, path, stream, concurrency, warmupMs, durationMs } = cfg;
const expectEvents = cfg.expectEvents ?? 0;
/** Resolves once the message is handed to the parent, so exiting right after cannot drop it. */
const send = (msg) =>
  new Promise((resolve) => {
    if (process.send) process.send(msg, undefined, {}, () => resolve());
    else process.stdout.write(JSON.stringify(msg) + '\n', () => resolve());
  });

const body = Buffer.from(cfg.body);
const headers = ['content-type', 'application/json', 'accept', stream ? 'text/event-stream' : 'application/json'];
const perPool = Math.ceil(concurrency / origins.length);
const pools = origins.map(
  (o) =>
    new Pool(o, {
      connections: perPool,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    }),
);

// Preallocated so recording a sample never allocates; beyond capacity samples are counted, not kept.
const capacity = Math.min(8_000_000, Math.max(100_000, Math.ceil((durationMs / 1000) * 200_000)));
const latency = new Float64Array(capacity);
const ttfb = stream ? new Float64Array(capacity) : null;
let samples = 0;
let completed = 0;
let errors = 0;
const errorKinds = Object.create(null);

/** 'warmup' -> 'measure' -> 'drain'. */
let phase = 'warmup';
let tStart = 0;
let tEnd = 0;
let outstanding = 0;
let onDrained = null;

const DONE = Buffer.from('data: [DONE]\n\n');
const NL = 0x0a;

function countBlankLines(chunk, prevLast) {
  let n = prevLast === NL && chunk[0] === NL ? 1 : 0;
  let i = chunk.indexOf('\n\n');
  while (i !== -1) {
    n++;
    i = chunk.indexOf('\n\n', i + 2);
  }
  return n;
}

/** One virtual user; doubles as its own undici dispatch handler so no object is made per request. */
class User {
  constructor(i) {
    this.pool = pools[i % pools.length];
    this.opts = { path, method: 'POST', headers, body };
    this.t0 = 0;
    this.tFirst = 0;
    this.status = 0;
    this.events = 0;
    this.bytes = 0;
    this.prev = null;
    this.last = null;
  }

  start() {
    this.t0 = performance.now();
    this.tFirst = 0;
    this.status = 0;
    this.events = 0;
    this.bytes = 0;
    this.prev = null;
    this.last = null;
    outstanding++;
    this.pool.dispatch(this.opts, this);
  }

  onConnect() {}

  onHeaders(statusCode) {
    this.status = statusCode;
    return true;
  }

  onData(chunk) {
    if (this.tFirst === 0) this.tFirst = performance.now();
    this.bytes += chunk.length;
    if (stream) this.events += countBlankLines(chunk, this.last === null ? 0 : this.last[this.last.length - 1]);
    this.prev = this.last;
    this.last = chunk;
    return true;
  }

  onComplete() {
    this.finish(null);
  }

  onError(err) {
    this.finish(err);
  }

  problem() {
    if (this.status !== 200) return `status_${this.status}`;
    if (this.bytes === 0) return 'empty_body';
    if (!stream) return null;
    if (this.events !== expectEvents) return 'wrong_event_count';
    let tail = this.last;
    if (tail.length < DONE.length && this.prev) tail = Buffer.concat([this.prev, tail]);
    return tail.length >= DONE.length && tail.subarray(tail.length - DONE.length).equals(DONE) ? null : 'no_done_event';
  }

  finish(err) {
    outstanding--;
    const now = performance.now();
    if (phase === 'measure') {
      const kind = err ? (err.code ?? err.name ?? 'error') : this.problem();
      if (kind) {
        errors++;
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      } else {
        completed++;
        if (samples < capacity) {
          latency[samples] = now - this.t0;
          if (ttfb) ttfb[samples] = this.tFirst - this.t0;
          samples++;
        }
      }
    }
    if (phase === 'drain') {
      if (outstanding === 0 && onDrained) onDrained();
      return;
    }
    // After an error, yield to the event loop so a dead target cannot spin this loop synchronously.
    if (err) setImmediate(() => this.start());
    else this.start();
  }
}

const users = Array.from({ length: concurrency }, (_, i) => new User(i));
for (const u of users) u.start();

setTimeout(() => {
  phase = 'measure';
  tStart = performance.now();
  const cpu0 = process.cpuUsage();
  send({ type: 'start' });
  setTimeout(async () => {
    tEnd = performance.now();
    phase = 'drain';
    const cpu = process.cpuUsage(cpu0);
    send({ type: 'end' });
    if (outstanding > 0) {
      await new Promise((resolve) => {
        onDrained = resolve;
        setTimeout(resolve, 30_000).unref();
      });
    }
    const seconds = (tEnd - tStart) / 1000;
    // Raw samples go to files so the parent can merge several load generator processes exactly.
    if (cfg.samplesFile) {
      writeFileSync(`${cfg.samplesFile}.latency`, new Uint8Array(latency.buffer, 0, samples * 8));
      if (ttfb) writeFileSync(`${cfg.samplesFile}.ttfb`, new Uint8Array(ttfb.buffer, 0, samples * 8));
    }
    await send({
      type: 'result',
      seconds,
      completed,
      errors,
      errorKinds,
      rps: completed / seconds,
      samples,
      sampled: samples < completed,
      latencyMs: summarize(latency, samples),
      ttfbMs: summarize(ttfb, samples),
      loadgenCpuPct: ((cpu.user + cpu.system) / 1000 / (tEnd - tStart)) * 100,
    });
    await Promise.allSettled(pools.map((p) => p.destroy()));
    process.exit(0);
  }, durationMs);
}, warmupMs);
