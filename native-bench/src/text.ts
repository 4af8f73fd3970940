/**
 * Prompt text whose token count is known without a tokenizer.
 *
 * Every generated text is a run of words of exactly four characters: a space and three lowercase
 * letters (" qzv"). Under the simulator's tokenizer (native-bench/src/sim/tokenize.ts: words with their leading
 * whitespace, cut into pieces of at most 4 code points) each such word is exactly one token, and
 * texts concatenate without merging across words, so a text of n words is n tokens wherever it
 * sits in a prompt. The one exception is the very first word of a chat message, which the ChatML
 * template joins to the "\n" after the role ("\n qzv" is 5 code points: 2 tokens), a constant
 * the template overhead absorbs. Under a real BPE tokenizer the same text is roughly 1 to 2 tokens
 * per word (~4 characters per token is the usual rule of thumb): lengths are then approximate,
 * and `usage.prompt_tokens` in the results says what the server counted.
 */

import type { Rng } from './rng.js';

/** Words of three letters: the number of distinct index words (see `indexWord`). */
export const INDEX_WORDS = 26 * 26 * 26;
const A = 97;

/** Characters per generated token. */
export const CHARS_PER_TOKEN = 4;

/** Every word, by index (built once; indexWord(i) === WORDS[i]). */
const WORDS: readonly string[] = Array.from({ length: INDEX_WORDS }, (_, n) =>
  ' ' + String.fromCharCode(A + (n % 26), A + (Math.floor(n / 26) % 26), A + Math.floor(n / 676)),
);

/** n random words (n tokens). */
export function randomWords(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += WORDS[rng.u32() % INDEX_WORDS];
  return s;
}

/**
 * The word that encodes `i` (base 26, three letters), one token: starting a system prompt with its
 * group number, or a question with its index in the group, makes texts that must differ differ at
 * their first token, so prefix sharing is exactly as designed and never accidental.
 */
export function indexWord(i: number): string {
  return WORDS[((i % INDEX_WORDS) + INDEX_WORDS) % INDEX_WORDS];
}

/** A text of `n` tokens that starts with `indexWord(index)` and continues with random words. */
export function indexedText(rng: Rng, index: number, n: number): string {
  if (n <= 0) return '';
  return indexWord(index) + randomWords(rng, n - 1);
}

/** Tokens of a text generated here (its length / 4). */
export function generatedTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}
