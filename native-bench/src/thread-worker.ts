/** One generator thread (threads.ts): rebuilds the workload, runs its share of the arrivals. */
import { runLoad, type LoadResult } from './runner.js';
import { ShardWorkload, workloadFromSpec, type ThreadTask } from './threads.js';

export default async function runShare(task: ThreadTask): Promise<LoadResult> {
  return runLoad({ ...task.load, workload: new ShardWorkload(workloadFromSpec(task.workload), task.indices) });
}
