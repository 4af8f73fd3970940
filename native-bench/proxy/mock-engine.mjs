#!/usr/bin/env node
// A fast mock of vLLM engine pods for the proxy benchmark: several pods (one uWS App each, on its
// own loopback address) in one process. It must cost far less per request than any proxy in front
// of it, or the benchmark measures the mock; hence the native uWebSockets.js binary, loaded
// directly, and no JS fallback. Bodies look like vLLM's (chat.completion JSON, chunk-per-token
// SSE ending in [DONE]) so proxies parse and forward what they would in production.
//
//   node mock-engine.mjs --pods 127.0.0.21:8000,127.0.0.22:8000 [--model mock-model]
//                        [--events 20] [--itl-ms 0] [--output-tokens 16]
//
// Prints one JSON line {"ready":true,...} once every pod listens.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);

function loadNativeUws() {
  let pkgDir;
  try {
    pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  } catch (err) {
    fail(`uWebSockets.js is not installed (run npm install at the repository root): ${err.message}`);
  }
  const bin = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    return require(bin);
  } catch (err) {
    fail(
      `cannot load the native uWebSockets.js binary ${bin}: ${err.message}\n` +
        'Refusing the JS fallback: it is slower than the proxies under test and would skew every number.',
    );
  }
}

function fail(msg) {
  process.stderr.write(`mock-engine: ${msg}\n`);
  process.exit(1);
}

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '127.0.0.21:8000,127.0.0.22:8000' },
    model: { type: 'string', default: 'mock-model' },
    events: { type: 'string', default: '20' },
    'itl-ms': { type: 'string', default: '0' },
    'output-tokens': { type: 'string', default: '16' },
    'name-prefix': { type: 'string', default: 'mock' },
  },
});

const MODEL = values.model;
const EVENTS = Number(values.events);
const ITL_MS = Number(values['itl-ms']);
const OUTPUT_TOKENS = Number(values['output-tokens']);
if (!(EVENTS >= 2) || !(ITL_MS >= 0) || !(OUTPUT_TOKENS >= 1)) fail('--events >= 2, --itl-ms >= 0, --output-tokens >= 1');

const uws = loadNativeUws();

const WORDS = [' The', ' quick', ' answer', ' is', ' that', ' the', ' router', ' picked', ' a', ' pod', ' with', ' a', ' short', ' queue', '.'];
const word = (i) => WORDS[i % WORDS.length];
const COMPLETION_TEXT = Array.from({ length: OUTPUT_TOKENS }, (_, i) => word(i)).join('');
const DONE = 'data: [DONE]\n\n';

let created = Math.floor(Date.now() / 1000);
setInterval(() => {
  created = Math.floor(Date.now() / 1000);
}, 1000).unref();

let seq = 0;
/** 32 hex digits like vLLM's uuid4().hex, from a counter: unique per process and free of crypto cost. */
function nextId(prefix) {
  seq++;
  return prefix + (0x10000000 + process.pid).toString(16).padStart(16, '0') + seq.toString(16).padStart(16, '0');
}

function promptTokens(body) {
  let chars = 0;
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) if (typeof m?.content === 'string') chars += m.content.length;
  } else if (typeof body.prompt === 'string') chars = body.prompt.length;
  return Math.ceil(chars / 4);
}

function jsonBody(model, pt) {
  const ct = OUTPUT_TOKENS;
  return (
    `{"id":"${nextId('chatcmpl-')}","object":"chat.completion","created":${created},"model":${JSON.stringify(model)},` +
    `"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(COMPLETION_TEXT)},"tool_calls":[]},` +
    `"logprobs":null,"finish_reason":"length","stop_reason":null}],` +
    `"usage":{"prompt_tokens":${pt},"total_tokens":${pt + ct},"completion_tokens":${ct},"prompt_tokens_details":null},"prompt_logprobs":null}`
  );
}

/** Event i of EVENTS: the role chunk first, as vLLM sends it, then one token per event. */
function sseEvent(prefix, i) {
  if (i === 0) return `${prefix}{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`;
  const finish = i === EVENTS - 1 ? '"length"' : 'null';
  return `${prefix}{"content":${JSON.stringify(word(i - 1))}},"logprobs":null,"finish_reason":${finish}}]}\n\n`;
}

function ssePrefix(model) {
  return `data: {"id":"${nextId('chatcmpl-')}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":`;
}

function metricsText(running) {
  const l = `{model_name="${MODEL}"}`;
  return (
    `# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running${l} ${running}.0\n` +
    `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting${l} 0.0\n` +
    `# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc${l} 0.0\n`
  );
}

const startedAt = Math.floor(Date.now() / 1000);
const MODELS_BODY = JSON.stringify({
  object: 'list',
  data: [{ id: MODEL, object: 'model', created: startedAt, owned_by: 'vllm', root: MODEL, parent: null, max_model_len: 32768 }],
});

function errorBody(message) {
  return JSON.stringify({ object: 'error', message, type: 'BadRequestError', param: null, code: 400 });
}

function startPod(name, host, port) {
  let running = 0;
  const app = uws.App();

  const completion = (res) => {
    const state = { aborted: false, timer: null };
    res.onAborted(() => {
      state.aborted = true;
      if (state.timer) {
        clearTimeout(state.timer);
        running--;
      }
    });
    let chunks = null;
    res.onData((ab, isLast) => {
      // uWS reuses `ab` after this callback returns: copy anything kept beyond it.
      if (!isLast) {
        (chunks ??= []).push(Buffer.from(ab.slice(0)));
        return;
      }
      const buf = chunks === null ? Buffer.from(ab) : Buffer.concat([...chunks, Buffer.from(ab)]);
      let body;
      try {
        body = JSON.parse(buf.toString('utf8'));
      } catch {
        res.cork(() => res.writeStatus('400 Bad Request').writeHeader('content-type', 'application/json').end(errorBody('invalid JSON')));
        return;
      }
      const model = typeof body.model === 'string' ? body.model : MODEL;
      if (body.stream === true) stream(res, state, model);
      else {
        const out = jsonBody(model, promptTokens(body));
        res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'application/json').writeHeader('x-sim-pod', name).end(out));
      }
    });
  };

  const stream = (res, state, model) => {
    const prefix = ssePrefix(model);
    if (ITL_MS === 0) {
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream; charset=utf-8').writeHeader('cache-control', 'no-cache').writeHeader('x-sim-pod', name);
        for (let i = 0; i < EVENTS; i++) res.write(sseEvent(prefix, i));
        res.end(DONE);
      });
      return;
    }
    running++;
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream; charset=utf-8').writeHeader('cache-control', 'no-cache').writeHeader('x-sim-pod', name);
      // Headers go out before the first token, as a real engine sends them before prefill ends.
      res.write('');
    });
    let i = 0;
    const tick = () => {
      state.timer = null;
      if (state.aborted) return;
      res.cork(() => {
        res.write(sseEvent(prefix, i++));
        if (i === EVENTS) {
          running--;
          res.end(DONE);
        } else {
          state.timer = setTimeout(tick, ITL_MS);
        }
      });
    };
    state.timer = setTimeout(tick, ITL_MS);
  };

  app
    .post('/v1/chat/completions', completion)
    .post('/v1/completions', completion)
    .get('/v1/models', (res) => {
      res.writeHeader('content-type', 'application/json').writeHeader('x-sim-pod', name).end(MODELS_BODY);
    })
    .get('/health', (res) => {
      res.writeHeader('x-sim-pod', name).end();
    })
    .get('/metrics', (res) => {
      res.writeHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8').end(metricsText(running));
    })
    .any('/*', (res) => {
      res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end('{"detail":"Not Found"}');
    });

  return new Promise((resolve) => {
    app.listen(host, port, (token) => {
      if (!token) fail(`cannot listen on ${host}:${port} (in use, or the address is not local)`);
      resolve({ name, host, port });
    });
  });
}

const specs = values.pods.split(',').map((s, i) => {
  const [host, port] = s.trim().split(':');
  if (!host || !(Number(port) > 0)) fail(`bad --pods entry "${s}" (want ip:port)`);
  return { name: `${values['name-prefix']}-${i}`, host, port: Number(port) };
});

const pods = await Promise.all(specs.map((s) => startPod(s.name, s.host, s.port)));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, pods, model: MODEL, events: EVENTS, itlMs: ITL_MS }) + '\n');
