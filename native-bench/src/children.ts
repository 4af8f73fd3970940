/**
 * The child processes a benchmark command starts (routers, redis-server, servers of its own), so
 * that an interrupted command stops them instead of leaving them running: `native-bench compare`
 * killed with SIGTERM between two configurations used to leave its router and redis-server behind.
 *
 * Commands register each child with `track`; the CLI entry (`reapChildrenOnExit`, installed by
 * bin/native-bench.js, not by library callers such as the tests) sends SIGTERM to every child
 * still running when the process exits, and turns SIGTERM, SIGHUP and SIGINT into such an exit. A
 * child leaves the registry when it exits.
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

/** Registers a child until it exits; returns it. */
export function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGTERM to every registered child still running (synchronous: safe in an 'exit' handler). */
export function stopTracked(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}

let installed = false;

/**
 * Stops every tracked child when this process exits, and makes SIGTERM (143), SIGHUP (129) and
 * SIGINT (130) such an exit: Node's default for them ends the process without 'exit' handlers.
 * While a command has a SIGINT handler of its own (`run`: a first Ctrl-C finishes with the
 * results so far), SIGINT is left to it.
 */
export function reapChildrenOnExit(): void {
  if (installed) return;
  installed = true;
  process.on('exit', stopTracked);
  process.on('SIGTERM', () => process.exit(143));
  process.on('SIGHUP', () => process.exit(129));
  process.on('SIGINT', () => {
    if (process.listenerCount('SIGINT') === 1) process.exit(130);
  });
}
