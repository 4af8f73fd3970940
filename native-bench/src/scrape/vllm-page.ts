/**
 * A realistic vLLM 0.10 (V1 engine) /metrics page, as prometheus_client 0.22 writes it behind
 * vLLM's OpenAI server: process/python collectors, prometheus-fastapi-instrumentator http_* families,
 * and every vllm: family of 0.10 with the `engine` and `model_name` labels, deprecated aliases
 * included (gpu_cache_usage_perc, gpu_prefix_cache_*, time_per_output_token_seconds), counters
 * declared without `_total` and followed by `_created` samples, histograms with vLLM's own bucket
 * bounds. `seed` varies every number so that no two pages are the same string.
 */

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

function rng(seed: number): () => number {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  return Number.isInteger(v) ? v.toFixed(1) : String(v);
}

function le(v: number): string {
  return v === Infinity ? '+Inf' : num(v);
}

const LATENCY = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const TPOT = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const TOKENS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
const ITER = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const PARAMS_N = [1, 2, 5, 10, 20];
const HIGHR = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60];

export function vllmPage(seed = 1, model = MODEL): string {
  const r = rng(seed);
  const created = 1_760_000_000 + Math.floor(r() * 1000) + r();
  const L = `engine="0",model_name="${model}"`;
  const out: string[] = [];
  const help = (name: string, text: string, type: string): number => out.push(`# HELP ${name} ${text}`, `# TYPE ${name} ${type}`);
  const gauge = (name: string, text: string, value: number, labels = L): void => {
    help(name, text, 'gauge');
    out.push(`${name}{${labels}} ${num(value)}`);
  };
  const counter = (name: string, text: string, series: [string, number][]): void => {
    help(name, text, 'counter');
    for (const [labels, v] of series) out.push(`${name}_total{${labels}} ${num(v)}`);
    for (const [labels] of series) out.push(`${name}_created{${labels}} ${num(created)}`);
  };
  const histogram = (name: string, text: string, bounds: number[], scale: number, labels = L): void => {
    help(name, text, 'histogram');
    const count = Math.floor(r() * 100000);
    let acc = 0;
    for (const b of [...bounds, Infinity]) {
      acc = b === Infinity ? count : Math.min(count, acc + Math.floor(r() * count / bounds.length));
      out.push(`${name}_bucket{${labels},le="${le(b)}"} ${num(acc)}`);
    }
    out.push(`${name}_count{${labels}} ${num(count)}`, `${name}_sum{${labels}} ${num(count * scale * (0.5 + r()))}`);
    out.push(`${name}_created{${labels}} ${num(created)}`);
  };

  // Python / process collectors.
  help('python_gc_objects_collected_total', 'Objects collected during gc', 'counter');
  for (const g of [0, 1, 2]) out.push(`python_gc_objects_collected_total{generation="${g}"} ${num(Math.floor(r() * 1e6))}`);
  help('python_gc_objects_uncollectable_total', 'Uncollectable objects found during GC', 'counter');
  for (const g of [0, 1, 2]) out.push(`python_gc_objects_uncollectable_total{generation="${g}"} 0.0`);
  help('python_gc_collections_total', 'Number of times this generation was collected', 'counter');
  for (const g of [0, 1, 2]) out.push(`python_gc_collections_total{generation="${g}"} ${num(Math.floor(r() * 1e4))}`);
  help('python_info', 'Python platform information', 'gauge');
  out.push('python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0');
  const proc: [string, string, number][] = [
    ['process_virtual_memory_bytes', 'Virtual memory size in bytes.', 5.1e10 + r() * 1e9],
    ['process_resident_memory_bytes', 'Resident memory size in bytes.', 3.2e9 + r() * 1e8],
    ['process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', created],
    ['process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', r() * 1e5],
    ['process_open_fds', 'Number of open file descriptors.', Math.floor(r() * 200)],
    ['process_max_fds', 'Maximum number of open file descriptors.', 1048576],
  ];
  for (const [n, t, v] of proc) {
    help(n, t, n.endsWith('_total') ? 'counter' : 'gauge');
    out.push(`${n} ${num(v)}`);
  }

  // prometheus-fastapi-instrumentator.
  const handlers = ['/v1/chat/completions', '/v1/completions', '/metrics', '/v1/models', '/health'];
  help('http_requests_total', 'Total number of requests by method, status and handler.', 'counter');
  for (const h of handlers) out.push(`http_requests_total{handler="${h}",method="${h.startsWith('/v1/c') ? 'POST' : 'GET'}",status="2xx"} ${num(Math.floor(r() * 1e6))}`);
  for (const h of handlers) out.push(`http_requests_created{handler="${h}",method="${h.startsWith('/v1/c') ? 'POST' : 'GET'}",status="2xx"} ${num(created)}`);
  for (const n of ['http_request_size_bytes', 'http_response_size_bytes']) {
    help(n, 'Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ', 'summary');
    for (const h of handlers) {
      out.push(`${n}_count{handler="${h}"} ${num(Math.floor(r() * 1e6))}`, `${n}_sum{handler="${h}"} ${num(Math.floor(r() * 1e9))}`, `${n}_created{handler="${h}"} ${num(created)}`);
    }
  }
  histogram('http_request_duration_highr_seconds', 'Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ', HIGHR, 1, '');
  help('http_request_duration_seconds', 'Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ', 'histogram');
  for (const h of handlers) {
    const lb = `handler="${h}",method="${h.startsWith('/v1/c') ? 'POST' : 'GET'}"`;
    const c = Math.floor(r() * 1e5);
    for (const b of [0.1, 0.5, 1, Infinity]) out.push(`http_request_duration_seconds_bucket{${lb},le="${le(b)}"} ${num(c)}`);
    out.push(`http_request_duration_seconds_count{${lb}} ${num(c)}`, `http_request_duration_seconds_sum{${lb}} ${num(c * r())}`, `http_request_duration_seconds_created{${lb}} ${num(created)}`);
  }

  // vLLM engine families (0.10, V1).
  gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', Math.floor(r() * 64));
  gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', Math.floor(r() * 16));
  gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.', r());
  gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', r());
  const q = Math.floor(r() * 1e8);
  counter('vllm:gpu_prefix_cache_queries', 'GPU prefix cache queries, in terms of number of queried tokens.DEPRECATED: Use vllm:prefix_cache_queries instead.', [[L, q]]);
  counter('vllm:gpu_prefix_cache_hits', 'GPU prefix cache hits, in terms of number of cached tokens.DEPRECATED: Use vllm:prefix_cache_hits instead.', [[L, Math.floor(q * r())]]);
  counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', [[L, q]]);
  counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', [[L, Math.floor(q * r())]]);
  counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', [[L, Math.floor(r() * 100)]]);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', [[L, q]]);
  counter('vllm:generation_tokens', 'Number of generation tokens processed.', [[L, Math.floor(r() * 1e7)]]);
  counter('vllm:request_success', 'Count of successfully processed requests.',
    ['stop', 'length', 'abort'].map((f): [string, number] => [`${L},finished_reason="${f}"`, Math.floor(r() * 1e5)]));
  histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', TOKENS, 1000);
  histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', TOKENS, 300);
  histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', ITER, 200);
  histogram('vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', TOKENS, 500);
  histogram('vllm:request_params_n', 'Histogram of the n request parameter.', PARAMS_N, 1);
  histogram('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', TOKENS, 500);
  histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT, 0.2);
  histogram('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.', TPOT, 0.03);
  histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', TPOT, 0.03);
  histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', LATENCY, 8);
  histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', LATENCY, 0.5);
  histogram('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', LATENCY, 7);
  histogram('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', LATENCY, 0.2);
  histogram('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', LATENCY, 7);
  help('vllm:cache_config_info', 'Information of the LLMEngine CacheConfig', 'gauge');
  out.push('vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",' +
    'enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",' +
    'num_gpu_blocks="27375",num_gpu_blocks_override="None",prefix_caching_hash_algo="builtin",sliding_window="None",' +
    'swap_space="4",swap_space_bytes="4294967296"} 1.0');
  help('vllm:lora_requests_info', 'Running stats on lora requests.', 'gauge');
  out.push(`vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora,chat-lora",waiting_lora_adapters=""} ${num(created + r() * 100)}`);
  out.push(`vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} ${num(created)}`);
  return out.join('\n') + '\n';
}

export const VLLM_PAGE_MODEL = MODEL;
