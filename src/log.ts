/**
 * Application logs: pino, JSON lines on stderr through an asynchronous destination (the access
 * log owns stdout, as in Kthena). Level and destination come from the frozen config: LOG_LEVEL or
 * klog's --v, and klog's --logtostderr=false with --log_file/--log_dir (plus --alsologtostderr).
 *
 * Every destination's buffer is bounded: when it is slower than the log rate (a stalled stderr
 * pipe, a log shipper that stopped reading, a slow disk), lines beyond LOG_BUFFER_BYTES are dropped
 * and counted (`kthena_router_log_dropped_lines_total`) instead of growing the heap until the
 * process dies.
 */
import pino from 'pino';
import type { AppLogConfig } from './config.js';

export type Logger = pino.Logger;

/** Bytes of log lines held per destination while it is not keeping up. */
export const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

let dropped = 0;

/** Lines dropped so far because a log buffer was full. */
export function droppedLogLines(): number {
  return dropped;
}

function bounded(d: ReturnType<typeof pino.destination>): ReturnType<typeof pino.destination> {
  d.on('drop', () => { dropped++; });
  return d;
}

export function createLogger(level: string, dest: AppLogConfig = { file: '', alsoStderr: false }): Logger {
  const opts = { level, base: { component: 'kthena-router' } };
  const stderr = (): pino.DestinationStream => bounded(pino.destination({ dest: 2, sync: false, maxLength: LOG_BUFFER_BYTES }));
  if (dest.file === '') return pino(opts, stderr());
  const file = bounded(pino.destination({ dest: dest.file, sync: false, mkdir: true, append: true, maxLength: LOG_BUFFER_BYTES }));
  if (!dest.alsoStderr) return pino(opts, file);
  // multistream filters by each stream's level; both take everything the logger lets through.
  return pino(opts, pino.multistream([{ level: 'trace', stream: file }, { level: 'trace', stream: stderr() }]));
}
