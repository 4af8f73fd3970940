/**
 * Per-request cost of a local token rate limit on one thread: the admission check (input take,
 * output pre-check) and the output charge on the shared buckets, 3 rounds of N requests.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

import { importFrom, positive, repoRoot, runIfMain } from '../script.js';

export const RATELIMIT_MICRO_USAGE = `Usage: native-bench ratelimit-micro [--requests N] [--rounds N] [--dist DIR]
  (or: node dist/native-bench/src/micro/ratelimit.js [options])

The local rate limit's admission check and output charge, ns per request.

  --requests N  requests per round (default 2000000)
  --rounds N    rounds (default 3)
  --dist DIR    compiled tree to measure (default: the repository's dist/)
  -h, --help
`;

export interface RatelimitMicroOptions { help: boolean; requests: number; rounds: number; dist: string }

export function parseRatelimitMicroArgs(argv: string[], root = repoRoot(import.meta.url)): RatelimitMicroOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      requests: { type: 'string', default: '2000000' }, rounds: { type: 'string', default: '3' }, dist: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return {
    help: values.help!, requests: positive(values.requests, 'requests')!, rounds: positive(values.rounds, 'rounds')!,
    dist: path.resolve(values.dist ?? path.join(root, 'dist')),
  };
}

interface Limiter { admit(m: unknown, tokens: number): unknown; recordOutput(m: unknown, tokens: number): void; close(): void }
interface LimiterModule {
  RateLimiter: new (o: { rateLimitSab: SharedArrayBuffer; failClosed: boolean; log: () => void }) => Limiter;
  compileRateLimit(cfg: unknown, models: string[]): Map<string, unknown>;
}

export async function ratelimitMicroMain(argv: string[]): Promise<number> {
  const o = parseRatelimitMicroArgs(argv);
  if (o.help) {
    process.stdout.write(RATELIMIT_MICRO_USAGE);
    return 0;
  }
  const { allocateRateLimitRegion } = await importFrom<{ allocateRateLimitRegion(n: number): SharedArrayBuffer }>(o.dist, 'src/shared/layout.js');
  const { RateLimiter, compileRateLimit } = await importFrom<LimiterModule>(o.dist, 'workers/ratelimit/limiter.js');
  const lim = new RateLimiter({ rateLimitSab: allocateRateLimitRegion(16), failClosed: false, log: () => {} });
  const m = compileRateLimit({
    inputTokensPerUnit: 2e9, outputTokensPerUnit: 2e9, unitSeconds: 1, redisAddress: '',
    buckets: [{ model: 'm', direction: 'input', slot: 0, gen: 0 }, { model: 'm', direction: 'output', slot: 1, gen: 0 }],
  }, ['m']).get('m');
  for (let r = 0; r < o.rounds; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < o.requests; i++) {
      lim.admit(m, 10);
      lim.recordOutput(m, 16);
    }
    process.stdout.write(`admit + output charge: ${Number(process.hrtime.bigint() - t) / o.requests} ns per request\n`);
  }
  lim.close();
  return 0;
}

runIfMain(import.meta.url, ratelimitMicroMain);
