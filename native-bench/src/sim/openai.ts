/**
 * OpenAI-compatible bodies exactly as vLLM's API server shapes them (field names, nulls, chunk
 * order), so a router's body handling (usage extraction, SSE framing, model rewrite) is exercised
 * against what it will meet in production.
 */

import { randomUUID } from 'node:crypto';

export type CompletionKind = 'chat' | 'text';

/** A validated completion request, reduced to what the simulator acts on. */
export interface ParsedCompletion {
  kind: CompletionKind;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  /** max_tokens / max_completion_tokens, when given. */
  maxTokens: number | null;
}

export class SimBadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'SimBadRequest';
    this.status = status;
  }
}

const ERROR_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  401: 'AuthenticationError',
  403: 'PermissionDeniedError',
  404: 'NotFoundError',
  408: 'RequestTimeoutError',
  413: 'RequestEntityTooLargeError',
  422: 'UnprocessableEntityError',
  429: 'RateLimitError',
  500: 'InternalServerError',
  501: 'NotImplementedError',
  503: 'ServiceUnavailableError',
};

/** vLLM's ErrorResponse; `type` defaults to the one vLLM uses for the status. */
export function errorBody(status: number, message: string, type?: string): string {
  const t = type ?? ERROR_TYPES[status] ?? (status >= 500 ? 'InternalServerError' : 'BadRequestError');
  return JSON.stringify({ object: 'error', message, type: t, param: null, code: status });
}

/** An error inside an already started stream, as vLLM and SGLang send it before `[DONE]`. */
export function errorEvent(status: number, message: string): string {
  const type = ERROR_TYPES[status] ?? (status >= 500 ? 'InternalServerError' : 'BadRequestError');
  return `data: ${JSON.stringify({ error: { object: 'error', message, type, param: null, code: status } })}\n\n`;
}

/** Top-level fields added to a response object (simulated timing, kv_transfer_params). */
export type Extra = Record<string, unknown> | null;

/** Rough token count (4 characters per token), good enough for usage and rate-limit tests. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4);
}

function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (Array.isArray(content)) {
    let n = 0;
    for (const part of content) {
      if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
        n += (part as { text: string }).text.length;
      }
    }
    return n;
  }
  return 0;
}

function optionalPositiveInt(body: Record<string, unknown>, field: string): number | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new SimBadRequest(`${field} must be an integer, got ${JSON.stringify(v)}.`);
  }
  if (v < 1) throw new SimBadRequest(`${field} must be at least 1, got ${v}.`);
  return v;
}

/**
 * Validates a completion body the way vLLM rejects bad ones (400 with an ErrorResponse). A missing
 * `model` means the base model, as in vLLM.
 */
export function parseCompletion(kind: CompletionKind, body: unknown, models: readonly string[]): ParsedCompletion {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new SimBadRequest('Request body must be a JSON object.');
  }
  const b = body as Record<string, unknown>;
  let model = models[0];
  if (b.model !== undefined && b.model !== null) {
    if (typeof b.model !== 'string') throw new SimBadRequest('model must be a string.');
    if (!models.includes(b.model)) throw new SimBadRequest(`The model \`${b.model}\` does not exist.`);
    model = b.model;
  }
  let chars = 0;
  if (kind === 'chat') {
    if (!Array.isArray(b.messages) || b.messages.length === 0) {
      throw new SimBadRequest('messages must be a non-empty list.');
    }
    for (const m of b.messages) {
      if (m === null || typeof m !== 'object' || typeof (m as { role?: unknown }).role !== 'string') {
        throw new SimBadRequest('each message must be an object with a role.');
      }
      chars += contentChars((m as { content?: unknown }).content);
    }
  } else {
    const p = b.prompt;
    if (typeof p === 'string') chars = p.length;
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) {
      chars = (p as string[]).reduce((n, s) => n + s.length, 0);
    } else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) {
      // A pre-tokenized prompt: its length is the token count, so scale it back to characters.
      chars = p.length * 4;
    } else {
      throw new SimBadRequest('prompt must be a string, a list of strings or a list of token ids.');
    }
  }
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') {
    throw new SimBadRequest('stream must be a boolean.');
  }
  const stream = b.stream === true;
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (!stream) throw new SimBadRequest('Stream options can only be defined when `stream=True`.');
    includeUsage = (b.stream_options as { include_usage?: unknown }).include_usage === true;
  }
  const maxTokens = optionalPositiveInt(b, 'max_completion_tokens') ?? optionalPositiveInt(b, 'max_tokens');
  return { kind, model, stream, includeUsage, promptTokens: estimateTokens(chars), maxTokens };
}

/** Deterministic filler text: a router never looks at it, but humans reading a demo do. */
const WORDS = [
  'The', ' quick', ' answer', ' is', ' that', ' the', ' router', ' picked', ' a', ' pod', ' with', ' a',
  ' short', ' queue', ' and', ' a', ' warm', ' cache', '.',
];

export function tokenText(i: number): string {
  return WORDS[i % WORDS.length];
}

export function newCompletionId(kind: CompletionKind): string {
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, total_tokens: promptTokens + completionTokens, completion_tokens: completionTokens };
}

/** `prompt_tokens_details`: null unless the pod knows its cache hits (model mode). */
function details(cachedTokens: number | null): { cached_tokens: number } | null {
  return cachedTokens === null ? null : { cached_tokens: cachedTokens };
}

export function finalBody(
  req: ParsedCompletion,
  id: string,
  created: number,
  text: string,
  completionTokens: number,
  finishReason: string,
  cachedTokens: number | null = null,
  extra: Extra = null,
): string {
  const usage = { ...usageOf(req.promptTokens, completionTokens), prompt_tokens_details: details(cachedTokens) };
  if (req.kind === 'chat') {
    return JSON.stringify({
      id,
      object: 'chat.completion',
      created,
      model: req.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, tool_calls: [] },
          logprobs: null,
          finish_reason: finishReason,
          stop_reason: null,
        },
      ],
      usage,
      prompt_logprobs: null,
      ...extra,
    });
  }
  return JSON.stringify({
    id,
    object: 'text_completion',
    created,
    model: req.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason, stop_reason: null, prompt_logprobs: null }],
    usage,
    ...extra,
  });
}

/**
 * One SSE event. With include_usage every chunk carries `usage: null` and a last chunk with
 * `choices: []` carries the totals, as OpenAI documents and vLLM does.
 */
export function chunkEvent(
  req: ParsedCompletion,
  id: string,
  created: number,
  delta: { role?: string; content: string },
  finishReason: string | null,
  extra: Extra = null,
): string {
  const base = { id, object: req.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model: req.model };
  const choice =
    req.kind === 'chat'
      ? { index: 0, delta, logprobs: null, finish_reason: finishReason }
      : { index: 0, text: delta.content, logprobs: null, finish_reason: finishReason, stop_reason: null };
  const obj = req.includeUsage ? { ...base, choices: [choice], usage: null, ...extra } : { ...base, choices: [choice], ...extra };
  return `data: ${JSON.stringify(obj)}\n\n`;
}

export function usageEvent(
  req: ParsedCompletion,
  id: string,
  created: number,
  completionTokens: number,
  cachedTokens: number | null = null,
  extra: Extra = null,
): string {
  const usage = cachedTokens === null
    ? usageOf(req.promptTokens, completionTokens)
    : { ...usageOf(req.promptTokens, completionTokens), prompt_tokens_details: details(cachedTokens) };
  const obj = {
    id,
    object: req.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    created,
    model: req.model,
    choices: [],
    usage,
    ...extra,
  };
  return `data: ${JSON.stringify(obj)}\n\n`;
}

export const DONE_EVENT = 'data: [DONE]\n\n';

/** `roots`: adapter name -> the lora_path it was loaded from (default `/adapters/{name}`). */
export function modelsBody(
  engine: 'vLLM' | 'SGLang',
  models: readonly string[],
  created: number,
  roots?: ReadonlyMap<string, string>,
  maxModelLen = 32768,
): string {
  const ownedBy = engine === 'vLLM' ? 'vllm' : 'sglang';
  const base = models[0];
  return JSON.stringify({
    object: 'list',
    data: models.map((id, i) => ({
      id,
      object: 'model',
      created,
      owned_by: ownedBy,
      root: i === 0 ? base : (roots?.get(id) ?? `/adapters/${id}`),
      parent: i === 0 ? null : base,
      max_model_len: maxModelLen,
    })),
  });
}
