import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAccessLogSink } from '../../src/admin/accesslog-sink.js';
import { AccessLogBuffer, formatAccessLogJson, formatAccessLogText, rfc3339Nano } from '../../workers/accesslog.js';
import { RequestRecord } from '../../workers/record.js';

// 2023-11-14T22:13:20Z
const T = 1_700_000_000_000;

function baseRecord(): RequestRecord {
  const rec = new RequestRecord();
  rec.startEpochMs = T + 123;
  rec.t0 = 1000;
  rec.tEnd = 1003.7;
  rec.method = 'POST';
  rec.path = '/v1/chat/completions';
  rec.statusCode = 200;
  return rec;
}

function fullRecord(): RequestRecord {
  const rec = baseRecord();
  rec.t0 = 1000;
  rec.tDispatch = 1002.9;
  rec.tHeaders = 1040.2;
  rec.tEnd = 1100.5;
  rec.statusCode = 503;
  rec.errorType = 'proxy';
  rec.errorMessage = 'request to all pods failed';
  rec.errorOrigin = 'upstream';
  rec.modelName = 'llama';
  rec.modelRoute = 'default/llama-route';
  rec.modelServer = 'default/llama-server';
  rec.selectedPod = 'llama-0';
  rec.requestId = 'req-1';
  rec.backendType = 'model_server';
  rec.backendName = 'default/llama-server';
  rec.upstreamModel = 'meta/llama-3';
  rec.upstreamStatusCode = 502;
  rec.upstreamAttempts = 2;
  rec.gateway = 'default/gw';
  rec.httpRoute = 'default/hr';
  rec.inferencePool = 'default/pool';
  rec.inputTokens = 12;
  rec.outputTokens = 34;
  return rec;
}

describe('rfc3339Nano timestamps (Go time.RFC3339Nano, UTC)', () => {
  it('prints no fraction on a whole second', () => {
    expect(rfc3339Nano(T)).toBe('2023-11-14T22:13:20Z');
  });

  it('trims trailing zeros of the fraction', () => {
    expect(rfc3339Nano(T + 123)).toBe('2023-11-14T22:13:20.123Z');
    expect(rfc3339Nano(T + 120)).toBe('2023-11-14T22:13:20.12Z');
    expect(rfc3339Nano(T + 100)).toBe('2023-11-14T22:13:20.1Z');
  });

  it('keeps sub-millisecond precision down to microseconds', () => {
    expect(rfc3339Nano(T + 1.5)).toBe('2023-11-14T22:13:20.0015Z');
    expect(rfc3339Nano(T + 0.001)).toBe('2023-11-14T22:13:20.000001Z');
  });

  it('changes with the second after a cached one', () => {
    expect(rfc3339Nano(T + 999)).toBe('2023-11-14T22:13:20.999Z');
    expect(rfc3339Nano(T + 1000)).toBe('2023-11-14T22:13:21Z');
    expect(rfc3339Nano(T - 1)).toBe('2023-11-14T22:13:19.999Z');
  });
});

describe('formatAccessLogText', () => {
  it('writes client-controlled text with no control characters and no forgeable key=value', () => {
    const rec = baseRecord();
    rec.modelName = '\u001b[2J\u001b[31mred model request_id=forged\r\nfake line';
    rec.requestId = 'id\u0007\u009b\\';
    rec.path = '/v1/x"y';
    const line = formatAccessLogText(rec);
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(line).toContain(' model_name=\\x1b[2J\\x1b[31mred model request_id\\x3dforged\\r\\nfake line');
    expect(line).toContain(' request_id=id\\x07\\x9b\\\\');
    expect(line).toContain('"POST /v1/x\\"y HTTP/1.1"');
    expect(line.match(/ request_id=/g)).toHaveLength(1);
  });


  it('writes every field in Kthena order', () => {
    expect(formatAccessLogText(fullRecord())).toBe(
      '[2023-11-14T22:13:20.123Z] "POST /v1/chat/completions HTTP/1.1" 503' +
      ' error=proxy:request to all pods failed model_name=llama model_route=default/llama-route' +
      ' model_server=default/llama-server selected_pod=llama-0 request_id=req-1 backend_type=model_server' +
      ' backend_name=default/llama-server upstream_model=meta/llama-3 upstream_status_code=502' +
      ' upstream_attempts=2 error_origin=upstream gateway=default/gw http_route=default/hr' +
      ' inference_pool=default/pool tokens=12/34 timings=100ms(2+37+60)',
    );
  });

  it('omits empty, zero and unknown fields', () => {
    expect(formatAccessLogText(baseRecord())).toBe(
      '[2023-11-14T22:13:20.123Z] "POST /v1/chat/completions HTTP/1.1" 200 timings=3ms(3+0+0)',
    );
  });

  it('puts the error right after the status', () => {
    const rec = baseRecord();
    rec.statusCode = 404;
    rec.errorType = 'route_not_found';
    rec.errorMessage = 'route not found';
    rec.modelName = 'nope';
    expect(formatAccessLogText(rec)).toBe(
      '[2023-11-14T22:13:20.123Z] "POST /v1/chat/completions HTTP/1.1" 404 error=route_not_found:route not found model_name=nope timings=3ms(3+0+0)',
    );
  });

  it('shows tokens when either count is positive, the other as 0', () => {
    const rec = baseRecord();
    rec.outputTokens = 7;
    expect(formatAccessLogText(rec)).toContain(' tokens=0/7 timings=');
    rec.outputTokens = -1;
    rec.inputTokens = 5;
    expect(formatAccessLogText(rec)).toContain(' tokens=5/0 timings=');
    rec.inputTokens = 0;
    rec.outputTokens = 0;
    expect(formatAccessLogText(rec)).not.toContain('tokens=');
  });

  it('counts the time after a dispatch without response headers as upstream time', () => {
    const rec = baseRecord();
    rec.t0 = 0;
    rec.tDispatch = 4.9;
    rec.tEnd = 30.2;
    expect(formatAccessLogText(rec)).toMatch(/ timings=30ms\(4\+25\+0\)$/);
  });

  it('never lets a client-supplied field break the line', () => {
    const rec = baseRecord();
    rec.modelName = 'evil\n[2023-01-01T00:00:00Z] "GET / HTTP/1.1" 200';
    rec.requestId = 'a\r\nb';
    const line = formatAccessLogText(rec);
    expect(line).not.toMatch(/[\r\n]/);
    expect(line).toContain('model_name=evil\\n[2023');
    expect(line).toContain('request_id=a\\r\\nb');
  });
});

describe('formatAccessLogJson', () => {
  it('writes Kthena field names in struct order', () => {
    const line = formatAccessLogJson(fullRecord());
    const obj = JSON.parse(line);
    expect(Object.keys(obj)).toEqual([
      'timestamp', 'method', 'path', 'protocol', 'status_code', 'error', 'model_name', 'model_route',
      'model_server', 'selected_pod', 'request_id', 'backend_type', 'backend_name', 'upstream_model',
      'upstream_status_code', 'upstream_attempts', 'error_origin', 'gateway', 'http_route', 'inference_pool',
      'input_tokens', 'output_tokens', 'duration_total', 'duration_request_processing',
      'duration_upstream_processing', 'duration_response_processing',
    ]);
    expect(obj).toEqual({
      timestamp: '2023-11-14T22:13:20.123Z', method: 'POST', path: '/v1/chat/completions', protocol: 'HTTP/1.1',
      status_code: 503, error: { type: 'proxy', message: 'request to all pods failed' }, model_name: 'llama',
      model_route: 'default/llama-route', model_server: 'default/llama-server', selected_pod: 'llama-0',
      request_id: 'req-1', backend_type: 'model_server', backend_name: 'default/llama-server',
      upstream_model: 'meta/llama-3', upstream_status_code: 502, upstream_attempts: 2, error_origin: 'upstream',
      gateway: 'default/gw', http_route: 'default/hr', inference_pool: 'default/pool', input_tokens: 12,
      output_tokens: 34, duration_total: 100, duration_request_processing: 2, duration_upstream_processing: 37,
      duration_response_processing: 60,
    });
  });

  it('omits omitempty fields but always writes model_name and the durations', () => {
    const obj = JSON.parse(formatAccessLogJson(baseRecord()));
    expect(obj).toEqual({
      timestamp: '2023-11-14T22:13:20.123Z', method: 'POST', path: '/v1/chat/completions', protocol: 'HTTP/1.1',
      status_code: 200, model_name: '', duration_total: 3, duration_request_processing: 3,
      duration_upstream_processing: 0, duration_response_processing: 0,
    });
  });

  it('escapes like Go encoding/json (HTML-safe) and stays one line', () => {
    const rec = baseRecord();
    rec.modelName = 'a<b>&"c"\n';
    const line = formatAccessLogJson(rec);
    expect(line).toContain('"model_name":"a\\u003cb\\u003e\\u0026\\"c\\"\\n"');
    expect(line).not.toContain('\n');
    expect(JSON.parse(line).model_name).toBe('a<b>&"c"\n');
  });

  it('round-trips any string a client can send', () => {
    const rec = baseRecord();
    for (const v of ['plain', 'back\\slash', 'tab\there', '\u0001ctl', 'emoji \u{1F600}', 'line\u2028sep', '']) {
      rec.requestId = v;
      const obj = JSON.parse(formatAccessLogJson(rec));
      expect(obj.request_id).toBe(v === '' ? undefined : v);
    }
  });
});

describe('AccessLogBuffer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('posts newline-terminated lines in one batch after flushMs', () => {
    vi.useFakeTimers();
    const posts: string[] = [];
    const buf = new AccessLogBuffer((lines) => posts.push(lines), { flushMs: 50 });
    buf.push('a');
    buf.push('b');
    expect(posts).toEqual([]);
    vi.advanceTimersByTime(49);
    expect(posts).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(posts).toEqual(['a\nb\n']);
    buf.push('c');
    vi.advanceTimersByTime(50);
    expect(posts).toEqual(['a\nb\n', 'c\n']);
  });

  it('posts as soon as the batch reaches maxBytes', () => {
    vi.useFakeTimers();
    const posts: string[] = [];
    const buf = new AccessLogBuffer((lines) => posts.push(lines), { maxBytes: 10, flushMs: 1000 });
    buf.push('12345');
    expect(posts).toEqual([]);
    buf.push('6789');
    expect(posts).toEqual(['12345\n6789\n']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('flush() and close() post what is pending; lines after close() go out at once', () => {
    const posts: string[] = [];
    const buf = new AccessLogBuffer((lines) => posts.push(lines));
    buf.flush();
    expect(posts).toEqual([]);
    buf.push('x');
    buf.flush();
    expect(posts).toEqual(['x\n']);
    buf.push('y');
    buf.close();
    expect(posts).toEqual(['x\n', 'y\n']);
    buf.push('z');
    expect(posts).toEqual(['x\n', 'y\n', 'z\n']);
  });

  it('reports a failing post instead of throwing into the request path', () => {
    const errors: unknown[] = [];
    const buf = new AccessLogBuffer(() => {
      throw new Error('port closed');
    }, { onError: (e) => errors.push(e) });
    buf.push('x');
    expect(() => buf.flush()).not.toThrow();
    expect(errors).toHaveLength(1);
  });

  it('uses an unref\'ed timer so a pending batch never keeps the thread alive', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const buf = new AccessLogBuffer(() => {});
    buf.push('x');
    const timer = spy.mock.results[0].value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    buf.close();
    spy.mockRestore();
  });

  it('rejects bad options with a precise TypeError', () => {
    expect(() => new AccessLogBuffer(() => {}, { maxBytes: 0 })).toThrow(TypeError);
    expect(() => new AccessLogBuffer(() => {}, { flushMs: -1 })).toThrow(/flushMs/);
  });
});

describe('createAccessLogSink', () => {
  it('appends batches to a file and flush() waits until they are written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'accesslog-'));
    try {
      const file = join(dir, 'sub', 'access.log');
      const sink = createAccessLogSink(file);
      sink.write('one\ntwo\n');
      sink.write('three\n');
      await sink.flush();
      expect(readFileSync(file, 'utf8')).toBe('one\ntwo\nthree\n');
      await sink.close();

      const again = createAccessLogSink(file);
      again.write('four\n');
      await again.close();
      expect(readFileSync(file, 'utf8')).toBe('one\ntwo\nthree\nfour\n');
      expect(again.dropped()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops instead of growing without bound when the destination falls behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'accesslog-'));
    try {
      const file = join(dir, 'access.log');
      const sink = createAccessLogSink(file, { maxBufferBytes: 8 });
      sink.write('12345\n');
      sink.write('67890\n');
      expect(sink.dropped()).toBe(6);
      await sink.close();
      expect(readFileSync(file, 'utf8')).toBe('12345\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an empty output', () => {
    expect(() => createAccessLogSink('')).toThrow(TypeError);
  });
});
