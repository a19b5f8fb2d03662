/**
 * Jobs moved by hand through the store's own statements, one at a time, for tests that need a
 * job in some state: what the submit service, a worker's claim and its completer do.
 */
import type { Job, RequestIX, ResponseIX } from '../../src/contracts/index.js';
import {
  type Admitted,
  type Claimed,
  type Db,
  type InsertResult,
  jobClaimMany,
  jobCompleteMany,
  jobGet,
  jobGetMany,
  jobInsertMany,
  jobStartMany,
  type Outcome,
  outcomeKey,
} from '../../src/store/index.js';
import { failure, makeRequest, success } from './factories.js';

/** Results of the store's insert whose key holds a job (none was pruned); throws otherwise. */
export function admitted(results: readonly InsertResult[]): Admitted[] {
  return results.map((result) => {
    if (result.job === null) throw result.conflict;
    return result;
  });
}

/** One job, through the store's insert alone: no batching, and no worker is woken. */
export async function insertPending(
  db: Db,
  request: RequestIX,
  callbackUrl: string | null,
): Promise<Admitted> {
  return admitted(await jobInsertMany(db, [{ request, callbackUrl }]))[0]!;
}

/** The outcome that ends a claimed job `done`, as its worker would record it. */
export function doneOutcome(claimed: Claimed): Outcome {
  return {
    jobId: claimed.job.job_id,
    attempt: claimed.job.attempts,
    claimEpoch: claimed.claimEpoch,
    leaseId: claimed.leaseId,
    limited: claimed.limited,
    status: 'done',
    response: success(claimed.job.ix_id),
  };
}

/** Claims and starts up to `limit` jobs, oldest first, leased to `workerId` (null: to none). */
export async function claimPending(db: Db, limit: number, workerId: string | null = null): Promise<Job[]> {
  const claimed = await jobClaimMany(db, { limit, workerId, startNow: limit });
  // The claim does not start a job once rescued from a dead worker (workers run it alone).
  const waiting = claimed.filter((c) => !c.started);
  await jobStartMany(db, workerId, waiting);
  // A claim returns what a worker needs of its jobs; tests look at the whole of each.
  const read = await jobGetMany(
    db,
    claimed.map((c) => c.job.job_id),
  );
  const jobs = new Map(read.map((j) => [j.job_id, j]));
  return claimed.map((c) => jobs.get(c.job.job_id)!);
}

export async function claimNextPending(db: Db, workerId: string | null = null): Promise<Job | null> {
  return (await claimPending(db, 1, workerId))[0] ?? null;
}

/**
 * Ends a job claimed at `attempt` with `response`: `done` iff its error is null, else `error`.
 * False when that attempt no longer holds the job.
 */
export async function finishJob(
  db: Db,
  jobId: string,
  attempt: number,
  response: ResponseIX,
): Promise<boolean> {
  const status = response.error === null ? 'done' : 'error';
  const applied = await jobCompleteMany(db, [{ jobId, attempt, response, status }]);
  return applied.has(outcomeKey(jobId, attempt));
}

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
    const response = outcomes[i] === 'done' ? success(job.ix_id) : failure(job.ix_id);
    if (!(await finishJob(db, job.job_id, job.attempts, response)))
      throw new Error(`finishedJobs: job ${job.job_id} did not finish`);
    jobs.push((await jobGet(db, job.job_id))!);
  }
  return jobs;
}

/**
 * A job whose first run failed retryably on `workerId` and whose second run, on the same worker,
 * ended it `done`: its history holds both runs. Due at once (no backoff). Assumes no other job is
 * pending: it claims the next one.
 */
export async function retriedThenDone(db: Db, workerId: string): Promise<Job> {
  const { job } = await insertPending(db, makeRequest(), null);
  await claimPending(db, 1, workerId);
  const retry = { jobId: job.job_id, attempt: 0, status: 'retry' as const, retryInSeconds: 0 };
  await jobCompleteMany(db, [{ ...retry, response: failure(job.ix_id, 'HTTP 503: busy') }]);
  await claimPending(db, 1, workerId);
  if (!(await finishJob(db, job.job_id, 1, success(job.ix_id))))
    throw new Error(`retriedThenDone: job ${job.job_id} did not finish`);
  return (await jobGet(db, job.job_id))!;
}
