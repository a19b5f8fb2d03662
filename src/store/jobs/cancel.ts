/**
 * Cancelling jobs: a pending one ends `cancelled` at once; a running one is marked, and its
 * worker is told (CANCEL_CHANNEL, and its next heartbeat: ../workers.ts) to abort the pipeline and
 * record the `cancelled` outcome through the fenced completion (complete.ts).
 */
import type pg from 'pg';
import type { Job } from '../../contracts/index.js';
import { inTransaction } from '../db.js';
import { CANCEL_CHANNEL, CHANGED_CHANNEL } from '../notify.js';
import { hydrate, JOB_COLUMNS, type JobRow } from './hydrate.js';

/** A job that cannot be cancelled: it had ended (`done` or `error`) before. */
export class JobFinishedError extends Error {
  constructor(readonly job: Job) {
    super(
      `job ${job.job_id} has already ended ${job.status}; only a pending or running job can be cancelled`,
    );
    this.name = 'JobFinishedError';
  }
}

/** The job, unless it has ended `done` or `error`: then there is nothing left to cancel. */
export function unlessFinished(job: Job): Job {
  if (job.status === 'done' || job.status === 'error') throw new JobFinishedError(job);
  return job;
}

/** The response every cancelled job carries. */
export const CANCELLED_ERROR = 'cancelled';

// The queue row first: a claim holds it (FOR UPDATE SKIP LOCKED) until it commits, so waiting
// for it here means the job row read next is the claim's result, never a job about to be claimed.
// The job row next, locked like completion and the sweep lock it before its slot.
const DEQUEUE_SQL = 'DELETE FROM ix_job_queue WHERE job_id = $1';
const LOCK_SQL = 'SELECT status FROM ix_jobs WHERE job_id = $1 FOR UPDATE';
// A pending job, queued or claimed but unstarted: its claim_epoch moves on, so a worker holding the
// claim can neither start it nor record an outcome for it, and its lease entry holds it no more
// (leases.ts); a `max_running` slot it held is freed at once.
const CANCEL_PENDING_SQL = `
  WITH cancelled AS (
    UPDATE ix_jobs SET status = 'cancelled', finished_at = now(), cancel_requested_at = now(), worker_id = NULL,
      claim_epoch = claim_epoch + 1, run_after = NULL,
      response = jsonb_build_object('result', NULL, 'error', $2::text)
    WHERE job_id = $1 AND status = 'pending'
    RETURNING job_id, callback_url
  ), freed AS (
    DELETE FROM ix_job_slots WHERE job_id = ANY (ARRAY (SELECT job_id FROM cancelled))
  )
  INSERT INTO ix_callback_queue (job_id) SELECT job_id FROM cancelled WHERE callback_url IS NOT NULL`;
const REQUEST_SQL = `
  UPDATE ix_jobs SET cancel_requested_at = coalesce(cancel_requested_at, now())
  WHERE job_id = $1 AND status = 'running'`;
const READ_SQL = `SELECT ${JOB_COLUMNS} FROM ix_jobs WHERE job_id = $1`;

/**
 * Cancels a job and returns it as the cancellation left it: `cancelled`, or still `running`,
 * its worker asked to stop it. Null when there is none; a JobFinishedError when it had ended
 * `done` or `error`. One transaction of its own on `db`, a connection (not a pool): the job row
 * stays locked from its read to the commit, and the NOTIFY goes out with the commit. Idempotent:
 * a job already cancelled, or already asked to stop, is left as it is.
 */
export async function jobCancel(db: pg.ClientBase, jobId: string): Promise<Job | null> {
  return (await jobCancelEnding(db, jobId))?.job ?? null;
}

/** `jobCancel`, saying too whether this call ended the job (a pending one), for the metrics. */
export async function jobCancelEnding(
  db: pg.ClientBase,
  jobId: string,
): Promise<{ job: Job; ended: boolean } | null> {
  return inTransaction(db, () => cancelInTransaction(db, jobId));
}

async function cancelInTransaction(
  db: pg.ClientBase,
  jobId: string,
): Promise<{ job: Job; ended: boolean } | null> {
  await db.query(DEQUEUE_SQL, [jobId]);
  const { rows: locked } = await db.query<{ status: string }>(LOCK_SQL, [jobId]);
  const status = locked[0]?.status;
  if (status === undefined) return null;
  if (status === 'pending') await db.query(CANCEL_PENDING_SQL, [jobId, CANCELLED_ERROR]);
  if (status === 'running') await db.query(REQUEST_SQL, [jobId]);
  // A pending job too: a worker that holds its claim unstarted lets it go at once.
  if (status === 'pending' || status === 'running')
    await db.query('SELECT pg_notify($1, $3), pg_notify($2, $3)', [CANCEL_CHANNEL, CHANGED_CHANNEL, jobId]);
  const { rows } = await db.query<JobRow>(READ_SQL, [jobId]);
  return { job: unlessFinished(hydrate(rows[0]!)), ended: status === 'pending' };
}
