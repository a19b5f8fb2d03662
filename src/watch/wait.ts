import type { Job } from '../contracts/index.js';
import { isFinished } from './events.js';
import type { JobWatcher } from './watcher.js';

/**
 * The job once it has finished, or as last seen when `waitMs` runs out or `signal` aborts,
 * whichever comes first. `job` is how the caller last read it: a finished one returns at once.
 */
export function waitForEnd(
  watcher: JobWatcher,
  job: Job,
  waitMs: number,
  signal?: AbortSignal,
): Promise<Job> {
  if (isFinished(job) || waitMs <= 0 || signal?.aborted) return Promise.resolve(job);
  return new Promise((resolve) => {
    let latest = job;
    const end = () => {
      unwatch();
      clearTimeout(timer);
      signal?.removeEventListener('abort', end);
      resolve(latest);
    };
    const unwatch = watcher.watch(job.job_id, (read) => {
      latest = read;
      if (isFinished(read)) end();
    });
    const timer = setTimeout(end, waitMs);
    signal?.addEventListener('abort', end);
  });
}
