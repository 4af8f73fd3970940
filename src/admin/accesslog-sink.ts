/**
 * Where the control thread writes the access-log batches the workers post (ACCESS_LOG_OUTPUT:
 * `stdout`, `stderr` or a file path opened for append, as Kthena). Writes go through pino's
 * destination (SonicBoom) in asynchronous mode: the event loop never waits on the disk or on a
 * slow pipe, EAGAIN from a non-blocking stdout is retried by SonicBoom, and memory stays bounded.
 */
import pino from 'pino';

export interface AccessLogSink {
  /** Queue one or more newline-terminated lines. Never blocks. */
  write(lines: string): void;
  /** Resolves when everything written so far has reached the destination (or after `drainTimeoutMs`). */
  flush(): Promise<void>;
  /** Flush, then release the destination (a file is closed; stdout/stderr stay open). */
  close(): Promise<void>;
  /** Bytes dropped because the destination could not keep up with `maxBufferBytes` queued. */
  dropped(): number;
}

export interface AccessLogSinkOptions {
  /** Queue at most this much before dropping new lines. Default 64 MiB. */
  maxBufferBytes?: number;
  /** Longest flush()/close() waits for a stuck destination. Default 5000 ms. */
  drainTimeoutMs?: number;
  /** A write error other than EAGAIN (e.g. EPIPE, disk full). Default: a process warning. */
  onError?: (err: Error) => void;
}

type Destination = ReturnType<typeof pino.destination>;

function defaultOnError(err: Error): void {
  process.emitWarning(`access log write failed: ${err.message}`, 'AccessLogWarning');
}

export function createAccessLogSink(output: 'stdout' | 'stderr' | string, opts: AccessLogSinkOptions = {}): AccessLogSink {
  if (typeof output !== 'string' || output === '') {
    throw new TypeError('createAccessLogSink: output must be "stdout", "stderr" or a file path');
  }
  const dest: number | string = output === 'stdout' ? 1 : output === 'stderr' ? 2 : output;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 5000;
  const onError = opts.onError ?? defaultOnError;
  const stream: Destination = pino.destination({
    dest,
    sync: false,
    append: true,
    mkdir: typeof dest === 'string',
    maxLength: opts.maxBufferBytes ?? 64 * 1024 * 1024,
  });

  // SonicBoom reports completed writes (bytes) and empties its buffer with 'drain'; tracking the
  // queued byte count ourselves avoids reaching into its private fields to know whether a flush
  // has anything to wait for.
  let queued = 0;
  let droppedBytes = 0;
  let closed = false;
  stream.on('write', (n: number) => {
    queued -= n;
    if (queued < 0) queued = 0;
  });
  stream.on('drop', (data: string | Buffer) => {
    const n = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    droppedBytes += n;
    queued -= n;
    if (queued < 0) queued = 0;
  });
  stream.on('error', (err: Error) => onError(err));

  function waitIdle(): Promise<void> {
    if (queued === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stream.off('drain', onDrain);
        stream.off('error', done);
        resolve();
      };
      const onDrain = (): void => {
        if (queued === 0) done();
      };
      const timer = setTimeout(done, drainTimeoutMs);
      timer.unref();
      stream.on('drain', onDrain);
      stream.once('error', done);
    });
  }

  return {
    write(lines: string): void {
      if (closed || lines === '') return;
      queued += Buffer.byteLength(lines);
      stream.write(lines);
    },
    flush(): Promise<void> {
      return waitIdle();
    },
    async close(): Promise<void> {
      if (closed) return;
      await waitIdle();
      closed = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainTimeoutMs);
        timer.unref();
        stream.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        stream.end();
      });
    },
    dropped(): number {
      return droppedBytes;
    },
  };
}
