/**
 * One thread's memory as its own V8 isolate sees it (process.memoryUsage(): `rss` is the whole
 * process's, the rest this thread's), optionally right after a full garbage collection. Used by
 * `POST /debug/fault/gc` (fault injection only) so that a soak can tell a leak from GC timing:
 * the heap after a forced full GC holds only what is still reachable.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export interface ThreadMemory {
  /** `control` or `worker-N`. */
  thread: string;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  /** Part of heapUsed that is compiled code (grows as functions are optimized: not a leak). */
  codeBytes: number;
}

let gcFn: (() => void) | null = null;

/** A full GC of this thread's isolate. A stall of tens of milliseconds: fault injection only. */
function fullGc(): void {
  if (gcFn === null) {
    // --expose-gc at run time: the flag applies to contexts created after it is set.
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

export function threadMemory(thread: string, gc: boolean): ThreadMemory {
  if (gc) fullGc();
  const m = process.memoryUsage();
  let code = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name.startsWith('code_')) code += s.space_used_size;
  return {
    thread, rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers,
    codeBytes: code,
  };
}
