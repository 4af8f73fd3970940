// Where a proxy's CPU goes, from V8 CPU profiles (`node --cpu-prof`) of its worker threads.
//
// `run.mjs --profile` starts the router and bare targets with `--cpu-prof`, notes each measured
// window as CLOCK_MONOTONIC microseconds (process.hrtime, the clock V8 stamps profile samples
// with), stops the targets with SIGTERM so that every thread writes its profile, and calls
// `attribute()` here: each worker thread's samples inside a window are summed by bucket (a
// source file of the router, a Node internal module, or a native function named by V8) and
// divided by the requests completed in that window, giving CPU microseconds per request by bucket.
//
// Native functions have no source file; they are named after themselves ("native writeBuffer" is
// Node's socket write: libuv plus the kernel's TCP send, which on loopback also runs the
// receiver's side). The uWebSockets.js bindings are not separate frames in V8's profile: their
// time (uWS's HTTP writer and its send()) is counted in the JavaScript function that called them,
// e.g. the response writer's #flush.
//
// V8 samples wall-clock time: a thread that is runnable but descheduled counts to the function it
// was in. On a small machine shared with the load generator and the engines that is mostly the
// loopback send, which wakes the receiving process (and may hand it the CPU at once). So the
// shares are of the threads' non-idle sampled time, and the µs column spreads the CPU per request
// measured from /proc for the same cells (whole process) over those shares: an estimate, good for
// ranking buckets and comparing targets of one run, not a stopwatch.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A bucket name for one profile node's call frame. */
function bucketOf(cf) {
  const url = cf.url ?? '';
  if (url === '') {
    const fn = cf.functionName || '(anonymous)';
    if (fn === '(garbage collector)' || fn === '(program)') return fn;
    return `native ${fn}`;
  }
  const dist = url.match(/\/dist\/(.+)\.js$/);
  if (dist) return dist[1];
  const proxy = url.match(/\/native-bench\/proxy\/([^/]+)$/);
  if (proxy) return `bench ${proxy[1]}`;
  const pkg = url.match(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (pkg) return `package ${pkg[1]}`;
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node ').replace(/\/.*$/, '');
  return url;
}

/**
 * Worker-thread profiles in `dir`: Node names them CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile,
 * thread 0 being the main thread (the router's control thread, or the bare proxy's launcher).
 */
export function workerProfiles(dir) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^CPU\.\d+\.\d+\.\d+\.(\d+)\.\d+\.cpuprofile$/.test(n) && !/^CPU\.\d+\.\d+\.\d+\.0\./.test(n))
    .map((n) => join(dir, n));
}

/**
 * CPU of the given profiles inside each window, by bucket.
 * windows: [{ key, startUs, endUs, requests }] (CLOCK_MONOTONIC µs; requests completed in it).
 * Returns Map key -> { busyUs, idleUs, requests, buckets: [{ bucket, us, usPerReq, share }] }.
 */
export function attribute(files, windows) {
  const acc = new Map();
  for (const w of windows) {
    // Several runs of one cell are several windows under one key: their requests add up.
    const a = acc.get(w.key) ?? { busyUs: 0, idleUs: 0, requests: 0, byBucket: new Map() };
    a.requests += w.requests;
    acc.set(w.key, a);
  }
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8'));
    const bucketById = new Map();
    const idleIds = new Set();
    for (const n of p.nodes) {
      if (n.callFrame.functionName === '(idle)') idleIds.add(n.id);
      bucketById.set(n.id, bucketOf(n.callFrame));
    }
    let t = p.startTime;
    const samples = p.samples;
    const deltas = p.timeDeltas;
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i];
      // A sample's delta is the time since the previous one: that interval is what it stands for.
      const w = windows.find((x) => t >= x.startUs && t < x.endUs);
      if (w === undefined) continue;
      const a = acc.get(w.key);
      const id = samples[i];
      if (idleIds.has(id)) {
        a.idleUs += deltas[i];
        continue;
      }
      a.busyUs += deltas[i];
      const b = bucketById.get(id);
      a.byBucket.set(b, (a.byBucket.get(b) ?? 0) + deltas[i]);
    }
  }
  const out = new Map();
  for (const [key, a] of acc) {
    const buckets = [...a.byBucket]
      .sort((x, y) => y[1] - x[1])
      .map(([bucket, us]) => ({
        bucket,
        us,
        usPerReq: a.requests > 0 ? us / a.requests : null,
        share: a.busyUs > 0 ? us / a.busyUs : 0,
      }));
    out.set(key, { busyUs: a.busyUs, idleUs: a.idleUs, requests: a.requests, buckets });
  }
  return out;
}

/** Markdown: one table per profiled cell, the top `top` buckets and the rest folded into one row. */
export function profileMarkdown(cells, top = 15) {
  const lines = [];
  for (const c of cells) {
    const cpu = Number.isFinite(c.cpuUsPerReq) ? c.cpuUsPerReq : null;
    const est = (share) => (cpu === null ? '–' : (share * cpu).toFixed(1));
    lines.push(
      `### ${c.target}, ${c.case} c=${c.concurrency}: ${cpu === null ? '–' : cpu.toFixed(1)} µs CPU per request (/proc, whole process)`,
      '',
      `${c.requests.toLocaleString('en-US')} requests in the measured windows; worker threads non-idle in ` +
        `${((c.busyUs / Math.max(1, c.busyUs + c.idleUs)) * 100).toFixed(0)}% of their samples.`,
      '',
      '| bucket | share of non-idle samples | ≈ CPU µs/req |',
      '|---|---:|---:|',
    );
    for (const b of c.buckets.slice(0, top)) lines.push(`| ${b.bucket} | ${(b.share * 100).toFixed(1)}% | ${est(b.share)} |`);
    const rest = c.buckets.slice(top);
    if (rest.length > 0) {
      const share = rest.reduce((n, b) => n + b.share, 0);
      lines.push(`| ${rest.length} other buckets | ${(share * 100).toFixed(1)}% | ${est(share)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
