/**
 * The simulator's tokenizer and its `/tokenize` endpoint (vLLM's shape, which SGLang also answers):
 * deterministic, prefix-stable and cheap, so a router's kvcache-aware plugin and the simulator's KV
 * events agree on token ids without any model files.
 *
 * Text is cut into words (leading whitespace attached, as BPE vocabularies do), each word into
 * pieces of at most 4 code points, and each piece maps to an id by FNV-1a. Two texts sharing a
 * prefix share their token ids up to the last word of that prefix. Chat messages are rendered the
 * ChatML way with special tokens, as Qwen/DeepSeek-distill templates do:
 *   <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
 */

export const SIM_VOCAB_SIZE = 151_936;
export const SIM_MAX_MODEL_LEN = 32_768;
export const BOS_TOKEN = 1;
export const EOS_TOKEN = 2;
export const IM_START_TOKEN = 3;
export const IM_END_TOKEN = 4;
/** Ids below this are special tokens; ordinary pieces map above it. */
const FIRST_ORDINARY = 16;

const WORD = /\s*\S+|\s+/g;

function pieceId(piece: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < piece.length; i++) {
    h ^= piece.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return FIRST_ORDINARY + ((h >>> 0) % (SIM_VOCAB_SIZE - FIRST_ORDINARY));
}

/** Appends the ids of `text` to `out`. */
function pushText(out: number[], text: string): void {
  for (const m of text.matchAll(WORD)) {
    const cps = Array.from(m[0]);
    for (let i = 0; i < cps.length; i += 4) out.push(pieceId(cps.slice(i, i + 4).join('')));
  }
}

/** Token ids of a text prompt; `addSpecialTokens` prepends BOS (vLLM's default for prompts). */
export function tokenizeText(text: string, addSpecialTokens = true): number[] {
  const out: number[] = addSpecialTokens ? [BOS_TOKEN] : [];
  pushText(out, text);
  return out;
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let s = '';
  let any = false;
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      s += (any ? '\n' : '') + (part as { text: string }).text;
      any = true;
    }
  }
  return s;
}

/**
 * Token ids of chat messages through the ChatML template. `addSpecialTokens` (vLLM's default for
 * chat is false: the template carries its own markers) prepends BOS.
 */
export function tokenizeChat(messages: readonly unknown[], addGenerationPrompt = true, addSpecialTokens = false): number[] {
  const out: number[] = addSpecialTokens ? [BOS_TOKEN] : [];
  for (const m of messages) {
    if (m === null || typeof m !== 'object') continue;
    const msg = m as { role?: unknown; content?: unknown };
    if (typeof msg.role !== 'string') continue;
    out.push(IM_START_TOKEN);
    pushText(out, msg.role + '\n' + contentText(msg.content));
    out.push(IM_END_TOKEN);
    pushText(out, '\n');
  }
  if (addGenerationPrompt) {
    out.push(IM_START_TOKEN);
    pushText(out, 'assistant\n');
  }
  return out;
}

/**
 * The prompt token ids an engine computes KV for when serving a completion body (already
 * validated by parseCompletion): the chat template with the generation prompt and no BOS for chat,
 * BOS + text for a text prompt (a list of strings is joined; a pre-tokenized prompt is used as is).
 */
export function completionPromptTokens(kind: 'chat' | 'text', body: Record<string, unknown>): number[] {
  if (kind === 'chat') {
    const agp = body.add_generation_prompt;
    const ast = body.add_special_tokens;
    return tokenizeChat(body.messages as unknown[], typeof agp === 'boolean' ? agp : true, ast === true);
  }
  const ast = body.add_special_tokens;
  const p = body.prompt;
  if (Array.isArray(p) && p.every((x) => typeof x === 'number')) return p as number[];
  const text = Array.isArray(p) ? (p as string[]).join('') : String(p);
  return tokenizeText(text, typeof ast === 'boolean' ? ast : true);
}

export interface TokenizeAnswer {
  status: number;
  /** JSON text: the result, or the engine's error body (`errorBody` applied by the caller). */
  body: string;
  /** Set on errors: the message for the engine's error body. */
  error?: string;
}

/**
 * `POST /tokenize`: `{"model"?, "prompt", "add_special_tokens"?}` or `{"model"?, "messages",
 * "add_special_tokens"?, "add_generation_prompt"?}` -> `{"count","max_model_len","tokens"}`.
 * Defaults as vLLM's: add_special_tokens true for a prompt, false for messages;
 * add_generation_prompt true. SGLang pods answer the same way (SGLang's own endpoint has this shape).
 */
export function tokenizeRequest(body: unknown, models: readonly string[]): TokenizeAnswer {
  const fail = (status: number, error: string): TokenizeAnswer => ({ status, body: '', error });
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return fail(400, 'Request body must be a JSON object.');
  const b = body as Record<string, unknown>;
  if (b.model !== undefined && b.model !== null) {
    if (typeof b.model !== 'string') return fail(400, 'model must be a string.');
    if (!models.includes(b.model)) return fail(404, `The model \`${b.model}\` does not exist.`);
  }
  for (const k of ['add_special_tokens', 'add_generation_prompt'] as const) {
    if (b[k] !== undefined && b[k] !== null && typeof b[k] !== 'boolean') return fail(400, `${k} must be a boolean.`);
  }
  let tokens: number[];
  if (b.messages !== undefined) {
    if (!Array.isArray(b.messages)) return fail(400, 'messages must be a list.');
    tokens = tokenizeChat(b.messages, b.add_generation_prompt !== false, b.add_special_tokens === true);
  } else if (typeof b.prompt === 'string') {
    tokens = tokenizeText(b.prompt, b.add_special_tokens !== false);
  } else {
    return fail(400, 'prompt must be a string, or messages a list.');
  }
  return { status: 200, body: JSON.stringify({ count: tokens.length, max_model_len: SIM_MAX_MODEL_LEN, tokens }) };
}
