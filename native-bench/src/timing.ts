/**
 * Latency accounting in simulated time.
 *
 * The engine simulator can run k times faster than the wall clock (response header
 * `x-sim-time-scale: k`) and stamps every streamed chunk with `sim_t`, the simulated milliseconds
 * since the pod received the request. The router and the network are real, though: their time is
 * not compressed. So for one request, with wall times measured from the moment the generator sent
 * it:
 *
 *   overhead = max(0, wall_ttft - sim_t(first token) / k)     real time outside the engine, unscaled
 *   TTFT     = sim_t(first token) + overhead
 *   ITL_j    = sim_t(token chunk j) - sim_t(token chunk j-1)
 *   e2e      = sim_t(last chunk) + max(0, wall_e2e - sim_t(last chunk) / k)   (and never below TTFT)
 *
 * Every reported latency is then in simulated milliseconds, as if the engine ran in real time
 * with the router's real overhead added, and the time-scale factor cannot distort ratios between
 * policies. A chunk without `sim_t` (a real engine, or a simulator without timing reports) is timed
 * by the wall clock scaled up: wall * k, which is the plain wall time for real servers (k = 1).
 * ITL is per token-carrying chunk, as vLLM's benchmark counts it (a chunk may carry several tokens).
 */

export type TimingSource = 'sim' | 'wall';

export class StreamClock {
  readonly k: number;
  /** Wall time (ms, any origin) when the request was sent. */
  readonly t0: number;
  /** Wall ms from send to the first token chunk; NaN until it arrives. */
  wallFirst = NaN;
  simFirst = NaN;
  /** Sim time of the last chunk seen of any kind (usage chunks included). */
  simLast = NaN;
  #prevWall = NaN;
  #prevSim = NaN;
  /** Inter-token latencies of this request, ms (simulated). */
  readonly itls: number[] = [];
  itlSum = 0;
  itlMax = 0;
  /** Token-carrying chunks seen. */
  chunks = 0;

  constructor(k: number, t0: number) {
    this.k = k > 0 ? k : 1;
    this.t0 = t0;
  }

  /** Any chunk (a token chunk, the role chunk, the usage chunk): keeps the last sim time. */
  chunk(simT: number | undefined): void {
    if (simT !== undefined) this.simLast = simT;
  }

  /** A chunk carrying output tokens, arrived at wall time `now`. */
  token(now: number, simT: number | undefined): void {
    this.chunk(simT);
    const wall = now - this.t0;
    if (this.chunks === 0) {
      this.wallFirst = wall;
      if (simT !== undefined) this.simFirst = simT;
    } else {
      const gap = simT !== undefined && !Number.isNaN(this.#prevSim) ? simT - this.#prevSim : (wall - this.#prevWall) * this.k;
      const itl = gap > 0 ? gap : 0;
      this.itls.push(itl);
      this.itlSum += itl;
      if (itl > this.itlMax) this.itlMax = itl;
    }
    this.#prevWall = wall;
    this.#prevSim = simT ?? NaN;
    this.chunks++;
  }

  /**
   * A non-streaming answer that arrived whole at wall time `now`, with the simulator's
   * `sim_timing`: the real overhead is what the wall e2e exceeds the scaled simulated e2e by, and
   * it is added to the simulated TTFT as for a stream.
   */
  whole(now: number, simTtft: number, simE2e: number): void {
    const overhead = Math.max(0, now - this.t0 - simE2e / this.k);
    this.wallFirst = simTtft / this.k + overhead;
    this.simFirst = simTtft;
    this.simLast = simE2e;
    this.chunks = 1;
  }

  /** How the first token was timed. */
  get source(): TimingSource {
    return Number.isNaN(this.simFirst) ? 'wall' : 'sim';
  }

  /** Real (wall) ms spent outside the engine before the first token: router, network, client. */
  get overheadMs(): number {
    if (Number.isNaN(this.wallFirst) || Number.isNaN(this.simFirst)) return NaN;
    return Math.max(0, this.wallFirst - this.simFirst / this.k);
  }

  /** Time to first token, simulated ms (NaN before the first token). */
  get ttftMs(): number {
    if (Number.isNaN(this.wallFirst)) return NaN;
    if (Number.isNaN(this.simFirst)) return this.wallFirst * this.k;
    return this.simFirst + this.overheadMs;
  }

  /** Mean ITL of this request (its TPOT), or NaN with fewer than two token chunks. */
  get itlMeanMs(): number {
    return this.itls.length > 0 ? this.itlSum / this.itls.length : NaN;
  }

  /** End-to-end latency, simulated ms, for a response that ended at wall time `end`. */
  e2eMs(end: number): number {
    const wall = end - this.t0;
    const e2e = Number.isNaN(this.simLast) ? wall * this.k : this.simLast + Math.max(0, wall - this.simLast / this.k);
    const ttft = this.ttftMs;
    return Number.isNaN(ttft) ? e2e : Math.max(e2e, ttft);
  }
}
