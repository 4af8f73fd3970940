// Per-request cost of a local token rate limit on one thread: the admission check (input take,
// output pre-check) and the output charge on the shared buckets. npm run build first;
// node native-bench/ratelimit/micro.mjs
import { allocateRateLimitRegion } from '../../dist/src/shared/layout.js';
import { RateLimiter, compileRateLimit } from '../../dist/workers/ratelimit/limiter.js';
const sab = allocateRateLimitRegion(16);
const lim = new RateLimiter({ rateLimitSab: sab, failClosed: false, log: () => {} });
const m = compileRateLimit({ inputTokensPerUnit: 2e9, outputTokensPerUnit: 2e9, unitSeconds: 1, redisAddress: '', buckets: [{ model: 'm', direction: 'input', slot: 0, gen: 0 }, { model: 'm', direction: 'output', slot: 1, gen: 0 }] }, ['m']).get('m');
for (let r = 0; r < 3; r++) {
  const N = 2_000_000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) { lim.admit(m, 10); lim.recordOutput(m, 16); }
  console.log('admit + output charge:', Number(process.hrtime.bigint() - t) / N, 'ns per request');
}
lim.close();
