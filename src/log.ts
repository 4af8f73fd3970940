/**
 * Application logs: pino, JSON lines on stderr through an asynchronous destination (the access
 * log owns stdout, as in Kthena). Level comes from the frozen config.
 *
 * The destination's buffer is bounded: when stderr is slower than the log rate (a stalled pipe, a
 * log shipper that stopped reading), lines beyond LOG_BUFFER_BYTES are dropped and counted
 * (`kthena_router_log_dropped_lines_total`) instead of growing the heap until the process dies.
 */
import pino from 'pino';

export type Logger = pino.Logger;

/** Bytes of log lines held while stderr is not keeping up. */
export const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

let dropped = 0;

/** Lines dropped so far because the log buffer was full. */
export function droppedLogLines(): number {
  return dropped;
}

export function createLogger(level: string): Logger {
  const dest = pino.destination({ dest: 2, sync: false, maxLength: LOG_BUFFER_BYTES });
  dest.on('drop', () => { dropped++; });
  return pino({ level, base: { component: 'kthena-router' } }, dest);
}
