import type { Job } from '../contracts/index.js';
import { isFinished, type JobEvent, JobEvents } from './events.js';
import type { JobWatcher } from './watcher.js';

export interface FollowOptions {
  /** Resume after this event: only newer states are yielded. */
  lastEventId?: string | null;
  /** Ends the iteration (and frees its waiter) when aborted. */
  signal?: AbortSignal;
}

/**
 * A job's events as they happen: the job as the caller read it first (unless `lastEventId`
 * names it already), then each change the watcher sees, ending after the final one.
 */
export async function* followJob(
  watcher: JobWatcher,
  job: Job,
  options: FollowOptions = {},
): AsyncGenerator<JobEvent> {
  const events = new JobEvents(options.lastEventId);
  const reads: Job[] = [job];
  let wake: (() => void) | null = null;
  const unwatch = watcher.watch(job.job_id, (read) => {
    reads.push(read);
    wake?.();
  });
  const onAbort = () => wake?.();
  options.signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      for (let read = reads.shift(); read !== undefined; read = reads.shift()) {
        const event = events.next(read);
        if (event) yield event;
        if (isFinished(read)) return;
      }
      if (options.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
  } finally {
    unwatch();
    options.signal?.removeEventListener('abort', onAbort);
  }
}
