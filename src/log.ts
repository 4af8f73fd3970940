/**
 * Application logs: pino, JSON lines on stderr through an asynchronous destination (the access
 * log owns stdout, as in Kthena). Level and destination come from the frozen config: LOG_LEVEL or
 * klog's --v, and klog's --logtostderr=false with --log_file/--log_dir (plus --alsologtostderr).
 */
import pino from 'pino';
import type { AppLogConfig } from './config.js';

export type Logger = pino.Logger;

export function createLogger(level: string, dest: AppLogConfig = { file: '', alsoStderr: false }): Logger {
  const opts = { level, base: { component: 'kthena-router' } };
  const stderr = (): pino.DestinationStream => pino.destination({ dest: 2, sync: false });
  if (dest.file === '') return pino(opts, stderr());
  const file = pino.destination({ dest: dest.file, sync: false, mkdir: true, append: true });
  if (!dest.alsoStderr) return pino(opts, file);
  // multistream filters by each stream's level; both take everything the logger lets through.
  return pino(opts, pino.multistream([{ level: 'trace', stream: file }, { level: 'trace', stream: stderr() }]));
}
