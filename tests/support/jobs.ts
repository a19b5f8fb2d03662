import type { Job } from '../../src/contracts/index.js';
import { claimPending, type Db, get, insertPending, markDone, markError } from '../../src/store/index.js';
import { failure, makeRequest, success } from './factories.js';

/** Jobs that ran and ended through the store, each with `callbackUrl`: their deliveries are queued. */
export async function finishedJobs(
  db: Db,
  callbackUrl: string | null,
  outcomes: readonly ('done' | 'error')[],
): Promise<Job[]> {
  for (const _ of outcomes) await insertPending(db, makeRequest(), callbackUrl);
  const claimed = await claimPending(db, outcomes.length);
  const jobs: Job[] = [];
  for (const [i, job] of claimed.entries()) {
    const ok =
      outcomes[i] === 'done'
        ? await markDone(db, job.job_id, job.attempts, success(job.ix_id))
        : await markError(db, job.job_id, job.attempts, failure(job.ix_id));
    if (!ok) throw new Error(`finishedJobs: job ${job.job_id} did not finish`);
    jobs.push((await get(db, job.job_id))!);
  }
  return jobs;
}
