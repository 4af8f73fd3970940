/**
 * Application logs: pino, JSON lines on stderr through an asynchronous destination (the access
 * log owns stdout, as in Kthena). Level comes from the frozen config.
 */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string): Logger {
  return pino({ level, base: { component: 'kthena-router' } }, pino.destination({ dest: 2, sync: false }));
}
