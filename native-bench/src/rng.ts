/**
 * Seeded randomness for the load generator: every random choice (arrival gaps, prompt words,
 * request order, LoRA picks) comes from a named stream derived from `--seed`, so a run is
 * reproducible and one stream's consumption never shifts another's (adding a LoRA mix does not
 * change the prompts).
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting PRNG, 128-bit state, passes
 * PractRand), seeded through splitmix32; `streamSeed` hashes a seed and a list of names/numbers
 * with FNV-1a followed by a splitmix finaliser.
 */

/** splitmix32 finaliser: a bijective 32-bit mix. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A 32-bit seed for the stream named by `parts` under `seed`. */
export function streamSeed(seed: number, ...parts: ReadonlyArray<string | number>): number {
  let h = 0x811c9dc5 ^ mix32(seed >>> 0) ^ mix32(Math.floor(seed / 2 ** 32));
  const s = parts.join('\u0000');
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h >>> 0);
}

/** A uniform number in [0, 1) from a seed and names, without keeping a generator (LoRA picks). */
export function hashUnit(seed: number, ...parts: ReadonlyArray<string | number>): number {
  return streamSeed(seed, ...parts) / 2 ** 32;
}

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  /** A cached second normal deviate from Box-Muller. */
  #spare = NaN;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return mix32(s);
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next() | 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A stream named by `parts` under `seed` (see `streamSeed`). */
  static stream(seed: number, ...parts: ReadonlyArray<string | number>): Rng {
    return new Rng(streamSeed(seed, ...parts));
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = ((c << 21) | (c >>> 11)) + t;
    this.#c |= 0;
    return t >>> 0;
  }

  /** A uniform number in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** Exponential deviate with the given mean. */
  exponential(mean: number): number {
    // 1 - u is in (0, 1], so the logarithm is finite.
    return -Math.log(1 - this.next()) * mean;
  }

  /** Standard normal deviate (Box-Muller, polar form). */
  normal(): number {
    if (!Number.isNaN(this.#spare)) {
      const v = this.#spare;
      this.#spare = NaN;
      return v;
    }
    for (;;) {
      const u = 2 * this.next() - 1;
      const v = 2 * this.next() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.#spare = v * f;
        return u * f;
      }
    }
  }

  /**
   * Gamma deviate with shape `k` and scale `theta` (mean k*theta), by Marsaglia and Tsang (2000);
   * for k < 1 it draws Gamma(k + 1) and multiplies by U^(1/k).
   */
  gamma(k: number, theta: number): number {
    if (k < 1) {
      const u = 1 - this.next();
      return this.gamma(k + 1, theta) * Math.pow(u, 1 / k);
    }
    const d = k - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = 1 - this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v * theta;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * theta;
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}
