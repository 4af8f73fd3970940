/**
 * Workloads: what each request asks for. A workload hands the runner one `RequestSpec` at a time
 * (`next()`), deterministic for a seed, and may hear back how a request ended (`complete()`), which
 * multi-turn sessions need to append the answer to the conversation.
 *
 * - `generatedSharedPrefix`: SGLang bench_serving's `generated-shared-prefix` dataset, the one
 *   Kthena's published benchmark uses. `numGroups` system prompts of `systemPromptLen` tokens; each
 *   group has `promptsPerGroup` questions of `questionLen` tokens; a request is system prompt +
 *   question (one user message, as bench_serving's chat backends send it), `outputLen` tokens are
 *   requested, and the request order is shuffled across groups (bench_serving's
 *   `random.shuffle(input_requests)`). Prompts of a group share exactly the system prompt: each
 *   system prompt starts with its group's index word and each question with its index in the group,
 *   so two prompts agree on precisely the tokens designed to be shared. bench_serving joins the two
 *   parts with "\n\n"; we don't, because a newline would merge into the next word's token and make
 *   the shared length depend on the tokenizer. Past the end of the dataset (more requests than
 *   groups x prompts) the same groups continue with fresh questions in a new shuffled order.
 * - `randomLengths`: independent prompts with input and output lengths uniform in [min, max].
 * - `multiTurn`: `sessions` chat conversations of `turns` turns; turn t sends the whole history
 *   (optional shared system prompt, every earlier question and the server's actual answer) plus a
 *   new question. Sessions interleave: all first turns are ready at the start (in a shuffled
 *   order), and a session's next turn becomes ready, at the back of the queue, when its previous
 *   answer completes. A failed turn ends its session. When no turn is ready `next()` says `wait`.
 *
 * Lengths are in tokens of generated text; see text.ts for why the count is exact under the
 * simulator's tokenizer and approximate elsewhere.
 */

import { Rng, streamSeed } from './rng.js';
import { INDEX_WORDS, indexedText, randomWords } from './text.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface RequestSpec {
  /** The workload's own sequence number of this request (0-based). */
  index: number;
  messages: ChatMessage[];
  /** Designed prompt length: tokens of the message contents (no chat-template tokens). */
  inputTokens: number;
  /** `max_tokens`, and the exact output length asked for. */
  outputTokens: number;
  /** Shared-prefix group. */
  group?: number;
  /** Multi-turn session and turn (0-based). */
  session?: number;
  turn?: number;
  /** The workload wants the answer text back in `complete()`. */
  wantAnswer?: boolean;
}

export interface Outcome {
  ok: boolean;
  /** The streamed answer text, when the spec asked for it. */
  answer: string;
  /** Completion tokens the server reported (or counted chunks). */
  outputTokens: number;
}

/** `next()` has nothing ready now but will later (a multi-turn session awaits its answer). */
export const WAIT = 'wait' as const;

export interface Workload {
  readonly name: string;
  /** Distinct requests the workload defines (the default request count), or null if unbounded. */
  readonly size: number | null;
  /** Its parameters, as recorded in results. */
  readonly params: Record<string, unknown>;
  /** The next request, `WAIT` if none is ready yet, or null when the workload is exhausted. */
  next(): RequestSpec | typeof WAIT | null;
  /** The i-th request, independent of any other call (workloads whose requests depend on no answer). */
  request?(i: number): RequestSpec;
  complete?(spec: RequestSpec, outcome: Outcome): void;
}

// ---------------------------------------------------------------------------------------------
// generated-shared-prefix

export interface SharedPrefixParams {
  numGroups: number;
  promptsPerGroup: number;
  systemPromptLen: number;
  questionLen: number;
  outputLen: number;
}

/** bench_serving's defaults for generated-shared-prefix. */
export const GSP_DEFAULTS: SharedPrefixParams = Object.freeze({
  numGroups: 64,
  promptsPerGroup: 16,
  systemPromptLen: 2048,
  questionLen: 128,
  outputLen: 256,
});

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}

export function checkSharedPrefix(p: SharedPrefixParams): void {
  positiveInt('gsp-num-groups', p.numGroups);
  positiveInt('gsp-prompts-per-group', p.promptsPerGroup);
  positiveInt('gsp-system-prompt-len', p.systemPromptLen, 0);
  positiveInt('gsp-question-len', p.questionLen, 0);
  positiveInt('gsp-output-len', p.outputLen);
  if (p.numGroups > INDEX_WORDS) throw new RangeError(`gsp-num-groups must be at most ${INDEX_WORDS}`);
  if (p.promptsPerGroup > INDEX_WORDS) throw new RangeError(`gsp-prompts-per-group must be at most ${INDEX_WORDS}`);
}

/** The system prompt of group `g` (deterministic in seed and g). */
export function sharedPrefixSystemPrompt(p: SharedPrefixParams, seed: number, g: number): string {
  return indexedText(Rng.stream(seed, 'gsp-system', g), g, p.systemPromptLen);
}

/**
 * The request order of one pass over the dataset: a shuffled list of group * promptsPerGroup +
 * prompt. Pass 0 is bench_serving's dataset; later passes reuse the groups with new questions.
 */
export function sharedPrefixOrder(p: SharedPrefixParams, seed: number, pass: number): Uint32Array {
  const n = p.numGroups * p.promptsPerGroup;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rng = Rng.stream(seed, 'gsp-order', pass);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

export class SharedPrefixWorkload implements Workload {
  readonly name = 'generated-shared-prefix';
  readonly size: number;
  readonly params: Record<string, unknown>;
  readonly #p: SharedPrefixParams;
  readonly #seed: number;
  readonly #systems: string[] = [];
  #order: Uint32Array | null = null;
  #pass = -1;
  #i = 0;

  constructor(p: Partial<SharedPrefixParams> = {}, seed = 1) {
    this.#p = { ...GSP_DEFAULTS, ...p };
    checkSharedPrefix(this.#p);
    this.#seed = seed;
    this.size = this.#p.numGroups * this.#p.promptsPerGroup;
    this.params = {
      gsp_num_groups: this.#p.numGroups,
      gsp_prompts_per_group: this.#p.promptsPerGroup,
      gsp_system_prompt_len: this.#p.systemPromptLen,
      gsp_question_len: this.#p.questionLen,
      gsp_output_len: this.#p.outputLen,
    };
  }

  /** The system prompt of group g (cached). */
  systemPrompt(g: number): string {
    let s = this.#systems[g];
    if (s === undefined) {
      s = sharedPrefixSystemPrompt(this.#p, this.#seed, g);
      this.#systems[g] = s;
    }
    return s;
  }

  /** The i-th request of the run, independent of any earlier call. */
  request(i: number): RequestSpec {
    const p = this.#p;
    const pass = Math.floor(i / this.size);
    if (pass !== this.#pass) {
      this.#order = sharedPrefixOrder(p, this.#seed, pass);
      this.#pass = pass;
    }
    const item = this.#order![i % this.size];
    const group = Math.floor(item / p.promptsPerGroup);
    const prompt = item % p.promptsPerGroup;
    const question = indexedText(Rng.stream(this.#seed, 'gsp-question', pass, item), pass * p.promptsPerGroup + prompt, p.questionLen);
    return {
      index: i,
      messages: [{ role: 'user', content: this.systemPrompt(group) + question }],
      inputTokens: p.systemPromptLen + p.questionLen,
      outputTokens: p.outputLen,
      group,
    };
  }

  next(): RequestSpec {
    return this.request(this.#i++);
  }
}

export function generatedSharedPrefix(p: Partial<SharedPrefixParams> = {}, seed = 1): SharedPrefixWorkload {
  return new SharedPrefixWorkload(p, seed);
}

// ---------------------------------------------------------------------------------------------
// random lengths

/** An inclusive integer range. */
export interface LenRange {
  min: number;
  max: number;
}

export interface RandomParams {
  inputLen: LenRange;
  outputLen: LenRange;
}

export const RANDOM_DEFAULTS: RandomParams = Object.freeze({
  inputLen: Object.freeze({ min: 1024, max: 1024 }),
  outputLen: Object.freeze({ min: 128, max: 128 }),
});

/** "N" or "MIN:MAX" (also "MIN-MAX"). */
export function parseRange(name: string, s: string): LenRange {
  const m = /^\s*(\d+)\s*(?:[:-]\s*(\d+)\s*)?$/.exec(s);
  if (!m) throw new RangeError(`${name} must be N or MIN:MAX, got ${JSON.stringify(s)}`);
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  if (max < min) throw new RangeError(`${name}: MIN must not exceed MAX, got ${s}`);
  return { min, max };
}

export class RandomWorkload implements Workload {
  readonly name = 'random';
  readonly size = null;
  readonly params: Record<string, unknown>;
  readonly #p: RandomParams;
  readonly #seed: number;
  #i = 0;

  constructor(p: Partial<RandomParams> = {}, seed = 1) {
    this.#p = { ...RANDOM_DEFAULTS, ...p };
    if (this.#p.inputLen.min < 1) throw new RangeError('random-input-len must be at least 1');
    if (this.#p.outputLen.min < 1) throw new RangeError('random-output-len must be at least 1');
    this.#seed = seed;
    this.params = {
      random_input_len: [this.#p.inputLen.min, this.#p.inputLen.max],
      random_output_len: [this.#p.outputLen.min, this.#p.outputLen.max],
    };
  }

  request(i: number): RequestSpec {
    const rng = Rng.stream(this.#seed, 'random', i);
    const inTok = rng.range(this.#p.inputLen.min, this.#p.inputLen.max);
    const outTok = rng.range(this.#p.outputLen.min, this.#p.outputLen.max);
    return { index: i, messages: [{ role: 'user', content: randomWords(rng, inTok) }], inputTokens: inTok, outputTokens: outTok };
  }

  next(): RequestSpec {
    return this.request(this.#i++);
  }
}

export function randomLengths(p: Partial<RandomParams> = {}, seed = 1): RandomWorkload {
  return new RandomWorkload(p, seed);
}

// ---------------------------------------------------------------------------------------------
// multi-turn

export interface MultiTurnParams {
  sessions: number;
  turns: number;
  /** A system prompt shared by every session (0: none). */
  systemLen: number;
  questionLen: number;
  outputLen: number;
}

export const MULTI_TURN_DEFAULTS: MultiTurnParams = Object.freeze({
  sessions: 32,
  turns: 5,
  systemLen: 0,
  questionLen: 128,
  outputLen: 128,
});

interface Session {
  id: number;
  turn: number;
  messages: ChatMessage[];
  tokens: number;
}

export class MultiTurnWorkload implements Workload {
  readonly name = 'multi-turn';
  readonly size: number;
  readonly params: Record<string, unknown>;
  readonly #p: MultiTurnParams;
  readonly #seed: number;
  /** Sessions whose next turn can be sent, oldest first (a ring over `#ready`). */
  #ready: Session[] = [];
  #readyHead = 0;
  #issued = 0;
  readonly #inflight = new Map<RequestSpec, Session>();
  /** Sessions ended early by a failed turn. */
  abandoned = 0;

  constructor(p: Partial<MultiTurnParams> = {}, seed = 1) {
    this.#p = { ...MULTI_TURN_DEFAULTS, ...p };
    positiveInt('mt-sessions', this.#p.sessions);
    positiveInt('mt-turns', this.#p.turns);
    positiveInt('mt-system-len', this.#p.systemLen, 0);
    positiveInt('mt-question-len', this.#p.questionLen, 1);
    positiveInt('mt-output-len', this.#p.outputLen);
    this.#seed = seed;
    this.size = this.#p.sessions * this.#p.turns;
    this.params = {
      mt_sessions: this.#p.sessions,
      mt_turns: this.#p.turns,
      mt_system_len: this.#p.systemLen,
      mt_question_len: this.#p.questionLen,
      mt_output_len: this.#p.outputLen,
    };
    const system = this.#p.systemLen > 0 ? randomWords(Rng.stream(seed, 'mt-system'), this.#p.systemLen) : '';
    const order = Array.from({ length: this.#p.sessions }, (_, i) => i);
    Rng.stream(seed, 'mt-order').shuffle(order);
    for (const id of order) {
      this.#ready.push({ id, turn: 0, messages: system === '' ? [] : [{ role: 'system', content: system }], tokens: this.#p.systemLen });
    }
  }

  next(): RequestSpec | typeof WAIT | null {
    if (this.#readyHead < this.#ready.length) {
      const s = this.#ready[this.#readyHead++];
      if (this.#readyHead > 1024 && this.#readyHead * 2 > this.#ready.length) {
        this.#ready = this.#ready.slice(this.#readyHead);
        this.#readyHead = 0;
      }
      const q = indexedText(new Rng(streamSeed(this.#seed, 'mt-question', s.id, s.turn)), s.id, this.#p.questionLen);
      s.messages.push({ role: 'user', content: q });
      s.tokens += this.#p.questionLen;
      const spec: RequestSpec = {
        index: this.#issued++,
        messages: s.messages.slice(),
        inputTokens: s.tokens,
        outputTokens: this.#p.outputLen,
        session: s.id,
        turn: s.turn,
        wantAnswer: s.turn + 1 < this.#p.turns,
      };
      this.#inflight.set(spec, s);
      return spec;
    }
    return this.#inflight.size > 0 ? WAIT : null;
  }

  complete(spec: RequestSpec, outcome: Outcome): void {
    const s = this.#inflight.get(spec);
    if (s === undefined) return;
    this.#inflight.delete(spec);
    if (!outcome.ok) {
      if (s.turn + 1 < this.#p.turns) this.abandoned++;
      return;
    }
    s.turn++;
    if (s.turn >= this.#p.turns) return;
    s.messages.push({ role: 'assistant', content: outcome.answer });
    s.tokens += outcome.outputTokens;
    this.#ready.push(s);
  }
}

export function multiTurn(p: Partial<MultiTurnParams> = {}, seed = 1): MultiTurnWorkload {
  return new MultiTurnWorkload(p, seed);
}

// ---------------------------------------------------------------------------------------------
// LoRA mix

export interface LoraShare {
  model: string;
  share: number;
}

/** "a:0.3,b:0.2" -> [{model:'a',share:0.3},{model:'b',share:0.2}]; shares must sum to at most 1. */
export function parseLoraMix(s: string): LoraShare[] {
  const out: LoraShare[] = [];
  for (const part of s.split(',')) {
    if (part.trim() === '') continue;
    const i = part.lastIndexOf(':');
    const model = i > 0 ? part.slice(0, i).trim() : '';
    const share = i > 0 ? Number(part.slice(i + 1)) : NaN;
    if (model === '' || !(share > 0) || share > 1) {
      throw new RangeError(`--lora takes NAME:SHARE pairs with 0 < SHARE <= 1, got ${JSON.stringify(part)}`);
    }
    out.push({ model, share });
  }
  const total = out.reduce((n, x) => n + x.share, 0);
  if (total > 1 + 1e-9) throw new RangeError(`--lora shares add up to ${total}, more than 1`);
  return out;
}

/**
 * The model of a request: the adapter whose cumulative share interval holds `u` (uniform in
 * [0,1)), or the base model for the remainder.
 */
export function pickModel(base: string, mix: readonly LoraShare[], u: number): string {
  let acc = 0;
  for (const m of mix) {
    acc += m.share;
    if (u < acc) return m.model;
  }
  return base;
}
